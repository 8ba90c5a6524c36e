"""The ``native`` interconnect model: collectives among cubes as steps of point-to-point flows, each step priced on
the topology with link contention, by hand-checkable rules.

**Algorithms** (a collective among P members; N its ``bytes``, :mod:`ntframe.system.collectives`):

* ``ring`` (any P): all-reduce = reduce-scatter + all-gather, each P-1 steps in which every member sends N/P to the
  next in the ring order (:meth:`Topology.ring_order`); 2(P-1) steps in all.
* ``direct`` (any P): reduce-scatter and all-gather in one step each, every member sending N/P to every other;
  all-to-all one such step.
* ``halving_doubling`` (P a power of two): reduce-scatter in log2 P steps, members exchanging N/2, N/4, ... with
  the partner 2^k places away (recursive halving), all-gather the mirror (recursive doubling).
* ``send``: one flow.

``algorithm: best`` (default) prices every algorithm that applies and keeps the fastest (ties: the less energy,
then the order above); the result names it.

**A step's price**: every flow crosses the links of its route (:meth:`Topology.route`); a directed edge's load is
the wire bytes (data FLITs plus one FLIT of header and tail per packet, :meth:`Links.wire_bytes`) of the flows
crossing it, spread over the edge's parallel links; the step takes the longest route's latency (links x
``latency_ns``: cut-through, the data pipelined behind the head) plus the most loaded edge's load over one link's
bandwidth (the flows sharing it share its bandwidth). Steps follow one another. Energy: every wire bit pays
``energy_pJ_per_bit`` on every link it crosses. The reduction's arithmetic is not priced here (it is the cubes').
Not modelled: link-layer flow control and retries (no figures found), links' static power (charged by whoever keeps
the links up over the step's time), a step's flows finishing at different times.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

import ntframe
from ntframe.components import InterconnectModel
from ntframe.system import Collective, CollectiveCost, Flow, Topology

ALGORITHMS = ("ring", "direct", "halving_doubling")


class NativeInterconnectOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["best", "ring", "direct", "halving_doubling"] = "best"
    """The collective algorithm, or the fastest of those that apply (``best``)."""


def steps_of(request: Collective, topology: Topology, algorithm: str) -> list[list[Flow]] | None:
    """The flows of each step of ``request`` by ``algorithm`` (None where the algorithm does not apply)."""
    group, n = list(request.group), request.bytes
    p = len(group)
    if request.kind == "send":
        return [[Flow(group[0], group[1], n)]] if algorithm == "direct" else None
    if p == 1:
        return [] if algorithm == "direct" else None
    position = {cube: i for i, cube in enumerate(topology.ring_order())}
    ring = sorted(group, key=lambda c: position[c])
    if algorithm == "ring":
        one = [Flow(ring[i], ring[(i + 1) % p], n / p) for i in range(p)]
        count = {"all_reduce": 2 * (p - 1), "reduce_scatter": p - 1, "all_gather": p - 1}.get(request.kind)
        return None if count is None else [one] * count
    if algorithm == "direct":
        one = [Flow(a, b, n / p) for a in group for b in group if a != b]
        count = {"all_reduce": 2, "reduce_scatter": 1, "all_gather": 1, "all_to_all": 1}[request.kind]
        return [one] * count
    if algorithm == "halving_doubling":
        if p & (p - 1) or request.kind == "all_to_all":
            return None
        halving = [[Flow(group[i], group[i ^ (1 << k)], n / 2 ** (k + 1)) for i in range(p)]
                   for k in range(int(math.log2(p)))]
        doubling = halving[::-1]
        return {"all_reduce": halving + doubling, "reduce_scatter": halving, "all_gather": doubling}[request.kind]
    raise ValueError(f"algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")


def price(topology: Topology, steps: list[list[Flow]], algorithm: str) -> CollectiveCost:
    """Time and energy of ``steps`` on ``topology`` (module docstring)."""
    links = topology.links
    parallel = topology.edges()
    total_s, energy_pJ, per_edge = 0.0, 0.0, {}
    for flows in steps:
        load: dict[tuple[int, int], float] = {}
        longest = 0
        for f in flows:
            route = topology.route(f.src, f.dst)
            wire = links.wire_bytes(f.bytes)
            longest = max(longest, len(route))
            for edge in route:
                load[edge] = load.get(edge, 0.0) + wire
            energy_pJ += wire * 8 * links.energy_pJ_per_bit * len(route)
        busiest = max((b / parallel[e] for e, b in load.items()), default=0.0)
        total_s += longest * links.latency_ns * 1e-9 + busiest / (links.bandwidth_GBps * 1e9)
        for edge, b in load.items():
            per_edge[edge] = per_edge.get(edge, 0.0) + b
    return CollectiveCost(total_s, energy_pJ, algorithm, len(steps),
                          {f"{u}->{v}": b for (u, v), b in sorted(per_edge.items())})


class NativeInterconnect(InterconnectModel):
    name = "native"
    description = "collectives as steps of flows on the topology's routes, link contention included (analytical)"
    Options = NativeInterconnectOptions

    def collective(self, topology: Topology, request: Collective) -> CollectiveCost:
        outside = [c for c in request.group if not 0 <= c < topology.cubes]
        if outside:
            raise ValueError(f"{request.kind}: cubes {outside} are not in the {topology.cubes}-cube system")
        names = ["direct"] if request.kind == "send" else (
            ALGORITHMS if self.options.algorithm == "best" else [self.options.algorithm])
        priced = []
        for name in names:
            steps = steps_of(request, topology, name)
            if steps is not None:
                priced.append(price(topology, steps, name))
        if not priced:
            raise ValueError(f"{request.kind} among {len(request.group)} cubes: algorithm "
                             f"{self.options.algorithm!r} does not apply (halving_doubling needs a power of two)")
        return min(priced, key=lambda c: (c.time_s, c.energy_pJ))


@ntframe.hookimpl
def ntframe_register_interconnects(register):
    register(NativeInterconnect)
