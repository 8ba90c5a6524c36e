"""``native`` mapping searcher: seeded random sampling of tilings, loop orders and spatial splits.

Each candidate assigns every prime factor of every loop bound to a slot — a temporal loop at one storage
level, or a spatial split into a level (or into the compute units) whose fan-out still has room — then orders
each level's loops at random. A candidate whose tiles overflow a level is repaired by moving factors outwards
(innermost overflowing level first). Candidate 0 keeps all loops at the outermost level (always fits), so a
valid mapping always exists. Every candidate is checked (:func:`ntframe.mapping.structural_problems`,
:func:`ntframe.nest.capacity_problems`) before the cost model sees it; the reasons for rejections are counted.

The result depends only on the operation, the architecture, the seed and ``budget.evaluations``; the
``budget.seconds`` cap exists for safety and, when it cuts a search short, the result says so.
"""

from __future__ import annotations

import random
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import ntframe
from ntframe.arch import Architecture
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.ir import Operation
from ntframe.mapping import LevelMapping, Mapping, structural_problems
from ntframe.nest import capacity_problems, tile_bytes
from ntframe.results import ComputeCost, SearchResult


class NativeMapperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["energy", "delay", "edp"] = "edp"
    """What to minimise: energy (pJ), delay (cycles) or their product."""
    spatial_probability: float = Field(0.6, ge=0, le=1)
    """Chance that a prime factor is tried in a spatial slot before a temporal one."""


def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def score(cost: ComputeCost, objective: str) -> float:
    if objective == "energy":
        return cost.energy_pJ
    if objective == "delay":
        return cost.cycles
    return cost.energy_pJ * cost.cycles


class NativeMapper(MappingSearcher):
    name = "native"
    description = "seeded random sampling of tilings, loop orders and spatial splits, with capacity repair"
    Options = NativeMapperOptions

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        rng = random.Random(f"{seed}:{operation.shape_key()}")
        objective = self.options.objective
        start = time.monotonic()
        seen: set = set()
        best: tuple[float, Mapping, ComputeCost] | None = None
        evaluated = valid = 0
        reasons: dict[str, int] = {}
        truncated = False
        attempts = 0
        while evaluated < budget.evaluations and attempts < 4 * budget.evaluations:
            attempts += 1
            if time.monotonic() - start > budget.seconds:
                truncated = True
                break
            mapping = self._outermost(operation, architecture) if attempts == 1 else \
                self._sample(operation, architecture, rng)
            key = (mapping.levels, mapping.compute_spatial)
            if key in seen:
                continue
            seen.add(key)
            evaluated += 1
            problems = structural_problems(operation, mapping, architecture) or \
                capacity_problems(operation, mapping, architecture)
            if problems:
                for p in problems:
                    kind = p.split(":")[0]
                    reasons[kind] = reasons.get(kind, 0) + 1
                continue
            valid += 1
            cost = cost_model.evaluate(operation, mapping, architecture)
            value = score(cost, objective)
            if best is None or value < best[0]:
                best = (value, mapping, cost)
        if best is None:
            raise RuntimeError(f"no valid mapping among {evaluated} candidates: {reasons}")
        return SearchResult(best[1], best[2], evaluated, valid, reasons, truncated, objective)

    @staticmethod
    def _outermost(op: Operation, arch: Architecture) -> Mapping:
        levels = [LevelMapping(lvl.name, ()) for lvl in arch.levels]
        order = [d for d in op.sequential] + [d for d, _ in op.dims if d not in op.sequential]
        levels[0] = LevelMapping(arch.levels[0].name, tuple((d, op.bounds[d]) for d in order if op.bounds[d] > 1))
        return Mapping(tuple(levels))

    def _sample(self, op: Operation, arch: Architecture, rng: random.Random) -> Mapping:
        k = len(arch.levels)
        fanouts = arch.fanouts
        temporal = [dict.fromkeys(op.bounds, 1) for _ in range(k)]
        spatial = [dict.fromkeys(op.bounds, 1) for _ in range(k + 1)]
        used = [1] * (k + 1)
        primes = [(d, p) for d, b in op.dims if d not in op.sequential for p in prime_factors(b)]
        rng.shuffle(primes)
        for d in op.sequential:                  # dependences: temporal, outermost, at the top level
            temporal[0][d] = op.bounds[d]
        for d, p in primes:
            rows = [r for r in range(k + 1) if used[r] * p <= fanouts[r]]
            if rows and rng.random() < self.options.spatial_probability:
                r = rng.choice(rows)
                spatial[r][d] *= p
                used[r] *= p
            else:
                temporal[rng.randrange(k)][d] *= p
        self._repair(op, arch, temporal, spatial, rng)
        levels = []
        for lvl in range(k):
            dims = [d for d, f in temporal[lvl].items() if f > 1 and d not in op.sequential]
            rng.shuffle(dims)
            if lvl == 0:
                dims = [d for d in op.sequential if temporal[0][d] > 1] + dims
            levels.append(LevelMapping(arch.levels[lvl].name, tuple((d, temporal[lvl][d]) for d in dims),
                                       tuple((d, f) for d, f in spatial[lvl].items() if f > 1)))
        return Mapping(tuple(levels), tuple((d, f) for d, f in spatial[k].items() if f > 1))

    @staticmethod
    def _repair(op: Operation, arch: Architecture, temporal: list[dict[str, int]],
                spatial: list[dict[str, int]], rng: random.Random) -> None:
        """Move prime factors outwards until every level's tiles fit (bounded)."""
        k = len(arch.levels)
        for lvl in range(k - 1, 0, -1):
            capacity = arch.levels[lvl].capacity_bytes
            if capacity is None:
                continue
            for _ in range(64):
                m = Mapping(tuple(LevelMapping(arch.levels[i].name, tuple((d, f) for d, f in temporal[i].items()
                                                                          if f > 1),
                                               tuple((d, f) for d, f in spatial[i].items() if f > 1))
                                  for i in range(k)),
                            tuple((d, f) for d, f in spatial[k].items() if f > 1))
                if tile_bytes(op, m)[lvl] <= capacity:
                    break
                movable = [(i, d) for i in range(lvl, k) for d, f in temporal[i].items()
                           if f > 1 and d not in op.sequential]
                if movable:
                    i, d = rng.choice(movable)
                    p = prime_factors(temporal[i][d])[0]
                    temporal[i][d] //= p
                    temporal[lvl - 1][d] *= p
                    continue
                movable = [(i, d) for i in range(lvl + 1, k + 1) for d, f in spatial[i].items() if f > 1]
                if not movable:
                    break
                i, d = rng.choice(movable)
                p = prime_factors(spatial[i][d])[0]
                spatial[i][d] //= p
                temporal[lvl - 1][d] *= p


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(NativeMapper)


__all__ = ["NativeMapper", "prime_factors"]
