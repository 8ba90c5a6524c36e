"""The mapping space as the searches see it: every prime factor of every loop bound assigned to a *slot* (a
temporal loop at a storage level, or a spatial split into a level or the compute units), a loop-order key per
level and dimension and a keep bit per level and tensor; random samples that fit, mutations, the neighbourhood
of one mapping, the fit checks (fan-outs and capacities, in log space), all as numpy arrays. Used by the
sampling search (:mod:`ntframe.mapping.search`) and the bounded search's final descent
(:mod:`ntframe.mapping.bounded`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapspace import MappingBatch, Problem, from_batch, level_capacities

if TYPE_CHECKING:
    from ntframe.components import CostModel

Evaluator = Callable[[Problem, MappingBatch], tuple[np.ndarray, np.ndarray]]   # -> energy_pJ[B], cycles[B]


def objective_value(objective: str, energy, cycles):
    """What a search minimises: energy (pJ), delay (cycles) or, for any other objective, their product (EDP);
    elementwise on arrays."""
    return {"energy": energy, "delay": cycles}.get(objective, energy * cycles)


@dataclass
class Outcome:
    """What a search over the space found."""

    batch: MappingBatch                 # the best mapping (length 1)
    energy_pJ: float
    cycles: float
    evaluated: int                      # candidates considered
    valid: int                          # of which priced as complete, fitting mappings
    truncated_by_time: bool
    invalid_reasons: dict[str, int] = field(default_factory=dict)


class Shortlist:
    """The ``size`` best distinct complete mappings a search priced, by its objective: what
    :func:`ntframe.mapping.search.search_operation` prices again with the cost model's own :meth:`evaluate` (the
    figures it reports), to rank the finalists by what is reported rather than by the batch estimate."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[tuple[float, int, bytes, MappingBatch]] = []     # (value, arrival, key, batch), sorted
        self.keys: set[bytes] = set()
        self.arrivals = 0

    def limit(self) -> float:
        return self.items[-1][0] if len(self.items) >= self.size else np.inf

    def offer(self, values: np.ndarray, rows: Callable[[np.ndarray], MappingBatch]) -> None:
        """Candidates priced at ``values``; ``rows(idx)``: the batch of those rows (built only for the few that
        enter: the best ``size`` under the current limit)."""
        values = np.asarray(values, float)
        idx = np.flatnonzero(np.isfinite(values) & (values < self.limit()))
        if not len(idx):
            return
        idx = idx[np.argsort(values[idx], kind="stable")[:self.size]]
        batch = rows(idx).canonical()
        for row, (value, key) in enumerate(zip(values[idx], batch.keys())):
            if key in self.keys or not value < self.limit():
                continue
            self.keys.add(key)
            self.items.append((float(value), self.arrivals, key, batch.take([row])))
            self.arrivals += 1
            self.items.sort(key=lambda item: item[:2])
            if len(self.items) > self.size:
                self.keys.discard(self.items.pop()[2])

    def best(self) -> list[tuple[float, MappingBatch]]:
        """(value, mapping) best first; ties in arrival order."""
        return [(value, batch) for value, _, _, batch in self.items]


class Space:
    def __init__(self, problem: Problem, arch: Architecture, constraints: Constraints) -> None:
        self.problem, self.arch, self.c = problem, arch, constraints
        self.K = len(arch.levels)
        self.nslots = 2 * self.K + 1
        self.fanouts = np.array(arch.fanouts, np.int64)
        self.logfan = np.log(self.fanouts.astype(float))
        self.caps = level_capacities(arch)
        self.bits8 = problem.bits / 8
        primes, dims = [], []
        for d, bound in enumerate(problem.bounds):
            for p in prime_factors(int(bound)):
                primes.append(p)
                dims.append(d)
        self.pv = np.array(primes, np.int64)
        self.pd = np.array(dims, np.int64)
        self.P = len(primes)
        D = problem.D
        logm = np.zeros((self.P, D))
        logm[np.arange(self.P), self.pd] = np.log(self.pv) if self.P else 0
        self.logm = logm
        # allowed slots per prime
        allowed = np.ones((self.P, self.nslots), bool)
        for i, d in enumerate(self.pd):
            for lvl in range(self.K):
                if d in constraints.temporal and lvl not in constraints.temporal[d]:
                    allowed[i, lvl] = False
            for row in range(self.K + 1):
                if self.fanouts[row] < 2 or (row in constraints.spatial and d not in constraints.spatial[row]):
                    allowed[i, self.K + row] = False
                if self.pv[i] > self.fanouts[row]:
                    allowed[i, self.K + row] = False
        seq = set(problem.sequential)
        for i, d in enumerate(self.pd):
            if d in seq:
                allowed[i] = False
                allowed[i, 0] = True
        # constrained factors: an exact one fixes prime factors to its slot (and keeps the others out of it);
        # an upper bound caps the slot's product, checked with the fan-outs
        self.fixed = np.full(self.P, -1, np.int64)
        self.max_log = np.full((self.nslots, D), np.inf)
        for (slot, d), (lo, hi) in sorted(constraints.factors.items()):
            name = f"factor of {problem.dims[d]} at slot {slot}"
            self.max_log[slot, d] = np.log(hi) + 1e-9
            rest = [i for i in range(self.P) if self.pd[i] == d and self.fixed[i] < 0]
            for p in prime_factors(lo):
                pick = [i for i in rest if self.pv[i] == p and allowed[i, slot]]
                if not pick:
                    raise MappingError(f"the {name} ({lo}) cannot be placed: the mapper's or the architecture's "
                                       f"constraints keep {problem.dims[d]} out of that slot, or its bound "
                                       f"{int(problem.bounds[d])} lacks the factor")
                self.fixed[pick[0]] = slot
                allowed[pick[0]] = False
                allowed[pick[0], slot] = True
                rest.remove(pick[0])
            if lo == hi:
                for i in rest:
                    allowed[i, slot] = False
        loose = self.fixed < 0
        if not allowed[loose, :self.K].any(axis=1).all():
            raise MappingError("constraints leave some loop factor without a temporal level")
        self.allowed = allowed
        self.free = np.array([d not in seq for d in self.pd], bool) & loose
        self.rejected = {"fan-out": 0, "capacity": 0}     # proposed changes undone, by reason

    # --- encoding --------------------------------------------------------------------------------------
    def decode(self, A: np.ndarray, O: np.ndarray, keep: np.ndarray) -> MappingBatch:
        B, K, D = A.shape[0], self.K, self.problem.D
        if self.P:
            onehot = (A[:, :, None] == np.arange(self.nslots)[None, None, :]).astype(float)
            F = np.rint(np.exp(np.einsum("bps,pd->bsd", onehot, self.logm))).astype(np.int64)
        else:
            F = np.ones((B, self.nslots, D), np.int64)
        T, S = F[:, :K], F[:, K:]
        key = O.copy()
        for lvl, dims in self.c.innermost.items():
            for rank, d in enumerate(dims):
                key[:, lvl, d] = 10.0 + rank
        for rank, d in enumerate(self.problem.sequential):
            key[:, 0, d] = -10.0 + rank
        R = np.argsort(np.argsort(key, axis=2, kind="stable"), axis=2, kind="stable")
        return MappingBatch(T, S, R, self.kept(keep)).canonical()

    def kept(self, keep: np.ndarray) -> np.ndarray:
        """Keep bits as the mapping has them: the constraints' forced keeps and bypasses applied, the outermost
        level keeping everything."""
        k = keep.copy()
        for (lvl, t), value in self.c.keep.items():
            k[:, lvl, t] = value
        k[:, 0, :] = True
        return k

    def outermost(self, n: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every loop at the outermost level it may use (constrained factors where they are fixed; a factor
        over a slot's upper bound moves to the next level that allows it)."""
        first = np.where(self.fixed >= 0, self.fixed, self.allowed[:, :self.K].argmax(axis=1))
        logs = np.zeros((self.nslots, self.problem.D))
        for i in np.argsort(-self.pv, kind="stable"):
            slot = int(first[i])
            d = self.pd[i]
            while slot < self.K and self.fixed[i] < 0 and (
                    not self.allowed[i, slot] or logs[slot, d] + np.log(self.pv[i]) > self.max_log[slot, d]):
                slot += 1
            first[i] = slot if slot < self.K else first[i]
            logs[first[i], self.pd[i]] += np.log(self.pv[i])
        A = np.tile(first, (n, 1)).astype(np.int64)
        O = np.tile(np.arange(self.problem.D, dtype=float), (n, self.K, 1))
        keep = np.ones((n, self.K, len(self.problem.tensors)), bool)
        return A, O, keep

    # --- fast validity of slot assignments (fan-outs and capacities) in log space ------------------------
    def _logs(self, A: np.ndarray) -> np.ndarray:
        onehot = (A[:, :, None] == np.arange(self.nslots)[None, None, :]).astype(float)
        return np.einsum("nps,pd->nsd", onehot, self.logm)

    def _checks(self, LF: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fan-outs hold, capacities hold) per candidate."""
        K = self.K
        logT, logS = LF[:, :K], LF[:, K:]
        fan_ok = (logS.sum(axis=2) <= self.logfan[None, :] + 1e-9).all(axis=1) & (LF <= self.max_log).all(axis=(1, 2))
        cum_t = np.cumsum(logT[:, ::-1], axis=1)[:, ::-1]                 # sum over levels >= l
        cum_s = np.cumsum(logS[:, :0:-1], axis=1)[:, ::-1]                # sum over rows > l
        E = np.rint(np.exp(cum_t + cum_s))
        tb = (np.where(self.kept(keep), np.ceil(self.problem.extents(E) * self.bits8), 0)).sum(axis=2)
        return fan_ok, (tb <= self.caps[None, :]).all(axis=1)

    def _propose(self, rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
        """A random allowed slot for each prime index in p (spatial first with the set probability)."""
        K = self.K
        ok = self.allowed[p]
        spatial_ok, temporal_ok = ok[:, K:], ok[:, :K]
        u = rng.random(len(p))
        spatial = (rng.random(len(p)) < self.c.spatial_probability) & spatial_ok.any(axis=1)
        return np.where(spatial, K + _choose(u, spatial_ok), _choose(u, temporal_ok))

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random mappings that fit: start from the outermost mapping and offer every prime factor, in a
        random order, a random slot; keep the move when fan-outs and capacities still hold."""
        A, _, _ = self.outermost(n)
        O = rng.random((n, self.K, self.problem.D))
        keep = rng.random((n, self.K, len(self.problem.tensors))) < 0.85
        keep[:, 0] = True
        if not self.P:
            return A, O, keep
        LF = self._logs(A)
        order = np.argsort(rng.random((n, self.P)), axis=1)
        rows = np.arange(n)
        for step in range(self.P):
            p = order[:, step]
            move = self.free[p]
            prop = self._propose(rng, p)
            cur = A[rows, p]
            trial = LF.copy()
            lv = np.log(self.pv[p]) * move
            trial[rows, cur, self.pd[p]] -= lv
            trial[rows, prop, self.pd[p]] += lv
            fan_ok, cap_ok = self._checks(trial, keep)
            changed = move & (prop != cur)
            self.rejected["fan-out"] += int((changed & ~fan_ok).sum())
            self.rejected["capacity"] += int((changed & fan_ok & ~cap_ok).sum())
            ok = move & fan_ok & cap_ok
            A[rows[ok], p[ok]] = prop[ok]
            LF[ok] = trial[ok]
        return A, O, keep

    def mutate(self, rng: np.random.Generator, A, O, keep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One random change per candidate — move a factor, swap two loops or flip a bypass bit; a change
        that breaks a fan-out or a capacity is undone."""
        A, O, keep = A.copy(), O.copy(), keep.copy()
        n = A.shape[0]
        rows = np.arange(n)
        kind = rng.integers(0, 3 if self.K > 1 else 2, n)
        if self.free.any():
            free_idx = np.flatnonzero(self.free)
            p = free_idx[rng.integers(0, len(free_idx), n)]
            move = kind == 0
            newA = A.copy()
            newA[rows[move], p[move]] = self._propose(rng, p)[move]
            A = newA
        swap = kind == 1
        lvl = rng.integers(0, self.K, n)
        d1, d2 = rng.integers(0, self.problem.D, n), rng.integers(0, self.problem.D, n)
        a, b = O[rows, lvl, d1].copy(), O[rows, lvl, d2].copy()
        O[rows[swap], lvl[swap], d1[swap]] = b[swap]
        O[rows[swap], lvl[swap], d2[swap]] = a[swap]
        if self.K > 1:
            flip = kind == 2
            fl = rng.integers(1, self.K, n)
            ft = rng.integers(0, len(self.problem.tensors), n)
            keep[rows[flip], fl[flip], ft[flip]] ^= True
        return A, O, keep

    def neighbours(self, A: np.ndarray, O: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every mapping one step from (A, O, keep), fitting or not: move 1..n equal prime factors of a dimension
        from their slot to another allowed slot, exchange the slots of two factors of different dimensions, make
        a loop the innermost or the outermost of its level (above the innermost level, whose order prices
        nothing), flip a keep bit below the outermost level."""
        K, D, Tn = self.K, self.problem.D, len(self.problem.tensors)
        moves: list[np.ndarray] = []
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i in np.flatnonzero(self.free):
            groups.setdefault((int(self.pd[i]), int(self.pv[i]), int(A[i])), []).append(int(i))
        for (_, _, slot), idx in groups.items():
            for m in range(1, len(idx) + 1):
                for target in np.flatnonzero(self.allowed[idx[0]]):
                    if target != slot:
                        a = A.copy()
                        a[idx[:m]] = target
                        moves.append(a)
        members = list(groups.values())
        for x, gi in enumerate(members):
            for gj in members[x + 1:]:
                i, j = gi[0], gj[0]
                if A[i] == A[j] or self.pd[i] == self.pd[j] or not (self.allowed[i, A[j]] and self.allowed[j, A[i]]):
                    continue
                for m in range(1, len(gi) + 1):          # exchange equal products (one factor each if unequal)
                    for n in range(1, len(gj) + 1):
                        if (m, n) != (1, 1) and self.pv[i] ** m != self.pv[j] ** n:
                            continue
                        a = A.copy()
                        a[gi[:m]], a[gj[:n]] = A[j], A[i]
                        moves.append(a)
        orders = []
        for lvl in range(K - 1):
            for d in range(D):
                for v in (O[lvl].max() + 1, O[lvl].min() - 1):
                    o = O.copy()
                    o[lvl, d] = v
                    orders.append(o)
        flips = []
        for lvl in range(1, K):
            for t in range(Tn):
                k = keep.copy()
                k[lvl, t] ^= True
                flips.append(k)
        n_a, n_o, n_k = len(moves), len(orders), len(flips)
        NA = np.concatenate([np.array(moves).reshape(n_a, -1), np.tile(A, (n_o + n_k, 1))]).astype(np.int64)
        NO = np.concatenate([np.tile(O, (n_a, 1, 1)), np.array(orders).reshape(n_o, K, D), np.tile(O, (n_k, 1, 1))])
        NK = np.concatenate([np.tile(keep, (n_a + n_o, 1, 1)), np.array(flips).reshape(n_k, K, Tn)])
        return NA, NO, NK

    def encode(self, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(A, O, keep) of the first mapping of ``batch``, the inverse of :meth:`decode`: each prime factor of a
        dimension in a slot whose factor it divides (constrained ones in their slot first, larger primes first)."""
        left = np.concatenate([batch.T[0], batch.S[0]]).copy()          # [2K+1, D]
        A = np.zeros(self.P, np.int64)
        for i in sorted(range(self.P), key=lambda i: (self.fixed[i] < 0, -self.pv[i], i)):
            d, p = self.pd[i], self.pv[i]
            slot = self.fixed[i] if self.fixed[i] >= 0 else next(s for s in range(self.nslots) if left[s, d] % p == 0)
            A[i] = slot
            left[slot, d] //= p
        return A, batch.R[0].astype(float), batch.keep[0].copy()

    def fits(self, A: np.ndarray, keep: np.ndarray) -> np.ndarray:
        fan_ok, cap_ok = self._checks(self._logs(A), keep)
        self.rejected["fan-out"] += int((~fan_ok).sum())
        self.rejected["capacity"] += int((fan_ok & ~cap_ok).sum())
        return fan_ok & cap_ok


def _choose(u: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """For each row, the index of an allowed column chosen by the uniform number u (ok broadcast)."""
    ok = np.broadcast_to(ok, u.shape + (ok.shape[-1],))
    counts = ok.sum(axis=-1)
    target = np.minimum((u * counts).astype(np.int64), np.maximum(counts - 1, 0))
    cum = np.cumsum(ok, axis=-1) - 1
    hit = (cum == target[..., None]) & ok
    return hit.argmax(axis=-1)


def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def batch_evaluator(cost_model: "CostModel", architecture: Architecture) -> Evaluator:
    """A searcher's view of a cost model: a function (problem, batch) -> (energy_pJ[B], cycles[B])."""

    def evaluate(problem: Problem, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray]:
        got = cost_model.evaluate_batch(problem, batch, architecture)
        if got is not None:
            return got
        costs = [cost_model.evaluate(problem.op, from_batch(problem, batch, architecture, i), architecture)
                 for i in range(len(batch))]
        return np.array([c.energy_pJ for c in costs]), np.array([c.cycles for c in costs])
    return evaluate


__all__ = ["Evaluator", "Outcome", "Shortlist", "Space", "objective_value", "batch_evaluator", "prime_factors"]
