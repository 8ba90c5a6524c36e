"""What an interconnect model is asked (a :class:`Collective` among a group of cubes), what it answers
(:class:`CollectiveCost`), and what each collective algorithm sends (:func:`algorithm_steps`) and so moves over the
links (:func:`wire_traffic`) — the traffic, and so the energy, whatever model prices the time.

Sizes follow the usual convention (NCCL's, ASTRA-sim's): ``bytes`` is what each member holds — the buffer
all-reduced, the whole buffer a reduce-scatter leaves a 1/P share of on each member and an all-gather assembles on
each, the total each member sends in an all-to-all (a 1/P share to each member) — and, for ``send``, what the
group's first member sends to its second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ntframe.system.topology import Topology

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send")
ALGORITHMS = ("ring", "direct", "halving_doubling")


@dataclass(frozen=True)
class Collective:
    kind: str
    bytes: float
    group: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in COLLECTIVES:
            raise ValueError(f"collective {self.kind!r}: one of {', '.join(COLLECTIVES)}")
        if not (math.isfinite(self.bytes) and self.bytes >= 0):
            raise ValueError(f"{self.kind}: bytes must be a finite number, 0 or more, not {self.bytes}")
        if len(set(self.group)) != len(self.group) or not self.group:
            raise ValueError(f"{self.kind}: the group must name distinct cubes, not {self.group}")
        if self.kind == "send" and len(self.group) != 2:
            raise ValueError(f"send: the group is (source, destination), not {self.group}")


@dataclass(frozen=True)
class Flow:
    """``bytes`` of data from cube ``src`` to cube ``dst`` within one step of an algorithm."""

    src: int
    dst: int
    bytes: float


@dataclass(frozen=True)
class CollectiveCost:
    time_s: float
    energy_pJ: float
    algorithm: str
    steps: int
    link_bytes: dict[str, float]    # bytes on the wire per directed edge "u->v", all steps
    notes: tuple[str, ...] = ()


def algorithm_steps(request: Collective, topology: "Topology", algorithm: str) -> list[list[Flow]] | None:
    """The flows of each step of ``request`` by ``algorithm`` (None where the algorithm does not apply; a
    ``send`` is one flow, by ``direct``):

    * ``ring`` (any P): reduce-scatter and all-gather P-1 steps each, every member sending N/P to the next in the
      topology's ring order (:meth:`Topology.ring_order`); all-reduce both, 2(P-1) steps;
    * ``direct`` (any P): reduce-scatter, all-gather and all-to-all one step each, every member sending N/P to every
      other; all-reduce two;
    * ``halving_doubling`` (P a power of two): reduce-scatter in log2 P steps exchanging N/2, N/4, ... with the
      partner 2^k places away (recursive halving), all-gather the mirror (recursive doubling)."""
    group, n = list(request.group), request.bytes
    p = len(group)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")
    if request.kind == "send":
        return [[Flow(group[0], group[1], n)]] if algorithm == "direct" else None
    if p == 1:
        return [] if algorithm == "direct" else None
    if algorithm == "ring":
        position = {cube: i for i, cube in enumerate(topology.ring_order())}
        ring = sorted(group, key=lambda c: position[c])
        one = [Flow(ring[i], ring[(i + 1) % p], n / p) for i in range(p)]
        count = {"all_reduce": 2 * (p - 1), "reduce_scatter": p - 1, "all_gather": p - 1}.get(request.kind)
        return None if count is None else [one] * count
    if algorithm == "direct":
        one = [Flow(a, b, n / p) for a in group for b in group if a != b]
        return [one] * {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1, "all_to_all": 1}[request.kind]
    if p & (p - 1) or request.kind == "all_to_all":
        return None
    halving = [[Flow(group[i], group[i ^ (1 << k)], n / 2 ** (k + 1)) for i in range(p)]
               for k in range(int(math.log2(p)))]
    return {"all_reduce": halving + halving[::-1], "reduce_scatter": halving, "all_gather": halving[::-1]}[request.kind]


def step_traffic(topology: "Topology", flows: list[Flow]) -> tuple[dict[tuple[int, int], float], int, float]:
    """One step's (bytes on the wire per directed edge, the longest route in links, energy in pJ): every flow's wire
    bytes (data FLITs and the packets' header and tail, :meth:`Links.wire_bytes`) on every link of its route, each
    bit at the links' ``energy_pJ_per_bit``."""
    links = topology.links
    load: dict[tuple[int, int], float] = {}
    longest, energy_pJ = 0, 0.0
    for f in flows:
        route = topology.route(f.src, f.dst)
        wire = links.wire_bytes(f.bytes)
        longest = max(longest, len(route))
        energy_pJ += wire * 8 * links.energy_pJ_per_bit * len(route)
        for edge in route:
            load[edge] = load.get(edge, 0.0) + wire
    return load, longest, energy_pJ


def wire_traffic(topology: "Topology", steps: list[list[Flow]]) -> tuple[float, dict[str, float]]:
    """(energy in pJ, bytes on the wire per directed edge ``"u->v"``) of ``steps``: :func:`step_traffic` summed."""
    energy_pJ, per_edge = 0.0, {}
    for flows in steps:
        load, _, energy = step_traffic(topology, flows)
        energy_pJ += energy
        for edge, b in load.items():
            per_edge[edge] = per_edge.get(edge, 0.0) + b
    return energy_pJ, {f"{u}->{v}": b for (u, v), b in sorted(per_edge.items())}
