"""Mappings: how an operation's loops are split over the storage levels (temporal) and the fan-outs (spatial).

Like a Timeloop mapping: for each storage level, outermost first, an ordered list of temporal loops
``(dimension, factor)`` (outermost loop first) executed at that level, and the spatial loops that split the
work across the instances of that level under one parent. ``compute_spatial`` splits across the compute units
under one instance of the innermost storage level. For every dimension the product of all its factors equals
its bound (perfect factorisation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ntframe.hardware.architecture import Architecture
from ntframe.workload.ir import Operation

Factors = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LevelMapping:
    level: str
    temporal: Factors           # ordered, outermost loop first; factor-1 loops omitted
    spatial: Factors = ()       # split across this level's instances under one parent
    bypass: tuple[str, ...] = ()    # tensors (data-space names) not kept at this level

    def temporal_factor(self, dim: str) -> int:
        return math.prod(f for d, f in self.temporal if d == dim)

    def spatial_factor(self, dim: str) -> int:
        return math.prod(f for d, f in self.spatial if d == dim)


@dataclass(frozen=True)
class Mapping:
    levels: tuple[LevelMapping, ...]
    compute_spatial: Factors = ()

    def spatial_rows(self) -> list[Factors]:
        """Spatial factors into each storage level, then into the compute units (len(levels) + 1 rows)."""
        return [lvl.spatial for lvl in self.levels] + [self.compute_spatial]

    def to_dict(self) -> dict:
        return {"levels": [{"level": lvl.level, "temporal": [[d, f] for d, f in lvl.temporal],
                            "spatial": [[d, f] for d, f in lvl.spatial], "bypass": list(lvl.bypass)}
                           for lvl in self.levels],
                "compute_spatial": [[d, f] for d, f in self.compute_spatial]}

    @classmethod
    def from_dict(cls, data: dict) -> "Mapping":
        return cls(tuple(LevelMapping(lv["level"], tuple((d, int(f)) for d, f in lv["temporal"]),
                                      tuple((d, int(f)) for d, f in lv["spatial"]), tuple(lv.get("bypass", ())))
                         for lv in data["levels"]),
                   tuple((d, int(f)) for d, f in data["compute_spatial"]))

def structural_problems(op: Operation, mapping: Mapping, arch: Architecture) -> list[str]:
    """Reasons the mapping does not fit the operation or the architecture's levels and fan-outs
    (capacities are checked by :func:`ntframe.mapping.nest.capacity_problems`)."""
    problems: list[str] = []
    if [lvl.level for lvl in mapping.levels] != [lvl.name for lvl in arch.levels]:
        problems.append(f"levels {[lvl.level for lvl in mapping.levels]} do not match the architecture's "
                        f"{[lvl.name for lvl in arch.levels]}")
        return problems
    bounds = op.bounds
    for lvl in mapping.levels:
        for d, f in lvl.temporal + lvl.spatial:
            if d not in bounds:
                problems.append(f"{lvl.level}: unknown dimension '{d}'")
            if f < 1:
                problems.append(f"{lvl.level}: factor {f} for '{d}' is not positive")
    for d, f in mapping.compute_spatial:
        if d not in bounds:
            problems.append(f"compute: unknown dimension '{d}'")
    names = {t.name for t in op.tensors}
    for i, lvl in enumerate(mapping.levels):
        for name in lvl.bypass:
            if name not in names:
                problems.append(f"{lvl.level}: bypass names unknown tensor '{name}' (tensors: {sorted(names)})")
            elif i == 0:
                problems.append(f"bypass: the outermost level {lvl.level} holds every tensor; it cannot bypass "
                                f"'{name}'")
    if problems:
        return problems
    for d, bound in bounds.items():
        product = math.prod(lvl.temporal_factor(d) * lvl.spatial_factor(d) for lvl in mapping.levels)
        product *= math.prod(f for dd, f in mapping.compute_spatial if dd == d)
        if product != bound:
            problems.append(f"factors of {d} multiply to {product}, not its bound {bound}")
    for d in op.sequential:
        spatial = [lvl.level for lvl in mapping.levels if lvl.spatial_factor(d) > 1]
        spatial += ["compute"] if any(dd == d and f > 1 for dd, f in mapping.compute_spatial) else []
        inner = [lvl.level for lvl in mapping.levels[1:] if lvl.temporal_factor(d) > 1]
        if spatial or inner:
            problems.append(f"sequential: '{d}' (a dependence between iterations) must stay a temporal loop at "
                            f"{mapping.levels[0].level}, found at {', '.join(spatial + inner)}")
    top = [d for d, f in mapping.levels[0].temporal if f > 1]
    seq = [d for d in op.sequential if bounds[d] > 1]
    if top[: len(seq)] != seq:
        problems.append(f"sequential: {', '.join(seq)} must be the outermost loops of {mapping.levels[0].level}")
    for row, fanout, name in zip(mapping.spatial_rows(), arch.fanouts,
                                 [lvl.name for lvl in arch.levels] + [arch.compute.name]):
        used = math.prod(f for _, f in row)
        if used > fanout:
            problems.append(f"fan-out: {name} has {fanout} instances per parent, the mapping uses {used}")
    return problems
