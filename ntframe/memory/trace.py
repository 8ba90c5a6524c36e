"""HMC request traces: one canonical format, address mappings, converters, and generation from a mapping.

**Canonical record** (``TRACE_DTYPE``, little-endian, 32 bytes): ``time`` (uint64, logic-die cycles at which
the request is issued), ``address`` (uint64, byte address in the cube), ``vault`` (uint16), ``bank`` (uint16,
bank within the vault, bank groups folded in), ``row`` (uint32), ``column`` (uint16), ``write`` (uint8, 1 for
a write), ``bytes`` (uint16), ``tensor`` (uint16, index into the header's tensor names).

**Binary form** (``.nttrace``): the line ``NTTRACE 1``, one line of JSON header (tensor names, address
mapping, organisation, producer), then the records back to back — appendable and readable in chunks.
**Text form** (``.csv``): a header row, then one row per request. Writers for the simulators:
**Ramulator 1** DRAM mode (``0x1f40 R`` / ``0x1f40 W``, every line newline-terminated — Ramulator drops an
unterminated last line) and **DRAMSim3** (``0x1F40 READ 17`` / ``WRITE``; it reads ``W`` as a read).

**Address mappings** (``ADDRESS_MAPPINGS``), bit fields from the least significant bit of a byte address for
HMC 2.1 4 GB (32 vaults, 16 banks as 4 bank groups × 2 banks… folded, 64 K rows, 32-byte columns):
``RoCoBaVa`` and ``RoBaCoVa`` as Ramulator 1's HMC model slices them (offset 5 bits, column bit 0, then the
named order, the column's high bits where the name puts them), and ``rocorabgbach`` as DRAMSim3's default
for its HMC configurations (offset 6 bits, vault 5, bank 4, column 2, row).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from ntframe.errors import SpecError

TRACE_DTYPE = np.dtype([("time", "<u8"), ("address", "<u8"), ("vault", "<u2"), ("bank", "<u2"),
                        ("row", "<u4"), ("column", "<u2"), ("write", "u1"), ("pad", "u1"), ("bytes", "<u2"),
                        ("tensor", "<u2")])
MAGIC = b"NTTRACE 1\n"
LINE_BYTES = 64


@dataclass(frozen=True)
class AddressMapping:
    """Bit fields of a byte address, least significant first: (field, bits)."""

    name: str
    fields: tuple[tuple[str, int], ...]

    @property
    def total_bits(self) -> int:
        return sum(b for _, b in self.fields)

    def decode(self, address: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        shift = 0
        for field, bits in self.fields:
            value = (address >> np.uint64(shift)) & np.uint64((1 << bits) - 1)
            if field in out:     # a field split in two places: the later bits are the high part
                out[field] = out[field] | (value << np.uint64(self._low_bits(field, shift)))
            else:
                out[field] = value
            shift += bits
        return out

    def _low_bits(self, field: str, upto: int) -> int:
        shift = bits_seen = 0
        for f, b in self.fields:
            if shift >= upto:
                break
            if f == field:
                bits_seen += b
            shift += b
        return bits_seen

    def encode(self, **values: np.ndarray) -> np.ndarray:
        """Byte address of the given field values (missing fields are 0)."""
        address = np.zeros(np.broadcast(*values.values()).shape if values else (), np.uint64)
        shift = 0
        consumed: dict[str, int] = {}
        for field, bits in self.fields:
            v = np.asarray(values.get(field, 0), np.uint64)
            low = consumed.get(field, 0)
            part = (v >> np.uint64(low)) & np.uint64((1 << bits) - 1)
            address = address | (part << np.uint64(shift))
            consumed[field] = low + bits
            shift += bits
        return address


# HMC 2.1, 4 GB: 32 vaults, 16 banks per vault (4 bank groups x 2 banks in Ramulator, folded here as bank
# bits), 65,536 rows, 8 columns of 32 B per row-buffer (256 B rows per bank).
ADDRESS_MAPPINGS = {
    "RoCoBaVa": AddressMapping("RoCoBaVa", (("offset", 5), ("column", 1), ("vault", 5), ("bank", 3),
                                            ("column", 2), ("row", 16))),
    "RoBaCoVa": AddressMapping("RoBaCoVa", (("offset", 5), ("column", 1), ("vault", 5), ("column", 2),
                                            ("bank", 3), ("row", 16))),
    "rocorabgbach": AddressMapping("rocorabgbach", (("offset", 6), ("vault", 5), ("bank", 4), ("column", 2),
                                                    ("row", 16))),
}


def mapping_named(name: str) -> AddressMapping:
    try:
        return ADDRESS_MAPPINGS[name]
    except KeyError:
        from ntframe.yamlio import did_you_mean
        raise SpecError(f"unknown address mapping '{name}'; known: {', '.join(ADDRESS_MAPPINGS)}"
                        f"{did_you_mean(name, list(ADDRESS_MAPPINGS))}") from None


def records(time, address, write, mapping: AddressMapping, tensor=0, nbytes=LINE_BYTES) -> np.ndarray:
    """Canonical records for arrays of issue times, byte addresses and write flags."""
    address = np.asarray(address, np.uint64)
    out = np.zeros(address.shape[0], TRACE_DTYPE)
    fields = mapping.decode(address)
    out["time"] = time
    out["address"] = address
    out["vault"] = fields.get("vault", 0)
    out["bank"] = fields.get("bank", 0)
    out["row"] = fields.get("row", 0)
    out["column"] = fields.get("column", 0)
    out["write"] = write
    out["bytes"] = nbytes
    out["tensor"] = tensor
    return out


# --- writing -------------------------------------------------------------------------------------------------

FORMATS = ("nttrace", "csv", "ramulator", "dramsim3")


class TraceWriter:
    """Streams chunks of canonical records to a file in one of ``FORMATS``."""

    def __init__(self, path: str | Path, fmt: str, header: dict | None = None) -> None:
        if fmt not in FORMATS:
            raise SpecError(f"unknown trace format '{fmt}'; formats: {', '.join(FORMATS)}")
        self.path, self.fmt, self.count = Path(path), fmt, 0
        self.fh: IO[bytes] = open(self.path, "wb")
        if fmt == "nttrace":
            self.fh.write(MAGIC + json.dumps(header or {}, sort_keys=True).encode() + b"\n")
        elif fmt == "csv":
            self.fh.write(b"time,address,vault,bank,row,column,write,bytes,tensor\n")

    def write(self, chunk: np.ndarray) -> None:
        if not len(chunk):
            return
        self.count += len(chunk)
        if self.fmt == "nttrace":
            self.fh.write(chunk.astype(TRACE_DTYPE, copy=False).tobytes())
            return
        if self.fmt == "csv":
            cols = [chunk[c].astype(np.uint64) for c in ("time", "address", "vault", "bank", "row", "column",
                                                         "write", "bytes", "tensor")]
            text = "\n".join(",".join(map(str, row)) for row in zip(*(c.tolist() for c in cols))) + "\n"
        elif self.fmt == "ramulator":
            op = np.where(chunk["write"] == 1, " W", " R")
            text = "".join(f"0x{a:x}{o}\n" for a, o in zip(chunk["address"].tolist(), op.tolist()))
        else:
            op = np.where(chunk["write"] == 1, " WRITE ", " READ ")
            text = "".join(f"0x{a:X}{o}{t}\n" for a, o, t in zip(chunk["address"].tolist(), op.tolist(),
                                                                  chunk["time"].tolist()))
        self.fh.write(text.encode())

    def close(self) -> None:
        self.fh.close()

    def __enter__(self) -> "TraceWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- reading -------------------------------------------------------------------------------------------------

def detect_format(path: Path) -> str:
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(MAGIC):
        return "nttrace"
    first = head.split(b"\n", 1)[0]
    if first.startswith(b"time,"):
        return "csv"
    if b"READ" in first or b"WRITE" in first:
        return "dramsim3"
    if first.startswith(b"0x"):
        return "ramulator"
    raise SpecError("not a trace file ntframe knows (nttrace, csv, ramulator, dramsim3)", file=str(path))


def read_trace(path: str | Path, mapping: AddressMapping | None = None,
               chunk: int = 1 << 20) -> tuple[dict, Iterator[np.ndarray]]:
    """(header, iterator of record chunks). Simulator formats are decoded with ``mapping`` (default
    RoCoBaVa); their line number is the time when they carry none."""
    path = Path(path)
    fmt = detect_format(path)
    mapping = mapping or ADDRESS_MAPPINGS["RoCoBaVa"]
    if fmt == "nttrace":
        fh = open(path, "rb")
        fh.readline()
        header = json.loads(fh.readline())

        def gen() -> Iterator[np.ndarray]:
            with fh:
                while True:
                    data = fh.read(chunk * TRACE_DTYPE.itemsize)
                    if not data:
                        return
                    yield np.frombuffer(data, TRACE_DTYPE)
        return header, gen()
    header = {"format": fmt, "address_mapping": mapping.name}

    def text_gen() -> Iterator[np.ndarray]:
        with open(path) as fh:
            if fmt == "csv":
                fh.readline()
            n = 0
            while True:
                lines = [ln for ln in (fh.readline() for _ in range(chunk)) if ln.strip()]
                if not lines:
                    return
                if fmt == "csv":
                    arr = np.array([list(map(int, ln.split(","))) for ln in lines], np.uint64)
                    out = np.zeros(len(arr), TRACE_DTYPE)
                    for i, c in enumerate(("time", "address", "vault", "bank", "row", "column", "write", "bytes",
                                           "tensor")):
                        out[c] = arr[:, i]
                else:
                    parts = [ln.split() for ln in lines]
                    address = np.array([int(p[0], 16) for p in parts], np.uint64)
                    write = np.array([p[1] in ("W", "WRITE", "write", "P_MEM_WR") for p in parts], np.uint8)
                    time = (np.array([int(p[2]) for p in parts], np.uint64) if fmt == "dramsim3"
                            else np.arange(n, n + len(parts), dtype=np.uint64))
                    out = records(time, address, write, mapping)
                n += len(lines)
                yield out
    return header, text_gen()


def inspect(path: str | Path, mapping: AddressMapping | None = None) -> dict:
    """Counts, bytes per vault, and the row-hit rate an open-page bank would see in trace order."""
    header, chunks = read_trace(path, mapping)
    reads = writes = nbytes = 0
    per_vault = np.zeros(32, np.int64)          # grows with multi-cube traces
    last_row: dict[tuple[int, int], int] = {}
    hits = total = 0
    t_min, t_max = None, 0
    tensors: dict[int, int] = {}
    for c in chunks:
        w = c["write"].astype(bool)
        reads += int((~w).sum())
        writes += int(w.sum())
        nbytes += int(c["bytes"].sum())
        if len(c) and int(c["vault"].max()) >= len(per_vault):
            per_vault = np.r_[per_vault, np.zeros(int(c["vault"].max()) + 1 - len(per_vault), np.int64)]
        np.add.at(per_vault, c["vault"].astype(np.int64), c["bytes"].astype(np.int64))
        key = c["vault"].astype(np.int64) * 65536 + c["bank"].astype(np.int64)
        order = np.lexsort((np.arange(len(c)), key))
        k, r = key[order], c["row"].astype(np.int64)[order]
        same = np.zeros(len(c), bool)
        same[1:] = (k[1:] == k[:-1]) & (r[1:] == r[:-1])
        first = np.ones(len(c), bool)
        first[1:] = k[1:] != k[:-1]
        for i in np.flatnonzero(first):                  # continue each bank's row across chunks
            same[i] = last_row.get(int(k[i])) == int(r[i])
        last_idx = np.r_[np.flatnonzero(first)[1:] - 1, len(c) - 1] if len(c) else []
        for i in last_idx:
            last_row[int(k[i])] = int(r[i])
        hits += int(same.sum())
        total += len(c)
        t_min = int(c["time"].min()) if t_min is None else min(t_min, int(c["time"].min()))
        t_max = max(t_max, int(c["time"].max()))
        for t, n in zip(*np.unique(c["tensor"], return_counts=True)):
            tensors[int(t)] = tensors.get(int(t), 0) + int(n)
    names = header.get("tensors", [])
    return {"requests": total, "reads": reads, "writes": writes, "bytes": nbytes,
            "bytes_per_vault": per_vault.tolist(), "open_page_row_hit_rate": hits / total if total else 0.0,
            "time_span_cycles": (t_max - t_min) if t_min is not None else 0,
            "requests_by_tensor": {(names[k] if k < len(names) else str(k)): v for k, v in sorted(tensors.items())},
            "header": header}


__all__ = ["TRACE_DTYPE", "AddressMapping", "ADDRESS_MAPPINGS", "TraceWriter", "read_trace", "inspect",
           "records", "mapping_named", "FORMATS"]
