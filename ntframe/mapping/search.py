"""A seeded, budgeted, vectorised search over a mapping space (used by the ``native`` and
``neurotrainer-dataflow`` mappers).

A candidate assigns every prime factor of every loop bound to a *slot* — a temporal loop at storage level
``l`` (slots ``0..K-1``) or a spatial split into level ``l`` / the compute units (slots ``K..2K``) — and carries
a loop-order key per level and dimension and a keep/bypass bit per level and tensor. The search explores
first (``EXPLORE`` of the budget): the mapping that keeps every loop at the outermost level (always valid),
random samples that fit by construction (every prime factor is offered a random slot in a random order, and the
move is kept when the fan-outs and capacities still hold), then batches of mutations of the best candidates
found so far (move a factor to another slot, swap two loops, flip a bypass bit; a change that no longer fits is
undone) with fresh samples. Then it descends: from the best explored candidates, to the best neighbour
(:meth:`Space.neighbours`) while it improves, then kicks the best local optimum and descends again while budget
remains. Every batch is canonicalised and de-duplicated, checked, and only the valid candidates are priced —
all as numpy arrays. ``Constraints`` restrict which slots a dimension may use and pin loops to the inside of a
level: that is how a data-flow template is expressed. :mod:`ntframe.mapping.exhaustive` enumerates the same
space for small operations (the test oracle).

The outcome depends on the operation, the architecture, the constraints, the seed and the evaluation budget
only; the seconds cap stops a search early and is reported.

For searchers built on it: :func:`search_operation` (one operation searched and priced: a searcher's
``SearchResult``), :func:`batch_evaluator` (a cost model seen as a batch evaluator) and :func:`vault_split` (the
split over the vaults, for external searchers that model one vault).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import MappingBatch, Problem, from_batch, level_capacities
from ntframe.results import SearchResult
from ntframe.workload.ir import Operation

if TYPE_CHECKING:
    from ntframe.components import Budget, CostModel

Evaluator = Callable[[Problem, MappingBatch], tuple[np.ndarray, np.ndarray]]   # -> energy_pJ[B], cycles[B]
EXPLORE = 0.5
"""Share of the evaluation budget spent exploring (random samples, mutations) before the descent."""
STARTS = 4
"""Descents from the best explored candidates before the iterated descent."""
KICK = 4
"""Most random changes in a kick of the iterated descent."""


@dataclass
class Outcome:
    batch: MappingBatch                 # the best mapping (length 1)
    energy_pJ: float
    cycles: float
    evaluated: int
    valid: int
    invalid_reasons: dict[str, int]
    truncated_by_time: bool


def _seed(seed: int, problem: Problem, arch: Architecture, tag: str) -> int:
    text = f"{seed}|{tag}|{problem.op.shape_key()}|{arch.content_sha256}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


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
            for p in _prime_factors(int(bound)):
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
            for p in _prime_factors(lo):
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
        k = keep.copy()
        for (lvl, t), value in self.c.keep.items():
            k[:, lvl, t] = value
        k[:, 0, :] = True
        return MappingBatch(T, S, R, k).canonical()

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
        tb = (np.where(keep, np.ceil(self.problem.extents(E) * self.bits8), 0)).sum(axis=2)
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


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def search(problem: Problem, arch: Architecture, evaluate: Evaluator, *, evaluations: int, seconds: float,
           seed: int, objective: str = "edp", constraints: Constraints | None = None, tag: str = "",
           explore: float = EXPLORE) -> Outcome:
    """Price at most ``evaluations`` distinct candidates (all valid by construction) and return the best.

    Two phases: exploration (random samples and mutations of the best found, ``explore`` of the budget), then
    descent: from the best candidates not yet descended from, in order, move to the best of all neighbours
    (:meth:`Space.neighbours`) while it improves; a local optimum ends a descent. The budget ends the search.
    ``Outcome.evaluated`` counts every candidate considered (priced, duplicate, or a change undone because it
    broke a fan-out or a capacity); ``valid`` the priced ones; ``invalid_reasons`` the rest by reason."""
    space = Space(problem, arch, constraints or Constraints())
    rng = np.random.default_rng(_seed(seed, problem, arch, tag))
    start = time.monotonic()
    seen: set[bytes] = set()
    state = {"duplicates": 0, "priced": 0, "truncated": False}
    pool_A, pool_O, pool_keep, pool_score = [], [], [], []
    best: list = []                                     # [value, batch, energy, cycles]

    def price(A: np.ndarray, O: np.ndarray, keep: np.ndarray, check: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Price the candidates not seen before, within the budget: (their indices, their values). ``check``:
        drop those that do not fit first (callers whose candidates fit by construction leave it off)."""
        batch = space.decode(A, O, keep)
        keys = batch.keys()
        fits = space.fits(A, keep) if check else np.ones(len(keys), bool)
        fresh = [i for i, k in enumerate(keys) if fits[i] and k not in seen and not seen.add(k)]   # type: ignore[func-returns-value]
        state["duplicates"] += int(fits.sum()) - len(fresh)
        fresh = fresh[: evaluations - state["priced"]]
        if not fresh:
            return np.zeros(0, np.int64), np.zeros(0)
        batch = batch.take(fresh)
        state["priced"] += len(fresh)
        energy, cycles = evaluate(problem, batch)
        value = {"energy": energy, "delay": cycles}.get(objective, energy * cycles)
        i = int(np.argmin(value))
        if not best or value[i] < best[0]:
            best[:] = [float(value[i]), batch.take([i]), float(energy[i]), float(cycles[i])]
        return np.array(fresh, np.int64), value

    def out_of_time() -> bool:
        if time.monotonic() - start > seconds:
            state["truncated"] = True
        return bool(state["truncated"])

    def remember(A, O, keep, value) -> None:
        pool_A.append(A)
        pool_O.append(O)
        pool_keep.append(keep)
        pool_score.append(value)
        if len(pool_score) > 4:                          # keep the pool small: merge and trim to the best
            s = np.concatenate(pool_score)
            top = np.argsort(s, kind="stable")[:64]
            pool_A[:], pool_O[:], pool_keep[:] = ([np.concatenate(x)[top]] for x in (pool_A, pool_O, pool_keep))
            pool_score[:] = [s[top]]

    explore_budget = max(1, int(round(evaluations * explore)))
    batch_size = max(32, min(512, explore_budget // 4))
    A, O, keep = space.outermost()
    # samples grow from the outermost mapping and fit by construction when it does; under constraints it may not
    # (a capacity), and then every exploration batch is checked
    check = not all(ok[0] for ok in space._checks(space._logs(A), keep))     # (not counted as a rejection)
    rounds = stale = 0
    while state["priced"] < explore_budget and stale < 3:
        if rounds:
            if out_of_time():
                break
            n = min(batch_size, 2 * (explore_budget - state["priced"]))
            n_fresh = max(1, n // 4) if pool_score else n
            parts = [space.sample(rng, n_fresh)]
            if pool_score and n - n_fresh:
                scores = np.concatenate(pool_score)
                elite = np.argsort(scores, kind="stable")[:16]
                pick = elite[rng.integers(0, len(elite), n - n_fresh)]
                cA, cO, ck = (np.concatenate(x)[pick] for x in (pool_A, pool_O, pool_keep))
                for _ in range(int(rng.integers(1, 4))):
                    mA, cO, mk = space.mutate(rng, cA, cO, ck)
                    fit = space.fits(mA, mk)
                    cA = np.where(fit[:, None], mA, cA)
                    ck = np.where(fit[:, None, None], mk, ck)
                parts.append((cA, cO, ck))
            A = np.concatenate([p[0] for p in parts])
            O = np.concatenate([p[1] for p in parts])
            keep = np.concatenate([p[2] for p in parts])
        rounds += 1
        before = state["duplicates"]
        idx, value = price(A, O, keep, check)
        stale = stale + 1 if len(idx) < max(1, (len(idx) + state["duplicates"] - before) // 20) else 0
        if len(idx):
            remember(A[idx], O[idx], keep[idx], value)

    def descend(A1, O1, k1, current):
        """Steepest descent from (A1, O1, k1): to the best neighbour while it improves."""
        while state["priced"] < evaluations and not out_of_time():
            NA, NO, NK = space.neighbours(A1, O1, k1)
            fit = space.fits(NA, NK)
            NA, NO, NK = NA[fit], NO[fit], NK[fit]
            if not len(NA):
                break
            order = rng.permutation(len(NA))            # a budget that ends mid-step prices a random share
            NA, NO, NK = NA[order], NO[order], NK[order]
            idx, value = price(NA, NO, NK)
            if not len(idx):
                break
            i = int(np.argmin(value))
            if value[i] >= current:
                break
            A1, O1, k1, current = NA[idx[i]], NO[idx[i]], NK[idx[i]], value[i]
        return A1, O1, k1, current

    # descent from the best candidates found, best first; then iterated: kick the best local optimum (a few
    # random changes) and descend again, keeping the result when it is no worse
    scores = np.concatenate(pool_score) if pool_score else np.zeros(0)
    starts = np.argsort(scores, kind="stable")[:STARTS]
    cA_all, cO_all, ck_all = (np.concatenate(x) if x else None for x in (pool_A, pool_O, pool_keep))
    local = []
    for s_i in starts:
        if state["priced"] >= evaluations or out_of_time():
            break
        local.append(descend(cA_all[s_i], cO_all[s_i], ck_all[s_i], scores[s_i]))
    if local:
        x = min(local, key=lambda item: item[3])
        idle = 0
        while state["priced"] < evaluations and not out_of_time() and idle < 50:
            kA, kO, kk = x[0][None], x[1][None], x[2][None]
            for _ in range(int(rng.integers(2, KICK + 1))):
                mA, kO, mk = space.mutate(rng, kA, kO, kk)
                fit = space.fits(mA, mk)
                kA = np.where(fit[:, None], mA, kA)
                kk = np.where(fit[:, None, None], mk, kk)
            idx, value = price(kA, kO, kk)
            if not len(idx):
                idle += 1
                continue
            y = descend(kA[0], kO[0], kk[0], value[0])
            idle = 0
            if y[3] <= x[3]:
                x = y
    if not best:
        raise MappingError(f"no mapping of {problem.op.name} that satisfies the constraints was found within the "
                         f"budget ({state['priced']} priced; rejected: "
                         f"{', '.join(f'{k} {v}' for k, v in space.rejected.items() if v) or 'none'})")
    reasons = {k: v for k, v in space.rejected.items() if v}
    if state["duplicates"]:
        reasons["duplicate"] = state["duplicates"]
    priced = state["priced"]
    return Outcome(best[1], best[2], best[3], priced + sum(reasons.values()), priced, reasons,
                   bool(state["truncated"]))


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


def vault_split(operation: Operation, architecture: Architecture, cost_model: "CostModel", budget: "Budget",
                seed: int, objective: str, option: str | dict[str, int], tag: str) -> tuple[tuple[str, int], ...]:
    """The split over the outermost level's instances (the vaults) for searchers that model one vault (external
    mappers): ``option`` as explicit factors, or (``"search"``) the split of the best mapping ntframe's own search
    finds with ``cost_model`` in a quarter of the budget (at least 200 evaluations)."""
    if isinstance(option, dict):
        return tuple(option.items())
    problem = Problem(operation)
    found = search(problem, architecture, batch_evaluator(cost_model, architecture),
                   evaluations=max(200, budget.evaluations // 4), seconds=budget.seconds, seed=seed,
                   objective=objective, constraints=for_operation(problem, architecture), tag=tag)
    return from_batch(problem, found.batch, architecture, 0).levels[0].spatial


def search_operation(operation: Operation, architecture: Architecture, cost_model: "CostModel", budget: "Budget",
                     seed: int, objective: str, constraints: Constraints, tag: str) -> SearchResult:
    """:func:`search` over ``operation``'s whole mapping space under ``constraints`` and the architecture's
    mapping constraints, the best mapping priced again by ``cost_model``: what a mapping searcher returns."""
    problem = Problem(operation)
    found = search(problem, architecture, batch_evaluator(cost_model, architecture),
                   evaluations=budget.evaluations, seconds=budget.seconds, seed=seed, objective=objective,
                   constraints=for_operation(problem, architecture, constraints), tag=tag)
    mapping = from_batch(problem, found.batch, architecture, 0)
    cost = cost_model.evaluate(operation, mapping, architecture)
    return SearchResult(mapping, cost, found.evaluated, found.valid, found.invalid_reasons, found.truncated_by_time,
                        objective)
