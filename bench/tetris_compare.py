"""The TETRIS-like design through every cost model: ``ntframe compare`` with nn-dataflow's schedules.

    .venv/bin/python bench/tetris_compare.py [--network vgg16|alexnet] [--batch 16] [--out DIR]

A spec on ``arch_specs/tetris/hmc-16vault-eyeriss.yaml`` with a zoo network's training step (forward,
backward_data, backward_weight), mapped by the ``nn-dataflow`` searcher (the TETRIS authors' scheduler; operations
it cannot schedule by ntframe's native search) and priced by every cost model found: native, nn-dataflow, zigzag
(when ZigZag imports), timeloop (when its engine is found). Prints the totals of each model over the operations
every model evaluated, their ratios to nn-dataflow's, the energy by level, and per phase; how many operations
nn-dataflow scheduled and how far its chosen schedules are from its own best (the schedules that do not
translate into an ntframe mapping, or do not fit, are passed over). The compare files are kept in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def available(family: str, name: str) -> bool:
    from ntframe.api import plugin_host
    from ntframe.errors import NtframeError
    try:
        plugin_host().get(family, name).cls().check_available()
    except NtframeError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", default="vgg16", choices=["vgg16", "alexnet"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--out", help="folder for the spec and compare's files (default: a temporary one)")
    parser.add_argument("--dram-tolerance", default="1.25",
                        help="the searcher's dram_tolerance (.inf: nn-dataflow's best schedule that translates)")
    args = parser.parse_args()
    models = ["nn-dataflow", "native"] + [m for m in ("zigzag", "timeloop") if available("cost_model", m)]
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ntframe-tetris-"))
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "tetris.yaml"
    spec.write_text(
        f"version: 1\nname: tetris-{args.network}\n"
        f"workload: {{frontend: zoo, network: {args.network}, batch: {args.batch}, "
        "phases: [forward, backward_data, backward_weight]}\n"
        "architecture: {spec: tetris/hmc-16vault-eyeriss}\n"
        f"mapper: {{name: nn-dataflow, dram_tolerance: {args.dram_tolerance}, budget: {{seconds: 60}}, "
        "cache: false}\ncost_model: native\n"
        "memory: {backend: hmc-analytic}\noutput: out\n")
    exe = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or shutil.which("ntframe")
    if not exe:
        sys.exit("the ntframe console script is not installed")
    started = time.perf_counter()
    done = subprocess.run([exe, "compare", str(spec), "--cost-models", ",".join(models), "-o", str(folder / "cmp")],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ntframe compare failed ({done.returncode}):\n{done.stderr}")
    wall = time.perf_counter() - started
    doc = json.loads((folder / "cmp" / "compare.json").read_text())
    rows = doc["operations"]
    common = [r for r in rows if all(c["status"] == "ok" for c in r["cells"].values())]
    print(f"{args.network}, batch {args.batch}, TETRIS-like 16 vaults x 14x14 engines, nn-dataflow searcher with "
          f"dram_tolerance {args.dram_tolerance}; ntframe compare "
          f"--cost-models {','.join(models)}: {wall:.0f} s; {len(rows)} operations, {len(common)} evaluated by "
          "every model (the totals below)")
    scheduled = [r for r in rows if r["search"] and r["search"]["method"].startswith("nn-dataflow")]
    print(f"nn-dataflow scheduled {len(scheduled)} operations (every phase of its convolutions and matrix products "
          "that translate); ntframe's native search mapped the other "
          f"{sum(1 for r in rows if r['search'] and r['search']['method'].startswith('native'))}")
    behind = [r for r in scheduled if "its better ones do not translate" in r["search"]["method"]]
    print(f"  {len(scheduled) - len(behind)} of them got nn-dataflow's own best schedule, {len(behind)} a lower-ranked "
          "one (the better ones do not translate or do not fit)")

    def total(label: str, key: str, subset: list[dict]) -> float:
        return sum(r["cells"][label][key] for r in subset)

    print()
    print(f"{'model':<14}{'cycles':>16}{'energy (mJ)':>14}{'DRAM (MB)':>12}{'cycles / nnd':>14}{'energy / nnd':>14}")
    base_c, base_e = total("nn-dataflow", "cycles", common), total("nn-dataflow", "energy_pJ", common)
    for label in models:
        c, e = total(label, "cycles", common), total(label, "energy_pJ", common)
        mb = total(label, "dram_bytes", common) / 1e6
        print(f"{label:<14}{c:>16,.0f}{e / 1e9:>14.3f}{mb:>12.1f}{c / base_c:>14.3f}{e / base_e:>14.3f}")
    print()
    levels: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in common:
        for label in models:
            for level, pj in r["cells"][label]["energy_by_level_pJ"].items():
                levels[level][label] += pj
    print("energy by level (mJ)")
    print(f"{'level':<24}" + "".join(f"{m:>14}" for m in models))
    for level in sorted(levels):
        print(f"{level:<24}" + "".join(f"{levels[level][m] / 1e9:>14.3f}" for m in models))
    print()
    print("per phase: energy (mJ) and cycles, ratio to nn-dataflow")
    for phase in ("forward", "backward_data", "backward_weight"):
        subset = [r for r in common if r["phase"] == phase]
        if not subset:
            continue
        base_e, base_c = total("nn-dataflow", "energy_pJ", subset), total("nn-dataflow", "cycles", subset)
        cells = ""
        for m in models:
            e, c = total(m, "energy_pJ", subset), total(m, "cycles", subset)
            cells += f"  {m} {e / 1e9:.3f} ({e / base_e:.2f}x) {c:.3g} ({c / base_c:.2f}x)"
        print(f"  {phase:<16} {len(subset):>2} ops{cells}")
    print(f"\nfiles: {folder / 'cmp'}")


if __name__ == "__main__":
    main()
