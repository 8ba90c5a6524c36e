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
   loop made innermost or outermost, a keep bit flipped) with what is left of the budget (at least ``POLISH``).

Nothing here is random: the same operation, architecture, constraints, budget and incumbent give the same
mapping. Ties go to the structure enumerated first, then to the candidate generated first.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Collection
from dataclasses import dataclass
import numpy as np

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapspace import MappingBatch, Problem, level_capacities
from ntframe.mapping.space import Outcome, Shortlist, Space, objective_value, prime_factors

EXPAND = 4
"""Partial mappings expanded at most per level of the per-structure search."""
ORDERS = 24
"""Most permutations of the relevance classes tried as a level's loop order."""


@dataclass
class Bounded(Outcome):
    """What the bounded search found: an :class:`~ntframe.mapping.space.Outcome` and how far the bounds went."""

    structures: int = 0                 # structures (spatial split and keep pattern) bounded
    mapped: int = 0                     # of which mapped
    lower_bound: float = 0.0            # smallest bound (objective units) among the structures left unmapped


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
        combos = np.ones((1, 0, D), np.int64)
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
            total = combos.prod(axis=1) if combos.shape[1] else np.ones((1, D), np.int64)
            pair_total = total[:, None, :] * vec[None, :, :]
            ok = (np.array(bounds)[None, None, :] % pair_total == 0).all(axis=2)
            a, b = np.nonzero(ok)
            combos = np.concatenate([combos[a], vec[b][:, None, :]], axis=1)
        self.spatial = combos                                       # [n, K+1, D]
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


def _row_options(bounds: list[int], fanout: int) -> np.ndarray:
    """Every vector of factors (one dividing each bound) whose product is at most ``fanout``."""
    out: list[tuple[int, ...]] = []

    def rec(i: int, acc: tuple[int, ...], product: int) -> None:
        if i == len(bounds):
            out.append(acc)
            return
        for f in _divisors(bounds[i]):
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
        # a dimension alone on a tensor axis with a stride (a pooling's scatter, a 1x1 strided convolution): its
        # tiles' bounding boxes hold gaps, so a bigger tile can fetch more; every tile along it is tried
        self.gaps = {int(np.flatnonzero(row)[0]) for t in problem.tensors for row in t.coef
                     if np.count_nonzero(row) == 1 and row.max() > 1}

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
        return np.where(keep_level[None], np.ceil(self.p.extents(E.astype(float)) * self.bits8[None]), 0).sum(axis=1)

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
    def tiles(self, level: int, below: np.ndarray, share: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Capacity-maximal tiles of ``level`` (every size along a strided dimension with gaps): multiples of
        ``below`` (the tile under it with the spatial split into it) dividing ``share`` (what one instance
        covers), whose loops at ``level`` obey the constraints."""
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
            cand_T, cand_R, cand_E = [], [], []
            # the sets of dimensions looping at order_level, in lexicographic order of their masks (the first
            # dimension most significant), as the bits of one number each
            masks = (Tn[:, order_level] > 1).astype(np.int64) @ (1 << np.arange(self.D - 1, -1, -1))
            for mask in np.unique(masks):
                rows = np.flatnonzero(masks == mask)
                ranks = self.orders(order_level, tuple(np.flatnonzero(mask >> np.arange(self.D - 1, -1, -1) & 1)))
                Rn = np.repeat(R[None], len(rows) * len(ranks), 0)
                Rn[:, order_level] = np.tile(ranks, (len(rows), 1))
                cand_T.append(np.repeat(Tn[rows], len(ranks), 0))
                cand_R.append(Rn)
                cand_E.append(np.repeat(E[rows], len(ranks), 0))
            return np.concatenate(cand_T), np.concatenate(cand_R), np.concatenate(cand_E)

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
                np.repeat(keep[None], len(idx), 0)))
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


TOLERANCE = 0.005
"""The search stops once no structure left can beat the best mapping found by more than this share."""
STRUCT, PATTERN, TIGHT = 0, 1, 2
CHUNK = 1024
"""Structures whose relaxed prices are computed together (in the order of their cheap floors)."""
POLISH = 0.25
"""Share of the evaluation budget kept for the final descents."""
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
    start = time.monotonic()
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
    mapper = _Mapper(problem, arch, c, evaluate, objective, shortlist)
    heap: list[tuple[float, int, int, int, int, float, float]] = []
    counter = itertools.count()
    chunks: list[tuple[np.ndarray, dict]] = []
    where: dict[int, tuple[int, int]] = {}          # structure -> (chunk, row in its parts)
    best: tuple[float, MappingBatch] | None = None
    if incumbent is not None:
        best = (float(score(*evaluate(problem, incumbent))[0]), incumbent)
    improvements = [best] if best is not None else []
    pos, mapped, truncated = 0, 0, False
    while True:
        next_cheap = float(cheap[cheap_order[pos]]) if pos < n else math.inf
        head = heap[0][0] if heap else math.inf
        left = min(next_cheap, head)
        if best is not None and left >= best[0] * (1 - tolerance) or left == math.inf:
            break
        if best is not None and (mapper.priced >= evaluations * (1 - POLISH) or time.monotonic() - start > seconds):
            truncated = time.monotonic() - start > seconds
            break
        if next_cheap < head:
            idx = cheap_order[pos:pos + CHUNK]
            pos += len(idx)
            parts = bounder.parts(S[idx])
            floor = score(*bounder.floor(parts, keeps))
            chunks.append((idx, parts))
            for k in range(len(idx)):
                heapq.heappush(heap, (float(floor[k]), next(counter), STRUCT, len(chunks) - 1, k, 0.0, 0.0))
            continue
        bound, _, kind, a, b, energy_lb, cycles_lb = heapq.heappop(heap)
        if kind == STRUCT:
            idx, parts = chunks[a]
            i = int(idx[b])
            where[i] = (a, b)
            energy, cycles = bounder.combine({key: v[..., b:b + 1] for key, v in parts.items()}, keeps)
            per_pattern = np.maximum(score(energy[0], cycles[0]), bound)   # [P]; the structure's floor holds too
            for p in np.flatnonzero(per_pattern < (best[0] * (1 - tolerance) if best is not None else math.inf)):
                heapq.heappush(heap, (float(per_pattern[p]), next(counter), PATTERN, i, int(p),
                                      float(energy[0, p]), float(cycles[0, p])))
            continue
        if kind == PATTERN:
            chunk, k = where[a]
            extra = bounder.penalty(chunks[chunk][1], k, S[a], keeps[b])
            tight = float(score(energy_lb + extra, cycles_lb))
            heapq.heappush(heap, (max(tight, bound), next(counter), TIGHT, a, b, energy_lb + extra, cycles_lb))
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
        if answer[1] is not None and (not left_over or time.monotonic() > start + seconds):
            break
        value, batch, spent = _descend(space, batch, value, evaluate, score, left_over, start + seconds, shortlist)
        priced += spent
        if value < answer[0]:
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
    while priced < budget and time.monotonic() < deadline:
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
            shortlist.offer(values, priced_batch.take)
        i = int(np.argmin(values))
        if values[i] >= value * (1 - 1e-12):
            break
        value = float(values[i])
        A, O, keep = NA[fresh[i]], NO[fresh[i]], NK[fresh[i]]
        batch = cand.take([fresh[i]])
    return value, batch, priced


__all__ = ["EXPAND", "Bounded", "Structures", "Tiles", "bounded_search"]
