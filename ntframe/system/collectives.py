"""What an interconnect model is asked (a :class:`Collective` among a group of cubes) and what it answers
(:class:`CollectiveCost`).

Sizes follow the usual convention (NCCL's, ASTRA-sim's): ``bytes`` is what each member holds — the buffer
all-reduced, the whole buffer a reduce-scatter leaves a 1/P share of on each member and an all-gather assembles on
each, the total each member sends in an all-to-all (a 1/P share to each member) — and, for ``send``, what the
group's first member sends to its second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

COLLECTIVES = ("all_reduce", "reduce_scatter", "all_gather", "all_to_all", "send")


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
