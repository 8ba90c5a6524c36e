"""``native`` mapping searcher: the best mapping by the objective (``edp`` default, ``energy`` or ``delay``) over
tilings, loop orders, spatial splits and bypass, under the architecture's mapping constraints
(:func:`ntframe.mapping.search.search_operation`).

With a cost model that bounds whole structures (the native one), the bounded search
(:mod:`ntframe.mapping.bounded`): every spatial split and keep pattern bounded from below, mapped best bound
first, stopping when no structure left can beat the best mapping by more than 0.5 % or ``budget.evaluations``
are spent, started from a short sampling search with a fixed seed (the spec's seed changes nothing). With any
other cost model, the seeded sampling search (:func:`ntframe.mapping.search.search`): the same seed and
evaluation budget give the same mapping. Invalid
candidates (factorisation, fan-out, capacity, sequential dimensions, bypass) never reach the cost model and are
counted by reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import ntframe
from ntframe.components import Budget, CostModel, MappingSearcher
from ntframe.hardware import Architecture
from ntframe.mapping.search import Constraints, search_operation
from ntframe.results import SearchResult
from ntframe.workload import Operation


class NativeMapperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    objective: Literal["energy", "delay", "edp"] = "edp"
    """What to minimise: energy (pJ), delay (cycles) or their product."""
    spatial_probability: float = Field(0.6, ge=0, le=1)
    """Chance that a sampled loop factor is tried in a spatial slot first (the sampling search only)."""


class NativeMapper(MappingSearcher):
    name = "native"
    description = ("search over tilings, loop orders, spatial splits and bypass: bounded (best structure bound first, "
                   "the seed changes nothing) with a cost model that bounds structures, else seeded sampling")
    Options = NativeMapperOptions

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        return search_operation(operation, architecture, cost_model, budget, seed, self.options.objective,
                                Constraints(spatial_probability=self.options.spatial_probability), "native")


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(NativeMapper)
