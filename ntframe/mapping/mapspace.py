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
        self.coef_all = np.concatenate([t.coef for t in tensors]).astype(float)          # [sum A, D]
        self.axis_starts = np.cumsum([0] + [t.coef.shape[0] for t in tensors])[:-1]

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
        order = np.argsort(key, axis=2, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(D)[None, None, :].repeat(order.shape[0], 0)
                          .repeat(order.shape[1], 1), axis=2)
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
    T, S, R, keep = batch.T, batch.S, batch.R, batch.keep
    B, K, D = T.shape
    Tn = len(problem.tensors)
    E = np.ones((B, K + 1, D), np.int64)
    for lvl in range(K - 1, -1, -1):
        E[:, lvl] = E[:, lvl + 1] * T[:, lvl] * S[:, lvl + 1]
    step_of_level = E[:, 1:] * S[:, 1:]                 # [B, K, D]: one step of a level-l loop moves this far
    instances = np.cumprod(S[:, :K].prod(axis=2), axis=1)
    compute_instances = instances[:, -1] * S[:, K].prod(axis=1)
    temporal_steps = T.prod(axis=(1, 2))
    key = np.arange(K)[None, :, None] * (D + 1) + R    # loop order across levels, outermost smallest
    # what one instance of each level covers over the whole operation (its share of every dimension)
    share = problem.bounds[None, None, :] / np.cumprod(S[:, :K], axis=1)
    rows = np.arange(B)
    reads = np.zeros((B, K, Tn))
    fills = np.zeros((B, K, Tn))
    updates = np.zeros((B, K, Tn))
    tile_el = np.zeros((B, K, Tn))
    adds = np.zeros((B, K, Tn))
    for j, t in enumerate(problem.tensors):
        rel = t.relevant
        coef = t.coef.astype(float)
        # loop statistics above every child level c = 1..K; the compute units (c = K) hold no operand between
        # points (as in Timeloop): every temporal step reads its operands again
        stats = {}
        for c in range(1, K + 1):
            Tl, kl = T[:, :c], key[:, :c]
            act = (Tl > 1) & rel[None, None, :]
            masked = np.where(act, kl, -1).reshape(B, -1)
            idx = masked.argmax(axis=1)
            kmax = masked[rows, idx]
            inside = (kl <= kmax[:, None, None]) & (Tl > 1)
            changes = np.where(inside, Tl, 1).prod(axis=(1, 2)).astype(float)
            distinct = np.where(act, Tl, 1).prod(axis=(1, 2)).astype(float)
            lstar, dstar = idx // D, idx % D
            bstar = Tl.reshape(B, -1)[rows, idx].astype(float)
            step = step_of_level[rows, lstar, dstar]
            if c == K:
                changes = temporal_steps.astype(float)
                kmax = np.full(B, -1)
            stats[c] = (changes, distinct, kmax >= 0, dstar, bstar, step)

        def moved(c: int, X: np.ndarray) -> np.ndarray:
            """Elements brought in over all changes of a tile with extents X[B, D] below loops 0..c-1:
            the whole tile at each change, less what the previous tile along the innermost moving loop shares
            (sliding windows)."""
            changes, _, has, dstar, bstar, step = stats[c]
            ext = axis_extents(X.astype(float), coef)                          # [B, A]
            cstar = t.coef[:, dstar].T                                         # [B, A]
            shift = cstar * step[:, None]
            overlap = np.where(cstar > 0, np.clip(ext - shift, 0, None) / ext, 1.0).prod(axis=1)
            overlap = np.where((cstar > 0).any(axis=1), overlap, 0.0)
            new = 1.0 - overlap
            eff = np.where(has, changes / bstar * (1 + (bstar - 1) * new), changes)
            return eff * ext.prod(axis=1)

        kept = keep[:, :, j]
        # elements an instance of each level touches for the first time: an accumulated element's first
        # update needs no read (partial sums start at zero)
        first = np.prod(axis_extents(share, coef), axis=2)                 # [B, K]
        for c in range(1, K + 1):
            child_kept = kept[:, c] if c < K else np.ones(B, bool)
            Xc = E[:, c]
            child_moved = moved(c, Xc)
            for a in range(c - 1, -1, -1):
                between = np.ones(B, bool)
                for m in range(a + 1, c):
                    between &= ~kept[:, m]
                active = child_kept & kept[:, a] & between
                if not active.any():
                    continue
                # children with different data each get their tile; identical tiles go once (multicast)
                siblings = np.where(rel[None, None, :], S[:, a + 1:c + 1], 1).prod(axis=(1, 2))
                served = np.where(active, child_moved * siblings, 0.0)
                if t.role == READ:
                    reads[:, a, j] += served
                elif t.role == ACCUMULATE:
                    updates[:, a, j] += served
                    reads[:, a, j] += np.where(active, np.clip(served - first[:, a], 0, None), 0.0)
                    # each element arriving combines the partial sums of the children that split a reduction
                    fan_in = np.where(rel[None, None, :], 1, S[:, a + 1:c + 1]).prod(axis=(1, 2))
                    adds[:, a, j] += served * (fan_in - 1)
                elif t.role == READWRITE:
                    reads[:, a, j] += served
                    updates[:, a, j] += served
                else:
                    updates[:, a, j] += served
                if c < K:
                    own = np.where(active, child_moved, 0.0)
                    if t.role in (READ, READWRITE):
                        fills[:, c, j] += own
                    elif t.role == ACCUMULATE:
                        fills[:, c, j] += np.where(active, np.clip(own - first[:, c], 0, None), 0.0)
    tile_el = np.where(keep, problem.extents(E[:, :K].astype(float)), 0)
    runs = np.ones((B, Tn))
    for j, t in enumerate(problem.tensors):
        kept_below = np.concatenate([keep[:, 1:, j], np.ones((B, 1), bool)], axis=1)     # levels 1..K-1, compute
        child = kept_below.argmax(axis=1) + 1                                            # nearest kept child
        X = E[rows, child].astype(float)                                                 # its tile
        ext = np.minimum(axis_extents(X, t.coef.astype(float)), problem.op.tensors[j].shape)
        run = np.ones(B)
        partial = np.zeros(B, bool)
        for a in range(ext.shape[1] - 1, -1, -1):        # trailing full axes join into one run
            run = np.where(partial, run, run * ext[:, a])
            partial |= ext[:, a] < problem.op.tensors[j].shape[a]
        runs[:, j] = run
    tile_bytes = np.ceil(tile_el * problem.bits[None, None, :] / 8).sum(axis=2)
    vault_rep = np.stack([np.where(t.relevant[None, :], 1, S[:, 0]).prod(axis=1) for t in problem.tensors], 1)
    return Analysis(reads, fills, updates, tile_el, tile_bytes, instances, compute_instances, temporal_steps,
                    runs, vault_rep, adds)


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
