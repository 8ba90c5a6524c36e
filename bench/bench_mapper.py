"""The native mapper on the NeuroTrainer reference: time of a whole training step, quality on reference layers
against the seeded sampling search, Timeloop's mapper, ZigZag's LOMA and the exhaustive optimum, printed.

    .venv/bin/python bench/bench_mapper.py [--quick] [--only timing|quality|external|exhaustive|throughput]
    NTFRAME_TIMELOOP_BIN=... adds Timeloop's mapper to the external table

1. timing: VGG-16 training step, batch 64, all phases, the default spec (native mapper at the default budget,
   native cost model, hmc-analytic), as the README's `ntframe run` subprocess: cold (empty mapping cache), again
   from the cache, and cold with seed 1 (per-operation EDP compared with seed 0's); ResNet-50 b64 cold.
2. quality: reference layers (VGG-16 conv3_2 forward / backward_data / backward_weight and fc6.forward at batch 4
   and 16, lstm_lm's lstm1 recurrent forward and input backward_weight at batch 16) under the default cost model:
   the bounded search at 5,000, 20,000 (the default and the example's budget) and 50,000 evaluations (EDP against
   the best any search here found, the certified bound gap, seconds), seeds 0-9 at the default budget, and the
   seeded sampling search (the native mapper's search for cost models without bounds) at the same budget, seeds
   0-9, as the peer in the same run. A 200,000-evaluation bounded run is the long reference.
3. external: the batch-4 layers judged by the model Timeloop's mapper optimises (``native`` counting elements,
   no logic-die network, no DRAM lines, no spatial-reduction adders — Timeloop's model of these files, checked
   count by count in tests/test_timeloop_export.py): the bounded search at the default budget against
   timeloop-mapper (linear_pruned, 100,000 valid mappings, victory after 25,000 without improvement, giving up
   after 200,000 invalid ones in a row: at its default 5,000 it finds none under the reference's constraints) and ZigZag's
   LOMA (lpf 4, 3 spatial mappings, searching with ZigZag's own model), with the wall time of each.
4. exhaustive: three layers of arch_specs/tiny/1vault-8x8.yaml small enough to enumerate (0.3-1.5 M mappings):
   the optimum against the bounded search (seeds 0-9) and the sampling search (seeds 0-9), both at the default
   budget.
5. throughput: the native cost model's evaluations per second, one at a time and in batches of 512.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXE = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"
BUDGETS = (5000, 20000, 50000)
LONG = 200_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50, batch-16 layers, and the long runs")
    parser.add_argument("--only", choices=["timing", "quality", "external", "exhaustive", "throughput"])
    args = parser.parse_args()
    for name, part in (("timing", timing), ("quality", quality), ("external", external),
                       ("exhaustive", exhaustive), ("throughput", throughput)):
        if args.only in (None, name):
            part(args.quick)


def run_spec(text: str, cache: Path, out: Path) -> tuple[float, dict]:
    spec = out.parent / f"{out.name}.yaml"
    spec.write_text(text)
    t0 = time.perf_counter()
    subprocess.run([EXE, "run", str(spec), "-q", "-o", str(out)], check=True, capture_output=True,
                   env={**os.environ, "NTFRAME_CACHE_DIR": str(cache)})
    return time.perf_counter() - t0, json.loads((out / "results.json").read_text())


def spec(network: str, seed: int = 0) -> str:
    return (f"version: 1\nname: {network}\nworkload: {{frontend: zoo, network: {network}, batch: 64}}\n"
            f"architecture: {{spec: neurotrainer/hmc2-32vault}}\nmapper: {{name: native, seed: {seed}}}\n")


def timing(quick: bool) -> None:
    print("1. a training step, batch 64, the default spec (`ntframe run`, interpreter start included)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, doc = run_spec(spec("vgg16"), tmp / "cache", tmp / "vgg-cold")
        warm, doc2 = run_spec(spec("vgg16"), tmp / "cache", tmp / "vgg-warm")
        cold1, doc1 = run_spec(spec("vgg16", seed=1), tmp / "cache1", tmp / "vgg-seed1")
        same = (doc["operations"], doc["totals"]) == (doc2["operations"], doc2["totals"])
        t = doc["totals"]
        print(f"  vgg16     cold {cold:6.2f} s   cached {warm:5.2f} s   ({len(doc['operations'])} operations, "
              f"cached results identical: {same})   {t['throughput_GFLOPS']:.0f} GFLOPS, "
              f"{t['efficiency_GFLOPS_per_W']:.1f} GFLOPS/W")
        edp = [(a["energy_pJ"] * a["cycles"], b["energy_pJ"] * b["cycles"])
               for a, b in zip(doc["operations"], doc1["operations"]) if a.get("status") == "ok"]
        worst = max(abs(x / y - 1) for x, y in edp if y)
        gaps = [o["search"].get("bound_gap", 0.0) for o in doc["operations"] if o.get("status") == "ok"]
        print(f"  vgg16     seed 1 cold {cold1:6.2f} s: worst per-operation EDP difference from seed 0 {worst:.3%}; "
              f"bound gap median {np.median(gaps):.1%}, worst {max(gaps):.1%}, "
              f"{sum(g == 0 for g in gaps)} of {len(gaps)} certified")
        if not quick:
            cold_r, doc_r = run_spec(spec("resnet50"), tmp / "cache-r", tmp / "resnet")
            t = doc_r["totals"]
            print(f"  resnet50  cold {cold_r:6.2f} s   ({len(doc_r['operations'])} operations)   "
                  f"{t['throughput_GFLOPS']:.0f} GFLOPS, {t['efficiency_GFLOPS_per_W']:.1f} GFLOPS/W")


def reference_layers(batches=(4, 16)) -> list[tuple[str, object]]:
    from ntframe.workload.ir import PHASES
    from ntframe.workload.training import expand
    from ntframe_plugins.zoo import ZOO
    bits = reference_architecture().precision_bits           # as a run expands them (16-bit forward, 32 backward)
    layers = []
    for batch in batches:
        ops = {o.name: o for o in expand(ZOO["vgg16"][1](ZOO["vgg16"][0]()).build(batch), PHASES, bits)}
        layers += [(f"{n} b{batch}", ops[n]) for n in ("conv3_2.forward", "conv3_2.backward_data",
                                                        "conv3_2.backward_weight", "fc6.forward")]
    if 16 in batches:
        ops = {o.name: o for o in expand(ZOO["lstm_lm"][1](ZOO["lstm_lm"][0]()).build(16), PHASES, bits)}
        layers += [(f"{n} b16", ops[n]) for n in ("lstm1.forward.recurrent", "lstm1.backward_weight.input")]
    return layers


def reference_architecture():
    from ntframe.hardware.architecture import load_architecture
    from ntframe.paths import shipped_root
    return load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")


def edp_of(result) -> float:
    return result.cost.energy_pJ * result.cost.cycles


def bound_gap(result) -> float:
    return max(0.0, edp_of(result) / result.lower_bound - 1) if 0 < result.lower_bound < float("inf") else 0.0


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def quality(quick: bool) -> None:
    from ntframe.components import Budget
    from ntframe.mapping.constraints import Constraints, for_operation
    from ntframe.mapping.mapspace import Problem, from_batch
    from ntframe.mapping.search import search, search_operation
    from ntframe.mapping.space import batch_evaluator
    from ntframe_plugins.native_cost import NativeCostModel
    arch, model = reference_architecture(), NativeCostModel()
    evaluate = batch_evaluator(model, arch)
    default = Budget().evaluations
    print(f"\n2. quality on reference layers (EDP as the run reports it, by the cost model's evaluate, / the best any "
          f"search below found; gap: the certified bound gap; sampling: the seeded sampling search at {default:,}, "
          f"seeds 0-9)")
    print(f"{'layer':<34}" + "".join(f"{f'bounded {b // 1000}k':>26}" for b in BUDGETS)
          + f"{'seeds 0-9 spread':>18}{'sampling best / median / worst':>34}{'s/seed':>8}")
    for label, op in reference_layers((4,) if quick else (4, 16)):
        runs = []
        for b in BUDGETS + (() if quick else (LONG,)):
            r, dt = timed(lambda: search_operation(op, arch, model, Budget(evaluations=b, seconds=600), 0, "edp",
                                                   Constraints(), "native"))
            runs.append((edp_of(r), bound_gap(r), dt))
        seeds = [edp_of(search_operation(op, arch, model, Budget(evaluations=default, seconds=600), s, "edp",
                                         Constraints(), "native")) for s in range(10)]
        problem = Problem(op)
        c = for_operation(problem, arch, Constraints())
        sampled, dt_s = timed(lambda: [     # priced as the bounded search's answers are: by evaluate
            edp_of(SimpleNamespace(cost=model.evaluate(op, from_batch(problem, search(
                problem, arch, evaluate, evaluations=default, seconds=600, seed=s, constraints=c,
                tag="native").batch, arch, 0), arch))) for s in range(10)])
        best = min([e for e, _, _ in runs] + sampled)
        cells = "".join(f"{f'{e / best:.4f} gap {g:5.1%} {dt:4.1f}s':>26}" for e, g, dt in runs[:len(BUDGETS)])
        print(f"{label:<34}{cells}{max(seeds) / min(seeds) - 1:>18.2%}"
              f"{f'{min(sampled) / best:.3f} / {np.median(sampled) / best:.3f} / {max(sampled) / best:.3f}':>34}"
              f"{dt_s / 10:>8.2f}")


def external(quick: bool) -> None:
    from ntframe.components import Budget
    from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions
    from ntframe_plugins.native_mapper import NativeMapper
    from ntframe_plugins.zigzag_tools import ZigZagLoma, ZigZagLomaOptions
    judge = NativeCostModel(NativeCostOptions(dram_line_bytes=0, spatial_reduction_adders=False))
    arch = dataclasses.replace(reference_architecture(), network=None)
    timeloop = bool(os.environ.get("NTFRAME_TIMELOOP_BIN") or shutil.which("timeloop-mapper"))
    print("\n3. against external searchers, batch 4; judge: native counting elements, no network, no lines, no adders "
          "(= Timeloop's model)" + ("" if timeloop else "; timeloop-mapper not found (set NTFRAME_TIMELOOP_BIN)"))
    searchers = [("native (bounded)", NativeMapper(), Budget())]
    if timeloop:
        from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopMapperOptions
        size = 20000 if quick else 100_000
        searchers.append((f"timeloop-mapper linear_pruned {size:,}", TimeloopMapper(TimeloopMapperOptions(
            algorithm="linear_pruned", victory_condition=size // 4, invalid_timeout=size * 2)),
            Budget(evaluations=size, seconds=600)))
    searchers.append(("zigzag-loma lpf 4, 3 spatial", ZigZagLoma(ZigZagLomaOptions(lpf_limit=4, spatial_mappings=3)),
                      Budget(seconds=600)))
    for label, op in reference_layers((4,)):
        rows = []
        for name, searcher, budget in searchers:
            try:
                r, dt = timed(lambda: searcher.search(op, arch, judge, budget, 0))
            except Exception as exc:                     # a failing external tool is a cell, not the end of the table
                rows.append((name, float("nan"), 0.0, f"failed: {str(exc).splitlines()[0][:80]}"))
                continue
            c = judge.evaluate(op, r.mapping, arch)
            rows.append((name, c.energy_pJ * c.cycles, dt, "truncated by time" if r.truncated_by_time else ""))
        best = min(e for _, e, _, _ in rows if e == e)
        print(f"  {label}")
        for name, e, dt, note in rows:
            print(f"    {name:<40} {dt:8.2f} s  EDP {e:.4e} pJ*cycles  x best {e / best:6.3f}  {note}")


def exhaustive(quick: bool) -> None:
    from ntframe.components import Budget
    from ntframe.hardware.architecture import load_architecture
    from ntframe.mapping.constraints import Constraints, for_operation
    from ntframe.mapping.exhaustive import optimum
    from ntframe.mapping.mapspace import Problem
    from ntframe.mapping.search import search, search_operation
    from ntframe.mapping.space import batch_evaluator
    from ntframe_plugins.native_cost import NativeCostModel
    sys.path.insert(0, str(ROOT))
    from tests.test_exhaustive import TINY, small_ops
    tiny, model = load_architecture(TINY), NativeCostModel()
    evaluate = batch_evaluator(model, tiny)
    default = Budget().evaluations
    print(f"\n4. the exhaustive optimum, arch_specs/tiny/1vault-8x8.yaml; bounded and sampling searches at {default:,}, "
          "seeds 0-9 (worst seed / optimum)")
    for name, batch, features in (("conv.forward", 1, 16), ("conv.backward_weight", 1, 16), ("fc.forward", 2, 32)):
        op = small_ops(batch=batch, features=features)[name]
        problem = Problem(op)
        best, dt_opt = timed(lambda: optimum(problem, tiny, evaluate))
        bounded, dt_b = timed(lambda: [edp_of(search_operation(op, tiny, model, Budget(), s, "edp", Constraints(),
                                                               "native")) for s in range(10)])
        c = for_operation(problem, tiny, Constraints())
        sampled, dt_s = timed(lambda: [
            (lambda o: o.energy_pJ * o.cycles)(search(problem, tiny, evaluate, evaluations=default, seconds=600,
                                                      seed=s, constraints=c, tag="native")) for s in range(10)])
        print(f"  {name:<22} {best.mappings:>10,} mappings, enumerated in {dt_opt:5.1f} s | bounded "
              f"+{max(bounded) / best.value - 1:.3%} ({dt_b / 10:.2f} s) | sampling +{max(sampled) / best.value - 1:.3%} "
              f"({int(sum(e <= best.value * (1 + 1e-9) for e in sampled))}/10 on it, {dt_s / 10:.2f} s)")


def throughput(quick: bool) -> None:
    from ntframe.mapping.constraints import Constraints
    from ntframe.mapping.mapspace import Problem, from_batch
    from ntframe.mapping.space import Space
    from ntframe_plugins.native_cost import NativeCostModel
    arch = reference_architecture()
    label, op = reference_layers((16,))[0]
    problem = Problem(op)
    space = Space(problem, arch, Constraints())
    batch = space.decode(*space.sample(np.random.default_rng(0), 512))
    model = NativeCostModel()
    t0 = time.perf_counter()
    for _ in range(10):
        model.evaluate_batch(problem, batch, arch)
    batched = 5120 / (time.perf_counter() - t0)
    mappings = [from_batch(problem, batch, arch, i) for i in range(200)]
    t0 = time.perf_counter()
    for m in mappings:
        model.evaluate(op, m, arch)
    single = 200 / (time.perf_counter() - t0)
    print(f"\n5. native cost model on {label}: {batched:,.0f} evaluations/s in batches of 512, "
          f"{single:,.0f}/s one at a time (ratio {batched / single:.0f}x)")


if __name__ == "__main__":
    main()
