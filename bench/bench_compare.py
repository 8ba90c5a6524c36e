"""Cost models and mappers side by side, printed.

    .venv/bin/python bench/bench_compare.py [--quick]     # NTFRAME_TIMELOOP_BIN adds Timeloop's columns

1. Per-layer evaluation time of each cost model on the same mapping (the native mapper's), for every conv and
   matrix-product operation of the example spec: native, zigzag, timeloop (when found).
2. Mapper quality against time on reference layers: the best EDP each searcher finds and the wall time it takes.
   Every mapping found is judged by one model, ``native`` counting elements without the logic-die network —
   exactly Timeloop's model of these files (checked count by count in tests/test_timeloop_export.py), i.e. the
   objective timeloop-mapper optimises; the native mapper searches with that judge; ZigZag's LOMA searches with
   ZigZag's own model. The native mapper runs at three budgets; the ratio column is EDP / the best EDP any
   searcher found for that layer; for the native rows, EDP and time against the external search that found the best
   external EDP (the goal: within 5 % of it in a tenth of its time).
   Timeloop's mapper runs with ``victory_condition`` a quarter of its search size and gives up after twice its
   search size of invalid mappings in a row (at its default 5,000 it finds none under the reference's
   constraints).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ["conv2.forward", "conv3.backward_weight", "conv2.backward_data", "fc1.forward"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="two layers, smaller budgets")
    args = parser.parse_args()
    from ntframe.components import Budget
    from ntframe.host import PluginHost
    from ntframe.runner import map_operation, operations_of, resolve
    from ntframe.spec import load_spec
    from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions
    from ntframe_plugins.native_mapper import NativeMapper
    from ntframe_plugins.zigzag_tools import ZigZagLoma, ZigZagLomaOptions, ZigZagModel
    host = PluginHost().load()
    resolved = resolve(load_spec(ROOT / "examples" / "small-cnn.yaml"), host)
    arch = resolved.architecture
    _, ops = operations_of(resolved)
    by_name = {o.name: o for o in ops}
    timeloop = bool(os.environ.get("NTFRAME_TIMELOOP_BIN") or shutil.which("timeloop-model"))
    models = {"native": NativeCostModel(), "zigzag": ZigZagModel()}
    if timeloop:
        from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopMapperOptions, TimeloopModel
        models["timeloop"] = TimeloopModel()

    print("1. evaluation time of one mapping (ms), same mapping in every model")
    print(f"{'operation':<24}" + "".join(f"{m:>12}" for m in models))
    times: dict[str, list[float]] = {m: [] for m in models}
    for op in ops:
        if op.kind.value not in ("conv", "matmul"):
            continue
        mapping, _, _ = map_operation(resolved, op)
        row = []
        for name, model in models.items():
            model.evaluate(op, mapping, arch)                    # warm (imports, caches)
            reps = 20 if name == "native" else 3
            t0 = time.perf_counter()
            for _ in range(reps):
                model.evaluate(op, mapping, arch)
            dt = (time.perf_counter() - t0) / reps
            times[name].append(dt)
            row.append(dt)
        print(f"{op.name:<24}" + "".join(f"{1e3 * t:>12.2f}" for t in row))
    print(f"{'median':<24}" + "".join(f"{1e3 * statistics.median(v):>12.2f}" for v in times.values()))
    base = statistics.median(times["native"])
    print(f"{'median / native':<24}" + "".join(f"{statistics.median(v) / base:>12.1f}" for v in times.values()))

    print("\n2. mapper quality vs time; judge: native, element counting, no network (= Timeloop's model)")
    judge = NativeCostModel(NativeCostOptions(dram_line_bytes=0, spatial_reduction_adders=False))
    judge_arch = dataclasses.replace(arch, network=None)
    layers = REFERENCE[:2] if args.quick else REFERENCE
    budgets = [1000, 4000] if args.quick else [1000, 4000, 16000]
    for name in layers:
        op = by_name[name]
        found = []
        for b in budgets:
            t0 = time.perf_counter()
            r = NativeMapper().search(op, judge_arch, judge, Budget(evaluations=b, seconds=300), 0)
            found.append((f"native {b}", time.perf_counter() - t0, r.mapping))
        external = []
        runs = [("random_pruned", 2000)] if args.quick else [("random_pruned", 2000), ("random_pruned", 20000),
                                                             ("linear_pruned", 20000)]
        for algorithm, size in runs if timeloop else []:
            t0 = time.perf_counter()
            r = TimeloopMapper(TimeloopMapperOptions(algorithm=algorithm, victory_condition=size // 4,
                                                     invalid_timeout=size * 2)).search(
                op, judge_arch, judge, Budget(evaluations=size, seconds=300), 0)
            external.append((f"timeloop {algorithm[:6]} {size}", time.perf_counter() - t0, r.mapping))
        for lpf, spatial in ((4, 1),) if args.quick else ((4, 1), (4, 3)):
            t0 = time.perf_counter()
            r = ZigZagLoma(ZigZagLomaOptions(lpf_limit=lpf, spatial_mappings=spatial)).search(
                op, judge_arch, judge, Budget(evaluations=2000, seconds=300), 0)
            external.append((f"zigzag-loma lpf{lpf} sm{spatial}", time.perf_counter() - t0, r.mapping))
        rows = []
        for label, dt, mapping in found + external:
            c = judge.evaluate(op, mapping, judge_arch)
            rows.append((label, dt, c.cycles * c.energy_pJ))
        best = min(e for _, _, e in rows)
        ext = min(rows[len(found):], key=lambda r: r[2], default=None)
        print(f"  {name}" + (f"   (best external: {ext[0]}, {ext[1]:.2f} s)" if ext else ""))
        for label, dt, edp in rows:
            vs = (f"   vs best external: EDP x{edp / ext[2]:.3f} in {dt / ext[1]:.3f} of its time"
                  if ext and label.startswith("native") else "")
            print(f"    {label:<24} {dt:8.2f} s  EDP {edp:.4e} pJ*cycles  x best {edp / best:6.3f}{vs}")


if __name__ == "__main__":
    main()
