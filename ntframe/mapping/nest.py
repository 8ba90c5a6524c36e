"""Reuse analysis of one mapped loop nest: per-level, per-tensor reads, fills and updates.

This is the single-mapping face of :func:`ntframe.mapping.mapspace.analyse_batch` (one implementation for both), in
plain Python types. The model, and where it differs from Timeloop, is described in ``docs/model.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapping import Mapping
from ntframe.mapping.mapspace import Problem, analyse_batch, level_capacities, to_batch
from ntframe.workload.ir import Operation


@dataclass(frozen=True)
class TensorAccesses:
    tensor: str          # data-space name in the operation
    reads: float         # per instance, elements (fractional where sliding windows share data)
    fills: float
    updates: float
    tile_elements: int   # per instance; 0 where bypassed


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
    vault_replication: dict[str, int]   # outermost-level instances needing the same data, per tensor


def _batch(op: Operation, mapping: Mapping):
    problem = Problem(op)
    return problem, to_batch(problem, [mapping])


def analyse(op: Operation, mapping: Mapping) -> NestAnalysis:
    problem, batch = _batch(op, mapping)
    a = analyse_batch(problem, batch)
    levels = []
    for lvl, lm in enumerate(mapping.levels):
        rows = tuple(TensorAccesses(t.name, _num(a.reads[0, lvl, j]), _num(a.fills[0, lvl, j]),
                                    _num(a.updates[0, lvl, j]), int(a.tile_elements[0, lvl, j]))
                     for j, t in enumerate(problem.tensors))
        levels.append(LevelAccesses(lm.level, int(a.instances[0, lvl]), rows))
    return NestAnalysis(tuple(levels), int(a.temporal_steps[0]), int(a.compute_instances[0]),
                        {t.name: int(a.vault_replication[0, j]) for j, t in enumerate(problem.tensors)})


def _num(x: float) -> float:
    """Counts are whole numbers unless a sliding window shares part of a tile."""
    r = round(float(x))
    return r if abs(r - x) < 1e-6 * max(1.0, abs(x)) else float(x)


def tile_bytes(op: Operation, mapping: Mapping) -> list[int]:
    """Bytes of the tiles held by one instance of each storage level (kept tensors only)."""
    problem, batch = _batch(op, mapping)
    return [int(b) for b in analyse_batch(problem, batch).tile_bytes[0]]


def capacity_problems(op: Operation, mapping: Mapping, arch: Architecture) -> list[str]:
    """Levels whose per-instance tiles exceed their capacity."""
    problems = []
    for level, needed, cap in zip(arch.levels, tile_bytes(op, mapping), level_capacities(arch)):
        if needed > cap:
            problems.append(f"capacity: {level.name} needs {needed} B per instance, holds {level.capacity_bytes} B")
    return problems
