"""A seeded, budgeted, vectorised search over a mapping space (used by the ``native`` and
``neurotrainer-dataflow`` mappers).

A candidate assigns every prime factor of every loop bound to a *slot* — a temporal loop at storage level
``l`` (slots ``0..K-1``) or a spatial split into level ``l`` / the compute units (slots ``K..2K``) — and carries
a loop-order key per level and dimension and a keep/bypass bit per level and tensor. The search starts from
the mapping that keeps every loop at the outermost level (always valid) and random samples that fit by
construction (every prime factor is offered a random slot in a random order, and the move is kept when the
fan-outs and capacities still hold), then alternates batches of mutations of the best candidates found so far
(move a factor to another slot, swap two loops, flip a bypass bit; a change that no longer fits is undone)
with fresh samples. Every batch is canonicalised and de-duplicated, checked, and only the valid candidates are
priced — all as numpy arrays. ``Constraints`` restrict which slots a dimension may use and pin loops to
the inside of a level: that is how a data-flow template is expressed.

The outcome depends on the operation, the architecture, the constraints, the seed and the evaluation budget
only; the seconds cap stops a search early and is reported.

For searchers built on it: :func:`search_operation` (one operation searched and priced: a searcher's
``SearchResult``), :func:`batch_evaluator` (a cost model seen as a batch evaluator) and :func:`vault_split` (the
split over the vaults, for external searchers that model one vault).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapspace import MappingBatch, Problem, from_batch, level_capacities
from ntframe.results import SearchResult
from ntframe.workload.ir import Operation

if TYPE_CHECKING:
    from ntframe.components import Budget, CostModel

Evaluator = Callable[[Problem, MappingBatch], tuple[np.ndarray, np.ndarray]]   # -> energy_pJ[B], cycles[B]


@dataclass
class Constraints:
    """Restrictions of the mapping space (indices are dimension positions in the problem)."""

    spatial: dict[int, set[int]] = field(default_factory=dict)
    """Spatial row -> dimensions allowed to be split there (rows not listed: any dimension)."""
    temporal: dict[int, set[int]] = field(default_factory=dict)
    """Dimension -> temporal levels allowed (not listed: any)."""
    innermost: dict[int, list[int]] = field(default_factory=dict)
    """Level -> dimensions whose loops sit innermost at that level, the last one innermost."""
    keep: dict[tuple[int, int], bool] = field(default_factory=dict)
    """(level, tensor) -> forced keep (True) or bypass (False)."""
    spatial_probability: float = 0.6


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
        if not allowed[:, :self.K].any(axis=1).all():
            raise ValueError("constraints leave some loop factor without a temporal level")
        self.allowed = allowed
        self.free = np.array([d not in seq for d in self.pd], bool)
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
        A = np.tile(self.allowed[:, :self.K].argmax(axis=1), (n, 1)).astype(np.int64)
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
        fan_ok = (logS.sum(axis=2) <= self.logfan[None, :] + 1e-9).all(axis=1)
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
           seed: int, objective: str = "edp", constraints: Constraints | None = None, tag: str = "") -> Outcome:
    """Price at most ``evaluations`` distinct candidates (all valid by construction) and return the best.
    ``Outcome.evaluated`` counts every candidate considered (priced, duplicate, or a change undone because it
    broke a fan-out or a capacity); ``valid`` the priced ones; ``invalid_reasons`` the rest by reason."""
    space = Space(problem, arch, constraints or Constraints())
    rng = np.random.default_rng(_seed(seed, problem, arch, tag))
    start = time.monotonic()
    seen: set[bytes] = set()
    duplicates = 0
    pool_A, pool_O, pool_keep, pool_score = [], [], [], []
    best: tuple[float, MappingBatch, float, float] | None = None
    priced = 0
    truncated = False
    batch_size = max(32, min(512, evaluations // 4))
    A, O, keep = space.outermost()
    rounds = stale = 0
    while priced < evaluations and stale < 3:
        if rounds:
            if time.monotonic() - start > seconds:
                truncated = True
                break
            n = min(batch_size, 2 * (evaluations - priced))
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
        batch = space.decode(A, O, keep)
        keys = batch.keys()
        fresh = [i for i, k in enumerate(keys) if k not in seen and not seen.add(k)]    # type: ignore[func-returns-value]
        duplicates += len(keys) - len(fresh)
        fresh = fresh[: evaluations - priced]
        stale = stale + 1 if len(fresh) < max(1, len(keys) // 20) else 0
        if not fresh:
            continue
        A, O, keep, batch = A[fresh], O[fresh], keep[fresh], batch.take(fresh)
        priced += len(fresh)
        energy, cycles = evaluate(problem, batch)
        value = {"energy": energy, "delay": cycles}.get(objective, energy * cycles)
        i = int(np.argmin(value))
        if best is None or value[i] < best[0]:
            best = (float(value[i]), batch.take([i]), float(energy[i]), float(cycles[i]))
        pool_A.append(A)
        pool_O.append(O)
        pool_keep.append(keep)
        pool_score.append(value)
        if len(pool_score) > 4:                          # keep the pool small: merge and trim to the best
            s = np.concatenate(pool_score)
            top = np.argsort(s, kind="stable")[:64]
            pool_A, pool_O, pool_keep = ([np.concatenate(x)[top]] for x in (pool_A, pool_O, pool_keep))
            pool_score = [s[top]]
    assert best is not None                              # the outermost mapping always fits
    reasons = {k: v for k, v in space.rejected.items() if v}
    if duplicates:
        reasons["duplicate"] = duplicates
    return Outcome(best[1], best[2], best[3], priced + sum(reasons.values()), priced, reasons, truncated)


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
                   objective=objective, constraints=Constraints(), tag=tag)
    return from_batch(problem, found.batch, architecture, 0).levels[0].spatial


def search_operation(operation: Operation, architecture: Architecture, cost_model: "CostModel", budget: "Budget",
                     seed: int, objective: str, constraints: Constraints, tag: str) -> SearchResult:
    """:func:`search` over ``operation``'s whole mapping space under ``constraints``, the best mapping priced
    again by ``cost_model``: what a mapping searcher returns."""
    problem = Problem(operation)
    found = search(problem, architecture, batch_evaluator(cost_model, architecture),
                   evaluations=budget.evaluations, seconds=budget.seconds, seed=seed, objective=objective,
                   constraints=constraints, tag=tag)
    mapping = from_batch(problem, found.batch, architecture, 0)
    cost = cost_model.evaluate(operation, mapping, architecture)
    return SearchResult(mapping, cost, found.evaluated, found.valid, found.invalid_reasons, found.truncated_by_time,
                        objective)
