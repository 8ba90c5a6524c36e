"""Reuse analysis of a mapped loop nest: tiles, tile changes, and per-level access counts.

The analysis follows Timeloop's (``nest-analysis.cpp``) in its main lines, with the differences listed here.
Notation: storage levels ``0..K-1`` (0 outermost), ``f[l][d]`` temporal and ``s[l][d]`` spatial factors
(``s[K]``: split across the compute units).

* Tile of one instance of level ``l``: extents ``E_l[d] = prod_{l' >= l} f[l'][d] * prod_{l' > l} s[l'][d]``;
  the tile of a tensor is the working set of its projection (``sum c*(E-1) + 1`` per axis).
* What one instance of level ``l`` sends down in one step is the union of its children's tiles,
  ``U_l[d] = s[l+1][d] * E_{l+1}[d]`` (``E_K = 1`` for the compute units). Spatial dimensions that do not
  index a tensor add nothing to its union: that is multicast (inputs) and spatial reduction (outputs).
* A child's tile of tensor ``t`` is replaced whenever a temporal loop above it that indexes ``t`` advances;
  loops that do not index ``t`` and sit inside the innermost one that does leave it in place (stationarity).
  ``changes_t(c)`` is the product of the loop bounds above level ``c``, outermost first, down to the innermost
  loop that indexes ``t``; ``distinct_t(c)`` the product of the bounds of those that index ``t``.
* Per instance of level ``l`` and tensor ``t`` (elements):

  | role | reads | fills (l >= 1) | updates |
  |---|---|---|---|
  | read | ``changes(l+1)·|U_l|`` | ``changes(l)·|E_l|`` | 0 |
  | accumulate | ``(changes(l+1) − distinct(l+1))·|U_l|`` + drains ``changes(l)·|E_l|`` | ``(changes(l) − distinct(l))·|E_l|`` | ``changes(l+1)·|U_l|`` |
  | readwrite | ``changes(l+1)·|U_l|`` + drains | ``changes(l)·|E_l|`` | ``changes(l+1)·|U_l|`` |
  | write | drains ``changes(l)·|E_l|`` | 0 | ``changes(l+1)·|U_l|`` |

  The first update of an accumulated element needs no read (Timeloop elides it the same way); partial sums
  evicted from a level are read out of it ("drains", l >= 1) and arrive at the parent as updates.
* Differences from Timeloop: no sliding-window (halo) reuse between consecutive tiles — a replaced tile is
  refetched whole; every tensor is kept at every level (no bypass); the operand held at the compute unit
  between consecutive points is not charged as a storage access (as in Timeloop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ntframe.arch import Architecture
from ntframe.ir import Operation
from ntframe.mapping import Mapping


@dataclass(frozen=True)
class TensorAccesses:
    tensor: str          # data-space name in the operation
    reads: int           # per instance, elements
    fills: int
    updates: int
    tile_elements: int   # per instance


@dataclass(frozen=True)
class LevelAccesses:
    level: str
    instances: int       # instances in use
    tensors: tuple[TensorAccesses, ...]


@dataclass(frozen=True)
class NestAnalysis:
    levels: tuple[LevelAccesses, ...]
    temporal_steps: int          # iterations of all temporal loops = cycles of an unthrottled compute unit
    compute_instances: int       # compute units in use


def _changes(loops: list[tuple[str, int]], dims: frozenset[str]) -> tuple[int, int]:
    """(changes, distinct) of a tile indexed by ``dims`` under the flattened temporal ``loops``."""
    innermost = -1
    for i, (d, _) in enumerate(loops):
        if d in dims:
            innermost = i
    changes = math.prod(f for _, f in loops[: innermost + 1])
    distinct = math.prod(f for d, f in loops if d in dims)
    return changes, distinct


def tile_extents(op: Operation, mapping: Mapping) -> list[dict[str, int]]:
    """``E_l`` for every storage level and, last, the compute unit (all ones)."""
    dims = [d for d, _ in op.dims]
    k = len(mapping.levels)
    spatial = mapping.spatial_rows()
    extents: list[dict[str, int]] = [dict.fromkeys(dims, 1) for _ in range(k + 1)]
    for lvl in range(k - 1, -1, -1):
        below = extents[lvl + 1]
        extents[lvl] = {d: below[d] * mapping.levels[lvl].temporal_factor(d)
                        * math.prod(f for dd, f in spatial[lvl + 1] if dd == d) for d in dims}
    return extents


def analyse(op: Operation, mapping: Mapping) -> NestAnalysis:
    """Per-level, per-tensor access counts of ``op`` under ``mapping`` (see the module docstring)."""
    k = len(mapping.levels)
    extents = tile_extents(op, mapping)
    spatial = mapping.spatial_rows()
    flat: list[list[tuple[str, int]]] = []      # flat[c] = temporal loops above level c (c = 1..k)
    loops: list[tuple[str, int]] = []
    for lvl in mapping.levels:
        flat.append(list(loops))
        loops.extend((d, f) for d, f in lvl.temporal if f > 1)
    flat.append(list(loops))                     # above the compute units
    instances, levels = 1, []
    for lvl in range(k):
        instances *= math.prod(f for _, f in spatial[lvl])
        union = {d: extents[lvl + 1][d] * math.prod(f for dd, f in spatial[lvl + 1] if dd == d)
                 for d in extents[lvl]}
        rows = []
        for t in op.tensors:
            tdims = t.dims
            step = t.extent(union)
            tile = t.extent(extents[lvl])
            child_changes, child_distinct = _changes(flat[lvl + 1], tdims)
            own_changes, own_distinct = _changes(flat[lvl], tdims) if lvl > 0 else (0, 0)
            drains = own_changes * tile if (t.written and lvl > 0) else 0
            if t.role == "read":
                reads, fills, updates = child_changes * step, own_changes * tile, 0
            elif t.role == "accumulate":
                reads = (child_changes - child_distinct) * step + drains
                fills = (own_changes - own_distinct) * tile
                updates = child_changes * step
            elif t.role == "readwrite":
                reads, fills, updates = child_changes * step + drains, own_changes * tile, child_changes * step
            else:  # write
                reads, fills, updates = drains, 0, child_changes * step
            rows.append(TensorAccesses(t.name, reads, fills, updates, tile))
        levels.append(LevelAccesses(mapping.levels[lvl].level, instances, tuple(rows)))
    compute_instances = instances * math.prod(f for _, f in spatial[k])
    return NestAnalysis(tuple(levels), math.prod(f for _, f in loops), compute_instances)


def tile_bytes(op: Operation, mapping: Mapping) -> list[int]:
    """Bytes of all tensors' tiles held by one instance of each storage level."""
    extents = tile_extents(op, mapping)
    return [sum((t.extent(extents[lvl]) * t.precision_bits + 7) // 8 for t in op.tensors)
            for lvl in range(len(mapping.levels))]


def capacity_problems(op: Operation, mapping: Mapping, arch: Architecture) -> list[str]:
    """Levels whose per-instance tiles exceed their capacity."""
    problems = []
    for level, needed in zip(arch.levels, tile_bytes(op, mapping)):
        if level.capacity_bytes is not None and needed > level.capacity_bytes:
            problems.append(f"capacity: {level.name} needs {needed} B per instance, holds {level.capacity_bytes} B")
    return problems
