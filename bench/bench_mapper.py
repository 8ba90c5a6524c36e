"""Mapper and cost-model budgets on the NeuroTrainer reference, printed as a table.

    .venv/bin/python bench/bench_mapper.py [--quick]

1. VGG-16 training step, batch 64, all phases, native mapper (default budget: 2000 evaluations per operation)
   + native cost model + hmc-analytic: cold (empty mapping cache) and again from the cache.
2. ResNet-50, batch 64, the same, cold.
3. Mapper quality: best EDP and search time of the native and neurotrainer-dataflow mappers on reference layers,
   with the outermost-loops mapping as the peer.
4. Native cost-model throughput: evaluations per second, one at a time and in a batch of 512.
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
