"""Time `ntframe run` on the shipped example and print the figures.

    .venv/bin/python bench/bench_run.py [SPEC]

Figures, all in this one process except the first (the in-process runs bypass the mapping cache):
  cli_wall_s            the README's `ntframe run` as a subprocess, cold cache (interpreter start included)
  resolve_s             spec + plugins + architecture
  run_s                 the whole pipeline (search, cost, memory) for every operation
  run_budget1_s         the same with one evaluation per operation: the rest of the pipeline (peer run)
  search_share          (run_s - run_budget1_s) / run_s: how much of a run is mapping search
  evaluations_per_s     native cost-model evaluations per second (nest analysis + pricing) on conv2.forward
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ntframe.host import PluginHost
from ntframe.runner import resolve, run
from ntframe.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "small-cnn.yaml"
    exe = shutil.which("ntframe", path=str(Path(sys.executable).parent)) or "ntframe"
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([exe, "run", str(spec_path), "-q", "-o", out], check=True, capture_output=True,
                       env={**os.environ, "NTFRAME_CACHE_DIR": os.path.join(out, "cache")})
        cli_wall = time.perf_counter() - t0

    t0 = time.perf_counter()
    host = PluginHost().load()
    loaded = load_spec(spec_path)
    loaded.spec.mapper.cache = False            # time the work, not the mapping cache
    resolved = resolve(loaded, host)
    resolve_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    doc = run(resolved)
    run_s = time.perf_counter() - t0
    n_ops = len(doc["operations"])
    evaluations = sum(o["search"]["evaluated"] for o in doc["operations"] if o["status"] == "ok")

    budget = loaded.spec.mapper.budget
    loaded.spec.mapper.budget = budget.model_copy(update={"evaluations": 1})
    t0 = time.perf_counter()
    run(resolved)
    run_budget1_s = time.perf_counter() - t0
    loaded.spec.mapper.budget = budget

    from ntframe.components import WorkloadRequest
    from ntframe.mapping.mapping import Mapping
    from ntframe.workload.ir import Phase
    from ntframe.workload.training import expand
    network = resolved.component("workload").load(WorkloadRequest(loaded.spec.workload.batch, loaded.dir))
    ops = {o.name: o for o in expand(network, [Phase.forward], resolved.architecture.precision_bits)}
    row = next(o for o in doc["operations"] if o["name"] == "conv2.forward")
    op, mapping = ops["conv2.forward"], Mapping.from_dict(row["mapping"])
    model = resolved.component("cost_model")
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        model.evaluate(op, mapping, resolved.architecture)
        n += 1
    eval_rate = n / (time.perf_counter() - t0)

    print(f"spec                  {spec_path}")
    print(f"operations            {n_ops} ({evaluations} cost-model evaluations in the search)")
    print(f"cli_wall_s            {cli_wall:.3f}")
    print(f"resolve_s             {resolve_s:.3f}")
    print(f"run_s                 {run_s:.3f}")
    print(f"run_budget1_s         {run_budget1_s:.3f}  (peer: 1 evaluation per operation)")
    print(f"search_share          {(run_s - run_budget1_s) / run_s:.1%}")
    print(f"evaluations_per_s     {eval_rate:,.0f}  (native cost model, conv2.forward)")
    print(f"totals                {doc['totals']['cycles']:,.0f} cycles, {doc['totals']['energy_pJ'] / 1e6:,.1f} uJ, "
          f"{doc['totals']['efficiency_GFLOPS_per_W']:.1f} GFLOPS/W")


if __name__ == "__main__":
    main()
