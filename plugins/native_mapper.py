"""``native`` mapping searcher: a seeded, budgeted, vectorised search over tilings, loop orders, spatial
splits and bypass (:mod:`ntframe.mapping.search`), with no constraint beyond the architecture's.

The best mapping by the objective (``edp`` default, ``energy`` or ``delay``) among ``budget.evaluations``
candidates; invalid candidates (factorisation, fan-out, capacity, sequential dimensions, bypass) are
rejected before the cost model sees them and counted by reason. The same seed and evaluation budget give the
same mapping.
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
    """Chance that a sampled loop factor is tried in a spatial slot first."""


class NativeMapper(MappingSearcher):
    name = "native"
    description = "vectorised seeded search over tilings, loop orders, spatial splits and bypass"
    Options = NativeMapperOptions

    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        return search_operation(operation, architecture, cost_model, budget, seed, self.options.objective,
                                Constraints(spatial_probability=self.options.spatial_probability), "native")


@ntframe.hookimpl
def ntframe_register_mappers(register):
    register(NativeMapper)
