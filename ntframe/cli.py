"""``ntframe`` command line: run, validate, plugins."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ntframe import __version__
from ntframe.errors import NtframeError, SpecError


def _host():
    from ntframe.host import PluginHost
    host = PluginHost().load()
    for info in host.failures():
        print(f"warning: plugin '{info.name}' ({info.distribution} {info.version}) not loaded: {info.error}",
              file=sys.stderr)
    return host


def _load(spec_path: str):
    from ntframe.runner import resolve
    from ntframe.spec import load_spec
    loaded = load_spec(spec_path)
    return resolve(loaded, _host())


def cmd_validate(args: argparse.Namespace) -> int:
    resolved = _load(args.spec)
    arch = resolved.architecture
    print(f"{args.spec}: valid. architecture '{arch.name}': "
          + ", ".join(f"{lvl.name}×{lvl.instances}" for lvl in arch.levels)
          + f", {arch.compute.name}×{arch.compute.instances}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ntframe.runner import output_folder, run, write_bundle
    console = Console(stderr=True)
    resolved = _load(args.spec)
    started = time.perf_counter()
    with Progress(TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("{task.description}"), console=console, transient=True,
                  disable=args.quiet or not console.is_terminal) as bar:
        task = bar.add_task("", total=None)

        def progress(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        document = run(resolved, progress)
    elapsed = time.perf_counter() - started
    for note in document["network"]["notes"]:
        print(f"note: {note}", file=sys.stderr)
    folder = output_folder(resolved.loaded, args.output)
    written = write_bundle(document, folder)
    if not args.quiet:
        _print_summary(document)
    cache = resolved.cache
    hits = f"; mapping cache: {cache.hits} hit(s), {cache.misses} miss(es)" if cache and cache.folder else ""
    print(f"wrote {', '.join(str(p) for p in written)} ({elapsed:.2f} s{hits})", file=sys.stderr)
    failed = document["totals"]["operations_failed"]
    if failed:
        for row in document["operations"]:
            if row["status"] == "error":
                print(f"error: {row['name']}: {row['error']}", file=sys.stderr)
        print(f"{failed} operation(s) failed; the results of the others are in {folder}", file=sys.stderr)
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
    console.print("by: " + ", ".join(f"{sec}={p['component']} ({p['plugin']} {p['version']})"
                                      for sec, p in prov.items()), highlight=False)


def cmd_plugins(args: argparse.Namespace) -> int:
    from ntframe.host import PluginHost
    host = PluginHost().load()  # failures are listed below (or in the JSON), not warned about
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


def _parse_value(text: str):
    import yaml
    return yaml.safe_load(text)


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
    from ntframe.arch import load_architecture
    from ntframe.components import WorkloadRequest
    from ntframe.ir import PHASES, Phase
    from ntframe.paths import resolve_path
    from ntframe.training import activation_stash, expand
    from ntframe.yamlio import Positions, validate
    frontend, _, options = catalog[args.name]
    reg = host.get("workload_frontend", frontend)
    params = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--param takes KEY=VALUE, got '{item}'")
        params[key] = _parse_value(value)
    data = {**options, **({"params": params} if params else {})}
    opts = validate(reg.cls.Options, data, Positions("<command line>", {}), prefix=("workload",),
                    owner=f"option of workload frontend '{frontend}'")
    component = reg.cls(opts)
    network = component.load(WorkloadRequest(args.batch, Path.cwd()))
    arch = load_architecture(resolve_path(args.arch, Path.cwd(), "arch_specs"))
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


def cmd_export(args: argparse.Namespace) -> int:
    from ntframe.results import to_jsonable
    from ntframe.runner import map_operation, operations_of
    from ntframe.timeloop import export
    resolved = _load(args.spec)
    _, ops = operations_of(resolved)
    wanted = f"{args.layer}.{args.phase}" + (f".{args.part}" if args.part else "")
    chosen = [o for o in ops if o.name == wanted]
    if not chosen:
        names = [o.name for o in ops if o.layer == args.layer] or sorted({o.layer for o in ops})
        raise SpecError(f"no operation '{wanted}'; {'its layer has' if names and '.' in names[0] else 'layers:'} "
                        f"{', '.join(names)}")
    op = chosen[0]
    import dataclasses
    mapping, cost, _ = map_operation(resolved, op)
    model = resolved.component("cost_model")
    alone = model.evaluate(op, mapping, dataclasses.replace(resolved.architecture, network=None))
    written = export(op, resolved.architecture, mapping, Path(args.folder),
                     {"cycles": cost.cycles, "energy_pJ": cost.energy_pJ, "levels": to_jsonable(cost.levels),
                      "without_network": {"cycles": alone.cycles, "energy_pJ": alone.energy_pJ,
                                          "levels": to_jsonable(alone.levels)}})
    print(f"{op.name}: wrote {', '.join(p.name for p in written)} to {args.folder}")
    print((Path(args.folder) / "README.txt").read_text().strip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ntframe", description="Simulate DNN training on HMC logic-layer "
                                     "accelerators (NeuroTrainer-style).")
    parser.add_argument("--version", action="version", version=f"ntframe {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="simulate one training step of a spec")
    p.add_argument("spec")
    p.add_argument("-o", "--output", help="results folder (default: the spec's output, else results/<name>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no table, no progress bar")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("validate", help="check a spec, its plugin options and its architecture, without running")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plugins", help="list plugins, their components and load failures")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plugins)
    p = sub.add_parser("export", help="write one operation, its mapping and the architecture in another tool's "
                                      "formats")
    p.add_argument("tool", choices=["timeloop"])
    p.add_argument("spec")
    p.add_argument("folder")
    p.add_argument("--layer", required=True)
    p.add_argument("--phase", required=True, choices=["forward", "backward_data", "backward_weight", "update"])
    p.add_argument("--part", help="sub-operation (e.g. bias, recurrent)")
    p.set_defaults(func=cmd_export)
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
    sys.exit(main())


__all__ = ["main", "entry"]
