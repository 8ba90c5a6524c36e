"""Every figure that crosses a plugin or simulator boundary, checked before it is used.

A component's answer is accepted only when it has the type its family promises and every number in it is finite;
the figures (cycles, energies, bytes, bits, accesses) are also not negative, and where physics bounds them, within
the bound: an operation takes at least the cycles its datapath needs at the architecture's peak rate, and memory
traffic that moved bytes took cycles. A violation is a :class:`~ntframe.errors.PluginError` attributed to the
component, so it costs that operation (an error row naming the field and its value), never the run, and never
passes as an ``ok`` figure. The runner applies these at each boundary (mapper, cost model, memory backend); the
results document is written as strict JSON (``NaN`` and ``Infinity`` refused) as a last line of defence.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

from ntframe.errors import PluginError
from ntframe.results import ComputeCost, MemoryCost, SearchResult

RELATIVE_SLACK = 1e-6
"""How far below a physical bound a figure may fall (rounding in a third party's arithmetic)."""

SIGNED = frozenset({"memory_energy_gap", "memory_cycles_gap", "rerank_gain", "bound_gap"})
"""Fields that are differences and may be negative (checked for finiteness only)."""


def bad_number(value: Any, path: str = "", signed: bool = False) -> str | None:
    """The first number in ``value`` (dataclasses, dicts, lists, tuples; booleans and strings are not numbers)
    that is not finite, or negative where ``signed`` is off: ``"path = value"``, or None."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        x = float(value)
        if not math.isfinite(x) or (x < 0 and not signed):
            return f"{path or 'value'} = {x!r}"
        return None
    if is_dataclass(value) and not isinstance(value, type):
        items = [(f.name, getattr(value, f.name)) for f in fields(value)]
    elif isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    else:
        return None
    for key, item in items:
        found = bad_number(item, f"{path}.{key}" if path else str(key), signed or str(key) in SIGNED)
        if found:
            return found
    return None


def _refuse(what: str, problem: str, reg: Any) -> PluginError:
    return PluginError(f"{what} returned {problem}", plugin=reg.plugin, component=reg.name)


def compute_cost(cost: Any, op: Any, arch: Any, what: str, reg: Any) -> ComputeCost:
    """A cost model's answer for ``op`` (an Operation) on ``arch``: a ComputeCost with finite, non-negative
    figures (``details`` of the notes aside), and no fewer cycles than the datapath needs at its peak rate."""
    if not isinstance(cost, ComputeCost):
        raise _refuse(what, f"a {type(cost).__name__}, not a ntframe.results.ComputeCost", reg)
    found = bad_number(cost)
    if found:
        raise _refuse(what, f"{found}: every figure must be finite and not negative", reg)
    operations = op.points * op.ops_per_point
    floor = operations / arch.peak_ops_per_cycle
    if cost.cycles < floor * (1 - RELATIVE_SLACK):
        raise _refuse(what, f"{cost.cycles:,.6g} cycles, fewer than the datapath's bound of {floor:,.6g} "
                            f"({operations:,} operations at {arch.peak_ops_per_cycle:,} per cycle)", reg)
    return cost


def memory_cost(mem: Any, what: str, reg: Any) -> MemoryCost:
    """A memory backend's answer: a MemoryCost with finite, non-negative figures; bytes moved take cycles and
    energy."""
    if not isinstance(mem, MemoryCost):
        raise _refuse(what, f"a {type(mem).__name__}, not a ntframe.results.MemoryCost", reg)
    found = bad_number(mem)
    if found:
        raise _refuse(what, f"{found}: every figure must be finite and not negative", reg)
    moved = mem.read_bytes + mem.write_bytes
    if moved > 0 and (mem.cycles <= 0 or mem.energy_pJ <= 0):
        raise _refuse(what, f"{moved:,} bytes moved in {mem.cycles:g} cycles for {mem.energy_pJ:g} pJ: traffic "
                            f"takes time and energy", reg)
    return mem


def search_result(found: Any, what: str, reg: Any) -> SearchResult:
    """A mapper's answer: a SearchResult holding a Mapping and a ComputeCost (the cost is checked again where
    the runner prices the mapping)."""
    from ntframe.mapping.mapping import Mapping
    if not isinstance(found, SearchResult):
        raise _refuse(what, f"a {type(found).__name__}, not a ntframe.results.SearchResult", reg)
    if not isinstance(found.mapping, Mapping):
        raise _refuse(what, f"a mapping of type {type(found.mapping).__name__}, not a ntframe.mapping.Mapping", reg)
    if not isinstance(found.ties, tuple) or not all(isinstance(m, Mapping) for m in found.ties):
        raise _refuse(what, "ties that are not a tuple of ntframe.mapping.Mapping", reg)
    return found


def batch_prices(got: Any, size: int, what: str, reg: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """A cost model's ``evaluate_batch`` answer: None, or (energy_pJ[size], cycles[size]) finite, not negative."""
    if got is None:
        return None
    try:
        energy, cycles = (np.asarray(x, dtype=float).reshape(-1) for x in got)
    except (TypeError, ValueError) as exc:
        raise _refuse(what, f"a batch price that is not two arrays of numbers ({exc})", reg) from None
    if energy.shape != (size,) or cycles.shape != (size,):
        raise _refuse(what, f"a batch price of shapes {energy.shape} and {cycles.shape} for {size} mappings", reg)
    for name, values in (("energy_pJ", energy), ("cycles", cycles)):
        wrong = ~np.isfinite(values) | (values < 0)
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            raise _refuse(what, f"{name}[{i}] = {values[i]!r} in a batch price: every figure must be finite and "
                                f"not negative", reg)
    return energy, cycles


def fits_memory(op: Any, arch: Any) -> None:
    """Refuse an operation whose tensors cannot all be held by the architecture's outermost storage level (the
    cubes' DRAM, every instance together) before any work: a MappingError naming both sizes and the fixes."""
    from ntframe.errors import MappingError
    level = arch.levels[0]
    if level.capacity_bytes is None:
        return
    held = level.capacity_bytes * level.instances
    needed = sum(t.bytes for t in op.tensors)
    if needed > held:
        raise MappingError(f"{op.name}: its tensors need {_size(needed)}, more than the {_size(held)} that "
                           f"{level.name} holds ({level.instances:,} x {_size(level.capacity_bytes)}): lower the "
                           f"batch or the layer's size, or add cubes (architecture.cubes)")


def _size(n_bytes: float) -> str:
    for unit, scale in (("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:,.1f} {unit}"
    return f"{n_bytes:,.0f} bytes"


__all__ = ["bad_number", "batch_prices", "compute_cost", "fits_memory", "memory_cost", "search_result"]
