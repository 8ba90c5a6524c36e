"""The results bundle of a run, and :class:`Results`, the object the Python API returns.

Files (each written whole or not at all): ``results.json`` (the document: totals, phases, network, operations,
provenance; described field by field in ``docs/results.md``), ``operations.csv`` and, with pyarrow installed (the
``tables`` extra), ``operations.parquet`` and ``phases.parquet``. The operation table has the same columns in CSV,
Parquet and :meth:`Results.to_pandas`, every numeric column with its unit in its name.
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ntframe.cache import new_file_mode
from ntframe.errors import SpecError, ToolError

SCHEMA = "ntframe.results/1"
SCHEMA_VERSION = 1
"""Bumped when a field of ``results.json`` changes meaning or goes away (added fields keep it)."""

TABLES_FIX = "pip install 'ntframe[tables]'"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Literal["str", "int", "float"]
    description: str


SCOPES = ("datapath", "logic_die", "module", "system")
"""Power scopes, each inside the next: the datapath's actions (MACs, adds); the logic die (the datapath, register
files, buffers, the network, and the leakage of every logic-die component); the module (the logic die, the DRAM
traffic as the memory backend prices it, the DRAM's leakage); the system (the module, and once several cubes are
modelled their links and host interface: until then the module)."""


def scope_figures(agg: dict[str, Any], latency_s: float) -> dict[str, dict[str, float]]:
    """Per power scope: its energy, the FLOPs per joule of it (GFLOPS/W) and its mean power over ``latency_s``."""
    out = {}
    for scope in SCOPES:
        energy_J = agg[f"{scope}_energy_pJ"] * 1e-12
        out[scope] = {"energy_pJ": agg[f"{scope}_energy_pJ"],
                      "efficiency_GFLOPS_per_W": agg["flops"] / energy_J / 1e9 if energy_J else 0.0,
                      "power_W": energy_J / latency_s if latency_s else 0.0}
    return out


OPERATION_COLUMNS: tuple[Column, ...] = (
    Column("name", "str", "operation: layer.phase, or layer.phase.part"),
    Column("layer", "str", "layer of the network"),
    Column("phase", "str", "training phase: forward, backward_data, backward_weight, update"),
    Column("kind", "str", "operation kind (conv, matmul, elementwise, ...)"),
    Column("status", "str", "ok, or error (then only the error and the operation's counts are given)"),
    Column("macs", "int", "multiply-accumulates"),
    Column("flops", "int", "floating-point (or fixed-point) operations: 2 per MAC, 1 per add or compare"),
    Column("cycles", "float", "logic-die clock cycles: max(on-die, memory)"),
    Column("on_die_cycles", "float", "cycles of the logic die (compute and on-die levels), cost model"),
    Column("memory_cycles", "float", "cycles of the memory traffic, memory backend (logic-die clock)"),
    Column("latency_s", "float", "cycles / clock"),
    Column("energy_pJ", "float", "on-die + memory + static energy (the module's)"),
    Column("on_die_energy_pJ", "float", "energy of the logic die: datapath and on-die levels, cost model"),
    Column("memory_energy_pJ", "float", "energy of the memory traffic, memory backend"),
    Column("compute_energy_pJ", "float", "energy of the datapath actions alone (part of on_die_energy_pJ)"),
    Column("vault_controller_energy_pJ", "float", "part of memory_energy_pJ spent in the logic die's vault "
           "controllers (the DRAM's logic_energy_pJ_per_bit per bit moved), counted in the logic die's scope"),
    Column("static_energy_pJ", "float", "leakage of every component (logic die and DRAM) over the operation's latency"),
    Column("datapath_energy_pJ", "float", "power scope datapath: the datapath's actions (MACs, adds)"),
    Column("logic_die_energy_pJ", "float", "power scope logic die: on-die energy + the vault controllers + the "
           "logic die's leakage"),
    Column("module_energy_pJ", "float", "power scope module: the logic die + the rest of the DRAM traffic + DRAM "
           "leakage (energy_pJ)"),
    Column("system_energy_pJ", "float", "power scope system: the module + links and host interface (until "
           "multi-cube systems: the module)"),
    Column("utilisation", "float", "useful operations / (peak operations per cycle x cycles), 0 to 1"),
    Column("dram_bytes", "int", "bytes read and written at the memory level, cost model"),
    Column("dram_read_bytes", "int", "bytes read at the memory level, cost model"),
    Column("dram_write_bytes", "int", "bytes written at the memory level, cost model"),
    Column("memory_bytes", "int", "bytes the memory backend moved (read and written)"),
    Column("memory_row_hit_rate", "float", "row-buffer hits per request, memory backend"),
    Column("memory_share_simulated", "float", "requests simulated / requests of the trace (1: the whole trace)"),
    Column("memory_energy_low_pJ", "float", "lower end of the 95 % interval of memory_energy_pJ (sampling)"),
    Column("memory_energy_high_pJ", "float", "upper end of the 95 % interval of memory_energy_pJ"),
    Column("memory_energy_gap", "float", "memory_energy_pJ / the cost model's energy for the memory level - 1"),
    Column("memory_cycles_gap", "float", "memory_cycles / the cost model's bandwidth bound for the memory level - 1"),
    Column("mapper", "str", "mapping searcher that mapped the operation"),
    Column("cost_model", "str", "compute cost model that priced it"),
    Column("memory", "str", "memory backend that priced its memory traffic"),
    Column("error", "str", "why the operation failed (status error)"),
)
PRODUCERS = ("mapper", "cost_model", "memory")

PHASE_COLUMNS: tuple[Column, ...] = (
    Column("phase", "str", "training phase"),
    Column("operations", "int", "operations of the phase that succeeded"),
    Column("macs", "int", "multiply-accumulates"),
    Column("flops", "int", "operations: 2 per MAC, 1 per add or compare"),
    Column("cycles", "float", "logic-die clock cycles (the phase's operations one after another)"),
    Column("latency_s", "float", "cycles / clock"),
    Column("energy_pJ", "float", "energy"),
    Column("energy_share", "float", "the phase's share of the step's energy, 0 to 1"),
    Column("throughput_GFLOPS", "float", "flops / latency_s / 1e9"),
    Column("efficiency_GFLOPS_per_W", "float", "flops / energy in joules / 1e9"),
    Column("power_W", "float", "energy in joules / latency_s"),
    Column("static_energy_pJ", "float", "leakage over the phase's latency"),
    Column("datapath_GFLOPS_per_W", "float", "flops / the datapath scope's energy in joules / 1e9"),
    Column("logic_die_GFLOPS_per_W", "float", "flops / the logic die scope's energy in joules / 1e9"),
    Column("module_GFLOPS_per_W", "float", "flops / the module scope's energy in joules / 1e9 "
           "(efficiency_GFLOPS_per_W)"),
    Column("system_GFLOPS_per_W", "float", "flops / the system scope's energy in joules / 1e9"),
)


def shared_mode(tmp: str) -> None:
    """Give a file made by ``tempfile.mkstemp`` (always 0600) the mode a plain ``open`` would: 0666 less the
    umask, so results can be shared as the user's other files are."""
    os.chmod(tmp, new_file_mode())


def usable_folder(folder: Path) -> Path:
    """``folder``, made if missing, once a file could be written in it and removed: checked before any work, so a
    run never ends unable to write what it computed. A folder that cannot be used is a SpecError (exit 2) naming
    it and why."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".ntframe-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SpecError(f"the output folder {folder} cannot be written ({exc.strerror or exc}); choose another "
                        f"with -o or the spec's output") from None
    return folder


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then a rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        shared_mode(tmp)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _memory_figures(memory: dict[str, Any] | None) -> dict[str, Any]:
    """The memory backend's columns of an operation (None where it gives no such figure)."""
    if not memory:
        return {}
    details = memory.get("details") or {}
    interval = details.get("energy_interval_pJ") or [None, None]
    return {"memory_bytes": memory["read_bytes"] + memory["write_bytes"],
            "memory_row_hit_rate": details.get("row_hit_rate"),
            "memory_share_simulated": details.get("share_simulated"),
            "memory_energy_low_pJ": interval[0], "memory_energy_high_pJ": interval[1]}


def operation_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The operation table: one dict per operation, the keys of :data:`OPERATION_COLUMNS` (None where a failed
    operation has no figure)."""
    rows = []
    for op in document["operations"]:
        producers = op.get("producers", {})
        memory = _memory_figures(op.get("memory"))
        rows.append({c.name: producers.get(c.name) if c.name in PRODUCERS else memory.get(c.name, op.get(c.name))
                     for c in OPERATION_COLUMNS})
    return rows


def phase_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The phase table: one dict per phase, the keys of :data:`PHASE_COLUMNS`."""
    clock_Hz = document["provenance"]["architecture"]["clock_GHz"] * 1e9
    total_energy = document["totals"]["energy_pJ"]
    counts: dict[str, int] = {}
    for op in document["operations"]:
        if op["status"] == "ok":
            counts[op["phase"]] = counts.get(op["phase"], 0) + 1
    rows = []
    for phase, agg in document["phases"].items():
        latency = agg["cycles"] / clock_Hz
        energy_J = agg["energy_pJ"] * 1e-12
        rows.append({"phase": phase, "operations": counts.get(phase, 0), "macs": agg["macs"], "flops": agg["flops"],
                     "cycles": agg["cycles"], "latency_s": latency, "energy_pJ": agg["energy_pJ"],
                     "energy_share": agg["energy_pJ"] / total_energy if total_energy else 0.0,
                     "throughput_GFLOPS": agg["flops"] / latency / 1e9 if latency else 0.0,
                     "efficiency_GFLOPS_per_W": agg["flops"] / energy_J / 1e9 if energy_J else 0.0,
                     "power_W": energy_J / latency if latency else 0.0,
                     "static_energy_pJ": agg["static_energy_pJ"],
                     **{f"{scope}_GFLOPS_per_W": figures["efficiency_GFLOPS_per_W"]
                        for scope, figures in scope_figures(agg, latency).items()}})
    return rows


TABLES = {"operations": (OPERATION_COLUMNS, operation_rows), "phases": (PHASE_COLUMNS, phase_rows)}


def _table(document: dict[str, Any], table: str) -> tuple[tuple[Column, ...], list[dict[str, Any]]]:
    if table not in TABLES:
        raise SpecError(f"no table '{table}'; tables: {', '.join(TABLES)}")
    columns, rows = TABLES[table]
    return columns, rows(document)


def json_text(value: Any, width: int = 110) -> str:
    """``results.json``'s text: strict JSON (no NaN or infinity), a container that fits in ``width`` characters
    on one line, any other one item per line indented by one space per level. Each line is written by the C
    encoder (``json.dumps`` with an indent runs in Python: a quarter of a cached run on VGG-16)."""
    encode = json.JSONEncoder(allow_nan=False, separators=(", ", ": ")).encode

    def dump(v: Any, indent: int, key: int = 0) -> str:
        """``v`` on a line that starts with ``indent`` spaces and a key of ``key`` characters."""
        if not isinstance(v, (dict, list)) or not v or len(v) * 2 + indent + key <= width:
            flat = encode(v)
            if not isinstance(v, (dict, list)) or not v or len(flat) + indent + key <= width:
                return flat
        pad = " " * (indent + 1)
        if isinstance(v, dict):
            keys = [encode({k: None})[1:-7] + ": " for k in v]
            items = [pad + k + dump(x, indent + 1, len(k)) for k, x in zip(keys, v.values())]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
        return "[\n" + ",\n".join(pad + dump(x, indent + 1) for x in v) + "\n" + " " * indent + "]"
    return dump(value, 0)


def csv_text(document: dict[str, Any]) -> str:
    """``operations.csv``: floats in full precision (``repr``), empty cells where a figure is missing."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.name for c in OPERATION_COLUMNS])
    for row in operation_rows(document):
        writer.writerow(["" if v is None else repr(v) if isinstance(v, float) else v for v in row.values()])
    return buf.getvalue()


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(document: dict[str, Any], table: str, path: Path) -> Path:
    """One table of the document as a Parquet file (column descriptions in the field metadata)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ToolError("writing Parquet needs pyarrow", fix=TABLES_FIX) from None
    columns, rows = _table(document, table)
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64()}
    schema = pa.schema([pa.field(c.name, types[c.kind], metadata={"description": c.description}) for c in columns],
                       metadata={"ntframe.schema": SCHEMA, "ntframe.table": table,
                                 "ntframe.spec_sha256": document["provenance"]["spec_sha256"]})
    data = pa.Table.from_arrays([_arrow_column(pa, c, types[c.kind], [row[c.name] for row in rows])
                                 for c in columns], schema=schema)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(data, tmp)
        shared_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _arrow_column(pa, column: Column, arrow_type, values: list[Any]):
    """One column as an Arrow array made from its buffers (None: null). ``pa.array`` would import pandas, a third
    of a cached run's time, to check whether the values are a pandas object."""
    import numpy as np
    n = len(values)
    valid = np.array([v is not None for v in values], bool)
    nulls = n - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    if column.kind == "str":
        data = [str(v).encode() if v is not None else b"" for v in values]
        offsets = np.cumsum([0] + [len(b) for b in data], dtype=np.int64)
        if offsets[-1] >= 2 ** 31:
            raise ValueError(f"column {column.name}: more than 2 GiB of text")
        buffers = [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(data))]
    else:
        wanted = (int,) if column.kind == "int" else (int, float)
        wrong = next((v for v in values if v is not None and (isinstance(v, bool) or not isinstance(v, wanted))), None)
        if wrong is not None:
            raise TypeError(f"column {column.name}: {wrong!r} is not {column.kind}")
        dtype = np.int64 if column.kind == "int" else np.float64
        buffers = [bitmap, pa.py_buffer(np.array([0 if v is None else v for v in values], dtype))]
    return pa.Array.from_buffers(arrow_type, n, buffers, null_count=nulls)


@dataclass
class Written:
    """What :func:`write_bundle` wrote, and what it could not write and why (one line each, with the fix)."""

    paths: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rescued_from: str | None = None     # the folder asked for and why it failed, when written elsewhere instead


def write_bundle(document: dict[str, Any], folder: Path) -> Written:
    """``results.json``, ``operations.csv`` and (with pyarrow) ``operations.parquet`` and ``phases.parquet``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = Written()
    atomic_write(folder / "results.json", json_text(document) + "\n")
    atomic_write(folder / "operations.csv", csv_text(document))
    written.paths += [folder / "results.json", folder / "operations.csv"]
    if parquet_available():
        written.paths += [write_parquet(document, t, folder / f"{t}.parquet") for t in TABLES]
    else:
        written.notes.append(f"operations.parquet and phases.parquet not written (pyarrow is not installed): "
                             f"{TABLES_FIX}")
    return written


class Results:
    """One run's results: the ``results.json`` document with tables for analysis.

    ``totals``, ``phases``, ``operations``, ``network`` and ``provenance`` are the document's sections (see
    ``docs/results.md``); :meth:`to_pandas` and :meth:`to_parquet` give the operation (or phase) table;
    :meth:`write` writes the whole bundle; in a notebook the object shows its per-phase table."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.stats: dict[str, Any] = {}
        """How the run went (wall time, mapping-cache hits): not part of the results."""
        self.written: Written | None = None
        """What :meth:`write` (or ``ntframe.run(..., write=...)``) wrote last."""

    @classmethod
    def read(cls, path: str | Path) -> "Results":
        """A bundle written before: its folder or its ``results.json``."""
        path = Path(path)
        file = path / "results.json" if path.is_dir() else path
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SpecError(f"cannot read a results document: {exc}", file=str(file)) from None
        if not isinstance(document, dict) or document.get("schema") != SCHEMA:
            raise SpecError(f"not an ntframe results document (schema {SCHEMA} expected)", file=str(file))
        return cls(document)

    name = property(lambda self: self.document["name"])
    totals = property(lambda self: self.document["totals"])
    phases = property(lambda self: self.document["phases"])
    operations = property(lambda self: self.document["operations"])
    network = property(lambda self: self.document["network"])
    provenance = property(lambda self: self.document["provenance"])

    @property
    def failed(self) -> list[dict[str, Any]]:
        """The operations that failed, with their errors."""
        return [op for op in self.operations if op["status"] != "ok"]

    def to_pandas(self, table: str = "operations"):
        """The operation table (or ``table="phases"``) as a pandas DataFrame: the CSV's columns, integers as
        nullable ``Int64``, floats as ``float64``, text as ``string``."""
        try:
            import pandas as pd
        except ImportError:
            raise ToolError("to_pandas needs pandas", fix=TABLES_FIX) from None
        columns, rows = _table(self.document, table)
        dtypes = {"str": "string", "int": "Int64", "float": "float64"}
        return pd.DataFrame({c.name: pd.array([r[c.name] for r in rows], dtype=dtypes[c.kind]) for c in columns})

    def to_parquet(self, path: str | Path, table: str = "operations") -> Path:
        """The operation table (or ``table="phases"``) as a Parquet file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_parquet(self.document, table, path)

    def write(self, folder: str | Path) -> Written:
        """The whole bundle into ``folder``. When it cannot be written there (a full disk, a folder gone), the
        bundle goes to a fresh folder under the system's temporary folder instead, and ``Written.rescued_from``
        names the folder that failed and why: computed results are never lost."""
        try:
            self.written = write_bundle(self.document, Path(folder))
        except OSError as exc:
            rescue = Path(tempfile.mkdtemp(prefix="ntframe-results-"))
            self.written = write_bundle(self.document, rescue)
            self.written.rescued_from = f"{folder} ({exc.strerror or exc})"
        return self.written

    def __repr__(self) -> str:
        t = self.totals
        return (f"<Results {self.name}: {len(self.operations)} operations ({t['operations_failed']} failed), "
                f"{t['cycles']:,.0f} cycles, {t['energy_pJ'] / 1e6:,.2f} µJ, "
                f"{t['efficiency_GFLOPS_per_W']:,.1f} GFLOPS/W>")

    def _repr_html_(self) -> str:
        esc = html.escape
        head = ["phase", "operations", "GMACs", "cycles", "latency ms", "energy µJ", "share", "GFLOPS", "GFLOPS/W"]

        def cells(r: dict[str, Any]) -> list[str]:
            return [esc(str(r["phase"])), f"{r['operations']:,}", f"{r['macs'] / 1e9:,.4f}", f"{r['cycles']:,.0f}",
                    f"{r['latency_s'] * 1e3:,.4f}", f"{r['energy_pJ'] / 1e6:,.2f}", f"{r['energy_share']:.1%}",
                    f"{r['throughput_GFLOPS']:,.1f}", f"{r['efficiency_GFLOPS_per_W']:,.1f}"]

        t = self.totals
        total = {"phase": "total", "operations": t["operations_ok"], "macs": t["macs"], "cycles": t["cycles"],
                 "latency_s": t["latency_s"], "energy_pJ": t["energy_pJ"], "energy_share": 1.0 if t["energy_pJ"]
                 else 0.0, "throughput_GFLOPS": t["throughput_GFLOPS"],
                 "efficiency_GFLOPS_per_W": t["efficiency_GFLOPS_per_W"]}
        body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells(r)) + "</tr>"
                       for r in phase_rows(self.document))
        body += "<tr>" + "".join(f"<td><b>{c}</b></td>" for c in cells(total)) + "</tr>"
        producers = ", ".join(f"{section}={esc(p['component'])} ({esc(p['plugin'])} {esc(p['version'])})"
                              for section, p in self.provenance["plugins"].items())
        failed = (f"<p><b>{t['operations_failed']} operation(s) failed</b>: "
                  + "; ".join(esc(f"{op['name']}: {op['error']}") for op in self.failed[:5])
                  + ("; …" if len(self.failed) > 5 else "") + "</p>") if self.failed else ""
        return (f"<div><p><b>{esc(self.name)}</b>: {t['power_W']:.3f} W, "
                f"{t['efficiency_GFLOPS_per_W']:,.1f} GFLOPS/W</p>"
                "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>"
                f"<tbody>{body}</tbody></table><p><small>{producers}</small></p>{failed}</div>")


__all__ = ["Results", "Written", "write_bundle", "csv_text", "operation_rows", "phase_rows", "OPERATION_COLUMNS",
           "PHASE_COLUMNS", "SCHEMA", "SCOPES", "SCHEMA_VERSION", "atomic_write", "scope_figures"]
