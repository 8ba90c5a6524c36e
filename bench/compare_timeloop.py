"""Compare ntframe's native cost model with Timeloop's timeloop-model on the same mappings.

    NTFRAME_TIMELOOP_BIN=/path/to/timeloop/bin .venv/bin/python bench/compare_timeloop.py [SPEC] [--ops a,b]

For each conv / matrix-product operation of the spec (default: examples/small-cnn.yaml, every such operation in
every phase), `ntframe export timeloop` writes the architecture, problem, mapping and energy table for the
mapping ntframe's mapper chose; timeloop-model evaluates it; the per-vault figures are compared: cycles,
total energy, and every level's per-instance reads / fills / updates per data space. ntframe is evaluated
without the logic-die network for the comparison (Timeloop models one vault), which is what ntframe.json's
"without_network" holds.
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

from ntframe.interop.timeloop import parse_stats

ROOT = Path(__file__).resolve().parent.parent


def timeloop_model() -> str:
    folder = os.environ.get("NTFRAME_TIMELOOP_BIN")
    exe = os.path.join(folder, "timeloop-model") if folder else shutil.which("timeloop-model")
    if not exe or not os.path.exists(exe):
        sys.exit("timeloop-model not found: set NTFRAME_TIMELOOP_BIN to the folder that holds it")
    return exe


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", nargs="?", default=str(ROOT / "examples" / "small-cnn.yaml"))
    parser.add_argument("--ops", help="comma-separated layer.phase list (default: every conv/matmul operation)")
    args = parser.parse_args()
    exe = timeloop_model()
    ntf = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"
    from ntframe.host import PluginHost
    from ntframe.runner import operations_of, resolve
    from ntframe.spec import load_spec
    resolved = resolve(load_spec(args.spec), PluginHost().load())
    _, ops = operations_of(resolved)
    wanted = args.ops.split(",") if args.ops else [o.name for o in ops if o.kind.value in ("conv", "matmul")]
    rows, worst_count = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            layer, phase = name.split(".")[:2]
            out = Path(tmp) / name
            subprocess.run([ntf, "export", "timeloop", args.spec, str(out), "--layer", layer, "--phase", phase],
                           check=True, capture_output=True)
            (out / "out").mkdir()
            done = subprocess.run([exe, "arch.yaml", "problem.yaml", "mapping.yaml", "ERT.yaml", "-o", "out"],
                                  cwd=out, capture_output=True, text=True, timeout=600)
            if done.returncode:
                print(f"{name}: timeloop-model failed: {done.stdout[-300:]} {done.stderr[-300:]}")
                continue
            tl = parse_stats((out / "out" / "timeloop-model.stats.txt").read_text())
            meta = json.loads((out / "ntframe.json").read_text())
            vaults = meta["vaults"]
            mine = meta["ntframe"]["without_network"]
            diffs = []
            for level in mine["levels"]:
                tl_level = tl["levels"].get(level["level"], {"dataspaces": {}})
                for space, counts in level["tensors"].items():
                    tl_space = tl_level["dataspaces"].get(space)
                    for key in ("reads", "fills", "updates"):
                        ours = counts[key] / level["instances"]
                        theirs = tl_space[key] if tl_space else 0.0
                        if max(ours, theirs) > 0:
                            diffs.append((abs(ours - theirs) / max(ours, theirs), f"{level['level']}.{space}.{key}",
                                          ours, theirs))
            worst = max(diffs) if diffs else (0.0, "-", 0, 0)
            worst_count = max(worst_count, worst[0])
            e_ours, e_tl = mine["energy_pJ"] / vaults, tl["energy_pJ"]
            rows.append((name, mine["cycles"], tl["cycles"], e_ours, e_tl, worst))
            sources = {lv.get("energy_source") for lv in tl["levels"].values() if "energy_source" in lv}
            if sources != {"ERT"}:
                print(f"{name}: WARNING Timeloop energy source {sources}, not the exported ERT")
    print(f"{'operation':<26} {'cycles ntf':>11} {'cycles TL':>11} {'energy ntf pJ':>14} {'energy TL pJ':>14} "
          f"{'d energy':>9}  worst access-count difference")
    for name, c1, c2, e1, e2, worst in rows:
        print(f"{name:<26} {c1:>11.0f} {c2:>11.0f} {e1:>14.1f} {e2:>14.1f} {(e1 - e2) / e2:>+9.2%}  "
              f"{worst[1]} {worst[2]:.0f} vs {worst[3]:.0f} ({worst[0]:.1%})")
    print(f"max per-level access-count difference: {worst_count:.2%}")


if __name__ == "__main__":
    main()
