"""The sampled memory estimate (``hmc-analytic``'s defaults) against the whole trace simulated at once, printed.

    .venv/bin/python bench/bench_sampling.py [--census] [--only oracle|timing] [--batches 2,4,8]

1. oracle: every convolution and matrix product of the small-CNN example and of VGG-16 at the batches given
   (default 2, 4, 8; the native mapper at the default budget): the whole trace simulated at once by the bank
   model (the oracle) against the default estimate — energy and cycles error, whether the reported 95 %
   intervals cover the oracle, the share of requests simulated, and the time of each. Operations whose sample
   would cost as much as the trace are simulated whole (exact) and counted apart. ``--census`` adds, per sampled
   operation, every unit simulated with its warm-up and combined (the method's own error, no sampling).
2. timing: VGG-16 batch 64, all phases, `ntframe run` cold (empty cache, interpreter start included) at
   tolerances 0.05, 0.02 (the default) and 0.01, and again from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "ntframe")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--census", action="store_true")
    parser.add_argument("--only", choices=["oracle", "timing"])
    parser.add_argument("--batches", default="2,4,8")
    args = parser.parse_args()
    if args.only in (None, "oracle"):
        oracle([int(b) for b in args.batches.split(",")], args.census)
    if args.only in (None, "timing"):
        timing()


def layers(spec):
    import ntframe
    from ntframe.runner import map_operation, operations_of
    resolved = ntframe.validate(spec)
    seen = set()
    for op in operations_of(resolved)[1]:
        if op.shape_key() in seen or op.kind.value not in ("conv", "matmul"):
            continue
        seen.add(op.shape_key())
        mapping, cost, _ = map_operation(resolved, op)
        yield resolved, op, mapping, cost


def oracle(batches: list[int], census: bool) -> None:
    from ntframe.memory.hmc_bank import bank_params, simulate
    from ntframe.memory.sampling import _combine, _marginal, _records, _strata
    from ntframe.memory.trace import ADDRESS_MAPPINGS
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe_plugins.hmc_analytic import HMCAnalyticOptions
    options = HMCAnalyticOptions()
    print(f"1. sampled estimate vs the whole trace (defaults: tolerance {options.tolerance}, window "
          f"{options.window_requests:,} requests, {options.strata} strata, at most {options.max_requests:,})")
    specs = [("example", str(ROOT / "examples" / "small-cnn.yaml"))]
    specs += [(f"vgg16 b{b}", {"version": 1, "name": "vgg", "workload": {"frontend": "zoo", "network": "vgg16",
                                                                        "batch": b},
                               "architecture": {"spec": "neurotrainer/hmc2-32vault"}}) for b in batches]
    rows = []
    for label, spec in specs:
        for resolved, op, mapping, cost in layers(spec):
            params = bank_params(resolved.architecture.levels[0], {})

            def model(w, params=params):
                r = simulate(w["time"], w["vault"], w["bank"], w["row"], w["write"], 64, params, compiled=True)
                return {**r, "read_latency_sum": r["read_latency_avg"] * r["reads"]}

            gen = TraceGenerator(op, mapping, resolved.architecture, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local",
                                 cost.on_die_cycles)
            counts = gen.line_counts()
            t0 = time.perf_counter()
            est = options.estimate(gen, counts, model)
            t1 = time.perf_counter()
            whole = model(np.concatenate(list(gen.chunks())))
            t2 = time.perf_counter()
            err = {q: est.totals[q] / whole[q] - 1 if whole[q] else 0.0 for q in ("energy_pJ", "cycles")}
            covered = {q: abs(est.totals[q] - whole[q]) <= est.half_width[q] for q in err}
            line = (f"  {label:9s} {op.name:26s} {counts.requests:>11,} req  "
                    + ("whole trace" + " " * 34 if est.exact else
                       f"sim {est.share_simulated:6.1%}  E {err['energy_pJ']:+6.2%} ±{est.relative_half_width('energy_pJ'):5.2%}"
                       f"{'' if covered['energy_pJ'] else ' MISS'}  C {err['cycles']:+6.2%} "
                       f"±{est.relative_half_width('cycles'):5.2%}{'' if covered['cycles'] else ' MISS'}")
                    + f"  {t1 - t0:5.2f} s (whole {t2 - t1:5.2f} s)")
            if census and not est.exact:
                layers_, gaps = _strata(gen, counts, options.window_requests, options.strata)
                for s in layers_:
                    for i, u in enumerate(s.units):
                        s.chosen.append(i)
                        s.figures.append(_marginal(model, *_records(gen, u)))
                every = _combine(layers_, 0, counts.requests, gaps).totals
                line += "  census E {:+.3%} C {:+.3%}".format(*(every[q] / whole[q] - 1 for q in err))
            print(line, flush=True)
            rows.append((est.exact, err["energy_pJ"], err["cycles"], covered["energy_pJ"], covered["cycles"],
                         t1 - t0, t2 - t1))
    sampled = [r for r in rows if not r[0]]
    if sampled:
        a = np.array(sampled, dtype=float)
        print(f"  {len(rows)} operations, {len(sampled)} sampled: worst error energy {np.abs(a[:, 1]).max():.2%}, "
              f"cycles {np.abs(a[:, 2]).max():.2%}; within 2 %: {np.mean(np.abs(a[:, 1:3]) <= 0.02):.0%}; "
              f"intervals covering the oracle: energy {a[:, 3].mean():.0%}, cycles {a[:, 4].mean():.0%}; "
              f"time {a[:, 5].sum():.1f} s sampled vs {a[:, 6].sum():.1f} s whole")


def timing() -> None:
    print("2. VGG-16 batch 64, all phases, `ntframe run` (2 workers), cold and cached")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for tolerance in (0.05, 0.02, 0.01):
            spec = tmp / f"vgg-{tolerance}.yaml"
            spec.write_text("version: 1\nname: vgg\nworkload: {frontend: zoo, network: vgg16, batch: 64}\n"
                            "architecture: {spec: neurotrainer/hmc2-32vault}\n"
                            f"memory: {{backend: hmc-analytic, tolerance: {tolerance}}}\n")
            times = []
            for run in ("cold", "cached"):
                t0 = time.perf_counter()
                subprocess.run([EXE, "run", str(spec), "-q", "-o", str(tmp / f"out-{tolerance}-{run}")], check=True,
                               capture_output=True, env={**os.environ, "NTFRAME_CACHE_DIR": str(tmp / f"c{tolerance}")})
                times.append(time.perf_counter() - t0)
            doc = json.loads((tmp / f"out-{tolerance}-cold" / "results.json").read_text())
            details = [o["memory"]["details"] for o in doc["operations"] if o.get("memory")]
            sampled = [d for d in details if not d.get("whole_trace", True)]
            print(f"  tolerance {tolerance:4.2f}: cold {times[0]:6.2f} s, cached {times[1]:5.2f} s; "
                  f"{len(sampled)} of {len(details)} operations sampled, "
                  f"{sum(d['simulated_requests'] for d in details):,} of {sum(d['requests'] for d in details):,} "
                  f"requests simulated; {sum(not d['converged'] for d in details)} not converged; "
                  f"memory energy {sum(o['memory']['energy_pJ'] for o in doc['operations'] if o.get('memory')) / 1e9:.2f} mJ")


if __name__ == "__main__":
    main()
