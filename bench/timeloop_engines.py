"""The ``timeloop`` cost model's engines side by side: evaluation time of the same mappings, and their figures.

    NTFRAME_TIMELOOP_BIN=/path/to/timeloop/bin LD_LIBRARY_PATH=... .venv/bin/python bench/timeloop_engines.py \
        [SPEC] [--reps 5]

For every conv and matrix-product operation of the spec (default: examples/small-cnn.yaml, every phase), with the
mapping the spec's mapper gives, times one evaluation through each engine that is there: ``programs`` (the
timeloop-model program), ``pytimeloop`` (the exporter's v0.3 input, in a forked copy of this process: the default),
``pytimeloop unforked`` (``isolation: none``, in this process) and ``pytimeloop v0.4`` (the v0.4 architecture
through timeloopfe first, forked). Prints the median time per operation and engine over ``--reps`` runs
(after one warm-up run), the median over the operations, the ratio of each engine's to the programs', and whether
every engine gave the programs' cycles and energy (relative 1e-9).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(ROOT / "examples" / "small-cnn.yaml"))
    parser.add_argument("--reps", type=int, default=5, help="timed runs per operation and engine (median)")
    args = parser.parse_args()
    from ntframe.errors import ToolError
    from ntframe.host import PluginHost
    from ntframe.runner import map_operation, operations_of, resolve
    from ntframe.spec import load_spec
    from ntframe_plugins.timeloop_tools import TimeloopModel, TimeloopModelOptions
    resolved = resolve(load_spec(args.spec), PluginHost().load())
    arch = resolved.architecture
    _, ops = operations_of(resolved)
    engines = {}
    for label, options in (("programs", {"engine": "programs"}), ("pytimeloop", {"engine": "pytimeloop"}),
                           ("pytimeloop unforked", {"engine": "pytimeloop", "isolation": "none"}),
                           ("pytimeloop v0.4", {"engine": "pytimeloop", "spec": "v0.4"})):
        model = TimeloopModel(TimeloopModelOptions(**options))
        try:
            model.check_available()
        except ToolError as exc:
            print(f"{label}: not available ({str(exc).splitlines()[0]})")
            continue
        engines[label] = model
    if not engines:
        raise SystemExit("no Timeloop engine: set NTFRAME_TIMELOOP_BIN, or install pytimeloop (docs/compare.md)")
    print(f"evaluation time of one mapping (ms), median of {args.reps}; {arch.name}")
    print(f"{'operation':<26}" + "".join(f"{label:>21}" for label in engines))
    times: dict[str, list[float]] = {label: [] for label in engines}
    agree = {label: True for label in engines}
    for op in ops:
        if op.kind.value not in ("conv", "matmul"):
            continue
        mapping, _, _ = map_operation(resolved, op)
        row, first = [], None
        for label, model in engines.items():
            cost = model.evaluate(op, mapping, arch)                    # warm-up (imports, caches)
            first = first or cost
            agree[label] &= cost.cycles == first.cycles and abs(cost.energy_pJ - first.energy_pJ) <= 1e-9 * abs(
                first.energy_pJ)
            runs = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                model.evaluate(op, mapping, arch)
                runs.append(time.perf_counter() - t0)
            times[label].append(statistics.median(runs))
            row.append(times[label][-1])
        print(f"{op.name:<26}" + "".join(f"{1e3 * t:>21.2f}" for t in row))
    medians = {label: statistics.median(v) for label, v in times.items()}
    print(f"{'median':<26}" + "".join(f"{1e3 * m:>21.2f}" for m in medians.values()))
    base = next(iter(medians.values()))
    print(f"{'median / ' + next(iter(medians)):<26}" + "".join(f"{m / base:>21.3f}" for m in medians.values()))
    print(f"{'same cycles and energy':<26}" + "".join(f"{'yes' if ok else 'NO':>21}" for ok in agree.values()))


if __name__ == "__main__":
    main()
