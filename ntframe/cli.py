"""``ntframe`` command line: run, validate, plugins."""

from __future__ import annotations

import argparse
import json
import sys
import time

from ntframe import __version__
from ntframe.errors import NtframeError


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
    print(f"wrote {', '.join(str(p) for p in written)} ({elapsed:.2f} s)", file=sys.stderr)
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
    console = Console()
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
