"""``ntframe compare``: several cost models on one mapping per operation, or several mappers on one cost model.

**Cost models** (``--cost-models native,zigzag,timeloop``): every operation of the spec is mapped once — by the
spec's mapper with the spec's cost model, or with ``--mapping-from MODEL`` — and every model evaluates that same
mapping, so a difference between columns comes from the models, never from the mapping. Without ``--memory``
each model's own pricing of the memory level is used; with ``--memory a,b`` every model's DRAM traffic also
goes through each memory backend (columns ``model+backend``), combined as in ``ntframe run``.

**Mappers** (``--mappers native,neurotrainer-dataflow,timeloop-mapper``): every mapper searches every operation
with the same cost model (the spec's, or ``--cost-model``) and budget; the table reports the best EDP found and
the wall time of each search (no mapping cache: the time is the search's).

A component that is missing (an external tool) or fails on an operation fills its cells with the reason; the
other columns still run. Results: ``compare.json`` (every cell, whole), ``compare.csv`` (one row per operation
and column), PNG plots when matplotlib is installed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ntframe import __version__, checks
from ntframe.bundle import SCOPES, atomic_write
from ntframe.components import Component
from ntframe.errors import NtframeError, SpecError, ToolError
from ntframe.host import PluginHost, Registered
from ntframe.parallel import run_pieces
from ntframe.results import to_jsonable
from ntframe.runner import (
    OPERATION_TIMEOUT_S,
    Resolved,
    _attributed,
    _AttributedCostModel,
    combine,
    map_operation,
    operations_of,
    simulate_memory,
)
from ntframe.workload.ir import Operation


@dataclass
class Column:
    """One compared component (with an optional memory backend): its registration, instance, or why none."""

    label: str
    reg: Registered | None
    component: Component | None
    memory: tuple[Registered, Component] | None = None
    unavailable: str | None = None
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)


def _column(host: PluginHost, resolved: Resolved, family: str, section: str, name: str) -> tuple:
    """(Registered, instance, reason unavailable) — the spec's own options when the spec selects that name."""
    try:
        reg = host.get(family, name)
    except SpecError as exc:
        raise SpecError(f"--{section.replace('_', '-')}: {exc}") from None
    spec_reg, spec_component = resolved.components[section]
    component = spec_component if spec_reg.name == name else reg.cls()
    try:
        component.check_available()
    except NtframeError as exc:
        return reg, component, str(exc)
    return reg, component, None


def distinct(names: str | Sequence[str], what: str) -> list[str]:
    """Names given as ``"a,b"`` or ``["a", "b"]``: non-empty and without repeats."""
    given = names.split(",") if isinstance(names, str) else list(names)
    out = [n.strip() for n in given if n.strip()]
    if not out or len(set(out)) != len(out):
        raise SpecError(f"{what}: give a comma-separated list of distinct names, got '{','.join(given)}'")
    return out


def _selected(operations: list[Operation], only: str | Sequence[str] | None) -> list[Operation]:
    if not only:
        return operations
    wanted = distinct(only, "--ops")
    known = {o.name for o in operations}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise SpecError(f"--ops: no operation {', '.join(missing)}; the spec has {', '.join(sorted(known))}")
    return [o for o in operations if o.name in wanted]


def _unique(operations: list[Operation]) -> dict[tuple, Operation]:
    first: dict[tuple, Operation] = {}
    for op in operations:
        first.setdefault(op.shape_key(), op)
    return first


def _bounded(work: Callable[[Operation], Any], stopped: Callable[[str], Any], operations: list[Operation],
             timeout_s: float | None) -> list[Any]:
    """``work(op)`` for each operation, one after another (the columns' times stay comparable) in a worker
    process that is stopped when an operation takes more than ``timeout_s`` (None: in this process, unbounded);
    a stopped or dead one gets ``stopped(why)``."""
    return run_pieces(lambda k: work(operations[k]), len(operations), 1, timeout_s=timeout_s,
                      late=lambda k, why: stopped(f"stopped: {why} (ntframe compare --operation-timeout)"),
                      died=lambda k: stopped("its worker process died (killed, out of memory, or a crash in a "
                                             "plugin's native code)"))


def compare_cost_models(resolved: Resolved, host: PluginHost, models: list[str], memories: list[str] | None = None,
                        mapping_from: str | None = None, only: str | None = None,
                        operation_timeout_s: float | None = OPERATION_TIMEOUT_S, scope: str = "module") -> dict[str, Any]:
    """Every cost model (with every memory backend) on the same mapping per operation; ``scope`` is the power scope
    (``ntframe.bundle.SCOPES``) whose energy the cells' ``energy_pJ`` holds, ratios and plots included (each cell
    keeps every scope's own figure too)."""
    if scope not in SCOPES:
        raise SpecError(f"--scope {scope}: not a power scope (one of {', '.join(SCOPES)})")
    arch = resolved.architecture
    columns: list[Column] = []
    for name in models:
        reg, component, why = _column(host, resolved, "cost_model", "cost_model", name)
        for mem_name in memories or [None]:
            memory, label = None, name
            if mem_name:
                mreg, mcomp, mwhy = _column(host, resolved, "memory_backend", "memory", mem_name)
                memory, label, why = (mreg, mcomp), f"{name}+{mem_name}", why or mwhy
            columns.append(Column(label, reg, component, memory, why))
    mapper_resolved = resolved
    if mapping_from:
        if mapping_from not in models:
            raise SpecError(f"--mapping-from {mapping_from}: not one of --cost-models ({', '.join(models)})")
        col = next(c for c in columns if c.reg and c.reg.name == mapping_from)
        if col.unavailable:
            raise SpecError(f"--mapping-from {mapping_from}: {col.unavailable}")
        mapper_resolved = replace(resolved, components={**resolved.components,
                                                        "cost_model": (col.reg, col.component)})
    network, operations = operations_of(resolved)
    operations = _selected(operations, only)
    mappings: dict[tuple, dict[str, Any]] = {}
    unique = _unique(operations)

    def work(op: Operation) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        try:
            mapping, _, search = map_operation(mapper_resolved, op)
            mapped: dict[str, Any] = {"mapping": mapping, "search": search}
        except NtframeError as exc:
            mapped = {"error": f"mapping: {exc}"}
        return mapped, [_cost_cell(resolved, col, op, mapped, scope) for col in columns]

    def stopped(why: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        return {"error": f"mapping: {why}"}, [{"status": "error", "error": why} for _ in columns]

    for (key, op), (mapped, cells) in zip(unique.items(), _bounded(work, stopped, list(unique.values()),
                                                                   operation_timeout_s)):
        mappings[key] = mapped
        for col, cell in zip(columns, cells):
            col.cells[op.name] = cell
    rows = []
    for op in operations:
        first = unique[op.shape_key()].name
        m = mappings[op.shape_key()]
        rows.append({"name": op.name, "layer": op.layer, "phase": op.phase.value, "kind": op.kind.value,
                     "macs": op.macs, "flops": op.flops, "same_as": first if first != op.name else None,
                     "mapping": m["mapping"].to_dict() if "mapping" in m else None, "search": m.get("search"),
                     "mapping_error": m.get("error"), "cells": {c.label: c.cells[first] for c in columns}})
    mp_reg = mapper_resolved.components["mapper"][0]
    cm_reg = mapper_resolved.components["cost_model"][0]
    return {"schema": "ntframe.compare/1", "kind": "cost_models", "name": resolved.loaded.spec.name, "scope": scope,
            "columns": [_describe(c) for c in columns], "operations": rows,
            "totals": _totals(rows, [c.label for c in columns], arch.clock_GHz),
            "common_totals": _totals(_common(rows), [c.label for c in columns], arch.clock_GHz),
            "mapping_by": {"mapper": mp_reg.name, "cost_model": cm_reg.name, "plugin": mp_reg.plugin},
            "provenance": {"ntframe_version": __version__, "spec_file": str(resolved.loaded.path),
                           "architecture": arch.name, "network": network.name,
                           "seed": resolved.loaded.spec.mapper.seed,
                           "budget": resolved.loaded.spec.mapper.budget.model_dump()}}


def _describe(col: Column) -> dict[str, Any]:
    out = {"label": col.label, "unavailable": col.unavailable}
    for what, pair in (("component", (col.reg, col.component)), ("memory", col.memory)):
        if pair and pair[0]:
            reg, comp = pair
            out[what] = {"name": reg.name, "family": reg.family, "plugin": reg.plugin, "version": reg.version,
                         "options": comp.options.model_dump(mode="json") if comp else {}}
    return out


def _cost_cell(resolved: Resolved, col: Column, op: Operation, mapped: dict[str, Any],
               scope: str = "module") -> dict[str, Any]:
    if col.unavailable:
        return {"status": "unavailable", "error": col.unavailable}
    if "error" in mapped:
        return {"status": "error", "error": mapped["error"]}
    arch, mapping = resolved.architecture, mapped["mapping"]
    started = time.perf_counter()
    try:
        model = _AttributedCostModel(col.component, col.reg)     # type: ignore[arg-type]
        compute = model.evaluate(op, mapping, arch)
        mem = simulate_memory(resolved, *col.memory, op, mapping, compute) if col.memory else None
    except NtframeError as exc:
        return {"status": "error", "error": str(exc)}
    record = combine(op, arch, compute, mem)
    record["energy_pJ"] = record[f"{scope}_energy_pJ"]          # the scope compared (the module's by default)
    record["energy_by_level_pJ"] = {lv["level"]: lv["energy_pJ"] for lv in record["levels"]}
    record["energy_by_level_pJ"]["compute"] = compute.compute_energy_pJ
    if mem:
        record["energy_by_level_pJ"][record["levels"][0]["level"]] = mem.energy_pJ
    record["evaluation_s"] = time.perf_counter() - started
    found = checks.bad_number(record)            # the components' answers are checked; this is the backstop
    if found:
        return {"status": "error", "error": f"the figures hold {found}: every figure must be finite and not "
                                            f"negative"}
    return {"status": "ok", **record}


def _common(rows: list[dict]) -> list[dict]:
    """The operations every column evaluated (totals over them compare like with like)."""
    return [r for r in rows if all(c["status"] == "ok" for c in r["cells"].values())]


def _totals(rows: list[dict], labels: list[str], clock_GHz: float) -> dict[str, dict[str, Any]]:
    totals = {}
    for label in labels:
        cells = [r["cells"][label] for r in rows]
        ok = [c for c in cells if c["status"] == "ok"]
        agg: dict[str, Any] = {"operations_ok": len(ok), "operations_failed": len(cells) - len(ok)}
        for key in ("cycles", "energy_pJ", "on_die_energy_pJ", "memory_energy_pJ", "compute_energy_pJ",
                    "dram_bytes"):
            agg[key] = sum(c[key] for c in ok)
        levels: dict[str, float] = {}
        for c in ok:
            for lvl, e in c["energy_by_level_pJ"].items():
                levels[lvl] = levels.get(lvl, 0.0) + e
        agg["energy_by_level_pJ"] = levels
        agg["latency_s"] = agg["cycles"] / (clock_GHz * 1e9)
        totals[label] = agg
    return totals


def compare_mappers(resolved: Resolved, host: PluginHost, mappers: list[str], cost_model: str | None = None,
                    only: str | None = None, operation_timeout_s: float | None = OPERATION_TIMEOUT_S) -> dict[str, Any]:
    arch, spec = resolved.architecture, resolved.loaded.spec
    cm_name = cost_model or resolved.components["cost_model"][0].name
    cm_reg, cm, why = _column(host, resolved, "cost_model", "cost_model", cm_name)
    if why:
        raise SpecError(f"--cost-model {cm_name}: {why}")
    attributed = _AttributedCostModel(cm, cm_reg)
    columns = []
    for name in mappers:
        reg, component, why = _column(host, resolved, "mapper", "mapper", name)
        columns.append(Column(name, reg, component, None, why))
    _, operations = operations_of(resolved)
    operations = _selected(operations, only)
    unique = _unique(operations)
    found = _bounded(lambda op: [_search_cell(col, op, attributed, arch, spec) for col in columns],
                     lambda why: [{"status": "error", "error": why, "search_s": 0.0} for _ in columns],
                     list(unique.values()), operation_timeout_s)
    for op, cells in zip(unique.values(), found):
        for col, cell in zip(columns, cells):
            col.cells[op.name] = cell
    rows = []
    for op in operations:
        first = unique[op.shape_key()].name
        rows.append({"name": op.name, "layer": op.layer, "phase": op.phase.value, "kind": op.kind.value,
                     "macs": op.macs, "same_as": first if first != op.name else None,
                     "cells": {c.label: c.cells[first] for c in columns}})
    def totals(rows_in: list[dict]) -> dict[str, dict[str, Any]]:
        out = {}
        for col in columns:
            ok = [r["cells"][col.label] for r in rows_in if r["cells"][col.label]["status"] == "ok"]
            out[col.label] = {"operations_ok": len(ok), "operations_failed": len(rows_in) - len(ok),
                              "search_s": sum(c["search_s"] for c in ok),
                              "cycles": sum(c["cycles"] for c in ok), "energy_pJ": sum(c["energy_pJ"] for c in ok),
                              "edp_pJ_cycles": sum(c["edp_pJ_cycles"] for c in ok)}
        return out
    return {"schema": "ntframe.compare/1", "kind": "mappers", "name": spec.name,
            "columns": [_describe(c) for c in columns], "operations": rows, "totals": totals(rows),
            "common_totals": totals(_common(rows)),
            "cost_model": {"name": cm_reg.name, "plugin": cm_reg.plugin, "version": cm_reg.version,
                           "options": cm.options.model_dump(mode="json")},
            "provenance": {"ntframe_version": __version__, "spec_file": str(resolved.loaded.path),
                           "architecture": arch.name, "seed": spec.mapper.seed,
                           "budget": spec.mapper.budget.model_dump()}}


def _search_cell(col: Column, op: Operation, cost_model, arch, spec) -> dict[str, Any]:
    if col.unavailable:
        return {"status": "unavailable", "error": col.unavailable}
    started = time.perf_counter()
    what = f"mapping search of {op.name}"
    try:
        found = checks.search_result(_attributed(col.reg, what,      # type: ignore[arg-type]
                                                 lambda: col.component.search(op, arch, cost_model,  # type: ignore
                                                                              spec.mapper.budget, spec.mapper.seed)),
                                     what, col.reg)
        checks.compute_cost(found.cost, op, arch, what, col.reg)
    except NtframeError as exc:
        return {"status": "error", "error": str(exc), "search_s": time.perf_counter() - started}
    elapsed = time.perf_counter() - started
    c = found.cost
    return {"status": "ok", "search_s": elapsed, "cycles": c.cycles, "energy_pJ": c.energy_pJ,
            "edp_pJ_cycles": c.cycles * c.energy_pJ, "evaluated": found.evaluated, "valid": found.valid,
            "truncated_by_time": found.truncated_by_time, "mapping": found.mapping.to_dict(),
            "notes": dict(found.invalid_reasons)}


# --- output -----------------------------------------------------------------------------------------------

def ratio(value: float, base: float) -> float | None:
    return value / base if base else None


def csv_text(document: dict[str, Any], baseline: str) -> str:
    """One row per (operation, column); ratios against ``baseline``'s cell of the same operation."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if document["kind"] == "cost_models":
        levels = sorted({lvl for t in document["totals"].values() for lvl in t["energy_by_level_pJ"]})
        w.writerow(["operation", "layer", "phase", "column", "status", "cycles", "energy_pJ", "on_die_energy_pJ",
                    "memory_energy_pJ", "compute_energy_pJ", "utilisation", "dram_bytes",
                    *[f"energy_{lvl}_pJ" for lvl in levels], f"cycles_ratio_to_{baseline}",
                    f"energy_ratio_to_{baseline}", "error"])
        for row in document["operations"]:
            base = row["cells"].get(baseline, {})
            for label, c in row["cells"].items():
                ok = c["status"] == "ok"
                nums = [c.get(k, "") for k in ("cycles", "energy_pJ", "on_die_energy_pJ", "memory_energy_pJ",
                                               "compute_energy_pJ", "utilisation", "dram_bytes")] if ok else [""] * 7
                lv = [c["energy_by_level_pJ"].get(lvl, "") if ok else "" for lvl in levels]
                ratios = ([_r(c["cycles"], base.get("cycles")), _r(c["energy_pJ"], base.get("energy_pJ"))]
                          if ok and base.get("status") == "ok" else ["", ""])
                w.writerow([row["name"], row["layer"], row["phase"], label, c["status"], *nums, *lv, *ratios,
                            c.get("error", "")])
    else:
        w.writerow(["operation", "layer", "phase", "mapper", "status", "search_s", "cycles", "energy_pJ",
                    "edp_pJ_cycles", f"edp_ratio_to_{baseline}", "evaluated", "error"])
        for row in document["operations"]:
            base = row["cells"].get(baseline, {})
            for label, c in row["cells"].items():
                ok = c["status"] == "ok"
                w.writerow([row["name"], row["layer"], row["phase"], label, c["status"],
                            c.get("search_s", ""), c.get("cycles", ""), c.get("energy_pJ", ""),
                            c.get("edp_pJ_cycles", ""),
                            _r(c["edp_pJ_cycles"], base.get("edp_pJ_cycles")) if ok and base.get("status") == "ok"
                            else "", c.get("evaluated", ""), c.get("error", "")])
    return buf.getvalue()


def _r(value: float, base: float | None) -> Any:
    r = ratio(value, base or 0.0)
    return repr(r) if r is not None else ""


def write(document: dict[str, Any], folder: Path, baseline: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / "compare.json", folder / "compare.csv"]
    atomic_write(out[0], json.dumps(to_jsonable({**document, "baseline": baseline}), indent=1, allow_nan=False) + "\n")
    atomic_write(out[1], csv_text(document, baseline))
    return out


def plots(document: dict[str, Any], folder: Path) -> tuple[list[Path], str | None]:
    """PNG plots; ([], reason) when matplotlib is not installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "plots skipped: matplotlib is not installed (pip install 'ntframe[plots]')"
    import numpy as np
    labels = [c["label"] for c in document["columns"]]
    rows = [r for r in document["operations"] if not r["same_as"]]
    names = [r["name"] for r in rows]
    x = np.arange(len(names))
    width = 0.8 / max(1, len(labels))
    written = []
    metrics = ([("cycles", "cycles"), ("energy_pJ", "energy (pJ)")] if document["kind"] == "cost_models"
               else [("edp_pJ_cycles", "best EDP (pJ x cycles)"), ("search_s", "search time (s)")])
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(8, 0.5 * len(names) + 3), 3.2 * len(metrics)),
                             squeeze=False)
    for ax, (key, title) in zip(axes[:, 0], metrics):
        for i, label in enumerate(labels):
            vals = [r["cells"][label].get(key, 0.0) if r["cells"][label]["status"] == "ok" else 0.0 for r in rows]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, vals, width, label=label)
        ax.set_yscale("log")
        ax.set_ylabel(title)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.legend(fontsize=7)
    axes[0, 0].set_title(f"{document['name']}: per layer and phase")
    fig.tight_layout()
    path = folder / ("compare_by_operation.png" if document["kind"] == "cost_models" else "compare_mappers.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    if document["kind"] == "cost_models":
        common = document["common_totals"]
        levels = sorted({lvl for t in common.values() for lvl in t["energy_by_level_pJ"]})
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(labels) + 3), 4))
        bottom = np.zeros(len(labels))
        for lvl in levels:
            vals = np.array([common[lab]["energy_by_level_pJ"].get(lvl, 0.0) / 1e6 for lab in labels])
            ax.bar(labels, vals, bottom=bottom, label=lvl)
            bottom += vals
        n_common = next(iter(common.values()))["operations_ok"] if common else 0
        ax.set_ylabel(f"energy (µJ), the {n_common} operations\nevery model evaluated")
        ax.set_title(f"{document['name']}: energy by level")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = folder / "compare_energy_levels.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written, None


def print_table(document: dict[str, Any], baseline: str) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table
    console = Console(width=None if sys.stdout.isatty() else 200)
    labels = [c["label"] for c in document["columns"]]
    cost = document["kind"] == "cost_models"
    title = (f"{document['name']}: cost models on one mapping per operation, {document['scope']} energy (mapped by "
             f"{document['mapping_by']['mapper']} with {document['mapping_by']['cost_model']}); ratios to {baseline}"
             if cost else f"{document['name']}: mappers on cost model {document['cost_model']['name']}; "
             f"EDP ratios to {baseline}")
    table = Table(title=title, title_justify="left")
    table.add_column("operation")
    for label in labels:
        if cost:
            table.add_column(f"{label}\ncycles", justify="right")
            table.add_column(f"{label}\nenergy µJ", justify="right")
            table.add_column(f"{label}\nutil", justify="right")
        else:
            table.add_column(f"{label}\nEDP pJ·cyc", justify="right")
            table.add_column(f"{label}\ntime s", justify="right")

    reasons: dict[str, int] = {}

    def cells(row_cells: dict[str, dict], base: dict) -> list[str]:
        out = []
        for label in labels:
            c = row_cells[label]
            if c["status"] != "ok":
                k = reasons.setdefault(c["error"], len(reasons) + 1)
                out += [f"[red]{c['status']} [{k}]", "", ""][: 3 if cost else 2]
                continue
            if cost:
                rc = ratio(c["cycles"], base.get("cycles", 0.0)) if base.get("status", "ok") == "ok" else None
                re_ = ratio(c["energy_pJ"], base.get("energy_pJ", 0.0)) if base.get("status", "ok") == "ok" else None
                out += [f"{c['cycles']:,.0f}" + (f" ({rc:.2f}x)" if rc is not None and label != baseline else ""),
                        f"{c['energy_pJ'] / 1e6:,.3f}" + (f" ({re_:.2f}x)" if re_ is not None and label != baseline
                                                          else ""),
                        f"{c['utilisation']:.2f}" if c.get("utilisation") is not None else ""]
            else:
                r = ratio(c["edp_pJ_cycles"], base.get("edp_pJ_cycles", 0.0)) if base.get("status") == "ok" else None
                out += [f"{c['edp_pJ_cycles']:.3e}" + (f" ({r:.2f}x)" if r is not None and label != baseline else ""),
                        f"{c['search_s']:.2f}"]
        return out

    for row in document["operations"]:
        if row["same_as"]:
            continue
        table.add_row(row["name"], *cells(row["cells"], row["cells"].get(baseline, {})))
    common = document["common_totals"]
    n_common = next(iter(common.values()))["operations_ok"] if common else 0
    totals = {lab: {"status": "ok" if t["operations_ok"] else "error", "error": "no operation that every column "
                    "evaluated", **t} for lab, t in common.items()}
    table.add_row(f"[bold]total: {n_common} of {len(document['operations'])}\n(every column ok)",
                  *cells(totals, totals.get(baseline, {})))
    console.print(table)
    if cost and n_common:
        levels = sorted({lvl for t in common.values() for lvl in t["energy_by_level_pJ"]})
        by_level = Table(title=f"energy by level (µJ), the {n_common} operations every column evaluated",
                         title_justify="left")
        by_level.add_column("level")
        for label in labels:
            by_level.add_column(label, justify="right")
        base_levels = common[baseline]["energy_by_level_pJ"]
        for lvl in levels + ["total"]:
            row = []
            for label in labels:
                t = common[label]
                value = t["energy_pJ"] if lvl == "total" else t["energy_by_level_pJ"].get(lvl, 0.0)
                base = common[baseline]["energy_pJ"] if lvl == "total" else base_levels.get(lvl, 0.0)
                share = f" ({value / base:.2f}x)" if base and label != baseline else ""
                row.append(f"{value / 1e6:,.3f}{share}")
            by_level.add_row(lvl, *row)
        console.print(by_level)
    for k, (reason, n) in enumerate(sorted(reasons.items(), key=lambda kv: kv[1]), 1):
        console.print(f"[{n}] {reason}", highlight=False, markup=False)
    for label in labels:
        t = document["totals"][label]
        if t["operations_failed"]:
            console.print(f"{label}: {t['operations_ok']} operation(s) evaluated, {t['operations_failed']} not "
                          f"(reasons above, per cell in compare.json)", highlight=False)
    if cost:
        notes = {n for r in document["operations"] for lab in labels for n in r["cells"][lab].get("cost_notes", [])}
        for n in sorted(notes):
            console.print(f"note: {n}", highlight=False)


class Comparison:
    """A comparison's document (``compare.json``) with its table for analysis; in a notebook it shows the totals
    per column with their ratios to the baseline."""

    def __init__(self, document: dict[str, Any], baseline: str | None = None,
                 output_folder: Path | None = None) -> None:
        labels = [c["label"] for c in document["columns"]]
        if baseline is not None and baseline not in labels:
            raise SpecError(f"--baseline {baseline}: not one of the compared columns ({', '.join(labels)})")
        self.document, self.labels = document, labels
        self.baseline = baseline or labels[0]
        self.output_folder = output_folder
        """Where ``ntframe compare`` writes by default: the spec's output folder + ``/compare``."""

    kind = property(lambda self: self.document["kind"])
    totals = property(lambda self: self.document["totals"])
    common_totals = property(lambda self: self.document["common_totals"])
    operations = property(lambda self: self.document["operations"])

    def to_pandas(self):
        """``compare.csv`` as a DataFrame: one row per operation and column, with the ratios to the baseline."""
        try:
            import pandas as pd
        except ImportError:
            raise ToolError("to_pandas needs pandas", fix="pip install 'ntframe[tables]'") from None
        return pd.read_csv(io.StringIO(csv_text(self.document, self.baseline)), keep_default_na=False,
                           na_values=[""])

    def write(self, folder: str | Path | None = None, *, with_plots: bool = True) -> tuple[list[Path], list[str]]:
        """``compare.json``, ``compare.csv`` and (with matplotlib) the PNG plots; returns (written, notes)."""
        target = Path(folder) if folder is not None else self.output_folder
        if target is None:
            raise SpecError("no folder to write the comparison to")
        written = write(self.document, target, self.baseline)
        notes: list[str] = []
        if with_plots:
            pictures, why = plots(self.document, target)
            written += pictures
            notes += [why] if why else []
        return written, notes

    def _repr_html_(self) -> str:
        import html
        common = self.common_totals
        base = common.get(self.baseline, {})
        n = next(iter(common.values()))["operations_ok"] if common else 0
        keys = (("cycles", "cycles"), ("energy_pJ", "energy_pJ")) if self.kind == "cost_models" else \
            (("edp_pJ_cycles", "EDP pJ·cycles"), ("search_s", "search s"))
        head = "".join(f"<th>{html.escape(title)}</th><th>× {html.escape(self.baseline)}</th>" for _, title in keys)
        body = ""
        for label in self.labels:
            t = common[label]
            cells = "".join(f"<td>{t[k]:,.4g}</td><td>{(ratio(t[k], base.get(k, 0.0)) or 0.0):.3f}</td>"
                            for k, _ in keys)
            failed = self.totals[label]["operations_failed"]
            body += f"<tr><td>{html.escape(label)}</td>{cells}<td>{failed}</td></tr>"
        return (f"<div><p><b>{html.escape(self.document['name'])}</b>: {html.escape(self.kind.replace('_', ' '))} "
                f"over the {n} operations every column evaluated</p><table><thead><tr><th>column</th>{head}"
                f"<th>failed</th></tr></thead><tbody>{body}</tbody></table></div>")


__all__ = ["Comparison", "compare_cost_models", "compare_mappers", "distinct", "write", "plots", "print_table",
           "csv_text"]
