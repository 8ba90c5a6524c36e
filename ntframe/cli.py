"""``ntframe`` command line: a thin layer over the Python API (:mod:`ntframe.api`) and the tools behind it.

Every command that takes a SPEC also takes ``--set PATH=VALUE`` overrides. Errors print one line (``--debug``:
the traceback) and exit with the error's code (2 for bad input)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ntframe import __version__, jit
from ntframe.errors import NtframeError, SpecError


def _host():
    from ntframe.api import plugin_host
    host = plugin_host()
    for info in host.failures():
        print(f"warning: plugin '{info.name}' ({info.distribution} {info.version}) not loaded: {info.error}",
              file=sys.stderr)
    return host


def _load(args: argparse.Namespace):
    """The spec of ``args.spec`` with its ``--set`` overrides, validated and resolved."""
    from ntframe.api import validate
    from ntframe.spec import parse_set
    return validate(args.spec, parse_set(args.set or []), host=_host())


def cmd_validate(args: argparse.Namespace) -> int:
    from ntframe.runner import operations_of
    resolved = _load(args)
    arch = resolved.architecture
    network, operations = operations_of(resolved)        # the workload is read and expanded too, not simulated
    from ntframe.runner import area_warning
    warning = area_warning(arch, resolved.loaded.spec.architecture.die_area_mm2)
    if warning:
        print(warning, file=sys.stderr)
    print(f"{args.spec}: valid. architecture '{arch.name}': "
          + ", ".join(f"{lvl.name}×{lvl.instances}" for lvl in arch.levels)
          + f", {arch.compute.name}×{arch.compute.instances}; workload '{network.name}': {len(network.layers)} "
            f"layers, {len(operations)} operations")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ntframe.api import run
    console = Console(stderr=True)
    resolved = _load(args)
    with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True,
                  disable=args.quiet or not console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        results = run(resolved, write=args.output or True, progress=progress, jobs=args.jobs,
                      operation_timeout_s=args.operation_timeout or None, deadline_s=args.deadline or None)
    for note in results.network["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if results.totals["area"]["fits"] is False:
        from ntframe.runner import area_warning
        print(area_warning(resolved.architecture, results.totals["area"]["die_area_mm2"]), file=sys.stderr)
    if not args.quiet:
        _print_summary(results.document)
    written = results.written
    for note in written.notes:
        print(f"note: {note}", file=sys.stderr)
    stats = results.stats
    hits = (f"; mapping cache: {stats['mapping_cache_hits']} hit(s), {stats['mapping_cache_misses']} miss(es)"
            if stats["mapping_cache_hits"] is not None else "")
    print(f"wrote {', '.join(str(p) for p in written.paths)} ({stats['elapsed_s']:.2f} s{hits})", file=sys.stderr)
    if written.rescued_from:
        print(f"error: the results could not be written to {written.rescued_from}; they were written to "
              f"{written.paths[0].parent} instead", file=sys.stderr)
        return 1
    if results.failed:
        for row in results.failed:
            print(f"error: {row['name']}: {row['error']}", file=sys.stderr)
        print(f"{len(results.failed)} operation(s) failed; the results of the others are in "
              f"{written.paths[0].parent}", file=sys.stderr)
        return 1
    return 0


def _print_summary(document: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(width=None if sys.stdout.isatty() else 140)
    table = Table(title=f"{document['name']}: per phase", title_justify="left")
    for col in ("phase", "GMACs", "cycles", "energy (µJ)", "share of energy"):
        table.add_column(col, justify="right" if col != "phase" else "left")
    total_energy = document["totals"]["energy_pJ"] or 1.0
    for phase, agg in document["phases"].items():
        table.add_row(phase, f"{agg['macs'] / 1e9:.4f}", f"{agg['cycles']:,.0f}", f"{agg['energy_pJ'] / 1e6:,.2f}",
                      f"{agg['energy_pJ'] / total_energy:.1%}")
    console.print(table)
    t = document["totals"]
    prov = document["provenance"]["plugins"]
    console.print(
        f"totals: {t['macs']:,} MACs, {t['flops']:,} FLOPs, {t['cycles']:,.0f} cycles, "
        f"latency {t['latency_s'] * 1e3:.4f} ms, energy {t['energy_pJ'] / 1e6:,.2f} µJ, "
        f"throughput {t['throughput_GFLOPS']:,.1f} GFLOPS, efficiency {t['efficiency_GFLOPS_per_W']:,.1f} GFLOPS/W, "
        f"power {t['power_W']:.3f} W", highlight=False)
    console.print(_scopes_line(document), highlight=False)
    console.print("by: " + ", ".join(f"{sec}={p['component']} ({p['plugin']} {p['version']})"
                                      for sec, p in prov.items()), highlight=False)
    memory = _memory_line(document)
    if memory:
        console.print(memory, highlight=False)


def _scopes_line(document: dict) -> str:
    """GFLOPS/W of each power scope side by side, and the leakage counted (naming what had no figure)."""
    t = document["totals"]
    scopes = ", ".join(f"{scope.replace('_', ' ')} {figures['efficiency_GFLOPS_per_W']:,.1f}"
                       for scope, figures in t["scopes"].items())
    without = [c["component"] for c in document["provenance"]["architecture"]["components"]
               if c.get("static_power_mW") is None]
    area = t["area"]
    silicon = (f"; logic die {area['logic_die_mm2']:,.3g} mm² ({area['logic_die_mm2_per_vault']:,.3g} per vault"
               + (f", without {', '.join(area['without_area'])}" if area["without_area"] else "") + ")"
               if area["logic_die_mm2"] else "")
    return (f"GFLOPS/W by power scope: {scopes}; static (leakage) energy {t['static_energy_pJ'] / 1e6:,.2f} µJ"
            + (f" (no leakage figure for {', '.join(without)})" if without else "") + silicon)


def _memory_line(document: dict) -> str:
    """How the memory figures were made: bytes, row hits, the share of the requests simulated, the interval."""
    ops = [o for o in document["operations"] if o.get("status") == "ok" and (o.get("memory") or {}).get("details")]
    details = [o["memory"]["details"] for o in ops]
    if not details or "requests" not in details[0]:
        return ""
    requests = sum(d.get("requests", 0) for d in details)
    simulated = sum(d.get("simulated_requests", 0) for d in details)
    energy = sum(o["memory"]["energy_pJ"] for o in ops)
    half = sum((d["energy_interval_pJ"][1] - d["energy_interval_pJ"][0]) / 2 for d in details
               if d.get("energy_interval_pJ"))
    hits = sum(d.get("row_hit_rate", 0.0) * d.get("requests", 0) for d in details)
    sampled = sum(not d.get("whole_trace", True) for d in details)
    unconverged = sum(not d.get("converged", True) for d in details)
    return (f"memory: {sum(o['memory']['read_bytes'] + o['memory']['write_bytes'] for o in ops) / 1e6:,.1f} MB, "
            f"row hits {hits / requests if requests else 0:.1%}; {sampled} of {len(details)} operations sampled, "
            f"{simulated / requests if requests else 1:.1%} of {requests:,} requests simulated; memory energy "
            f"{energy / 1e6:,.2f} µJ ± {half / 1e6:,.2f} (95 %, operations' half-widths added)"
            + (f"; {unconverged} not within the tolerance (max_requests)" if unconverged else "")
            + _gap_text(ops, energy))


def _gap_text(ops: list[dict], energy: float) -> str:
    """The memory backend's energy against the cost model's own figure for the memory level (what the search
    ranked by): in all, and the largest gap among the operations with 1 % of the memory energy or more."""
    known = [o for o in ops if o.get("memory_energy_gap") is not None]
    if not known or energy <= 0:
        return ""
    cost_model = sum(o["memory"]["energy_pJ"] / (1 + o["memory_energy_gap"]) for o in known)
    big = [o for o in known if o["memory"]["energy_pJ"] >= 0.01 * energy]
    worst = max(big, key=lambda o: abs(o["memory_energy_gap"]), default=None)
    return (f"; against the cost model's memory energy {sum(o['memory']['energy_pJ'] for o in known) / cost_model - 1:+.1%}"
            + (f" (largest {worst['memory_energy_gap']:+.1%}, {worst['name']}, of the operations with 1 % of it or more)"
               if worst else ""))


def cmd_plugins(args: argparse.Namespace) -> int:
    from ntframe.host import PluginHost
    host = PluginHost().load()  # failures are listed below (or in the JSON), not warned about
    if args.name:
        from ntframe.options import describe_plugin, render_text
        described = describe_plugin(host, args.name)
        print(json.dumps(described, indent=2) if args.json else render_text(described))
        return 0
    described = host.describe()
    if args.json:
        print(json.dumps(described, indent=2))
        return 0
    for p in described:
        state = "blocked" if p["blocked"] else ("FAILED" if p["error"] else "ok")
        print(f"{p['name']}  {p['distribution']} {p['version']}  [{state}]  {p['module']}")
        for c in p["components"]:
            print(f"    {c['family']}: {c['name']}")
        if p["error"]:
            print(f"    error: {p['error']}")
    print("\n`ntframe plugins NAME` shows a plugin's or a component's options (type, default, what each does).")
    return 0


def _catalog(host) -> dict[str, tuple[str, str, dict]]:
    """Every named workload: name -> (frontend, description, options)."""
    out: dict[str, tuple[str, str, dict]] = {}
    for name in host.names("workload_frontend"):
        reg = host.get("workload_frontend", name)
        try:
            entries = reg.cls(reg.cls.Options.model_construct()).catalog()
        except Exception as exc:  # a plugin's catalog must not break the listing
            print(f"warning: frontend '{name}' could not list its workloads: {exc}", file=sys.stderr)
            continue
        for wl, (desc, options) in entries.items():
            out.setdefault(wl, (name, desc, options))
    return out


def _parse_value(text: str, label: str):
    from ntframe.yamlio import parse_yaml
    return parse_yaml(text, label)[0]


def cmd_workloads(args: argparse.Namespace) -> int:
    from ntframe.yamlio import did_you_mean
    host = _host()
    catalog = _catalog(host)
    if not args.name:
        if args.json:
            print(json.dumps({k: {"frontend": f, "description": d, "options": o} for k, (f, d, o) in catalog.items()},
                             indent=2))
            return 0
        width = max(map(len, catalog), default=4)
        for wl, (frontend, desc, _) in catalog.items():
            print(f"{wl:<{width}}  [{frontend}]  {desc}")
        return 0
    if args.name not in catalog:
        raise SpecError(f"no workload named '{args.name}'; known: {', '.join(catalog)}"
                        f"{did_you_mean(args.name, list(catalog))}")
    from ntframe.components import WorkloadRequest
    from ntframe.hardware.architecture import load_architecture
    from ntframe.paths import resolve_path
    from ntframe.workload.ir import PHASES, Phase
    from ntframe.workload.training import activation_stash, expand
    from ntframe.yamlio import Positions, validate
    frontend, _, options = catalog[args.name]
    reg = host.get("workload_frontend", frontend)
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--param takes KEY=VALUE, got '{item}'")
        params[key] = _parse_value(value, f"--param {item}")
    data = {**options, **({"params": params} if params else {})}
    opts = validate(reg.cls.Options, data, Positions("<command line>", {}), prefix=("workload",),
                    owner=f"option of workload frontend '{frontend}'")
    component = reg.cls(opts)
    network = component.load(WorkloadRequest(args.batch, Path.cwd()))
    from ntframe.runner import component_estimates
    arch = load_architecture(resolve_path(args.arch, Path.cwd(), "arch_specs"), estimate=component_estimates(host))
    phases = [Phase(p) for p in args.phases.split(",")] if args.phases else list(PHASES)
    ops = expand(network, phases, arch.precision_bits, args.optimizer)
    rows = [{"name": o.name, "phase": o.phase.value, "kind": o.kind.value, "macs": o.macs, "flops": o.flops,
             "tensor_bytes": sum({t.tensor: t.bytes for t in o.tensors}.values())} for o in ops]
    stash = activation_stash(ops, network)
    summary = {"network": network.name, "frontend": frontend, "batch": args.batch, "parameters": component.parameters(),
               "weights": network.weights, "layers": len(network.layers), "operations": len(ops),
               "precision_bits": {p.value: b for p, b in arch.precision_bits.items()},
               "activation_stash_bytes": sum(stash.values())}
    if args.json:
        print(json.dumps({**summary, "rows": rows}, indent=1))
        return 0
    from rich.console import Console
    from rich.table import Table
    console = Console(width=None if sys.stdout.isatty() else 140)
    console.print(" ".join(f"{k}={v}" for k, v in summary.items()), highlight=False)
    table = Table(title=f"{network.name}: operations (batch {args.batch})", title_justify="left")
    for col in ("operation", "phase", "kind", "MACs", "FLOPs", "tensor bytes"):
        table.add_column(col, justify="left" if col in ("operation", "phase", "kind") else "right")
    for r in rows:
        table.add_row(r["name"], r["phase"], r["kind"], f"{r['macs']:,}", f"{r['flops']:,}", f"{r['tensor_bytes']:,}")
    per_phase: dict[str, list[int]] = {}
    for r in rows:
        acc = per_phase.setdefault(r["phase"], [0, 0, 0])
        acc[0] += r["macs"]
        acc[1] += r["flops"]
        acc[2] += r["tensor_bytes"]
    for phase, (macs, flops, nbytes) in per_phase.items():
        table.add_row(f"[bold]total {phase}", "", "", f"{macs:,}", f"{flops:,}", f"{nbytes:,}")
    console.print(table)
    return 0


def _operation(resolved, args: argparse.Namespace):
    """The operation named by --layer, --phase and --part, or a SpecError listing what there is."""
    from ntframe.runner import operations_of
    _, ops = operations_of(resolved)
    wanted = f"{args.layer}.{args.phase}" + (f".{args.part}" if args.part else "")
    for op in ops:
        if op.name == wanted:
            return op
    names = [o.name for o in ops if o.layer == args.layer]
    there = f"its layer has: {', '.join(names)}" if names else f"layers: {', '.join(sorted({o.layer for o in ops}))}"
    raise SpecError(f"no operation '{wanted}'; {there}")


def cmd_export(args: argparse.Namespace) -> int:
    from ntframe.interop.timeloop import export
    from ntframe.results import to_jsonable
    from ntframe.runner import map_operation
    resolved = _load(args)
    op = _operation(resolved, args)
    import dataclasses
    mapping, cost, _ = map_operation(resolved, op)
    model = resolved.component("cost_model")
    fields = type(model.options).model_fields
    if "dram_line_bytes" in fields:     # Timeloop counts elements (block size 1) and charges no reduction adders
        update = {"dram_line_bytes": 0, **({"spatial_reduction_adders": False}
                                           if "spatial_reduction_adders" in fields else {})}
        model = type(model)(model.options.model_copy(update=update))
    alone = model.evaluate(op, mapping, dataclasses.replace(resolved.architecture, network=None))
    written = export(op, resolved.architecture, mapping, Path(args.folder),
                     {"cycles": cost.cycles, "energy_pJ": cost.energy_pJ, "levels": to_jsonable(cost.levels),
                      "without_network": {"cycles": alone.cycles, "energy_pJ": alone.energy_pJ,
                                          "levels": to_jsonable(alone.levels)}})
    print(f"{op.name}: wrote {', '.join(p.name for p in written)} to {args.folder}")
    print((Path(args.folder) / "README.txt").read_text().strip())
    return 0


def cmd_trace(args: argparse.Namespace) -> int:
    from ntframe.memory.trace import ADDRESS_MAPPINGS, TraceWriter, inspect, mapping_named
    if args.spec == "inspect":
        if not args.file:
            raise SpecError("usage: ntframe trace inspect FILE")
        info = inspect(args.file, ADDRESS_MAPPINGS[args.address_mapping])
        if args.json:
            print(json.dumps(info, indent=1))
            return 0
        per_vault = info.pop("bytes_per_vault")
        header = info.pop("header")
        for key, value in info.items():
            print(f"{key:28s} {value}")
        print(f"{'bytes_per_vault':28s} min {min(per_vault):,}  max {max(per_vault):,}  "
              f"vaults used {sum(1 for b in per_vault if b)}")
        print(f"{'header':28s} {json.dumps(header)}")
        return 0
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.runner import map_operation
    if not (args.layer and args.phase and args.output):
        raise SpecError("ntframe trace SPEC needs --layer, --phase and -o FILE")
    resolved = _load(args)
    op = _operation(resolved, args)
    mapping, cost, _ = map_operation(resolved, op)
    am = mapping_named(args.address_mapping)
    gen = TraceGenerator(op, mapping, resolved.architecture, am, args.layout, cost.on_die_cycles)
    header = {"operation": op.name, "tensors": [t.tensor for t in op.tensors], "address_mapping": am.name,
              "layout": args.layout, "time_unit": "memory cycles (0.8 ns)", "ntframe": __version__,
              "mapping": mapping.to_dict()}
    written = 0
    with TraceWriter(args.output, args.format, header) as writer:
        for chunk in gen.chunks():
            if args.max_requests and written + len(chunk) > args.max_requests:
                chunk = chunk[: args.max_requests - written]
            writer.write(chunk)
            written += len(chunk)
            if args.max_requests and written >= args.max_requests:
                break
    print(f"{op.name}: {written:,} requests ({written * 64:,} bytes) written to {args.output} ({args.format})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from ntframe.api import compare
    from ntframe.bundle import usable_folder
    from ntframe.studies.compare import distinct, print_table
    started = time.perf_counter()
    resolved = _load(args)
    usable_folder(Path(args.output) if args.output else resolved.loaded.output_folder(None) / "compare")
    comparison = compare(resolved, cost_models=distinct(args.cost_models, "--cost-models") if args.cost_models
                         else None, mappers=distinct(args.mappers, "--mappers") if args.mappers else None,
                         memories=distinct(args.memory, "--memory") if args.memory else None,
                         mapping_from=args.mapping_from, cost_model=args.cost_model,
                         operations=distinct(args.ops, "--ops") if args.ops else None, baseline=args.baseline,
                         host=_host(), operation_timeout_s=args.operation_timeout or None, scope=args.scope)
    written, notes = comparison.write(args.output, with_plots=not args.no_plots)
    print_table(comparison.document, comparison.baseline)
    for note in notes:
        print(note, file=sys.stderr)
    print(f"wrote {', '.join(str(p) for p in written)} ({time.perf_counter() - started:.2f} s)", file=sys.stderr)
    failed = [lab for lab, t in comparison.totals.items() if t["operations_failed"]]
    return 1 if failed and len(failed) == len(comparison.labels) else 0


def cmd_arch(args: argparse.Namespace) -> int:
    """The architecture's components with their figures as a run uses them (Accelergy's ERT and ART): per
    component and energy attribute, the figure at the architecture's technology, the scale applied, the estimator
    and its plugin, and the source; per component its area and static power; the logic die's and the DRAM's sums."""
    from ntframe.hardware.architecture import load_architecture
    from ntframe.paths import resolve_path
    from ntframe.runner import component_estimates
    import re
    path = resolve_path(args.spec, Path.cwd(), "arch_specs")
    if re.search(r"^workload:", path.read_text(errors="replace"), re.M):       # a run's spec: its architecture
        arch = _load(args).architecture                                         # as the run builds it
    else:
        if args.set:
            raise SpecError(f"--set applies to a run's spec; {args.spec} is an architecture file")
        try:
            arch = load_architecture(path, estimate=component_estimates(_host()))
        except ValueError as exc:
            raise SpecError(str(exc)) from None

    def source(e, key: str) -> str:       # a table's figure keeps the file's source; another estimator's is its own
        if e.estimator in ("table", "as given"):
            return e.sources.get(key, "") + ("" if e.scale.get("energy", 1.0) == 1.0 else f"; {e.source}")
        return e.source
    rows = [{"component": e.component, "class": e.component_class, "attribute": key,
             "bits": bits, "value": value, "energy_scale": e.scale.get("energy"), "estimator": e.estimator,
             "plugin": e.plugin, "measured_at": e.measured_at, "source": source(e, key)}
            for e in arch.estimates for key, figure in e.energies.items()
            for bits, value in (figure.items() if isinstance(figure, dict) else [(None, figure)])]
    parts = [{"component": e.component, "class": e.component_class, "instances": e.instances,
              "area_um2": e.area_um2, "static_power_mW": e.static_power_mW} for e in arch.estimates]
    silicon = arch.silicon()
    technology = arch.technology.label() if arch.technology else None
    if args.json:
        print(json.dumps({"architecture": arch.name, "file": arch.source, "technology": technology, "rows": rows,
                          "components": parts, "totals": silicon}, indent=1))
        return 0
    print(f"{arch.name} ({arch.source}): technology {technology or 'not given (figures as the file gives them)'}")
    print(_table([("component", "class", "energy", "at target", "scale", "estimator", "measured at", "source")] + [
        (r["component"], r["class"], r["attribute"] + (f"[{r['bits']}b]" if r["bits"] is not None else ""),
         f"{r['value']:.4g}", "" if r["energy_scale"] is None else f"{r['energy_scale']:.4g}",
         r["estimator"] + (f" ({r['plugin']})" if r["plugin"] else ""), r["measured_at"], r["source"])
        for r in rows]))
    print()
    print(_table([("component", "instances", "area um2 (each)", "static mW (each)")] + [
        (p["component"], str(p["instances"]), "unknown" if p["area_um2"] is None else f"{p['area_um2']:.4g}",
         "unknown" if p["static_power_mW"] is None else f"{p['static_power_mW']:.4g}") for p in parts]))
    vaults = arch.levels[0].instances
    for scope, figures in silicon.items():
        unknown = sorted(set(figures["unknown_area"]) | set(figures["unknown_static"]))
        print(f"{scope.replace('_', ' ')}: {figures['area_um2'] / 1e6:.4g} mm2 ({figures['area_um2'] / 1e6 / vaults:.4g} "
              f"per vault), static {figures['static_power_mW']:.4g} mW"
              + (f" (without {', '.join(unknown)}: no figure given)" if unknown else ""))
    return 0


def _table(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns, the last one unpadded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def cmd_doctor(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    from ntframe.errors import ToolError
    from ntframe.interop.external import find_binary
    rows = []
    checks = [("ramulator", "NTFRAME_RAMULATOR", ["ramulator"],
               "build the hmc branch of CMU-SAFARI/ramulator; set NTFRAME_RAMULATOR=/path/to/ramulator"),
              ("dramsim3", "NTFRAME_DRAMSIM3", ["dramsim3main"],
               "build umd-memsys/DRAMsim3; set NTFRAME_DRAMSIM3=/path/to/dramsim3main"),
              ("timeloop-model", "NTFRAME_TIMELOOP_BIN", ["timeloop-model"],
               "build NVlabs/timeloop; set NTFRAME_TIMELOOP_BIN=/path/to/timeloop/bin (and LD_LIBRARY_PATH to its "
               "lib folders)"),
              ("timeloop-mapper", "NTFRAME_TIMELOOP_BIN", ["timeloop-mapper"],
               "build NVlabs/timeloop; set NTFRAME_TIMELOOP_BIN=/path/to/timeloop/bin"),
              ("astra-sim", "NTFRAME_ASTRASIM", ["AstraSim_Analytical_Congestion_Aware"],
               "build astra-sim/astra-sim (build/astra_analytical/build.sh); set "
               "NTFRAME_ASTRASIM=/path/to/build/astra_analytical/build/bin")]
    for name, env, names, fix in checks:
        try:
            rows.append((name, "found", find_binary(env, names, name, fix)))
        except ToolError as exc:
            rows.append((name, "missing", f"{exc}".split("\n")[0] + f" -> {fix}"))
    for module, fix in (("onnx", "pip install 'ntframe[onnx]'"), ("torch", "pip install 'ntframe[pytorch]'"),
                        ("zigzag", "pip install 'ntframe[zigzag]'"), ("nn_dataflow", "pip install 'ntframe[nn-dataflow]'"),
                        ("pytimeloop", "build Accelergy-Project/timeloop-python against a Timeloop build, with "
                                       "LD_LIBRARY_PATH naming Timeloop's and barvinok's lib folders (optional: the "
                                       "timeloop cost model then runs in-process)"),
                        ("matplotlib", "pip install 'ntframe[plots]'")):
        spec = importlib.util.find_spec(module)
        if spec and module == "pytimeloop":           # its bindings load Timeloop's libraries: found is not enough
            try:
                importlib.import_module("pytimeloop")     # loads its C++ bindings
            except Exception as exc:  # an extension that does not load says why, whatever it raises
                rows.append((f"python: {module}", "missing", f"{type(exc).__name__}: {exc} -> {fix}"))
                continue
        rows.append((f"python: {module}", "found" if spec else "missing", (spec.origin or "") if spec else fix))
    compiled, detail = jit.status()
    rows.append(("compiled kernels (bank model, pricing, search)", "found" if compiled else "missing", detail))
    host = _host()
    for name in host.names("component_estimator"):
        reg = host.get("component_estimator", name)
        try:
            reg.cls().check_available()
            rows.append((f"component estimator: {name}", "found",
                         f"plugin {reg.plugin} {reg.version}: {reg.cls.description}"))
        except ToolError as exc:
            rows.append((f"component estimator: {name}", "missing", str(exc).replace("\n ", ";")))
    for info in host.failures():
        rows.append((f"plugin: {info.name}", "failed", info.error or ""))
    cache = os.environ.get("NTFRAME_CACHE_DIR") or "~/.cache/ntframe (NTFRAME_CACHE_DIR)"
    rows.append(("mapping cache", "folder", cache))
    width = max(len(r[0]) for r in rows)
    for name, state, detail in rows:
        print(f"{name:<{width}}  {state:<8} {detail}")
    return 0


def _jobs(text: str) -> int:
    from ntframe.parallel import jobs_value
    jobs = jobs_value(text)
    if jobs is None:
        raise argparse.ArgumentTypeError(f"expected a whole number of worker processes, at least 1, not {text!r}")
    return jobs


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more (0: no bound), not {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    from ntframe.bundle import SCOPES
    parser = argparse.ArgumentParser(prog="ntframe", description="Simulate DNN training on HMC logic-layer "
                                     "accelerators (NeuroTrainer-style).")
    parser.add_argument("--version", action="version", version=f"ntframe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument("--set", action="append", metavar="PATH=VALUE",
                           help="override a spec value by its dotted path (repeatable), e.g. --set workload.batch=64; "
                                "VALUE is read as YAML")
    p = sub.add_parser("run", parents=[overrides], help="simulate one training step of a spec")
    p.add_argument("spec")
    p.add_argument("-o", "--output", help="results folder (default: the spec's output, else results/<name>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no table, no progress bar")
    p.add_argument("-j", "--jobs", type=_jobs, metavar="N",
                   help="worker processes for the operations the mapping cache does not hold (default: "
                        "NTFRAME_JOBS, else every core); changes the time, never a figure")
    p.add_argument("--operation-timeout", type=_seconds, metavar="S", default=1800.0,
                   help="stop an operation whose mapping and simulation take longer (default 1800; 0: no bound); "
                        "it is reported as an error, the others' figures stand")
    p.add_argument("--deadline", type=_seconds, metavar="S", default=0.0,
                   help="stop every operation not finished S seconds after the start (default 0: none); "
                        "the results of the finished ones are written")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", parents=[overrides],
                       help="check a spec, its plugin options and its architecture, without running")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plugins", help="list plugins, their components and load failures; or one plugin's or "
                                       "component's options")
    p.add_argument("name", nargs="?", help="a plugin (entry-point name) or a component: show its options")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("export", parents=[overrides],
                       help="write one operation, its mapping and the architecture in another tool's formats")
    p.add_argument("tool", choices=["timeloop"])
    p.add_argument("spec")
    p.add_argument("folder")
    p.add_argument("--layer", required=True)
    p.add_argument("--phase", required=True, choices=["forward", "backward_data", "backward_weight", "update"])
    p.add_argument("--part", help="sub-operation (e.g. bias, recurrent)")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("trace", parents=[overrides],
                       help="write one operation's HMC request trace (or: trace inspect FILE)")
    p.add_argument("spec", help="the spec, or 'inspect'")
    p.add_argument("file", nargs="?", help="with inspect: the trace file")
    p.add_argument("--layer")
    p.add_argument("--phase", choices=["forward", "backward_data", "backward_weight", "update"])
    p.add_argument("--part")
    p.add_argument("--format", default="nttrace", choices=["nttrace", "csv", "ramulator", "dramsim3"])
    p.add_argument("-o", "--output")
    p.add_argument("--layout", default="vault-local", choices=["vault-local", "interleaved"])
    p.add_argument("--address-mapping", default="RoCoBaVa", choices=["RoCoBaVa", "RoBaCoVa", "rocorabgbach"])
    p.add_argument("--max-requests", type=int, default=0, help="stop after this many requests (0: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_trace)
    p = sub.add_parser("compare", parents=[overrides], help="several cost models on the same mappings, or several "
                                                            "mappers on the same cost model, side by side")
    p.add_argument("spec")
    p.add_argument("--cost-models", help="comma-separated cost models, each evaluating the same mapping")
    p.add_argument("--memory", help="comma-separated memory backends to combine with every cost model")
    p.add_argument("--mapping-from", metavar="MODEL", help="map with this cost model (default: the spec's)")
    p.add_argument("--mappers", help="comma-separated mappers, each searching with the same cost model")
    p.add_argument("--cost-model", help="with --mappers: the cost model they search with (default: the spec's)")
    p.add_argument("--baseline", help="column the ratios are taken against (default: the first)")
    p.add_argument("--scope", default="module", choices=SCOPES,
                   help="with --cost-models: the power scope whose energy is compared (default: module)")
    p.add_argument("--ops", help="comma-separated operations (layer.phase[.part]); default: all")
    p.add_argument("-o", "--output", help="folder (default: <the spec's output>/compare)")
    p.add_argument("--operation-timeout", type=_seconds, metavar="S", default=1800.0,
                   help="stop an operation's cells when they take longer (default 1800; 0: no bound)")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("arch", parents=[overrides],
                       help="show an architecture's components with their energies at its technology, the "
                            "estimator and the source of each (as Accelergy's ERT and ART)")
    p.add_argument("show", choices=["show"])
    p.add_argument("spec", help="architecture file, a shipped one by name (neurotrainer/hmc2-32vault), or a run's "
                                "spec (its architecture as the run builds it, --set included)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_arch)
    p = sub.add_parser("doctor", help="which optional external tools and packages are found, with the fix for each")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("workloads", help="list the named workloads, or show one's operations per phase")
    p.add_argument("show", nargs="?", choices=["show"], help=argparse.SUPPRESS)
    p.add_argument("name", nargs="?", help="workload to show")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="network parameter (repeatable)")
    p.add_argument("--phases", help="comma-separated phases (default: all)")
    p.add_argument("--optimizer", default="sgd", choices=["sgd", "momentum", "adam"])
    p.add_argument("--arch", default="neurotrainer/hmc2-32vault", help="architecture whose precisions to use")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_workloads)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except NtframeError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script. A reader that closes its end of stdout early (``ntframe ... | head``) ends the command
    quietly with exit code 141 (128 + SIGPIPE, as a shell reports a command killed by a closed pipe)."""
    try:
        code = main()
        sys.stdout.flush()                   # a closed pipe shows here at the latest
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # what is left goes nowhere at exit
        sys.exit(141)
    sys.exit(code)


__all__ = ["main", "entry"]
