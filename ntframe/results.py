"""Result records. Every numeric field carries its unit in its name (``_pJ``, ``_cycles``, ``_bytes``, ...)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LevelCost:
    """One storage level as a cost model priced it (all instances together)."""

    level: str
    instances: int
    reads: float                # element accesses, all instances
    fills: float
    updates: float
    read_bits: float
    write_bits: float           # fills + updates
    energy_pJ: float
    bandwidth_bound_cycles: float   # cycles this level needs at its bandwidth (per instance, in parallel)
    is_memory: bool = False     # the off-logic-die memory that the memory backend prices
    tensors: dict[str, dict[str, float]] = field(default_factory=dict)   # the same per tensor


@dataclass(frozen=True)
class ComputeCost:
    """What a compute cost model says about one mapped operation."""

    cycles: float                   # max of compute and every level's bandwidth bound, memory level included
    on_die_cycles: float            # the same without the memory level
    compute_cycles: float           # compute units alone
    energy_pJ: float                # all levels (memory level as the cost model priced it) + compute
    compute_energy_pJ: float        # the datapath actions alone
    utilisation: float              # useful ops / (peak ops per cycle * cycles), 0..1
    levels: tuple[LevelCost, ...]
    dram_read_bytes_by_tensor: dict[str, int] = field(default_factory=dict)
    dram_write_bytes_by_tensor: dict[str, int] = field(default_factory=dict)
    dram_instances: int = 1          # memory-level instances (vaults) the traffic is spread over
    notes: tuple[str, ...] = ()      # what the model left out or assumed (shown with its figures)

    @property
    def memory_level(self) -> LevelCost | None:
        return next((lvl for lvl in self.levels if lvl.is_memory), None)

    @property
    def on_die_energy_pJ(self) -> float:
        mem = self.memory_level
        return self.energy_pJ - (mem.energy_pJ if mem else 0.0)


@dataclass(frozen=True)
class DramTraffic:
    """The off-die traffic of one operation, handed to a memory backend."""

    operation: str
    read_bytes_by_tensor: dict[str, int]
    write_bytes_by_tensor: dict[str, int]
    vaults: int                     # memory-level instances the traffic is spread evenly over
    compute_cycles: float           # how long the logic die computes meanwhile (for issue timing)
    op: Any = None                  # ntframe.workload.ir.Operation: for backends that simulate a request trace
    mapping: Any = None             # ntframe.mapping.mapping.Mapping

    @property
    def read_bytes(self) -> int:
        return sum(self.read_bytes_by_tensor.values())

    @property
    def write_bytes(self) -> int:
        return sum(self.write_bytes_by_tensor.values())


@dataclass(frozen=True)
class MemoryCost:
    """What a memory backend says about one operation's traffic."""

    cycles: float                   # in logic-die clock cycles
    energy_pJ: float
    read_bytes: int
    write_bytes: int
    bandwidth_GBps: float           # achieved, all vaults together
    average_latency_ns: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    """What a mapping searcher returns."""

    mapping: Any                    # ntframe.mapping.mapping.Mapping
    cost: ComputeCost
    evaluated: int
    valid: int
    invalid_reasons: dict[str, int]
    truncated_by_time: bool = False
    objective: str = "edp"
    method: str = ""                # how the searcher searched (e.g. "bounded", "sampling")
    structures: int = 0             # bounded search: structures (spatial splits x keep patterns) bounded
    structures_mapped: int = 0      # of which mapped
    lower_bound: float | None = None    # bounded search: no mapping of an unmapped structure has a smaller
                                        # objective value than this (inf: every structure mapped or ruled out)
    reranked: int = 0               # finalists priced again by the cost model's evaluate (what the run reports)
    rerank_gain: float = 0.0        # the search's best mapping's reported objective / the chosen one's, minus 1
    ties: tuple[Any, ...] = ()      # other mappings the cost model prices exactly as ``mapping`` (the same
                                    # objective value), which the memory backend may tell apart (row hits): the
                                    # runner keeps the best of them all by its figures


def bytes_by_tensor(op: Any, bytes_by_name: dict[str, float]) -> dict[str, int]:
    """Bytes per data space of ``op`` (an :class:`ntframe.workload.ir.Operation`) -> bytes per tensor, as
    :class:`ComputeCost` and the memory backends key them; zeros left out."""
    out: dict[str, int] = {}
    for t in op.tensors:
        b = int(round(bytes_by_name.get(t.name, 0.0)))
        if b:
            out[t.tensor] = out.get(t.tensor, 0) + b
    return out


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {k: to_jsonable(v) for k, v in asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    return obj


__all__ = ["ComputeCost", "DramTraffic", "LevelCost", "MemoryCost", "SearchResult", "bytes_by_tensor"]
