"""Paper reproductions (docs/reproductions.md): the Neurocube-like configuration next to Neurocube's published
figures, on the kind of network it reported (a convolutional network, inference and training).

    .venv/bin/python bench/reproductions.py [--evaluations N] > neurocube.md

Runs `ntframe run` on `neurocube/hmc-16vault` (16 vaults, a 16-MAC engine per vault, 16-bit, 300 MHz [A], its
logic figures built at Neurocube's 15 nm) for each network: forward only (inference) and the whole training step
(forward, backward_data, backward_weight, SGD update), with the hmc-analytic memory and the native mapper. Prints
GOP/s (2 operations per MAC, as ntframe counts FLOPs), the power of each scope and GOP/s per W beside the
published figures: 132 GOPs/s inference, 127 GOPs/s training, 3.4 W [S] (docs/sources.md).
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
ARCH = "neurocube/hmc-16vault"
PUBLISHED = {"inference": 132.0, "training": 127.0}
"""Neurocube's GOPs/s at 15 nm, 16 vaults [S] (docs/sources.md#neurotrainer-and-its-predecessors)."""
PUBLISHED_W = 3.4
CASES = [("small-cnn", "layers", 16), ("alexnet", "zoo", 16), ("vgg16", "zoo", 4)]
MODES = {"inference": ["forward"], "training": ["forward", "backward_data", "backward_weight", "update"]}


def run(network: str, frontend: str, batch: int, phases: list[str], evaluations: int, tmp: Path) -> dict:
    key = "file" if frontend == "layers" else "network"
    spec = tmp / f"{network}-{len(phases)}.yaml"
    spec.write_text(f"version: 1\nname: {network}\nworkload: {{frontend: {frontend}, {key}: {network}, batch: {batch}, "
                    f"phases: {json.dumps(phases)}}}\narchitecture: {{spec: {ARCH}}}\n"
                    f"mapper: {{name: native, budget: {{evaluations: {evaluations}, seconds: 120}}, seed: 0}}\n")
    out = tmp / spec.stem
    subprocess.run([EXE, "run", str(spec), "-q", "-o", str(out)], check=True, capture_output=True,
                   env={**os.environ, "NTFRAME_CACHE_DIR": str(tmp / "cache")})
    return json.loads((out / "results.json").read_text())


def main() -> None:
    from ntframe.components import Budget
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluations", type=int, default=Budget().evaluations)
    args = parser.parse_args()
    print("| network (batch) | mode | GOP/step | GOP/s (published) | utilisation | power W: logic die / module "
          "(published) | GOP/s/W: logic die / module | DRAM share of the module's energy |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for network, frontend, batch in CASES:
            for mode, phases in MODES.items():
                t = run(network, frontend, batch, phases, args.evaluations, Path(tmp))["totals"]
                s = t["scopes"]
                peak = 16 * 16 * 2 * 0.3                                 # 16 vaults x 16 MACs x 2 ops x 0.3 GHz
                dram = 1 - s["logic_die"]["energy_pJ"] / s["module"]["energy_pJ"]
                print(f"| {network} ({batch}) | {mode} | {t['flops'] / 1e9:,.2f} | {t['throughput_GFLOPS']:.1f} "
                      f"({PUBLISHED[mode]:.0f}) | {t['throughput_GFLOPS'] / peak:.0%} | "
                      f"{s['logic_die']['power_W']:.3f} / {s['module']['power_W']:.3f} ({PUBLISHED_W}) | "
                      f"{s['logic_die']['efficiency_GFLOPS_per_W']:,.0f} / {s['module']['efficiency_GFLOPS_per_W']:,.0f} "
                      f"| {dram:.0%} |", flush=True)


if __name__ == "__main__":
    main()
