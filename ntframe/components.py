"""The six component families a plugin can register, as abstract base classes.

A component class has a ``name`` (what a spec selects), a ``description``, and an ``Options`` pydantic model
(``extra="forbid"``) for the keys it owns in its spec section. The host builds one instance per run with the
validated options: ``Component(options)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, PositiveFloat, PositiveInt

from ntframe.hardware.architecture import Architecture
from ntframe.hardware.technology import ComponentEstimate, EstimateRequest
from ntframe.mapping.mapping import Mapping
from ntframe.results import ComputeCost, DramTraffic, MemoryCost, SearchResult
from ntframe.system import Collective, CollectiveCost, Topology
from ntframe.workload.ir import Network, Operation


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(BaseModel):
    """How much a mapping search may spend per operation."""

    model_config = ConfigDict(extra="forbid")
    evaluations: PositiveInt = 20000
    """Cost-model evaluations: the bounded search maps no new structure once it has spent them (the one in hand
    and the final descent finish); the sampling search prices no more."""
    seconds: PositiveFloat = 10.0
    """Wall-clock cap (numba's compiling left out); reaching it makes the result machine-dependent and is
    reported."""


class Component(ABC):
    family: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str] = ""
    Options: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, options: BaseModel | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def check_available(self) -> None:
        """Raise :class:`ntframe.errors.ToolError` (naming the setting that fixes it) when an external tool
        this component drives is missing. Called before any work."""

    def cache_identity(self) -> dict[str, Any]:
        """What, besides the plugin, its version and the options, decides this component's results: part of every
        mapping-cache key it is in. A component driving an external program returns the program's identity (its
        resolved path and the SHA-256 of its binary), so results of one program are never served for another.
        Called after :meth:`check_available`."""
        return {}



@dataclass(frozen=True)
class WorkloadRequest:
    """What a frontend is asked to load."""

    batch: int
    spec_dir: Path                  # relative paths in the spec resolve against it first

    def resolve(self, relative: str, shipped_folder: str) -> Path:
        """A file named in the spec: as given (absolute or relative to the spec's folder, then the working
        folder), else in ntframe's shipped ``shipped_folder`` (e.g. ``workloads``)."""
        from ntframe.paths import resolve_path
        return resolve_path(relative, self.spec_dir, shipped_folder)


class WorkloadFrontend(Component):
    family: ClassVar[str] = "workload_frontend"

    @abstractmethod
    def load(self, request: WorkloadRequest) -> Network:
        """Build the network (layers with shapes) for the batch size in ``request``."""

    def catalog(self) -> dict[str, tuple[str, dict]]:
        """Networks this frontend offers by name: ``{name: (description, options that select it)}``."""
        return {}

    def parameters(self) -> dict:
        """The selected network's parameters with their values (for ``ntframe workloads show``)."""
        return {}



class CostModel(Component):
    family: ClassVar[str] = "cost_model"

    @abstractmethod
    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        """Cycles, energy and per-level accesses of one mapped operation."""

    def evaluate_batch(self, problem, batch, architecture: Architecture):
        """Optional, for fast searches: ``(energy_pJ[B], cycles[B])`` numpy arrays for a
        :class:`ntframe.mapping.mapspace.MappingBatch` of ``problem`` (an :class:`ntframe.mapping.mapspace.Problem`), or None
        when not supported (searchers then call :meth:`evaluate` per mapping)."""
        return None

    def bounds(self, problem, architecture: Architecture) -> "StructureBounds | None":
        """Optional, for the bounded search (:mod:`ntframe.mapping.bounded`): lower bounds of this model's prices
        for whole structures of ``problem`` (a :class:`ntframe.mapping.mapspace.Problem`), or None (searchers then
        sample)."""
        return None


class StructureBounds(Protocol):
    """What a cost model's :meth:`CostModel.bounds` returns: prices from below for *structures*, i.e. spatial
    factors of every fan-out row (``spatial[n, K+1, D]``, as in a MappingBatch's ``S``) with a keep pattern
    (``keeps[P, K, Tn]``), valid for every mapping of the structure whatever its temporal loops and their order.
    The bounded search is exact only as far as these are lower bounds (``tests/test_bounded.py`` checks the native
    model's on sampled mappings)."""

    floor_energy_pJ: float
    """Under the energy of every mapping of the problem."""

    def cycles_floor(self, spatial: Any) -> Any:
        """[n]: under the cycles of every mapping with these spatial factors."""

    def parts(self, spatial: Any) -> Any:
        """Whatever :meth:`floor`, :meth:`combine` and :meth:`penalty` share for these structures (indexable
        along its last axis per structure)."""

    def floor(self, parts: Any, keeps: Any) -> tuple[Any, Any]:
        """(energy_pJ[n], cycles[n]): under every keep pattern of ``keeps``."""

    def combine(self, parts: Any, keeps: Any) -> tuple[Any, Any]:
        """(energy_pJ[n, P], cycles[n, P]): under each keep pattern."""

    def penalty(self, parts: Any, k: int, spatial: Any, keep: Any) -> float:
        """Energy to add to structure ``k``'s bound under ``keep`` (0 if none is known): what the capacities force."""


class MappingSearcher(Component):
    family: ClassVar[str] = "mapper"

    @abstractmethod
    def search(self, operation: Operation, architecture: Architecture, cost_model: CostModel, budget: Budget,
               seed: int) -> SearchResult:
        """The best mapping found within ``budget``; deterministic for a given seed and evaluation budget."""


class MemoryBackend(Component):
    family: ClassVar[str] = "memory_backend"
    cacheable: ClassVar[bool] = True
    """Results depend only on the traffic, the architecture and the options (kept in the mapping cache)."""

    @abstractmethod
    def simulate(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        """Time and energy of the memory traffic of one operation."""

    def missing_attributes(self, architecture: Architecture) -> list[str]:
        """Attributes of the architecture's memory level (its outermost) this backend needs and the file lacks,
        as dotted names under the component's ``attributes``; checked before any work."""
        return []


class ComponentEstimator(Component):
    family: ClassVar[str] = "component_estimator"
    classes: ClassVar[tuple[str, ...]] = ()
    """Component classes it can estimate (``SRAM``, ``regfile``, ``compute``, ``network``, ``DRAM``)."""

    @abstractmethod
    def estimate(self, request: EstimateRequest) -> ComponentEstimate:
        """The component's figures at ``request.target``; raise :class:`ntframe.errors.SpecError` naming the
        allowed range where the technology is outside what the estimator covers."""


class InterconnectModel(Component):
    family: ClassVar[str] = "interconnect"

    @abstractmethod
    def collective(self, topology: Topology, request: Collective) -> CollectiveCost:
        """Time, energy and the algorithm of ``request`` among its group of cubes on ``topology``."""


FAMILIES: dict[str, type[Component]] = {
    "workload_frontend": WorkloadFrontend,
    "mapper": MappingSearcher,
    "cost_model": CostModel,
    "memory_backend": MemoryBackend,
    "component_estimator": ComponentEstimator,
    "interconnect": InterconnectModel,
}


__all__ = ["Budget", "Collective", "CollectiveCost", "Component", "ComponentEstimate", "ComponentEstimator", "CostModel",
           "EstimateRequest", "FAMILIES", "InterconnectModel", "MappingSearcher", "MemoryBackend", "NoOptions", "Topology",
           "StructureBounds", "WorkloadFrontend", "WorkloadRequest"]
