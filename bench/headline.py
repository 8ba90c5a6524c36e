"""NeuroTrainer's headline claims, measured: the reference architecture on CNNs, an RNN, an MLP, CNN+RNN and a
transformer (the claims: docs/sources.md#neurotrainer-and-its-predecessors).

    .venv/bin/python bench/headline.py [--evaluations N (default: the default budget)] [--set PATH=VALUE ...]
        [--mappers a,b] > table.md

(`--set architecture.technology.node_nm=15`: the reference built at the paper's 15 nm, docs/neurotrainer-results.md.)

`--set` is passed to every `ntframe run` (the first-order table of docs/neurotrainer-results.md:
`--set memory.model=stream --set cost_model.dram_line_bytes=0`).

Runs `ntframe run` (zoo network, NeuroTrainer reference architecture, hmc-analytic memory) with each mapper
and prints a markdown table: throughput, GFLOPS/W (logic die + HMC DRAM energy), utilisation of the 512 MACs,
and where the energy goes. Batches follow the H100 measurements in
docs/sources.md#a-gpu-for-comparison-h100-measurements; the results are in docs/neurotrainer-results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXE = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"
CASES = [("alexnet", 256, {}), ("vgg16", 64, {}), ("resnet50", 128, {}), ("lstm_lm", 64, {}),
         ("lstm_lm", 256, {}), ("mlp", 1024, {}), ("cnn_rnn", 64, {}), ("transformer", 32, {})]


def run(network: str, batch: int, params: dict, mapper: str, evaluations: int, overrides: list[str],
        tmp: Path) -> dict:
    spec = tmp / f"{network}-{batch}-{mapper}.yaml"
    spec.write_text(f"version: 1\nname: {network}\nworkload: {{frontend: zoo, network: {network}, batch: {batch}, "
                    f"params: {json.dumps(params)}}}\narchitecture: {{spec: neurotrainer/hmc2-32vault}}\n"
                    f"mapper: {{name: {mapper}, budget: {{evaluations: {evaluations}, seconds: 120}}, seed: 0}}\n")
    out = tmp / spec.stem
    sets = [arg for item in overrides for arg in ("--set", item)]
    subprocess.run([EXE, "run", str(spec), "-q", "-o", str(out), *sets], check=True, capture_output=True,
                   env={**os.environ, "NTFRAME_CACHE_DIR": str(tmp / "cache")})
    return json.loads((out / "results.json").read_text())


def breakdown(doc: dict) -> dict[str, float]:
    parts = {"MACs": 0.0, "register files": 0.0, "logic SRAM": 0.0, "network": 0.0, "HMC DRAM": 0.0}
    for op in doc["operations"]:
        parts["MACs"] += op["compute_energy_pJ"]
        parts["HMC DRAM"] += op["memory_energy_pJ"]
        for level in op["levels"]:
            if level["is_memory"]:
                continue
            key = {"pe_rf": "register files", "vault_buffer": "logic SRAM", "logic_noc": "network"}.get(
                level["level"], "MACs")             # mac.spatial_reduction: the adders that combine partial sums
            parts[key] += level["energy_pJ"]
    total = sum(parts.values())
    return {k: v / total for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    from ntframe.components import Budget
    parser.add_argument("--evaluations", type=int, default=Budget().evaluations)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    parser.add_argument("--mappers", default="neurotrainer-dataflow,native", help="comma-separated mappers")
    args = parser.parse_args()
    print("| network (batch) | mapper | GFLOP/step | TFLOP/s | GFLOPS/W | GFLOPS/W datapath / logic die / module | "
          "utilisation | power W | energy: MAC / RF / SRAM / NoC / DRAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for network, batch, params in CASES:
            for mapper in args.mappers.split(","):
                doc = run(network, batch, params, mapper, args.evaluations, args.overrides, Path(tmp))
                t = doc["totals"]
                util = t["throughput_GFLOPS"] / 1024.0
                b = breakdown(doc)
                print(f"| {network} ({batch}) | {mapper} | {t['flops'] / 1e9:,.0f} | {t['throughput_GFLOPS'] / 1e3:.3f} "
                      f"| {t['efficiency_GFLOPS_per_W']:.0f} | "
                      + " / ".join(f"{t['scopes'][s]['efficiency_GFLOPS_per_W']:,.0f}"
                                   for s in ("datapath", "logic_die", "module"))
                      + f" | {util:.0%} | {t['power_W']:.2f} | "
                      + " / ".join(f"{v:.0%}" for v in b.values()) + " |", flush=True)


if __name__ == "__main__":
    main()
