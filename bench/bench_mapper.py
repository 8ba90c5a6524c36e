"""Mapper and cost-model budgets on the NeuroTrainer reference, printed as a table.

    .venv/bin/python bench/bench_mapper.py [--quick]

1. VGG-16 training step, batch 64, all phases, native mapper (default budget: 2000 evaluations per operation)
   + native cost model + hmc-analytic: cold (empty mapping cache) and again from the cache.
2. ResNet-50, batch 64, the same, cold.
3. Mapper quality: best EDP and search time of the native and neurotrainer-dataflow mappers on reference layers,
   with the outermost-loops mapping as the peer.
4. Native cost-model throughput: evaluations per second, one at a time and in a batch of 512.
5. Seed spread (``--spread`` runs only this): the native search's EDP over seeds 0-9 on the reference layers
   (VGG-16 conv3_2 at batch 4, all three phases, and fc6.forward; and the layers of 3.) at the example spec's
   budget (400) and the default (2000), with the exploration-only search (no descent) as the peer, in the same
   run; and on three small layers of arch_specs/tiny/1vault-8x8.yaml, the gap to the exhaustive optimum.
Each run is a fresh `ntframe run` subprocess (interpreter start included); the cache lives in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXE = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"


def run_spec(text: str, cache: Path, out: Path) -> tuple[float, dict]:
    spec = out.parent / f"{out.name}.yaml"
    spec.write_text(text)
    t0 = time.perf_counter()
    subprocess.run([EXE, "run", str(spec), "-q", "-o", str(out)], check=True, capture_output=True,
                   env={**os.environ, "NTFRAME_CACHE_DIR": str(cache)})
    return time.perf_counter() - t0, json.loads((out / "results.json").read_text())


def spec(network: str, mapper: str = "native", evaluations: int = 2000) -> str:
    return (f"version: 1\nname: {network}\nworkload: {{frontend: zoo, network: {network}, batch: 64}}\n"
            f"architecture: {{spec: neurotrainer/hmc2-32vault}}\n"
            f"mapper: {{name: {mapper}, budget: {{evaluations: {evaluations}, seconds: 60}}, seed: 0}}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50")
    parser.add_argument("--spread", action="store_true", help="only the seed spread (5.)")
    args = parser.parse_args()
    if args.spread:
        spread()
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, doc = run_spec(spec("vgg16"), tmp / "cache", tmp / "vgg-cold")
        warm, doc2 = run_spec(spec("vgg16"), tmp / "cache", tmp / "vgg-warm")
        same = (doc["operations"], doc["totals"]) == (doc2["operations"], doc2["totals"])
        ops = len(doc["operations"])
        print(f"vgg16 b64 all phases   cold {cold:6.2f} s   cached {warm:5.2f} s   ({ops} operations, "
              f"identical results: {same})   budget: <= 10 s cold, <= 1 s cached")
        t = doc["totals"]
        print(f"    {t['throughput_GFLOPS']:.0f} GFLOPS, {t['efficiency_GFLOPS_per_W']:.1f} GFLOPS/W")
        if not args.quick:
            cold_r, doc_r = run_spec(spec("resnet50"), tmp / "cache-r", tmp / "resnet")
            t = doc_r["totals"]
            print(f"resnet50 b64 all phases cold {cold_r:6.2f} s   ({len(doc_r['operations'])} operations)   "
                  f"budget: <= 30 s     {t['throughput_GFLOPS']:.0f} GFLOPS, {t['efficiency_GFLOPS_per_W']:.1f} "
                  "GFLOPS/W")
    quality()
    throughput()
    spread()


def reference_layers():
    from ntframe.workload.ir import PHASES
    from ntframe.workload.training import expand
    from ntframe_plugins.zoo import ZOO
    nets = {"vgg16": ZOO["vgg16"][1](ZOO["vgg16"][0]()).build(16),
            "lstm_lm": ZOO["lstm_lm"][1](ZOO["lstm_lm"][0]()).build(16)}
    bits = {p: 16 for p in PHASES}
    wanted = ["conv3_2.forward", "conv3_2.backward_data", "conv3_2.backward_weight", "fc6.forward",
              "lstm1.forward.recurrent", "lstm1.backward_weight.input"]
    found = {}
    for net in nets.values():
        for op in expand(net, PHASES, bits):
            if op.name in wanted:
                found[op.name] = op
    return [found[n] for n in wanted]


def quality() -> None:
    from ntframe.components import Budget
    from ntframe.hardware.architecture import load_architecture
    from ntframe.mapping.mapspace import Problem
    from ntframe.mapping.search import Constraints, Space
    from ntframe.paths import shipped_root
    from ntframe_plugins.dataflow_mapper import DataflowMapper
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.native_mapper import NativeMapper
    arch = load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")
    model = NativeCostModel()
    print("\nmapper quality (EDP in pJ*cycles, lower is better; 2000 evaluations; seed 0)")
    print(f"{'operation':<30} {'outermost':>12} {'native':>12} {'s':>6} {'dataflow':>12} {'s':>6}")
    for op in reference_layers():
        problem = Problem(op)
        space = Space(problem, arch, Constraints())
        e, c = model.evaluate_batch(problem, space.decode(*space.outermost()), arch)
        cells = [f"{e[0] * c[0]:12.3e}"]
        for mapper in (NativeMapper(), DataflowMapper()):
            t0 = time.perf_counter()
            res = mapper.search(op, arch, model, Budget(evaluations=2000, seconds=60), 0)
            cells += [f"{res.cost.energy_pJ * res.cost.cycles:12.3e}", f"{time.perf_counter() - t0:6.2f}"]
        print(f"{op.name:<30} " + " ".join(cells))


def throughput() -> None:
    import numpy as np

    from ntframe.hardware.architecture import load_architecture
    from ntframe.mapping.mapspace import Problem, from_batch
    from ntframe.mapping.search import Constraints, Space
    from ntframe.paths import shipped_root
    from ntframe_plugins.native_cost import NativeCostModel
    arch = load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")
    op = reference_layers()[0]
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
    print(f"\nnative cost model on {op.name}: {batched:,.0f} evaluations/s in batches of 512, "
          f"{single:,.0f}/s one at a time (ratio {batched / single:.0f}x)")


def spread() -> None:
    import numpy as np

    from ntframe.hardware.architecture import load_architecture
    from ntframe.mapping.exhaustive import optimum
    from ntframe.mapping.mapspace import Problem
    from ntframe.mapping.search import EXPLORE, batch_evaluator, search
    from ntframe.paths import shipped_root
    from ntframe.workload.ir import PHASES
    from ntframe.workload.training import expand
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.zoo import ZOO
    sys.path.insert(0, str(ROOT))
    from tests.test_exhaustive import TINY, small_ops
    arch = load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")
    evaluate = batch_evaluator(NativeCostModel(), arch)
    vgg4 = {op.name: op for op in expand(ZOO["vgg16"][1](ZOO["vgg16"][0]()).build(4), PHASES,
                                         dict.fromkeys(PHASES, 16))}
    layers = [(f"{n} (b4)", vgg4[n]) for n in ("conv3_2.forward", "conv3_2.backward_data",
                                                 "conv3_2.backward_weight", "fc6.forward")]
    layers += [(f"{op.name} (b16)", op) for op in reference_layers()]

    def seeds(problem, arch, evaluate, budget, explore):
        t0 = time.perf_counter()
        edp = np.array([(lambda o: o.energy_pJ * o.cycles)(search(problem, arch, evaluate, evaluations=budget,
                        seconds=600, seed=s, tag="native", explore=explore)) for s in range(10)])
        return edp, (time.perf_counter() - t0) / 10

    print("\nseed spread of the native search: EDP over seeds 0-9 (pJ*cycles); spread = worst / best - 1; "
          "descent vs exploration only")
    print(f"{'operation':<36} {'budget':>6} | {'best':>10} {'median':>10} {'spread':>7} {'s/seed':>6} | "
          f"{'expl. best':>10} {'median':>10} {'spread':>7} | median ratio")
    for label, op in layers:
        problem = Problem(op)
        for budget in (400, 2000):
            new, t_new = seeds(problem, arch, evaluate, budget, EXPLORE)
            old, _ = seeds(problem, arch, evaluate, budget, 1.0)
            print(f"{label:<36} {budget:>6} | {new.min():10.3e} {np.median(new):10.3e} "
                  f"{new.max() / new.min() - 1:7.1%} {t_new:6.2f} | {old.min():10.3e} {np.median(old):10.3e} "
                  f"{old.max() / old.min() - 1:7.1%} | {np.median(new) / np.median(old):.3f}")
    tiny = load_architecture(TINY)
    evaluate = batch_evaluator(NativeCostModel(), tiny)
    print("\ngap to the exhaustive optimum, arch_specs/tiny/1vault-8x8.yaml, seeds 0-9 (worst seed)")
    for name, batch, features in (("conv.forward", 1, 16), ("conv.backward_weight", 1, 16), ("fc.forward", 2, 32)):
        problem = Problem(small_ops(batch=batch, features=features)[name])
        t0 = time.perf_counter()
        best = optimum(problem, tiny, evaluate)
        t_opt = time.perf_counter() - t0
        cells = []
        for budget in (400, 2000):
            for explore in (EXPLORE, 1.0):
                edp, _ = seeds(problem, tiny, evaluate, budget, explore)
                cells.append(f"{budget}{'' if explore == EXPLORE else ' expl.'}: +{edp.max() / best.value - 1:.3%} "
                             f"({int((edp <= best.value * (1 + 1e-9)).sum())}/10 on it)")
        print(f"  {name:<22} {best.mappings:>10,} mappings, enumerated in {t_opt:5.1f} s | " + " | ".join(cells))


if __name__ == "__main__":
    main()
