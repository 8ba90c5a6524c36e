"""Time building and expanding every zoo network (all phases, Adam) and print the figures.

    .venv/bin/python bench/bench_expansion.py [--batch 64] [--repeat 5]

For each network: the best-of-N wall time to build the layer graph (the peer figure), to expand it into the
operations of one training step, the number of operations, and expansion time per operation.
"""

from __future__ import annotations

import argparse
import time

from ntframe.workload.ir import PHASES, Phase
from ntframe.workload.training import expand


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from ntframe_plugins.zoo import ZOO
    bits = {Phase.forward: 16, Phase.backward_data: 32, Phase.backward_weight: 32, Phase.update: 32}
    print(f"{'network':<12} {'layers':>6} {'ops':>6} {'build_ms':>9} {'expand_ms':>10} {'us_per_op':>10} "
          f"{'expand/build':>12}")
    for name, (model, build, _) in ZOO.items():
        build_s, net = best(lambda: build(model()).build(args.batch), args.repeat)
        expand_s, ops = best(lambda: expand(net, PHASES, bits, "adam"), args.repeat)
        print(f"{name:<12} {len(net.layers):>6} {len(ops):>6} {build_s * 1e3:>9.2f} {expand_s * 1e3:>10.2f} "
              f"{expand_s / len(ops) * 1e6:>10.1f} {expand_s / build_s:>12.1f}")


if __name__ == "__main__":
    main()
