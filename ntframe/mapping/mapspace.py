"""Mappings as arrays, and the reuse analysis of many mappings at once (numpy).

A :class:`MappingBatch` holds ``B`` mappings of one operation on one architecture with ``K`` storage levels
and ``D`` loop dimensions: temporal factors ``T[B,K,D]``, spatial factors ``S[B,K+1,D]`` (row ``l < K``: split
across the instances of level ``l`` under one parent; row ``K``: across the compute units), loop ranks
``R[B,K,D]`` (0 = outermost loop of its level) and ``keep[B,K,Tn]`` (tensor kept at a level; False =
bypassed, Timeloop's bypass). :func:`analyse_batch` implements the analysis described in ``docs/model.md``:
tiles, tile changes under the loop order (stationarity), sliding-window (halo) reuse along the innermost loop
that moves a tile, multicast and spatial reduction through the union of sibling tiles, bypass chains, and
first-read elision for accumulated tensors. :class:`ntframe.mapping.nest` gives the same for one
:class:`~ntframe.mapping.mapping.Mapping`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapping import LevelMapping, Mapping
from ntframe.workload.ir import Operation

READ, ACCUMULATE, READWRITE, WRITE = 0, 1, 2, 3
ROLE_CODES = {"read": READ, "accumulate": ACCUMULATE, "readwrite": READWRITE, "write": WRITE}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    tensor: str
    role: int
    relevant: np.ndarray        # [D] bool: the dimension indexes the tensor
    coef: np.ndarray            # [A, D]: coefficient of each dimension in each axis
    bits: int


class Problem:
    """An operation compiled for vectorised analysis."""

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.dims = [d for d, _ in op.dims]
        self.index = {d: i for i, d in enumerate(self.dims)}
        self.bounds = np.array([b for _, b in op.dims], dtype=np.int64)
        self.sequential = [self.index[d] for d in op.sequential]
        tensors = []
        for t in op.tensors:
            coef = np.zeros((len(t.projection), len(self.dims)), dtype=np.int64)
            for a, axis in enumerate(t.projection):
                for d, c in axis:
                    coef[a, self.index[d]] += c
            tensors.append(TensorInfo(t.name, t.tensor, ROLE_CODES[t.role], coef.sum(0) > 0, coef,
                                      t.precision_bits))
        self.tensors = tensors
        self.bits = np.array([t.bits for t in tensors], dtype=np.int64)
        self.coef_int = np.concatenate([t.coef for t in tensors])                      # [sum A, D]
        self.coef_all = self.coef_int.astype(float)                                    # [sum A, D]
        self.axis_starts = np.cumsum([0] + [t.coef.shape[0] for t in tensors])[:-1]
        # the same per tensor, for analysing every tensor at once
        self.relevant = np.array([t.relevant for t in tensors]).reshape(len(tensors), len(self.dims))  # [Tn, D]
        self.roles = np.array([t.role for t in tensors], np.int64)                       # [Tn]
        self.axis_tensor = np.repeat(np.arange(len(tensors)), [t.coef.shape[0] for t in tensors])   # [sum A]
        self.axis_ends = (self.axis_starts + [t.coef.shape[0] for t in tensors])[self.axis_tensor]  # [sum A]
        self.shape_all = np.array([n for t in op.tensors for n in t.shape], float)      # [sum A]: stored shape

    def extents(self, E: np.ndarray) -> np.ndarray:
        """Elements of every tensor touched by tiles with extents E[..., D]: [..., Tn]."""
        per_axis = axis_extents(E, self.coef_all)
        return np.rint(np.exp(np.add.reduceat(np.log(per_axis), self.axis_starts, axis=-1)))

    @property
    def D(self) -> int:
        return len(self.dims)


def axis_extents(E: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Indices one tensor axis spans over a tile with extents E[..., D]: ``Σ c·(E−1) + 1`` of its affine
    projection (the axis-aligned bounding box Timeloop uses for tiles; a stride wider than the kernel's tile
    leaves gaps inside it)."""
    return (E - 1) @ coef.T + 1


def touched_extents(E: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Indices one tensor axis actually touches over tiles with extents E[n, D], per axis: [n, A]. Unlike
    :func:`axis_extents` (the bounding box), a stride wider than the kernel leaves gaps uncounted, so tiles that
    partition a bigger tile never touch fewer indices than it: what a lower bound needs. Exact for axes of one or
    two dimensions (``c1 x + c2 y``), the largest single dimension's count for more."""
    out = np.empty((E.shape[0], coef.shape[0]))
    for a, row in enumerate(coef):
        dims = np.flatnonzero(row)
        if len(dims) == 0:
            out[:, a] = 1
        elif len(dims) == 1:
            out[:, a] = E[:, dims[0]]
        elif len(dims) == 2:
            pairs = E[:, dims].astype(np.int64)
            unique, back = np.unique(pairs, axis=0, return_inverse=True)
            out[:, a] = np.array([_two_term(int(row[dims[0]]), int(row[dims[1]]), int(x), int(y))
                                  for x, y in unique])[back.ravel()]
        else:
            out[:, a] = E[:, dims].max(axis=1)
    return out


def _two_term(a: int, b: int, x: int, y: int) -> int:
    """How many distinct values ``a*i + b*j`` take for ``0 <= i < x``, ``0 <= j < y``."""
    g = math.gcd(a, b)
    a, b = a // g, b // g
    if a == 1 or b == 1:
        if b == 1:
            a, b, x, y = b, a, y, x
        return x + b * (y - 1) if x >= b else x * y          # runs of x, b apart: they join when x >= b
    return len(np.unique((a * np.arange(x))[:, None] + b * np.arange(y)[None, :]))


@dataclass
class MappingBatch:
    T: np.ndarray
    S: np.ndarray
    R: np.ndarray
    keep: np.ndarray

    def __len__(self) -> int:
        return self.T.shape[0]

    def take(self, idx) -> "MappingBatch":
        return MappingBatch(self.T[idx], self.S[idx], self.R[idx], self.keep[idx])

    def canonical(self) -> "MappingBatch":
        """Ranks renumbered 0..n-1 among the loops with a factor above 1; factor-1 loops get rank D. Equal
        mappings then have equal arrays."""
        D = self.T.shape[2]
        key = np.where(self.T > 1, self.R, D + np.arange(D))
        ranks = np.argsort(np.argsort(key, axis=2, kind="stable"), axis=2)     # the sorting permutation inverted
        ranks = np.where(self.T > 1, ranks, D)
        return MappingBatch(self.T, self.S, ranks, self.keep)

    def keys(self) -> list[bytes]:
        B = len(self)
        flat = np.concatenate([self.T.reshape(B, -1), self.S.reshape(B, -1), self.R.reshape(B, -1),
                               self.keep.reshape(B, -1).astype(np.int64)], axis=1)
        return [row.tobytes() for row in flat]


def to_batch(problem: Problem, mappings: list[Mapping]) -> MappingBatch:
    """Mappings (all with the same levels) as arrays."""
    K, D, Tn = len(mappings[0].levels), problem.D, len(problem.tensors)
    B = len(mappings)
    T = np.ones((B, K, D), np.int64)
    S = np.ones((B, K + 1, D), np.int64)
    R = np.full((B, K, D), D, np.int64)
    keep = np.ones((B, K, Tn), bool)
    names = [t.name for t in problem.tensors]
    for b, m in enumerate(mappings):
        for lvl, lm in enumerate(m.levels):
            for rank, (d, f) in enumerate(lm.temporal):
                T[b, lvl, problem.index[d]] *= f
                R[b, lvl, problem.index[d]] = min(R[b, lvl, problem.index[d]], rank)
            for d, f in lm.spatial:
                S[b, lvl, problem.index[d]] *= f
            for name in lm.bypass:
                keep[b, lvl, names.index(name)] = False
        for d, f in m.compute_spatial:
            S[b, K, problem.index[d]] *= f
    return MappingBatch(T, S, R, keep).canonical()


def from_batch(problem: Problem, batch: MappingBatch, arch: Architecture, i: int) -> Mapping:
    K = len(arch.levels)
    levels = []
    for lvl in range(K):
        dims = [d for d in range(problem.D) if batch.T[i, lvl, d] > 1]
        dims.sort(key=lambda d: batch.R[i, lvl, d])
        levels.append(LevelMapping(
            arch.levels[lvl].name, tuple((problem.dims[d], int(batch.T[i, lvl, d])) for d in dims),
            tuple((problem.dims[d], int(batch.S[i, lvl, d])) for d in range(problem.D) if batch.S[i, lvl, d] > 1),
            tuple(t.name for j, t in enumerate(problem.tensors) if not batch.keep[i, lvl, j])))
    return Mapping(tuple(levels), tuple((problem.dims[d], int(batch.S[i, K, d])) for d in range(problem.D)
                                        if batch.S[i, K, d] > 1))


@dataclass
class Analysis:
    """Per-instance access counts (elements) of every level and tensor, for every mapping of the batch."""

    reads: np.ndarray           # [B, K, Tn]
    fills: np.ndarray           # [B, K, Tn]
    updates: np.ndarray         # [B, K, Tn]
    tile_elements: np.ndarray   # [B, K, Tn] (0 where bypassed)
    tile_bytes: np.ndarray      # [B, K]
    instances: np.ndarray       # [B, K] instances of each level in use
    compute_instances: np.ndarray   # [B]
    temporal_steps: np.ndarray  # [B]
    dram_run_elements: np.ndarray   # [B, Tn]: contiguous elements (row-major, stored shape) of the tile the
                                    # outermost level sends at a time: what DRAM lines are filled with
    vault_replication: np.ndarray   # [B, Tn]: level-0 instances that need the same data (spatial dims at
                                    # level 0 that do not index the tensor)
    spatial_adds: np.ndarray | None = None  # [B, K, Tn]: per instance of each level, the adds that combine the
                                    # partial sums its children send up (spatial splits of dims that do not
                                    # index the accumulated tensor, below the level)


def analyse_batch(problem: Problem, batch: MappingBatch) -> Analysis:
    """The reuse analysis of every mapping of the batch (``docs/model.md``), every tensor and every child level
    at once. Tile extents, loop counts and sibling products are integers (exact in any order); where fractions
    are rounded (the sliding-window overlaps, the access sums) the operations and their order are those of the
    analysis done one tensor and one level pair at a time: the counts are the same to the last bit."""
    T, S, R, keep = batch.T, batch.S, batch.R, batch.keep
    B, K, D = T.shape
    Tn = len(problem.tensors)
    rel, starts, owner = problem.relevant, problem.axis_starts, problem.axis_tensor
    E = np.ones((B, K + 1, D), np.int64)
    for lvl in range(K - 1, -1, -1):
        E[:, lvl] = E[:, lvl + 1] * T[:, lvl] * S[:, lvl + 1]
    step_of_level = E[:, 1:] * S[:, 1:]                 # [B, K, D]: one step of a level-l loop moves this far
    instances = np.cumprod(S[:, :K].prod(axis=2), axis=1)
    compute_instances = instances[:, -1] * S[:, K].prod(axis=1)
    temporal_steps = T.prod(axis=(1, 2))
    key = np.arange(K)[None, :, None] * (D + 1) + R    # loop order across levels, outermost smallest
    # what one instance of each level covers over the whole operation (its share of every dimension)
    divided = np.cumprod(S[:, :K], axis=1)
    share = problem.bounds[None, None, :] / divided
    rows = np.arange(B)

    # loop statistics above every child level c = 1..K (index c - 1), per tensor: [B, K, Tn]. The compute units
    # (c = K) hold no operand between points (as in Timeloop): every temporal step reads its operands again
    looping = T > 1                                                             # [B, K(level), D]
    above = np.arange(K)[:, None] < np.arange(1, K + 1)[None, :]               # [K(level), K(child)]
    loops = looping[:, None, None, :, :] & above.T[None, :, None, :, None] & rel[None, None, :, None, :]
    masked = np.where(loops, key[:, None, None], -1).reshape(B, K, Tn, K * D)  # [B, K(child), Tn, K*D]
    idx = masked.argmax(axis=3)                                                 # the innermost relevant loop
    kmax = masked.max(axis=3)
    inside = (key[:, None, None] <= kmax[..., None, None]) & looping[:, None, None] & above.T[None, :, None, :, None]
    changes = np.where(inside, T[:, None, None], 1).prod(axis=(3, 4)).astype(float)
    changes[:, K - 1] = temporal_steps.astype(float)[:, None]
    has = kmax >= 0
    has[:, K - 1] = False
    lstar, dstar = idx // D, idx % D
    bstar = T.reshape(B, K * D)[rows[:, None, None], idx].astype(float)
    step = step_of_level[rows[:, None, None], lstar, dstar]

    # elements brought in over all changes of each child's tile below the loops above it: the whole tile at each
    # change, less what the previous tile along the innermost moving loop shares (sliding windows)
    ext = axis_extents(E[:, 1:].astype(float), problem.coef_all)               # [B, K, sum A]
    cstar = problem.coef_int[np.arange(len(owner)), dstar[:, :, owner]]         # [B, K, sum A]
    shift = cstar * step[:, :, owner]
    overlap = np.multiply.reduceat(np.where(cstar > 0, np.clip(ext - shift, 0, None) / ext, 1.0), starts, axis=2)
    overlap = np.where(np.logical_or.reduceat(cstar > 0, starts, axis=2), overlap, 0.0)
    new = 1.0 - overlap
    eff = np.where(has, changes / bstar * (1 + (bstar - 1) * new), changes)
    moved = eff * np.multiply.reduceat(ext, starts, axis=2)                    # [B, K(child), Tn]

    # a child level that keeps the tensor (the compute units always do) is served by the nearest level above it
    # that keeps it, its parent
    child_kept = np.concatenate([keep[:, 1:], np.ones((B, 1, Tn), bool)], axis=1)            # [B, K(child), Tn]
    nearest_kept = np.maximum.accumulate(np.where(keep, np.arange(K)[None, :, None], -1), axis=1)  # [B, K, Tn]
    active = child_kept & (nearest_kept >= 0)
    parent = np.maximum(nearest_kept, 0)
    # children with different data each get their tile, identical tiles go once (multicast); each element
    # arriving combines the partial sums of the children that split a reduction: products over the spatial rows
    # between parent and child of the dimensions that index the tensor and of those that do not, from products
    # over the rows from the top [B, K+2, 2 Tn]
    split_by = np.concatenate([rel, ~rel])                                      # [2 Tn, D]
    per_row = np.where(split_by.T[:, None, None, :], S.transpose(2, 0, 1)[..., None], 1).prod(axis=0)  # [B, K+1, 2Tn]
    prefix = np.cumprod(np.concatenate([np.ones((B, 1, 2 * Tn), np.int64), per_row], axis=1), axis=1)
    between = prefix[:, 2:] // prefix[rows[:, None, None], parent[:, :, np.arange(2 * Tn) % Tn] + 1,
                                      np.arange(2 * Tn)]                         # [B, K(child), 2 Tn]
    siblings, fan_in = between[..., :Tn], between[..., Tn:]
    # elements an instance of each level touches for the first time: an accumulated element's first update
    # needs no read (partial sums start at zero)
    first = _first_touched(problem, share, divided)                            # [B, K, Tn]
    first_parent = first[rows[:, None, None], parent, np.arange(Tn)]
    served = np.where(active, moved * siblings, 0.0)                           # [B, K(child), Tn]
    is_read, is_accumulate = problem.roles == READ, problem.roles == ACCUMULATE
    # what each child brings to its parent's reads, updates and adds [3, B, K(child), Tn]
    brought = np.stack([np.where(is_accumulate, np.where(active, np.clip(served - first_parent, 0, None), 0.0),
                                 np.where(problem.roles == WRITE, 0.0, served)),
                        np.where(is_read, 0.0, served),
                        np.where(is_accumulate, served * (fan_in - 1), 0.0)])
    # summed at each parent child by child, from the top (adding zero elsewhere changes nothing)
    is_parent = parent[:, :, None, :] == np.arange(K)[None, None, :, None]     # [B, K(child), K, Tn]
    totals = np.zeros((3, B, K, Tn))
    for c in range(K):
        totals += np.where(is_parent[:, c], brought[:, :, c, None, :], 0.0)
    reads, updates, adds = totals
    own = np.where(active[:, :K - 1], moved[:, :K - 1], 0.0)                   # children 1..K-1, kept levels
    fills = np.zeros((B, K, Tn))
    fills[:, 1:] += np.where(is_accumulate, np.where(active[:, :K - 1], np.clip(own - first[:, 1:], 0, None), 0.0),
                             np.where(is_read | (problem.roles == READWRITE), own, 0.0))
    tile_el = np.where(keep, problem.extents(E[:, :K].astype(float)), 0)
    # DRAM runs: contiguous elements of the box a vault fetches at a time (the tile under the DRAM loops: what
    # the request trace fetches, whatever the levels below keep) in the vault-local layout (each vault's share
    # of a tensor stored row-major on its own): the product of the box's extents along the trailing axes up to
    # the last one that does not span the vault's whole share (whole numbers: exact in any order)
    vault_share = axis_extents((problem.bounds[None, :] // S[:, 0]).astype(float), problem.coef_all)  # [B, sum A]
    layout = np.minimum(vault_share, problem.shape_all)
    run_ext = np.minimum(ext[:, 0], layout)                                     # [B, sum A]
    short = (run_ext < layout).astype(np.int64)
    short_from = np.cumsum(short[:, ::-1], axis=1)[:, ::-1]                    # short axes from each on
    short_after = short_from - short - np.append(short_from, np.zeros((B, 1), np.int64), axis=1)[:, problem.axis_ends]
    runs = np.multiply.reduceat(np.where(short_after == 0, run_ext, 1.0), starts, axis=1)
    tile_bytes = np.ceil(tile_el * problem.bits[None, None, :] / 8).sum(axis=2)
    vault_rep = np.where(rel[None], 1, S[:, 0, None, :]).prod(axis=2)
    return Analysis(reads, fills, updates, tile_el, tile_bytes, instances, compute_instances, temporal_steps,
                    runs, vault_rep, adds)


def _first_touched(problem: Problem, share: np.ndarray, divided: np.ndarray) -> np.ndarray:
    """[B, K, Tn]: the elements of each tensor one instance of each level touches over the operation, its share
    ``share`` [B, K, D] (the bounds over the splits ``divided`` above it). A whole share's extents are integers,
    counted for every tensor at once; a share that is a fraction (a batch that does not factorise the bounds) is
    counted one tensor at a time, the bounding-box products rounded as they always were."""
    if (problem.bounds[None, None, :] % divided == 0).all():
        return np.multiply.reduceat(axis_extents(share, problem.coef_all), problem.axis_starts, axis=2)
    return np.stack([np.prod(axis_extents(share, t.coef.astype(float)), axis=2) for t in problem.tensors], 2)


def problems_batch(problem: Problem, batch: MappingBatch, arch: Architecture,
                   analysis: Analysis | None = None) -> np.ndarray:
    """Per mapping, a code of the first problem found: 0 valid, 1 factorisation, 2 fan-out, 3 capacity,
    4 sequential dimension, 5 bypass of the outermost level."""
    T, S = batch.T, batch.S
    code = np.zeros(len(batch), np.int64)
    product = T.prod(axis=1) * S.prod(axis=1)
    code = np.where((product != problem.bounds[None, :]).any(axis=1), 1, code)
    fanouts = np.array(arch.fanouts, np.int64)
    code = np.where((code == 0) & (S.prod(axis=2) > fanouts[None, :]).any(axis=1), 2, code)
    caps = level_capacities(arch)
    if analysis is None:
        analysis = analyse_batch(problem, batch)
    code = np.where((code == 0) & (analysis.tile_bytes > caps[None, :]).any(axis=1), 3, code)
    backing = arch.levels[0].capacity_bytes
    if backing is not None and sum(t.bytes for t in problem.op.tensors) > backing * arch.levels[0].instances:
        code = np.where(code == 0, 3, code)             # the operation's tensors exceed the whole memory
    if problem.sequential:
        seq = problem.sequential
        bad = (S[:, :, seq] > 1).any(axis=(1, 2)) | (T[:, 1:, seq] > 1).any(axis=(1, 2))
        top = T[:, 0] > 1
        ranks = batch.R[:, 0]
        for i, a in enumerate(seq):                     # in the given order among themselves...
            for b in seq[i + 1:]:
                bad |= top[:, a] & top[:, b] & (ranks[:, a] > ranks[:, b])
        others = np.setdiff1d(np.arange(problem.D), seq)
        seq_max = np.where(top[:, seq], ranks[:, seq], -1).max(axis=1)
        other_min = np.where(top[:, others], ranks[:, others], problem.D + 1).min(axis=1) if len(others) else \
            np.full(len(batch), problem.D + 1)
        bad |= seq_max > other_min                      # ...and outside every other loop
        code = np.where((code == 0) & bad, 4, code)
    code = np.where((code == 0) & ~batch.keep[:, 0].all(axis=1), 5, code)
    return code


def level_capacities(arch: Architecture) -> np.ndarray:
    """Per-instance capacity of each level for tiles; the outermost level is the backing store, whose
    capacity is checked for the operation as a whole (its data spreads over all its instances)."""
    caps = np.array([float(lvl.capacity_bytes or np.inf) for lvl in arch.levels])
    caps[0] = np.inf
    return caps


__all__ = ["Problem", "MappingBatch", "Analysis", "analyse_batch", "problems_batch", "to_batch", "from_batch",
           "axis_extents", "touched_extents"]
