"""Memory-side figures, printed.

    .venv/bin/python bench/bench_memory.py          # NTFRAME_RAMULATOR / NTFRAME_DRAMSIM3 add the live columns

1. Trace generation rate (requests/s) and the largest chunk held in memory, on VGG-16 (batch 16) layers.
2. The bank-level model against Ramulator 1 (hmc branch, HMC-config.cfg) on 1,000,000-request streams
   (sequential, random) and on convolution-layer traces (the small CNN's, vault-local and interleaved):
   bandwidth, average read latency, row-hit rate, wall time (best of 3) with the compiled streaming pass (numba,
   the `fast` extra) and with the vectorised numpy model alone (their figures must agree), which pass answered,
   and the speed ratios against Ramulator run in this same script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ntframe.memory import hmc_bank
from ntframe.memory.hmc_bank import HMCParams, simulate
from ntframe.memory.trace import ADDRESS_MAPPINGS, TraceWriter, records

ROOT = Path(__file__).resolve().parent.parent
M = ADDRESS_MAPPINGS["RoCoBaVa"]


def resolved(spec_text: str, tmp: Path):
    from ntframe.host import PluginHost
    from ntframe.runner import resolve
    from ntframe.spec import load_spec
    path = tmp / "spec.yaml"
    path.write_text(spec_text)
    return resolve(load_spec(path), PluginHost().load())


def generation_rate(tmp: Path) -> None:
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.runner import map_operation, operations_of
    r = resolved("version: 1\nname: v\nworkload: {frontend: zoo, network: vgg16, batch: 16}\n"
                 "architecture: {spec: neurotrainer/hmc2-32vault}\nmapper: {budget: {evaluations: 300}}\n", tmp)
    _, ops = operations_of(r)
    print("trace generation (VGG-16, batch 16)")
    for name in ("conv1_2.forward", "conv3_1.backward_weight", "fc6.forward"):
        op = next(o for o in ops if o.name == name)
        mapping, cost, _ = map_operation(r, op)
        for layout in ("vault-local", "interleaved"):
            gen = TraceGenerator(op, mapping, r.architecture, M, layout, cost.on_die_cycles)
            t0, n, biggest = time.perf_counter(), 0, 0
            for chunk in gen.chunks(max_records=1 << 20):
                n += len(chunk)
                biggest = max(biggest, chunk.nbytes)
                if n > 20_000_000:
                    break
            dt = time.perf_counter() - t0
            print(f"  {name:26s} {layout:12s} {n:>11,} requests  {n / dt / 1e6:6.1f} M requests/s  "
                  f"largest chunk {biggest / 2**20:6.1f} MiB")


def ramulator_run(exe: str, recs: np.ndarray, folder: Path) -> tuple[dict, float]:
    from ntframe_plugins.dram_simulators import RamulatorOptions, parse_ramulator_stats, ramulator_config
    with TraceWriter(folder / "t.txt", "ramulator") as w:
        w.write(recs)
    (folder / "c.cfg").write_text(ramulator_config(RamulatorOptions()))
    t0 = time.perf_counter()
    subprocess.run([exe, "--config", "c.cfg", "--mode=dram", "--stats", "o.stats", "--trace", "t.txt"], cwd=folder,
                   check=True, capture_output=True)
    return parse_ramulator_stats((folder / "o.stats").read_text()), time.perf_counter() - t0


def against_ramulator(tmp: Path) -> None:
    exe = os.environ.get("NTFRAME_RAMULATOR") or shutil.which("ramulator")
    rng = np.random.default_rng(0)
    n = 1_000_000
    streams = {"sequential 1M": np.arange(n, dtype=np.uint64) * np.uint64(64),
               "random 1M": rng.integers(0, 1 << 26, n).astype(np.uint64) * np.uint64(64)}
    cases = {k: records(np.arange(n, dtype=np.uint64), a, np.zeros(n, np.uint8), M) for k, a in streams.items()}
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.runner import map_operation, operations_of
    r = resolved((ROOT / "examples" / "small-cnn.yaml").read_text(), tmp)
    _, ops = operations_of(r)
    for name in ("conv2.forward", "conv3.backward_weight", "relu1.backward_data"):
        op = next(o for o in ops if o.name == name)
        mapping, cost, _ = map_operation(r, op)
        for layout in ("vault-local", "interleaved"):
            gen = TraceGenerator(op, mapping, r.architecture, M, layout, cost.on_die_cycles)
            recs = np.concatenate(list(gen.chunks()))[:200_000]
            recs["time"] = np.arange(len(recs))          # Ramulator's DRAM mode: one request per cycle
            cases[f"{name} {layout}"] = recs
    print("\nbank-level model vs Ramulator 1 (hmc branch, HMC-config.cfg; one request per memory cycle)")
    t0 = time.perf_counter()
    kern = hmc_bank._kernels()
    if kern is None:
        print("  (numba not installed or NTFRAME_JIT=0: the vectorised model only; pip install 'ntframe[fast]')")
    else:
        recs = next(iter(cases.values()))[:1000]
        hmc_bank._stream(kern, recs["time"].astype(float), recs["vault"], recs["bank"], recs["row"], recs["write"],
                         64, HMCParams(front_end="single"), None)
        print(f"  compiled pass ready in {time.perf_counter() - t0:.2f} s (numba imported; the pass compiled, or "
              f"loaded from numba's cache); used from {hmc_bank.STREAM_MIN_REQUESTS:,} requests")
    ramulator_head = "  | Ramulator GB/s  lat cyc  hits      s  | d bw    d lat   speed  numpy"
    print(f"  {'trace':36s} {'requests':>9} {'model GB/s':>10} {'lat cyc':>8} {'hits':>5} {'s':>6} {'pass':>10} "
          f"{'numpy s':>7}" + (ramulator_head if exe else ""))
    for name, recs in cases.items():
        m, dt, answered = timed(recs, kern)
        m_np, dt_np, _ = timed(recs, None)
        assert m_np == m, name                             # the compiled pass and the vectorised model agree
        line = (f"  {name:36s} {len(recs):>9,} {m['bandwidth_GBps']:>10.2f} {m['read_latency_avg']:>8.1f} "
                f"{m['row_hits'] / len(recs):>5.2f} {dt:>6.3f} {answered:>10} {dt_np:>7.3f}")
        if exe:
            with tempfile.TemporaryDirectory() as d:
                s, rt = ramulator_run(exe, recs, Path(d))
            bw = (s["read_bandwidth"] + s["write_bandwidth"]) / 1e9
            hits = s["row_hits"] / len(recs)
            line += (f"  | {bw:>14.2f} {s['read_latency_avg']:>8.1f} {hits:>5.2f} {rt:>6.2f}  | "
                     f"{m['bandwidth_GBps'] / bw - 1:+6.1%} {m['read_latency_avg'] / s['read_latency_avg'] - 1:+7.1%} "
                     f"{rt / dt:6.0f}x {rt / dt_np:5.0f}x")
        print(line, flush=True)


def model(recs):
    return simulate(recs["time"].astype(float), recs["vault"], recs["bank"], recs["row"], recs["write"], 64,
                    HMCParams(front_end="single"))            # Ramulator's driver: one stream for the cube


def timed(recs, kern, repeats: int = 3):
    """The model's figures, its best wall time of ``repeats``, and which pass answered: ``streaming`` (the
    compiled pass), ``vectorised`` after it declined, ``short`` (below hmc_bank.STREAM_MIN_REQUESTS the
    vectorised model answers alone), or ``numpy`` (``kern`` None: the vectorised model alone)."""
    saved = hmc_bank._kernels
    hmc_bank._kernels = lambda: kern
    try:
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            m = model(recs)
            best = min(best, time.perf_counter() - t0)
    finally:
        hmc_bank._kernels = saved
    if kern is None:
        return m, best, "numpy"
    if len(recs) < hmc_bank.STREAM_MIN_REQUESTS:
        return m, best, "short"                         # the vectorised model alone (cheaper than the pass)
    streamed = hmc_bank._stream(kern, recs["time"].astype(float), recs["vault"], recs["bank"], recs["row"],
                                recs["write"], 64, HMCParams(front_end="single"), None)
    return m, best, "streaming" if streamed is not None else "vectorised"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("NTFRAME_CACHE_DIR", str(Path(tmp) / "cache"))
        generation_rate(Path(tmp))
        against_ramulator(Path(tmp))


if __name__ == "__main__":
    main()
