"""The native interconnect model against ASTRA-sim 2.0's analytical backends, through the ``astra-sim`` plugin, on
HMC links (16 lanes x 15 Gb/s, 4.6 ns a hop, 128-byte packets): ring and fully connected systems, every collective
both describe, gradient-sized messages (1 and 64 MiB).

    NTFRAME_ASTRASIM=/path/to/astra-sim/build/astra_analytical/build/bin .venv/bin/python bench/astrasim_compare.py

Prints a markdown table (docs/compare.md, "Interconnect models").
"""

from __future__ import annotations

MiB = 2 ** 20


def main() -> None:
    from ntframe.system import Collective, Links, Topology
    from ntframe_plugins.astrasim_interconnect import AstraSim, AstraSimOptions
    from ntframe_plugins.interconnect_native import NativeInterconnect, NativeInterconnectOptions
    topologies = [Topology("ring", 4), Topology("ring", 8), Topology("ring", 16),
                  Topology("fully_connected", 4, Links(per_cube=3)), Topology("fully_connected", 5)]
    print("| backend | topology | cubes | collective | MiB | ASTRA-sim µs | native µs | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in ("congestion_aware", "congestion_unaware"):
        model = AstraSim(AstraSimOptions(backend=backend))
        for topology in topologies:
            for kind in ("all_reduce", "reduce_scatter", "all_gather", "all_to_all"):
                for size in (1, 64):
                    request = Collective(kind, size * MiB, tuple(range(topology.cubes)))
                    try:
                        theirs = model.collective(topology, request)
                    except ValueError:              # not translated (an all-to-all on a ring)
                        continue
                    ours = NativeInterconnect(NativeInterconnectOptions(algorithm=theirs.algorithm)).collective(
                        topology, request)
                    print(f"| {backend} | {topology.kind} | {topology.cubes} | {kind} | {size} | "
                          f"{theirs.time_s * 1e6:,.2f} | {ours.time_s * 1e6:,.2f} | {theirs.time_s / ours.time_s:.4f} |",
                          flush=True)


if __name__ == "__main__":
    main()
