"""The ``native`` interconnect model: collectives among cubes as steps of point-to-point flows, each step priced on
the topology with link contention, by hand-checkable rules.

**Algorithms**: ``ring``, ``direct`` and ``halving_doubling`` as :func:`ntframe.system.algorithm_steps` sends
them (a collective among P members; N its ``bytes``: ring all-reduce 2(P-1) steps of N/P to the next member,
direct every member to every other at once, halving-doubling log2 P steps of N/2, N/4, ... and the mirror);
``send`` one flow.

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

from typing import Literal

from pydantic import BaseModel, ConfigDict

import ntframe
from ntframe.components import InterconnectModel
from ntframe.system import ALGORITHMS, Collective, CollectiveCost, Flow, Topology, algorithm_steps, step_traffic


class NativeInterconnectOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: Literal["best", "ring", "direct", "halving_doubling"] = "best"
    """The collective algorithm, or the fastest of those that apply (``best``)."""


def price(topology: Topology, steps: list[list[Flow]], algorithm: str) -> CollectiveCost:
    """Time and energy of ``steps`` on ``topology`` (module docstring)."""
    links, parallel = topology.links, topology.edges()
    total_s, energy_pJ, per_edge = 0.0, 0.0, {}
    for flows in steps:
        load, longest, energy = step_traffic(topology, flows)
        busiest = max((b / parallel[e] for e, b in load.items()), default=0.0)
        total_s += longest * links.latency_ns * 1e-9 + busiest / (links.bandwidth_GBps * 1e9)
        energy_pJ += energy
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
            steps = algorithm_steps(request, topology, name)
            if steps is not None:
                priced.append(price(topology, steps, name))
        if not priced:
            raise ValueError(f"{request.kind} among {len(request.group)} cubes: algorithm "
                             f"{self.options.algorithm!r} does not apply (halving_doubling needs a power of two)")
        return min(priced, key=lambda c: (c.time_s, c.energy_pJ))


@ntframe.hookimpl
def ntframe_register_interconnects(register):
    register(NativeInterconnect)
