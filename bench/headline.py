"""NeuroTrainer's headline claims, measured: the reference architecture on CNNs, an RNN, an MLP, CNN+RNN and a
transformer (the claims: docs/sources.md#neurotrainer-and-its-predecessors).

    .venv/bin/python bench/headline.py [--evaluations N (default: the default budget)] [--set PATH=VALUE ...]
        [--mappers a,b] > table.md

(`--set architecture.technology.node_nm=45`: the reference built where its logic figures were measured, not at the
paper's 15 nm; `--dram low|high`: an engine's DRAM access at either end of its range, docs/sources.md#energies —
the reference file with the DRAM's figures replaced as DRAM_RANGE says, written beside the runs.)

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
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXE = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"
DRAM_RANGE = {
    # docs/sources.md#energies: an engine's access 2.0-9.1 pJ/bit (5.0 as shipped). Low: DRAM + TSV only, 2.02
    # (a SAFARI evaluation script's figures, unsourced there): no vault controller, the array's per-bit share
    # 2.02 less a stream's activations (about 0.26 pJ/bit at 500 pJ per 64-byte row miss, 73 % row hits). High:
    # the host's 10.48 less only a 1.4 pJ/bit SerDes (Intel/Micron 2011): the vault controller 9.08 - 3.7.
    "low": {"read_energy_pJ_per_bit": 2.02, "write_energy_pJ_per_bit": 2.02, "array_energy_pJ_per_bit": 1.76,
            "logic_energy_pJ_per_bit": 0.0},
    "high": {"read_energy_pJ_per_bit": 9.08, "write_energy_pJ_per_bit": 9.08, "array_energy_pJ_per_bit": 3.44,
             "logic_energy_pJ_per_bit": 5.38},
}
CASES = [("alexnet", 256, {}), ("vgg16", 64, {}), ("resnet50", 128, {}), ("lstm_lm", 64, {}),
         ("lstm_lm", 256, {}), ("mlp", 1024, {}), ("cnn_rnn", 64, {}), ("transformer", 32, {})]


def dram_variant(which: str, folder: Path) -> Path:
    """The reference architecture file with its DRAM's figures at one end of their range (DRAM_RANGE)."""
    from ntframe.paths import shipped_root
    text = (shipped_root() / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml").read_text()
    for name, value in DRAM_RANGE[which].items():
        text, n = re.subn(rf"(\n        {name}: )[0-9.]+\n", rf"\g<1>{value}\n", text, count=1)
        assert n == 1, name
    path = folder / f"hmc2-32vault-dram-{which}.yaml"
    path.write_text(text)
    return path


def run(network: str, batch: int, params: dict, mapper: str, evaluations: int, overrides: list[str],
        tmp: Path, arch: str = "neurotrainer/hmc2-32vault") -> dict:
    spec = tmp / f"{network}-{batch}-{mapper}.yaml"
    spec.write_text(f"version: 1\nname: {network}\nworkload: {{frontend: zoo, network: {network}, batch: {batch}, "
                    f"params: {json.dumps(params)}}}\narchitecture: {{spec: {arch}}}\n"
                    f"mapper: {{name: {mapper}, budget: {{evaluations: {evaluations}, seconds: 120}}, seed: 0}}\n")
    out = tmp / spec.stem
    sets = [arg for item in overrides for arg in ("--set", item)]
    subprocess.run([EXE, "run", str(spec), "-q", "-o", str(out), *sets], check=True, capture_output=True,
                   env={**os.environ, "NTFRAME_CACHE_DIR": str(tmp / "cache")})
    return json.loads((out / "results.json").read_text())


def breakdown(doc: dict) -> dict[str, float]:
    parts = {"MACs": 0.0, "register files": 0.0, "logic SRAM": 0.0, "network": 0.0, "vault controllers": 0.0,
             "HMC DRAM": 0.0}
    for op in doc["operations"]:
        parts["MACs"] += op["compute_energy_pJ"]
        parts["vault controllers"] += op["vault_controller_energy_pJ"]
        parts["HMC DRAM"] += op["memory_energy_pJ"] - op["vault_controller_energy_pJ"]
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
    parser.add_argument("--dram", choices=sorted(DRAM_RANGE), help="an engine's DRAM access at this end of its range")
    args = parser.parse_args()
    print("| network (batch) | mapper | GFLOP/step | TFLOP/s | GFLOPS/W | GFLOPS/W datapath / logic die / module | "
          "utilisation | power W | energy: MAC / RF / SRAM / NoC / vault ctrl / DRAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        arch = str(dram_variant(args.dram, Path(tmp))) if args.dram else "neurotrainer/hmc2-32vault"
        for network, batch, params in CASES:
            for mapper in args.mappers.split(","):
                doc = run(network, batch, params, mapper, args.evaluations, args.overrides, Path(tmp), arch)
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
