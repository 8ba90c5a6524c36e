"""The bounded search: every spatial structure of an operation bounded from below, the promising ones mapped
level by level, the answer certified against the bounds of the structures left unmapped.

A *structure* is a spatial split of every fan-out row and a keep/bypass choice for every level and tensor. Its
*relaxed mapping* puts every temporal loop at the innermost storage level and ignores the capacities; a cost
model that can price relaxed mappings in closed form (:meth:`ntframe.components.CostModel.bounds`, a
:class:`ntframe.components.StructureBounds`) gives a lower bound of every mapping of the structure (moving a
temporal loop inward never adds an access in the reuse analysis), and a tighter one that adds the off-chip
re-fetches the capacities force (its ``penalty``). The search:

1. enumerates every structure the fan-outs and constraints allow and bounds all of them at once;
2. takes them best bound first (the tighter bound computed lazily, only for the structures reached), and maps
   each: innermost level first, every capacity-maximal tile of that level (a bigger tile that fits never costs
   more) with the loops outside it relaxed onto the next level out and ordered by each permutation of the
   dimensions' relevance classes, priced by the cost model, the best few kept (a beam) for the next level out;
3. stops when no structure left has a bound more than ``TOLERANCE`` (0.5 %) below the best mapping found (the
   answer is then optimal over the structures within that share, up to the per-structure mapping), or when the
   evaluation budget or the time cap ends it; the smallest bound left is reported, so the answer's distance
   from the optimum is bounded;
4. polishes the best mapping, then the ones it replaced (``STARTS``), by steepest descent over
   :meth:`~ntframe.mapping.space.Space.neighbours` (a prime factor moved between any two slots, two exchanged, a
   loop made innermost or outermost, a keep bit flipped) with what is left of the budget (at least ``POLISH``);
5. if the answer is not certified, spends the rest of the budget on an iterated descent from it: kicks of a few
   random changes (a generator with a fixed seed), each followed by a descent, kept when no worse.

Nothing here depends on chance (the kicks' generator has a fixed seed): the same operation, architecture,
constraints, budget and incumbent give the same mapping. Ties go to the structure enumerated first, then to the
candidate generated first.

Speed, the same answers: the queue holds one entry per chunk of structures (the next of the chunk is queued
when one leaves, with the arrival number it would have had: the same order); a chunk combines its structures'
relaxed prices over the keep patterns at once; a level's tiles are memoised per (level, tile below, share, kept
tensors) and, with numba (the ``fast`` extra), found by a compiled kernel (:mod:`ntframe.mapping.bound_kernels`,
``NTFRAME_JIT=0`` turns it off).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Collection
from dataclasses import dataclass
import numpy as np

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.jit import OptionalKernel, clock
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapspace import MappingBatch, Problem, level_capacities
from ntframe.mapping.space import IDLE_KICKS, KICK, Outcome, Shortlist, Space, objective_value, prime_factors

KERNELS = OptionalKernel("ntframe.mapping.bound_kernels", "the bounded search's compiled tiles", "numpy's tiles")
"""The compiled tiles (:func:`ntframe.mapping.bound_kernels.level_tiles`), optional (:mod:`ntframe.jit`)."""
EXPAND = 4
"""Partial mappings expanded at most per level of the per-structure search."""
ORDERS = 24
"""Most permutations of the relevance classes tried as a level's loop order."""
BOXES = 1 << 40
"""Tiles' boxes counted as products of integers below this many elements (:meth:`Problem.extents`' sums of
logarithms, rounded, give the same integers: their error is some 1e-13 of the box), else by that method."""


@dataclass
class Bounded(Outcome):
    """What the bounded search found: an :class:`~ntframe.mapping.space.Outcome` and how far the bounds went."""

    structures: int = 0                 # structures (spatial split and keep pattern) bounded
    mapped: int = 0                     # of which mapped
    lower_bound: float = 0.0            # smallest bound (objective units) among the structures left unmapped


@functools.lru_cache(maxsize=4096)
def _prime_powers(n: int) -> tuple[tuple[int, int], ...]:
    """``n``'s prime factors with their exponents, the primes in increasing order (as :class:`Tiles` pairs them)."""
    counts: dict[int, int] = {}
    for p in prime_factors(n):
        counts[p] = counts.get(p, 0) + 1
    return tuple(sorted(counts.items()))


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _factor_ok(value: np.ndarray, rule: tuple[int, int] | None) -> np.ndarray:
    if rule is None:
        return np.ones(value.shape, bool)
    lo, hi = rule
    return (value >= lo) & (value <= hi) & (value % lo == 0)


class Structures:
    """Every spatial split (one vector per fan-out row) and keep pattern an operation may use on an
    architecture under constraints."""

    def __init__(self, problem: Problem, arch: Architecture, c: Constraints) -> None:
        K, D, Tn = len(arch.levels), problem.D, len(problem.tensors)
        bounds = [int(b) for b in problem.bounds]
        seq = set(problem.sequential)
        names = [lvl.name for lvl in arch.levels] + [arch.compute.name]
        vecs: list[np.ndarray] = []             # per fan-out row, its factor vectors
        picks: list[np.ndarray] = []            # per row, the vector of each split so far
        total = np.ones((1, D), np.int64)       # per split so far, its rows' product
        for row, fan in enumerate(arch.fanouts):
            dims = [d for d in range(D) if fan > 1 and d not in seq and (row not in c.spatial or d in c.spatial[row])]
            options = _row_options([bounds[d] for d in dims], fan)
            vec = np.ones((len(options), D), np.int64)
            if dims:
                vec[:, dims] = options
            for (slot, d), rule in sorted(c.factors.items()):
                if slot == K + row:
                    vec = vec[_factor_ok(vec[:, d], rule)]
                    if not len(vec):
                        raise MappingError(f"the factor of {problem.dims[d]} ({rule[0]}) at the fan-out into "
                                           f"{names[row]} cannot be placed: the mapper's or the architecture's "
                                           f"constraints keep {problem.dims[d]} out of that fan-out, or its bound "
                                           f"{bounds[d]} or the fan-out {fan} lacks the factor")
            a, b = np.nonzero(_divide(np.array(bounds)[None, :] // total, vec))
            picks = [pick[a] for pick in picks] + [b]
            vecs.append(vec)
            total = total[a] * vec[b]
        self.spatial = np.stack([vec[pick] for vec, pick in zip(vecs, picks)], axis=1) if vecs \
            else np.ones((1, 0, D), np.int64)                       # [n, K+1, D]
        free = [(lvl, t) for lvl in range(1, K) for t in range(Tn) if (lvl, t) not in c.keep]
        keeps = np.ones((2 ** len(free), K, Tn), bool)
        for (lvl, t), value in c.keep.items():
            keeps[:, lvl, t] = value
        for i, bits in enumerate(itertools.product((True, False), repeat=len(free))):
            for (lvl, t), bit in zip(free, bits):
                keeps[i, lvl, t] = bit
        self.keeps = keeps                                           # [P, K, Tn]

    def __len__(self) -> int:
        return len(self.spatial) * len(self.keeps)


def _divide(left: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """[n, m]: every vector of ``vec`` [m, D] divides the vector of ``left`` [n, D] (what the rows above leave of
    the bounds), dimension by dimension; from a table of the few distinct values of each dimension."""
    ok = np.ones((len(left), len(vec)), bool)
    for d in range(left.shape[1]):
        factors, which = np.unique(vec[:, d], return_inverse=True)
        if len(factors) == 1 and factors[0] == 1:
            continue
        rests, where = np.unique(left[:, d], return_inverse=True)
        ok &= (rests[:, None] % factors[None, :] == 0)[where][:, which]
    return ok


def _row_options(bounds: list[int], fanout: int) -> np.ndarray:
    """Every vector of factors (one dividing each bound) whose product is at most ``fanout``."""
    out: list[tuple[int, ...]] = []
    divisors = [[f for f in _divisors(b) if f <= fanout] for b in bounds]

    def rec(i: int, acc: tuple[int, ...], product: int) -> None:
        if i == len(bounds):
            out.append(acc)
            return
        for f in divisors[i]:
            if product * f > fanout:
                break
            rec(i + 1, acc + (f,), product * f)
    rec(0, (), 1)
    return np.array(out, np.int64).reshape(len(out), len(bounds))


class Tiles:
    """Tiles of one level under a parent: every vector ``base * t`` with ``t`` dividing ``room`` per dimension,
    as exponent codes so that the capacity-maximal ones are found with array operations."""

    def __init__(self, room: np.ndarray) -> None:
        self.pairs: list[tuple[int, int, int]] = []          # (dimension, prime, largest exponent)
        for d, r in enumerate(room):
            counts: dict[int, int] = {}
            for p in prime_factors(int(r)):
                counts[p] = counts.get(p, 0) + 1
            self.pairs += [(d, p, e) for p, e in sorted(counts.items())]
        self.radix = np.cumprod([1] + [e + 1 for _, _, e in self.pairs[:-1]]).astype(np.int64)
        self._present = np.zeros(int(np.prod([e + 1 for _, _, e in self.pairs])) + 1, bool)

    def grid(self, D: int) -> tuple[np.ndarray, np.ndarray]:
        """(factors t [m, D], exponent codes [m])."""
        if not self.pairs:
            return np.ones((1, D), np.int64), np.zeros(1, np.int64)
        exps = np.indices([e + 1 for _, _, e in self.pairs]).reshape(len(self.pairs), -1).T
        t = np.ones((len(exps), D), np.int64)
        for k, (d, p, _) in enumerate(self.pairs):
            t[:, d] *= p ** exps[:, k]
        return t, exps @ self.radix

    def maximal(self, codes: np.ndarray, free: Collection[int] = ()) -> np.ndarray:
        """Of the tiles with ``codes`` (those that fit), the ones no other fitting tile multiplies by a prime of a
        dimension not in ``free`` (tiles differing only there are all kept)."""
        if not self.pairs:
            return np.ones(len(codes), bool)
        present = self._present
        present[codes] = True
        keep = np.ones(len(codes), bool)
        for k, (d, p, e) in enumerate(self.pairs):
            if d in free:
                continue
            grow = (codes // self.radix[k]) % (e + 1) < e
            keep[grow] &= ~present[codes[grow] + self.radix[k]]
        present[codes] = False
        return keep


class _Mapper:
    """Maps one structure level by level (innermost first), scoring partial mappings by the cost model with
    the loops not yet placed relaxed onto the next level out."""

    def __init__(self, problem: Problem, arch: Architecture, c: Constraints, evaluate, objective: str,
                 shortlist: Shortlist | None = None) -> None:
        self.p, self.arch, self.c, self.evaluate, self.objective = problem, arch, c, evaluate, objective
        self.shortlist = shortlist
        self.K, self.D = len(arch.levels), problem.D
        self.caps = level_capacities(arch)
        self.bits8 = problem.bits / 8
        self.priced = 0
        self.valid = 0
        classes: dict[tuple[bool, ...], list[int]] = {}
        for d in range(problem.D):
            classes.setdefault(tuple(bool(t.relevant[d]) for t in problem.tensors), []).append(d)
        self.class_orders = [[d for ci in perm for d in list(classes.values())[ci]]
                             for perm in itertools.islice(itertools.permutations(range(len(classes))), ORDERS)]
        self.seq = list(problem.sequential)
        self._orders: dict[tuple, np.ndarray] = {}
        self._mask_orders: dict[tuple[int, int], np.ndarray] = {}
        self._tiles: dict[tuple, np.ndarray] = {}
        self._level_rules: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # a dimension alone on a tensor axis with a stride (a pooling's scatter, a 1x1 strided convolution): its
        # tiles' bounding boxes hold gaps, so a bigger tile can fetch more; every tile along it is tried
        self.gaps = {int(np.flatnonzero(row)[0]) for t in problem.tensors for row in t.coef
                     if np.count_nonzero(row) == 1 and row.max() > 1}
        # for the compiled tiles: the dimensions free of the maximality, the terms of every tensor axis; numpy's
        # where a tensor has no axes (Problem.extents' sums then span the next tensor's) or a coefficient is
        # negative (a bigger tile could have a smaller box)
        starts = [int(s) for s in problem.axis_starts]
        ends = starts[1:] + [len(problem.coef_int)]
        terms = [(d, int(row[d])) for row in problem.coef_int for d in np.flatnonzero(row)]
        self._tile_args = (np.array([d in self.gaps for d in range(self.D)]),
                           np.cumsum([0] + [np.count_nonzero(row) for row in problem.coef_int]).astype(np.int64),
                           np.array([d for d, _ in terms], np.int64), np.array([c for _, c in terms], np.int64),
                           np.array([starts, ends], np.int64).T.copy(), np.asarray(self.bits8, float)) \
            if all(s < e for s, e in zip(starts, ends)) and (problem.coef_int >= 0).all() else None

    # --- pricing ---------------------------------------------------------------------------------------
    def value(self, T: np.ndarray, S: np.ndarray, R: np.ndarray, keep: np.ndarray) -> np.ndarray:
        n = len(T)
        out = np.empty(n)
        for lo in range(0, n, 16384):
            hi = min(n, lo + 16384)
            batch = MappingBatch(T[lo:hi], np.repeat(S[None], hi - lo, 0), R[lo:hi],
                                 np.repeat(keep[None], hi - lo, 0)).canonical()
            energy, cycles = self.evaluate(self.p, batch)
            out[lo:hi] = objective_value(self.objective, energy, cycles)
        self.priced += n
        return out

    def tile_bytes(self, E: np.ndarray, keep_level: np.ndarray) -> np.ndarray:
        """Bytes of the tiles E [m, D] of a level that keeps ``keep_level`` [Tn]: each tensor's bounding box
        (:meth:`Problem.extents`), rounded up to whole bytes. The boxes as products of integers, which are what
        :meth:`Problem.extents` rounds its sums of logarithms to below ``BOXES`` elements."""
        boxes = self.boxes(E)
        if len(boxes) and boxes.max() >= BOXES:
            boxes = self.p.extents(E.astype(float))
        return np.where(keep_level[None], np.ceil(boxes * self.bits8[None]), 0).sum(axis=1)

    def boxes(self, E: np.ndarray) -> np.ndarray:
        """Each tensor's bounding box over the tiles E [m, D], in elements: [m, Tn] integers."""
        return np.multiply.reduceat((E - 1) @ self.p.coef_int.T + 1, self.p.axis_starts, axis=1)

    # --- orders ----------------------------------------------------------------------------------------
    def orders(self, level: int, nonunit: tuple[int, ...]) -> np.ndarray:
        """Rank vectors [n, D] (0 = outermost; D for absent loops) of the loop orders tried at ``level`` for the
        dimensions ``nonunit``: the relevance-class permutations, time steps outermost at level 0, pinned loops
        innermost; duplicates removed (memoised)."""
        key = (level, nonunit)
        if key not in self._orders:
            pinned = [d for d in self.c.innermost.get(level, []) if d in nonunit]
            seq = [d for d in self.seq if d in nonunit] if level == 0 else []
            seen: dict[tuple[int, ...], None] = {}
            for order in self.class_orders:
                seen[tuple(seq + [d for d in order if d in nonunit and d not in pinned and d not in seq] + pinned)] = None
            ranks = np.full((len(seen), self.D), self.D, np.int64)
            for i, o in enumerate(seen):
                ranks[i, list(o)] = np.arange(len(o))
            self._orders[key] = ranks
        return self._orders[key]

    # --- the level beam --------------------------------------------------------------------------------
    def mask_orders(self, level: int, mask: int) -> np.ndarray:
        """:meth:`orders` of the dimensions whose bits are set in ``mask`` (the first dimension most significant)
        (memoised)."""
        key = (level, mask)
        got = self._mask_orders.get(key)
        if got is None:
            got = self._mask_orders[key] = self.orders(level, tuple(d for d in range(self.D)
                                                                    if mask >> (self.D - 1 - d) & 1))
        return got

    def tiles(self, level: int, below: np.ndarray, share: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Capacity-maximal tiles of ``level`` (every size along a strided dimension with gaps): multiples of
        ``below`` (the tile under it with the spatial split into it) dividing ``share`` (what one instance
        covers), whose loops at ``level`` obey the constraints (memoised: the structures a search maps share many;
        the array returned is read-only)."""
        key = (level, below.tobytes(), share.tobytes(), keep[level].tobytes())
        got = self._tiles.get(key)
        if got is None:
            got = self._tiles[key] = self._new_tiles(level, below, share, keep)
            got.flags.writeable = False
        return got

    def _new_tiles(self, level: int, below: np.ndarray, share: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """:meth:`tiles`, not memoised: by the compiled kernel where there is one and the boxes are small enough
        to count as integers, else by numpy."""
        kernels = KERNELS.get()
        if kernels is not None and self._tile_args is not None and self.boxes(share[None]).max() < BOXES:
            try:
                return self._compiled_tiles(kernels, level, below, share // below, keep[level])
            except Exception as exc:    # an optional accelerator (compiled on first use) must not cost results
                KERNELS.failed(exc)
        room = share // below
        tiles = Tiles(room)
        t, codes = tiles.grid(self.D)
        ok = np.ones(len(t), bool)
        for d in range(self.D):
            allowed = (d not in self.seq or level == 0) and (d not in self.c.temporal or level in self.c.temporal[d])
            if not allowed:
                ok &= t[:, d] == 1
            ok &= _factor_ok(t[:, d], self.c.factors.get((level, d)))
        E = below[None] * t
        ok &= self.tile_bytes(E, keep[level]) <= self.caps[level]
        t, codes, E = t[ok], codes[ok], E[ok]
        return E[tiles.maximal(codes, self.gaps)]

    def _compiled_tiles(self, kernels, level: int, below: np.ndarray, room: np.ndarray,
                        keep_level: np.ndarray) -> np.ndarray:
        """:meth:`_new_tiles` by :func:`ntframe.mapping.bound_kernels.level_tiles` (the same tiles in the same
        order)."""
        pairs = [(d, p, e) for d, r in enumerate(room.tolist()) for p, e in _prime_powers(r)]
        dims, primes, exps = (np.array([pair[i] for pair in pairs], np.int64).reshape(len(pairs)) for i in range(3))
        radix = np.cumprod(np.concatenate([[1], exps[:-1] + 1])).astype(np.int64) if pairs else exps
        if level not in self._level_rules:
            fixed = np.array([not ((d not in self.seq or level == 0)
                                   and (d not in self.c.temporal or level in self.c.temporal[d]))
                              for d in range(self.D)])
            rules = [self.c.factors.get((level, d)) or (0, 0) for d in range(self.D)]
            self._level_rules[level] = (fixed, np.array([lo for lo, _ in rules], np.int64),
                                        np.array([hi for _, hi in rules], np.int64))
        return kernels.level_tiles(np.ascontiguousarray(below, np.int64), dims, primes, exps, radix,
                                   *self._level_rules[level], *self._tile_args, np.ascontiguousarray(keep_level, bool),
                                   float(self.caps[level]))

    def map(self, S: np.ndarray, keep: np.ndarray, cutoff: float = math.inf,
            expand: int = EXPAND) -> tuple[float, np.ndarray, np.ndarray] | None:
        """The best mapping of the structure found: (value, T [K, D], R [K, D]), or None if nothing fits or
        nothing beats ``cutoff``. Two depth-first passes over the storage levels, one from the innermost out and
        one from the outermost in: at each level every capacity-maximal tile (a bigger tile that fits never costs
        more) under every loop order of the loops it leaves outside, scored with the loops not yet placed relaxed
        (onto the next level out, or into the innermost level: a lower bound of what placing them costs), taken
        best first, at most ``expand`` of them, until the score reaches the best complete mapping found (or
        ``cutoff``). The two passes are blind to different capacities (the inward one to the levels above, the
        outward one to those below)."""
        K, D = self.K, self.D
        share = [self.p.bounds // np.prod(S[:lvl + 1], axis=0) for lvl in range(K)]
        below = [np.prod(S[lvl + 1:], axis=0) for lvl in range(K)]      # spatial splits under each level
        T0 = np.ones((K, D), np.int64)
        T0[K - 1] = share[K - 1] // S[K]
        R0 = np.full((K, D), D, np.int64)
        best: list = [cutoff, None, None]
        bit_values = 1 << np.arange(D - 1, -1, -1)
        if K == 1:                                         # one storage level: everything at level 0
            R0[0] = self.orders(0, tuple(np.flatnonzero(T0[0] > 1)))[0]
            value = self._complete(T0[None], S, R0[None], keep)[0]
            return (float(value), T0, self._final_ranks(R0, T0)) if value < cutoff else None

        def candidates(level: int, order_level: int, T: np.ndarray, R: np.ndarray, E: np.ndarray,
                       inner: np.ndarray, outer: np.ndarray):
            """Tiles E of ``level`` with the loops T, each under every order of ``order_level``'s loops."""
            Tn = np.repeat(T[None], len(E), 0)
            Tn[:, level] = inner
            Tn[:, order_level] = outer
            # the sets of dimensions looping at order_level, in lexicographic order of their masks (the first
            # dimension most significant), as the bits of one number each; the tiles of each set in their order,
            # each under every order of the set
            masks = (outer > 1).astype(np.int64) @ bit_values
            unique, inverse = np.unique(masks, return_inverse=True)
            tables = [self.mask_orders(order_level, mask) for mask in unique.tolist()]
            counts = np.array([len(table) for table in tables])
            rows = np.argsort(inverse, kind="stable")
            per_row = counts[inverse[rows]]
            total = int(per_row.sum())
            at = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)      # order within the set
            order_row = np.repeat((np.cumsum(counts) - counts)[inverse[rows]], per_row) + at
            pick = np.repeat(rows, per_row)
            Rn = np.repeat(R[None], total, 0)
            Rn[:, order_level] = (np.concatenate(tables) if len(tables) > 1 else tables[0])[order_row]
            return Tn[pick], Rn, E[pick]

        def take(values, CT, CR, complete: bool):
            """The candidates in order while they can beat the best; a complete one ends the level."""
            for i in np.argsort(values, kind="stable")[:expand]:
                if not values[i] < best[0]:
                    return
                if complete:
                    best[:] = [float(values[i]), CT[i], self._final_ranks(CR[i], CT[i])]
                    return
                yield i

        def inward(level: int, T: np.ndarray, R: np.ndarray, inner: np.ndarray) -> float:
            """Tile of ``level`` (from the innermost), the loops outside it relaxed one level out; returns the
            smallest score (a lower bound of the structure's mappings when ``level`` is the innermost)."""
            base = inner if level == K - 1 else inner * S[level + 1]      # the tile under it, split into it
            E = self.tiles(level, base, share[level], keep)
            if not len(E):
                return math.inf
            CT, CR, CE = candidates(level, level - 1, T, R, E, E // base, share[level - 1] // (E * S[level]))
            values = self._complete(CT, S, CR, keep) if level == 1 else self.value(CT, S, CR, keep)
            for i in take(values, CT, CR, level == 1):
                inward(level - 1, CT[i], CR[i], CE[i])
            return float(values.min())

        def outward(level: int, T: np.ndarray, R: np.ndarray, parent: np.ndarray) -> None:
            """Tile of ``level`` (from the outermost on-chip level), the loops inside it relaxed into the
            innermost level; ``parent``: the tile of the level above."""
            E = self.tiles(level, below[level], parent // S[level], keep)
            if not len(E):
                return
            T = T.copy()
            T[level:K] = 1
            CT, CR, CE = candidates(K - 1, level - 1, T, R, E, E // below[level], parent // (E * S[level]))
            values = self._complete(CT, S, CR, keep) if level == K - 1 else self.value(CT, S, CR, keep)
            for i in take(values, CT, CR, level == K - 1):
                outward(level + 1, CT[i], CR[i], CE[i])

        if inward(K - 1, T0, R0, S[K].copy()) < best[0]:       # else nothing of the structure can beat cutoff
            outward(1, T0, R0, share[0])
        return None if best[1] is None else (best[0], best[1], best[2])

    def _complete(self, T: np.ndarray, S: np.ndarray, R: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Values of complete mappings; those breaking a level-0 constraint are infinite."""
        ok = np.ones(len(T), bool)
        for d in range(self.D):
            ok &= _factor_ok(T[:, 0, d], self.c.factors.get((0, d)))
            if d in self.c.temporal and 0 not in self.c.temporal[d]:
                ok &= T[:, 0, d] == 1
        values = np.full(len(T), np.inf)
        if ok.any():
            values[ok] = self.value(T[ok], S, R[ok], keep)
            self.valid += int(ok.sum())
        if self.shortlist is not None:
            self.shortlist.offer(values, lambda idx: MappingBatch(
                T[idx], np.repeat(S[None], len(idx), 0), np.array([self._final_ranks(R[i], T[i]) for i in idx]),
                np.repeat(keep[None], len(idx), 0)), T)
        return values

    def _final_ranks(self, R: np.ndarray, T: np.ndarray) -> np.ndarray:
        """The innermost level's order prices nothing: its pinned loops go innermost, in their order."""
        level = self.K - 1
        pinned = [d for d in self.c.innermost.get(level, []) if T[level, d] > 1]
        rest = [d for d in range(self.D) if T[level, d] > 1 and d not in pinned]
        R = R.copy()
        R[level] = self.D
        R[level, rest + pinned] = np.arange(len(rest) + len(pinned))
        return R


class _Chunk:
    """Structures whose relaxed prices are computed together (``idx``: their indices, ``parts``: the bounds'
    :meth:`parts` of them), queued one at a time: each by its floor, the next of the chunk (by floor, then
    position) queued when it leaves the queue. Its entries carry the arrival numbers ``first_tick + k``, as if the
    whole chunk had been queued at once: the queue gives the same entries in the same order, but stays small."""

    def __init__(self, idx: np.ndarray, parts, floor: np.ndarray, first_tick: int) -> None:
        self.idx, self.parts, self.first_tick = idx, parts, first_tick
        self.floor = floor.tolist()
        self.order = np.argsort(floor, kind="stable").tolist()
        self.queued = 0
        self._combined: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def push_next(self, heap: list, chunk: int) -> None:
        """Queue the chunk's next structure, if any (``chunk``: the chunk's number)."""
        if self.queued < len(self.order):
            k = self.order[self.queued]
            self.queued += 1
            heapq.heappush(heap, (self.floor[k], self.first_tick + k, STRUCT, chunk, k, 0.0, 0.0))

    def combined(self, bounder, keeps: np.ndarray, score, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The bounds' relaxed energy, cycles and objective value of structure ``k`` under every keep pattern [P]
        each: computed when first needed for the whole chunk at once (the same figures per structure; the search
        asks for a few dozen of a chunk's structures), or for the structure alone if that is more than
        ``COMBINED`` figures (an operation with many tensors, so many patterns)."""
        size = len(self.idx) if len(self.idx) * len(keeps) <= COMBINED else 1
        block = k // size
        if block not in self._combined:
            lo, hi = block * size, min(len(self.idx), block * size + size)
            energy, cycles = bounder.combine({key: v[..., lo:hi] for key, v in self.parts.items()}
                                             if (lo, hi) != (0, len(self.idx)) else self.parts, keeps)
            self._combined[block] = (energy, cycles, score(energy, cycles))
        energy, cycles, value = self._combined[block]
        return energy[k % size], cycles[k % size], value[k % size]


TOLERANCE = 0.005
"""The search stops once no structure left can beat the best mapping found by more than this share."""
STRUCT, PATTERN, TIGHT = 0, 1, 2
CHUNK = 1024
"""Structures whose relaxed prices are computed together (in the order of their cheap floors)."""
COMBINED = 1 << 17
"""Prices of structures under keep patterns that a chunk combines at once at most (else one structure at a
time)."""
POLISH = 0.25
"""Share of the evaluation budget kept for the final descents."""
KICK_SEED = 0
"""The seed of the kicks' generator in the iterated descent of a search not certified."""
STARTS = 4
"""Final descents at most: from the best mapping found, then from the mappings it improved on (other
structures), while budget is left."""


def bounded_search(problem: Problem, arch: Architecture, bounder, evaluate, *, evaluations: int, seconds: float,
                   objective: str = "edp", constraints: Constraints | None = None,
                   tolerance: float = TOLERANCE, incumbent: MappingBatch | None = None,
                   shortlist: Shortlist | None = None) -> Bounded:
    """The best mapping of ``problem`` by ``objective`` (see the module docstring). ``bounder`` is a cost model's
    :meth:`~ntframe.components.CostModel.bounds`; ``evaluate`` prices batches with the same cost model
    (:func:`ntframe.mapping.search.batch_evaluator`).

    Three bounds, each tighter and dearer than the last, are computed lazily in a best-first queue: a floor from
    the spatial factors alone (every structure), the relaxed price of a structure under its best keep pattern
    (a chunk of structures at a time), then under each keep pattern (one structure at a time). A structure and
    keep pattern reached at the head of the queue is mapped. ``incumbent`` (a mapping of length 1, e.g. a short
    sampling search's) starts the search as its best mapping, so that structures whose bounds are loose cannot
    end it with a worse one; its evaluation counts in the budget. ``shortlist`` is offered every complete mapping
    priced."""
    c = constraints or Constraints()
    start = clock()
    structures = Structures(problem, arch, c)
    S, keeps = structures.spatial, structures.keeps
    n, P = len(S), len(keeps)
    if not n:
        raise MappingError(f"no spatial split of {problem.op.name} satisfies the fan-outs and constraints")

    def score(energy, cycles):
        return objective_value(objective, energy, cycles)

    cycles_floor = bounder.cycles_floor(S)
    cheap = score(np.full(n, bounder.floor_energy_pJ), cycles_floor)
    cheap_order = np.argsort(cheap, kind="stable")
    cheap_sorted = cheap[cheap_order].tolist()
    mapper = _Mapper(problem, arch, c, evaluate, objective, shortlist)
    heap: list[tuple[float, int, int, int, int, float, float]] = []
    tick = 0                                        # arrivals in the queue, in order: ties go to the first
    chunks: list[_Chunk] = []
    where: dict[int, tuple[int, int]] = {}          # structure -> (chunk, row in its parts)
    best: tuple[float, MappingBatch] | None = None
    if incumbent is not None:
        best = (float(score(*evaluate(problem, incumbent))[0]), incumbent)
    improvements = [best] if best is not None else []
    pos, mapped, truncated = 0, 0, False
    while True:
        next_cheap = cheap_sorted[pos] if pos < n else math.inf
        head = heap[0][0] if heap else math.inf
        left = min(next_cheap, head)
        if best is not None and left >= best[0] * (1 - tolerance) or left == math.inf:
            break
        if best is not None and (mapper.priced >= evaluations * (1 - POLISH) or clock() - start > seconds):
            truncated = clock() - start > seconds
            break
        if next_cheap < head:
            idx = cheap_order[pos:pos + CHUNK]
            pos += len(idx)
            parts = bounder.parts(S[idx])
            chunks.append(_Chunk(idx, parts, score(*bounder.floor(parts, keeps)), tick))
            tick += len(idx)
            chunks[-1].push_next(heap, len(chunks) - 1)
            continue
        bound, _, kind, a, b, energy_lb, cycles_lb = heapq.heappop(heap)
        if kind == STRUCT:
            chunk = chunks[a]
            chunk.push_next(heap, a)
            i = int(chunk.idx[b])
            where[i] = (a, b)
            energy, cycles, value = chunk.combined(bounder, keeps, score, b)
            per_pattern = np.maximum(value, bound)      # [P]; the structure's floor holds too
            limit = best[0] * (1 - tolerance) if best is not None else math.inf
            chosen = np.flatnonzero(per_pattern < limit)
            for p, pattern_bound, e, cy in zip(chosen.tolist(), per_pattern[chosen].tolist(),
                                               energy[chosen].tolist(), cycles[chosen].tolist()):
                heapq.heappush(heap, (pattern_bound, tick, PATTERN, i, p, e, cy))
                tick += 1
            continue
        if kind == PATTERN:
            chunk_index, k = where[a]
            extra = bounder.penalty(chunks[chunk_index].parts, k, S[a], keeps[b])
            tight = float(score(energy_lb + extra, cycles_lb))
            heapq.heappush(heap, (max(tight, bound), tick, TIGHT, a, b, energy_lb + extra, cycles_lb))
            tick += 1
            continue
        found = mapper.map(S[a], keeps[b], best[0] * (1 - tolerance) if best is not None else math.inf)
        mapped += 1
        if found is not None and (best is None or found[0] < best[0]):
            best = (found[0], MappingBatch(found[1][None], S[a][None], found[2][None], keeps[b][None]).canonical())
            improvements.append(best)
    if best is None:
        raise MappingError(f"no mapping of {problem.op.name} fits the architecture under the constraints "
                           f"({mapped} of {n * P:,} structures mapped)")
    space = Space(problem, arch, c)
    priced, answer = int(incumbent is not None), (math.inf, None)
    for value, batch in improvements[::-1][:STARTS]:               # the best first, then the runners-up
        left_over = max(0, evaluations - mapper.priced - priced)
        if answer[1] is not None and (not left_over or clock() > start + seconds):
            break
        value, batch, spent = _descend(space, batch, value, evaluate, score, left_over, start + seconds, shortlist)
        priced += spent
        if value < answer[0]:
            answer = (value, batch)
    if left < answer[0] * (1 - tolerance):           # not certified: the rest of the budget to iterated descents
        value, batch, spent = _iterate(space, answer[1], answer[0], evaluate, score,
                                       max(0, evaluations - mapper.priced - priced), start + seconds, shortlist)
        priced += spent
        answer = (value, batch)
    batch = answer[1]
    e, cy = evaluate(problem, batch)
    return Bounded(batch, float(e[0]), float(cy[0]), mapper.priced + priced, mapper.valid + priced, truncated,
                   {"relaxed (a level's outer loops one level out)": mapper.priced - mapper.valid},
                   structures=n * P, mapped=mapped, lower_bound=left)


def _descend(space: Space, batch: MappingBatch, value: float, evaluate, score, budget: int,
             deadline: float, shortlist: Shortlist | None = None) -> tuple[float, MappingBatch, int]:
    """Steepest descent from ``batch`` over :meth:`Space.neighbours` (one factor moved between any two slots,
    spatial ones included, two factors exchanged, a loop made innermost or outermost, a keep bit flipped) while
    it improves and the budget lasts: (its value, the best mapping, mappings priced)."""
    A, O, keep = space.encode(batch)
    seen = set(batch.keys())
    priced = 0
    while priced < budget and clock() < deadline:
        NA, NO, NK = space.neighbours(A, O, keep)
        fit = space.fits(NA, NK)
        NA, NO, NK = NA[fit], NO[fit], NK[fit]
        cand = space.decode(NA, NO, NK)
        fresh = [i for i, k in enumerate(cand.keys()) if k not in seen and not seen.add(k)]  # type: ignore[func-returns-value]
        fresh = fresh[:budget - priced]
        if not fresh:
            break
        priced_batch = cand.take(fresh)
        energy, cycles = evaluate(space.problem, priced_batch)
        priced += len(fresh)
        values = score(energy, cycles)
        if shortlist is not None:
            shortlist.offer(values, priced_batch.take, priced_batch.T)
        i = int(np.argmin(values))
        if values[i] >= value * (1 - 1e-12):
            break
        value = float(values[i])
        A, O, keep = NA[fresh[i]], NO[fresh[i]], NK[fresh[i]]
        batch = cand.take([fresh[i]])
    return value, batch, priced


def _iterate(space: Space, batch: MappingBatch, value: float, evaluate, score, budget: int, deadline: float,
             shortlist: Shortlist | None = None) -> tuple[float, MappingBatch, int]:
    """Iterated descent from the local optimum ``batch``: a kick of ``KICK`` random changes at most (a generator
    seeded with ``KICK_SEED``: the search stays deterministic), then :func:`_descend`, the result kept when it is no
    worse; until the budget or the time ends, or ``IDLE_KICKS`` in a row improve nothing. Returns (its value, the
    best mapping, mappings priced)."""
    rng = np.random.default_rng(KICK_SEED)
    A, O, keep = space.encode(batch)
    priced = idle = 0
    while priced < budget and idle < IDLE_KICKS and clock() < deadline:
        kA, kO, kk = space.kick(rng, A[None], O[None], keep[None], int(rng.integers(2, KICK + 1)))
        kicked = space.decode(kA, kO, kk)
        energy, cycles = evaluate(space.problem, kicked)
        priced += 1
        found, found_batch, spent = _descend(space, kicked, float(score(energy, cycles)[0]), evaluate, score,
                                             budget - priced, deadline, shortlist)
        priced += spent
        idle = 0 if found < value * (1 - 1e-12) else idle + 1
        if found <= value:
            value, batch = found, found_batch
            A, O, keep = space.encode(batch)
    return value, batch, priced


__all__ = ["EXPAND", "Bounded", "Structures", "Tiles", "bounded_search"]
