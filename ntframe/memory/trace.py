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

**Reading** (``read_trace``, ``inspect``) recognises the format from the first line, not the file name, and
checks everything it reads: a missing, empty, truncated or malformed file, or a value out of its field's range,
is a SpecError naming the file and the line (text forms) or record (binary form).
"""

from __future__ import annotations

import json
import os
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
CSV_COLUMNS = ("time", "address", "vault", "bank", "row", "column", "write", "bytes", "tensor")


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
            self.fh.write(",".join(CSV_COLUMNS).encode() + b"\n")

    def write(self, chunk: np.ndarray) -> None:
        if not len(chunk):
            return
        self.count += len(chunk)
        if self.fmt == "nttrace":
            self.fh.write(chunk.astype(TRACE_DTYPE, copy=False).tobytes())
            return
        if self.fmt == "csv":
            cols = [chunk[c].astype(np.uint64) for c in CSV_COLUMNS]
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
# A file that is not a trace this module wrote (or a simulator reads) is a SpecError naming the file, and the
# line (text forms) or record (binary form), and what is wrong: nothing is guessed or wrapped round, and
# nothing but blank lines is skipped.

MAX_HEADER_BYTES = 16 * 1024 * 1024
"""Longest JSON header line of an ``.nttrace`` file (ntframe's own are a few KB)."""
MAX_LINE_BYTES = 1024
"""Longest line of a text trace (ntframe's own are under 100 bytes)."""
TEXT_CHUNK = 1 << 16
"""Lines of a text trace parsed at a time."""
READ_OPS = (b"R", b"READ", b"P_MEM_RD")
WRITE_OPS = (b"W", b"WRITE", b"P_MEM_WR")
_SIMULATOR_LINES = {"ramulator": "ADDRESS R|W, e.g. '0x1f40 R'",
                    "dramsim3": "ADDRESS READ|WRITE CYCLE, e.g. '0x1F40 READ 17'"}


def _show(raw: bytes) -> str:
    """Up to 40 bytes of a file, quoted, with what is not printable text shown as '?'."""
    text = "".join(c if c.isprintable() and c != "\ufffd" else "?" for c in raw[:40].decode("utf-8", "replace"))
    return f"'{text}{'...' if len(raw) > 40 else ''}'"


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a trace file", file=str(path)) from None
    except OSError as exc:
        raise SpecError(f"cannot read file: {exc.strerror or exc}", file=str(path)) from None


def detect_format(path: Path) -> str:
    """The trace format of ``path``, from its first line (not its name)."""
    with _open(path) as fh:
        head = fh.read(256)
    first = head.split(b"\n", 1)[0].strip()
    if not head:
        raise SpecError("empty file, not a trace", file=str(path))
    if head.startswith(MAGIC):
        return "nttrace"
    if head.startswith(b"NTTRACE"):
        raise SpecError(f"unsupported nttrace version: the first line is {_show(first)}; this ntframe reads "
                        f"'{MAGIC.decode().strip()}'", file=str(path))
    if first.startswith(b"time,"):
        return "csv"
    if b"READ" in first or b"WRITE" in first:
        return "dramsim3"
    if first.startswith(b"0x"):
        return "ramulator"
    raise SpecError(f"not a trace file ntframe knows: the first line is {_show(first)}; expected "
                    f"'{MAGIC.decode().strip()}' (nttrace), the header '{','.join(CSV_COLUMNS)}' (csv), "
                    f"{_SIMULATOR_LINES['ramulator']} (ramulator) or {_SIMULATOR_LINES['dramsim3']} (dramsim3)",
                    file=str(path))


def _nttrace_header(fh: IO[bytes], path: Path) -> dict:
    """The JSON header (line 2) of an open ``.nttrace`` file, leaving ``fh`` at the first record."""
    fh.readline()
    line = fh.readline(MAX_HEADER_BYTES + 1)
    if len(line) > MAX_HEADER_BYTES:
        raise SpecError(f"the header (line 2) is longer than {MAX_HEADER_BYTES:,} bytes", file=str(path), line=2)
    if not line.endswith(b"\n"):
        raise SpecError("truncated: the JSON header line after 'NTTRACE 1' is missing or unterminated",
                        file=str(path), line=2)
    try:
        header = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise SpecError(f"the header is not valid JSON: {exc}", file=str(path), line=2) from None
    if not isinstance(header, dict):
        raise SpecError(f"the header must be a JSON object, not {type(header).__name__}", file=str(path), line=2)
    tensors = header.get("tensors", [])
    if not (isinstance(tensors, list) and all(isinstance(t, str) for t in tensors)):
        raise SpecError("the header's 'tensors' must be a list of names", file=str(path), line=2)
    return header


def _nttrace_records(fh: IO[bytes], path: Path, chunk: int) -> Iterator[np.ndarray]:
    """The records of an open ``.nttrace`` file from its position on; a partial record or a write flag other
    than 0 or 1 is an error."""
    size = TRACE_DTYPE.itemsize
    with fh:
        start = fh.tell()
        left_over = (os.fstat(fh.fileno()).st_size - start) % size
        if left_over:
            raise SpecError(f"truncated: the records end in {left_over} bytes of a partial record (records are "
                            f"{size} bytes)", file=str(path))
        done = 0
        while True:
            data = fh.read(chunk * size)
            if not data:
                return
            if len(data) % size:
                raise SpecError(f"truncated: record {done + len(data) // size:,} is partial (the file changed "
                                f"while being read?)", file=str(path))
            recs = np.frombuffer(data, TRACE_DTYPE)
            bad = np.flatnonzero(recs["write"] > 1)
            if len(bad):
                raise SpecError(f"record {done + int(bad[0]):,} (byte {start + (done + int(bad[0])) * size:,}): "
                                f"write flag {int(recs['write'][bad[0]])}, must be 0 or 1; the records are "
                                f"not {size}-byte nttrace records", file=str(path))
            done += len(recs)
            yield recs


def _int(text: bytes, what: str, top: int, base: int = 10) -> int:
    try:
        value = int(text, base)
    except ValueError:
        raise ValueError(f"{what} {_show(text)} is not a {'hexadecimal' if base == 16 else 'whole'} number") \
            from None
    if not 0 <= value <= top:
        raise ValueError(f"{what} {value} is out of range (0 to {top:,})")
    return value


_CSV_TOPS = [1 if c == "write" else int(np.iinfo(TRACE_DTYPE[c]).max) for c in CSV_COLUMNS]


def _text_row(fmt: str, line: bytes) -> list[int]:
    """One line of a text trace as integers: the nine CSV columns, or address, write flag and time (dramsim3;
    ramulator: 0) of a simulator line. ValueError says what is wrong with it."""
    if fmt == "csv":
        parts = line.split(b",")
        if len(parts) != len(CSV_COLUMNS):
            raise ValueError(f"{len(parts)} values; a row has {len(CSV_COLUMNS)} ({','.join(CSV_COLUMNS)})")
        return [_int(p.strip(), c, top) for p, c, top in zip(parts, CSV_COLUMNS, _CSV_TOPS)]
    parts = line.split()
    if len(parts) != (3 if fmt == "dramsim3" else 2):
        raise ValueError(f"{_show(line.strip())} is not {_SIMULATOR_LINES[fmt]}")
    address = _int(parts[0], "address", (1 << 64) - 1, 16)
    op = parts[1].upper()
    if op not in READ_OPS + WRITE_OPS:
        raise ValueError(f"operation {_show(parts[1])} is neither a read ({', '.join(o.decode() for o in READ_OPS)}) "
                         f"nor a write ({', '.join(o.decode() for o in WRITE_OPS)})")
    time = _int(parts[2], "cycle", (1 << 64) - 1) if fmt == "dramsim3" else 0
    return [address, int(op in WRITE_OPS), time]


def _text_records(path: Path, fmt: str, mapping: AddressMapping, chunk: int) -> Iterator[np.ndarray]:
    """The records of a text trace, ``chunk`` lines at a time (blank lines skipped)."""
    with _open(path) as fh:
        number = 0                                      # line number in the file
        if fmt == "csv":
            first = fh.readline(MAX_LINE_BYTES + 1).strip()
            number = 1
            if first != ",".join(CSV_COLUMNS).encode():
                raise SpecError(f"the CSV header is {_show(first)}; it must be '{','.join(CSV_COLUMNS)}'",
                                file=str(path), line=1)
        done = 0                                        # records so far (a ramulator line's time)
        while True:
            rows: list[list[int]] = []
            while len(rows) < chunk:
                line = fh.readline(MAX_LINE_BYTES + 1)
                if not line:
                    break
                number += 1
                try:
                    if len(line) > MAX_LINE_BYTES:
                        raise ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
                    if line.strip():
                        rows.append(_text_row(fmt, line))
                except ValueError as exc:
                    raise SpecError(f"{exc} ({fmt} trace)", file=str(path), line=number) from None
            if not rows:
                return
            arr = np.array(rows, np.uint64)
            if fmt == "csv":
                out = np.zeros(len(arr), TRACE_DTYPE)
                for i, c in enumerate(CSV_COLUMNS):
                    out[c] = arr[:, i]
            else:
                time = arr[:, 2] if fmt == "dramsim3" else np.arange(done, done + len(arr), dtype=np.uint64)
                out = records(time, arr[:, 0], arr[:, 1], mapping)
            done += len(out)
            yield out


def read_trace(path: str | Path, mapping: AddressMapping | None = None,
               chunk: int = 1 << 20) -> tuple[dict, Iterator[np.ndarray]]:
    """(header, iterator of record chunks). Simulator formats are decoded with ``mapping`` (default
    RoCoBaVa); their line number is the time when they carry none. A malformed file raises a SpecError
    naming it (and the line or record), here or while iterating."""
    path = Path(path)
    fmt = detect_format(path)
    mapping = mapping or ADDRESS_MAPPINGS["RoCoBaVa"]
    if fmt == "nttrace":
        fh = _open(path)
        try:
            header = _nttrace_header(fh, path)
        except BaseException:
            fh.close()
            raise
        return header, _nttrace_records(fh, path, chunk)
    return ({"format": fmt, "address_mapping": mapping.name},
            _text_records(path, fmt, mapping, min(chunk, TEXT_CHUNK)))


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
