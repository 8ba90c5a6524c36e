"""Every mapping of a small operation, enumerated: the oracle the native search is tested against.

The space is the one :mod:`ntframe.mapping.search` searches (under the same :class:`Constraints`): every
factorisation of every loop bound over the temporal levels and the spatial fan-outs (a spatial row's product
within its fan-out), every keep/bypass choice below the outermost level, and every loop order of the loops
with a factor above one at each level, up to what the reuse analysis reads of an order (per tensor, its
innermost relevant loop and the loops inside it: orders alike in that price alike in the native model; at the
innermost storage level the order changes nothing, every step reads its operands again). Mappings are
generated in canonical form (:meth:`MappingBatch.canonical`), so no mapping appears twice; the invalid ones
(fan-out, capacity, sequential dimensions, pinned innermost loops, constrained factors) are dropped before
pricing. The size grows as the product of the number of factorisations, bypass choices and loop orders: meant
for layers of a few thousand points on a small architecture (:func:`space_size` tells before any pricing).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapspace import MappingBatch, Problem, level_capacities, problems_batch
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.space import Evaluator, objective_value


@dataclass
class Optimum:
    batch: MappingBatch          # the best mapping (length 1); ties go to the first in enumeration order
    energy_pJ: float
    cycles: float
    value: float                 # the objective's value
    mappings: int                # valid mappings priced


def _factorisations(bound: int, slots: list[tuple[int, int]]) -> list[tuple[int, ...]]:
    """Ordered factorisations of ``bound`` over ``slots`` (slot index, largest factor allowed there)."""
    out: list[tuple[int, ...]] = []

    def rec(i: int, rest: int, acc: tuple[int, ...]) -> None:
        if i == len(slots) - 1:
            if rest <= slots[i][1]:
                out.append(acc + (rest,))
            return
        for f in range(1, min(rest, slots[i][1]) + 1):
            if rest % f == 0:
                rec(i + 1, rest // f, acc + (f,))
    rec(0, bound, ())
    return out


class Enumeration:
    """The mapping space of one operation on one architecture, generated in chunks."""

    def __init__(self, problem: Problem, arch: Architecture, constraints: Constraints | None = None,
                 order_levels: tuple[int, ...] | None = None) -> None:
        self.problem, self.arch = problem, arch
        self.c = constraints or Constraints()
        K, D = len(arch.levels), problem.D
        self.K, self.D, self.Tn = K, D, len(problem.tensors)
        fanouts = arch.fanouts
        seq = set(problem.sequential)
        self.per_dim: list[np.ndarray] = []          # [n_d, 2K+1] factors per slot
        for d, bound in enumerate(problem.bounds):
            slots = []
            for lvl in range(K):
                allowed = (d not in seq or lvl == 0) and (d not in self.c.temporal or lvl in self.c.temporal[d])
                slots.append((lvl, int(bound) if allowed else 1))
            for row in range(K + 1):
                allowed = (fanouts[row] > 1 and d not in seq
                           and (row not in self.c.spatial or d in self.c.spatial[row]))
                slots.append((K + row, fanouts[row] if allowed else 1))
            options = np.array(_factorisations(int(bound), slots), np.int64).reshape(-1, 2 * K + 1)
            for (slot, dim), (lo, hi) in self.c.factors.items():
                if dim == d:
                    options = options[(options[:, slot] >= lo) & (options[:, slot] <= hi)
                                      & (options[:, slot] % lo == 0)]
            self.per_dim.append(options)
        # the loop order is enumerated at these levels (the others keep one order: it cannot change a cost of
        # the native model, see tests/test_exhaustive.py); default every level
        self.order_levels = tuple(range(K)) if order_levels is None else order_levels
        free = [(lvl, t) for lvl in range(1, K) for t in range(self.Tn) if (lvl, t) not in self.c.keep]
        self.keep_choices = np.ones((2 ** len(free), K, self.Tn), bool)
        for (lvl, t), value in self.c.keep.items():
            self.keep_choices[:, lvl, t] = value
        for i, bits in enumerate(itertools.product((True, False), repeat=len(free))):
            for (lvl, t), b in zip(free, bits):
                self.keep_choices[i, lvl, t] = b
        self.keep_choices[:, 0, :] = True
        self._perms: dict[tuple[int, ...], np.ndarray] = {}

    def tilings(self) -> int:
        """Factorisations before the fan-out test (a bound on the tilings the space holds)."""
        return math.prod(len(f) for f in self.per_dim)

    def _ranks(self, nonunit: tuple[int, ...], level: int) -> np.ndarray:
        """Every rank vector [n, D] ordering the dimensions ``nonunit`` at ``level`` (others rank D), with the
        level's pinned innermost loops innermost in their order."""
        key = (level,) + nonunit
        if key not in self._perms:
            D = self.D
            pinned = [d for d in self.c.innermost.get(level, []) if d in nonunit]
            seq = [d for d in self.problem.sequential if d in nonunit] if level == 0 else []
            rest = [d for d in nonunit if d not in pinned and d not in seq]
            orders = [tuple(seq) + p + tuple(pinned) for p in itertools.permutations(rest)]
            if level not in self.order_levels or level == self.K - 1:
                orders = orders[:1]
            else:
                orders = list({self._signature(order): order for order in reversed(orders)}.values())[::-1]
            out = np.full((len(orders), D), D, np.int64)
            for i, order in enumerate(orders):
                for rank, d in enumerate(order):
                    out[i, d] = rank
            self._perms[key] = out
        return self._perms[key]

    def _signature(self, order: tuple[int, ...]) -> tuple:
        """What the reuse analysis reads of a level's loop order (outermost first): for each tensor, its
        innermost relevant loop and the loops inside it. Orders with equal signatures price the same."""
        sig = []
        for t in self.problem.tensors:
            pos = [i for i, d in enumerate(order) if t.relevant[d]]
            sig.append((order[pos[-1]], frozenset(order[pos[-1] + 1:])) if pos else None)
        return tuple(sig)

    def batches(self, chunk: int = 8192) -> Iterator[MappingBatch]:
        """Every valid mapping, in canonical form, ``chunk`` tilings at a time."""
        K, D = self.K, self.D
        sizes = [len(f) for f in self.per_dim]
        total = math.prod(sizes)
        fan = np.array(self.arch.fanouts, np.int64)
        caps = level_capacities(self.arch)
        for start in range(0, total, chunk):
            idx = np.unravel_index(np.arange(start, min(total, start + chunk)), sizes)
            F = np.stack([self.per_dim[d][idx[d]] for d in range(D)], axis=2)      # [B, 2K+1, D]
            T, S = F[:, :K], F[:, K:]
            ok = (S.prod(axis=2) <= fan[None, :]).all(axis=1)
            T, S = T[ok], S[ok]
            if not len(T):
                continue
            # every bypass choice, then capacities (which do not depend on the order)
            n_keep = len(self.keep_choices)
            T = np.repeat(T, n_keep, axis=0)
            S = np.repeat(S, n_keep, axis=0)
            keep = np.tile(self.keep_choices, (len(T) // n_keep, 1, 1))
            E = np.ones((len(T), K + 1, D), np.int64)
            for lvl in range(K - 1, -1, -1):
                E[:, lvl] = E[:, lvl + 1] * T[:, lvl] * S[:, lvl + 1]
            tile = np.where(keep, np.ceil(self.problem.extents(E[:, :K].astype(float)) * self.problem.bits / 8), 0)
            ok = (tile.sum(axis=2) <= caps[None, :]).all(axis=1)
            T, S, keep = T[ok], S[ok], keep[ok]
            if not len(T):
                continue
            yield from self._with_orders(T, S, keep)

    def _with_orders(self, T: np.ndarray, S: np.ndarray, keep: np.ndarray) -> Iterator[MappingBatch]:
        K, D = self.K, self.D
        R = np.full(T.shape, D, np.int64)
        batch_T, batch_S, batch_K, batch_R = [T], [S], [keep], [R]
        for lvl in range(K):
            T, S, keep, R = (np.concatenate(x) for x in (batch_T, batch_S, batch_K, batch_R))
            masks = T[:, lvl] > 1
            codes = masks @ (1 << np.arange(D))
            batch_T, batch_S, batch_K, batch_R = [], [], [], []
            for code in np.unique(codes):
                rows = np.flatnonzero(codes == code)
                ranks = self._ranks(tuple(int(d) for d in range(D) if code >> d & 1), lvl)
                n = len(ranks)
                batch_T.append(np.repeat(T[rows], n, axis=0))
                batch_S.append(np.repeat(S[rows], n, axis=0))
                batch_K.append(np.repeat(keep[rows], n, axis=0))
                r = np.repeat(R[rows], n, axis=0)
                r[:, lvl] = np.tile(ranks, (len(rows), 1))
                batch_R.append(r)
        batch = MappingBatch(*(np.concatenate(x) for x in (batch_T, batch_S, batch_R, batch_K)))
        valid = problems_batch(self.problem, batch, self.arch) == 0
        yield batch.take(np.flatnonzero(valid))


def space_size(problem: Problem, arch: Architecture, constraints: Constraints | None = None,
               order_levels: tuple[int, ...] | None = None) -> int:
    """The number of valid mappings :func:`optimum` would price."""
    return sum(len(b) for b in Enumeration(problem, arch, constraints, order_levels).batches())


def optimum(problem: Problem, arch: Architecture, evaluate: Evaluator, *, objective: str = "edp",
            constraints: Constraints | None = None, order_levels: tuple[int, ...] | None = None,
            limit: int = 20_000_000) -> Optimum:
    """The best mapping of the whole space by ``objective`` (``edp``, ``energy`` or ``delay``). Raises
    ``ValueError`` when the space holds more than ``limit`` valid mappings (counted as they are priced)."""
    best: Optimum | None = None
    count = 0
    for batch in Enumeration(problem, arch, constraints, order_levels).batches():
        if not len(batch):
            continue
        count += len(batch)
        if count > limit:
            raise ValueError(f"the mapping space of {problem.op.name} holds more than {limit:,} mappings")
        for lo in range(0, len(batch), 16384):
            part = batch.take(np.arange(lo, min(len(batch), lo + 16384)))
            energy, cycles = evaluate(problem, part)
            value = objective_value(objective, energy, cycles)
            i = int(np.argmin(value))
            if best is None or value[i] < best.value:
                best = Optimum(part.take([i]), float(energy[i]), float(cycles[i]), float(value[i]), 0)
    if best is None:
        raise ValueError(f"no mapping of {problem.op.name} fits the architecture")
    best.mappings = count
    return best


__all__ = ["Enumeration", "Optimum", "optimum", "space_size"]
