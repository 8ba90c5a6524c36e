"""The mapping space as the searches see it: every prime factor of every loop bound assigned to a *slot* (a
temporal loop at a storage level, or a spatial split into a level or the compute units), a loop-order key per
level and dimension and a keep bit per level and tensor; random samples that fit, mutations, the neighbourhood
of one mapping, the fit checks (fan-outs and capacities, in log space), all as numpy arrays. Used by the
sampling search (:mod:`ntframe.mapping.search`) and the bounded search's final descent
(:mod:`ntframe.mapping.bounded`). The loops over factors and candidates run in optional compiled kernels
(:mod:`ntframe.mapping.kernels`, :data:`SPACE_KERNELS`) when numba is installed: the same random numbers drawn in
the same order, the same verdicts, moves and mappings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ntframe.errors import MappingError
from ntframe.hardware.architecture import Architecture
from ntframe.jit import OptionalKernel
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapspace import MappingBatch, Problem, from_batch, level_capacities

if TYPE_CHECKING:
    from ntframe.components import CostModel

Evaluator = Callable[[Problem, MappingBatch], tuple[np.ndarray, np.ndarray]]   # -> energy_pJ[B], cycles[B]

SPACE_KERNELS = OptionalKernel("ntframe.mapping.kernels", "the mapping space's compiled checks and sampler",
                               "the mapping space's numpy code")
"""The mapping space's compiled fit checks, sampler, mutations, neighbour moves and decoder
(:mod:`ntframe.mapping.kernels`), optional (:mod:`ntframe.jit`): the same verdicts, moves and mappings as the numpy
code of :class:`Space`, with the same random numbers."""

FITS, FAN_OUT, CAPACITY = 0, 1, 2
"""Verdicts of :meth:`Space.fit_codes`: the assignment fits, breaks a fan-out (or a slot's upper bound), breaks
a level's capacity (with the fan-outs held)."""


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


KICK = 4
"""Most random changes in a kick of an iterated descent (:meth:`Space.kick`; the searches draw 2 to this many)."""
IDLE_KICKS = 50
"""Kicks in a row that improve nothing before an iterated descent stops."""


class Shortlist:
    """The ``size`` best distinct complete mappings a search priced, by its objective: what
    :func:`ntframe.mapping.search.search_operation` prices again with the cost model's own :meth:`evaluate` (the
    figures it reports), to rank the finalists by what is reported rather than by the batch estimate."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: list[tuple[float, int, bytes, MappingBatch]] = []     # (value, arrival, key, batch), sorted
        self.keys: set[bytes] = set()
        self.arrivals = 0
        self.fewest: tuple[float, int, MappingBatch] | None = None        # (value, DRAM steps, mapping)

    def limit(self) -> float:
        return self.items[-1][0] if len(self.items) >= self.size else np.inf

    def offer(self, values: np.ndarray, rows: Callable[[np.ndarray], MappingBatch], T: np.ndarray) -> None:
        """Candidates priced at ``values``, with the temporal factors ``T`` [n, K, D]; ``rows(idx)``: the batch of
        those rows (built only for the few that enter: the best ``size`` under the current limit, and the one of
        the fewest DRAM steps among those that tie with the best value)."""
        values = np.asarray(values, float)
        self._offer_fewest(values, rows, T)
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

    def _offer_fewest(self, values: np.ndarray, rows: Callable[[np.ndarray], MappingBatch], T: np.ndarray) -> None:
        finite = np.flatnonzero(np.isfinite(values))
        if not len(finite):
            return
        low = float(values[finite].min())
        if self.fewest is not None and low > self.fewest[0]:
            return
        tied = finite[values[finite] == low]
        steps = T[tied, 0].prod(axis=1)
        i = int(tied[np.argmin(steps)])                 # the first of the fewest
        if self.fewest is None or low < self.fewest[0] or int(steps.min()) < self.fewest[1]:
            self.fewest = (low, int(steps.min()), rows(np.array([i])).canonical())

    def fewest_steps(self) -> MappingBatch | None:
        """Of the mappings that tie with the best value priced, the first of those that fetch from the DRAM in
        the fewest steps (the outermost level's loops): the batch estimate prices ties alike, the memory backend's
        row hits may not."""
        return None if self.fewest is None else self.fewest[2]


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
        self.max_factor = np.full((self.nslots, D), np.inf)     # the same bounds as factors (the kernels')
        for (slot, d), (lo, hi) in sorted(constraints.factors.items()):
            name = f"factor of {problem.dims[d]} at slot {slot}"
            self.max_log[slot, d] = np.log(hi) + 1e-9
            self.max_factor[slot, d] = hi
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
        self.free_idx = np.flatnonzero(self.free)
        self.rejected = {"fan-out": 0, "capacity": 0}     # proposed changes undone, by reason
        # what _propose chooses from: each factor's allowed temporal slots and spatial rows, in order (0 past the
        # last, as an empty choice gives), and how many
        self.tslots, self.tcount = _choices(allowed[:, :self.K])
        self.sslots, self.scount = _choices(allowed[:, self.K:])
        self._first: np.ndarray | None = None             # outermost()'s slots, made on first use
        self._lists = {"pd": self.pd.tolist(), "pv": self.pv.tolist(), "free": self.free_idx.tolist(),
                       "allowed": allowed.tolist(),
                       "targets": [np.flatnonzero(row).tolist() for row in allowed]}   # for neighbours()
        self._kernel_args: tuple | None = None            # the kernels' constant arguments, made on first use

    # --- encoding --------------------------------------------------------------------------------------
    def decode(self, A: np.ndarray, O: np.ndarray, keep: np.ndarray) -> MappingBatch:
        """The canonical batch of the slot assignments ``A[B, P]``, loop-order keys ``O[B, K, D]`` (the
        constraints' innermost loops and the time steps placed by their own keys) and keep bits ``keep[B, K, Tn]``
        (the constraints' applied): by the compiled decoder when it runs, else numpy (the same arrays)."""
        B, K, D = A.shape[0], self.K, self.problem.D
        key = O.copy()
        for lvl, dims in self.c.innermost.items():
            for rank, d in enumerate(dims):
                key[:, lvl, d] = 10.0 + rank
        for rank, d in enumerate(self.problem.sequential):
            key[:, 0, d] = -10.0 + rank
        kernels = SPACE_KERNELS.get()
        if kernels is not None:
            T, S, R = np.empty((B, K, D), np.int64), np.empty((B, K + 1, D), np.int64), np.empty((B, K, D), np.int64)
            try:
                kernels.decode_slots(np.ascontiguousarray(A, np.int64), np.ascontiguousarray(key, np.float64),
                                     self.pv, self.pd, T, S, R)
            except Exception as exc:    # an optional accelerator must not cost results: numpy serves
                SPACE_KERNELS.failed(exc)
            else:
                return MappingBatch(T, S, R, self.kept(keep))
        if self.P:
            onehot = (A[:, :, None] == np.arange(self.nslots)[None, None, :]).astype(float)
            F = np.rint(np.exp(np.einsum("bps,pd->bsd", onehot, self.logm))).astype(np.int64)
        else:
            F = np.ones((B, self.nslots, D), np.int64)
        T, S = F[:, :K], F[:, K:]
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
        if self._first is None:
            self._first = self._outermost_slots()
        A = np.tile(self._first, (n, 1)).astype(np.int64)
        O = np.tile(np.arange(self.problem.D, dtype=float), (n, self.K, 1))
        keep = np.ones((n, self.K, len(self.problem.tensors)), bool)
        return A, O, keep

    def _outermost_slots(self) -> np.ndarray:
        """The slot of every prime factor in :meth:`outermost`'s mapping."""
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
        return first

    # --- fast validity of slot assignments (fan-outs and capacities) in log space ------------------------
    def _logs(self, A: np.ndarray) -> np.ndarray:
        """Log of the product of the prime factors in every slot and dimension: [n, 2K+1, D]."""
        onehot = (A[:, :, None] == np.arange(self.nslots)[None, None, :]).astype(float)
        return np.einsum("nps,pd->nsd", onehot, self.logm)

    def _checks(self, LF: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fan-outs hold, capacities hold) per candidate, from the logs of the factors (numpy; the kernels
        compute the same verdicts from the factors themselves: :meth:`fit_codes`)."""
        K = self.K
        logT, logS = LF[:, :K], LF[:, K:]
        fan_ok = (logS.sum(axis=2) <= self.logfan[None, :] + 1e-9).all(axis=1) & (LF <= self.max_log).all(axis=(1, 2))
        cum_t = np.cumsum(logT[:, ::-1], axis=1)[:, ::-1]                 # sum over levels >= l
        cum_s = np.cumsum(logS[:, :0:-1], axis=1)[:, ::-1]                # sum over rows > l
        E = np.rint(np.exp(cum_t + cum_s))
        tb = (np.where(self.kept(keep), np.ceil(self.problem.extents(E) * self.bits8), 0)).sum(axis=2)
        return fan_ok, (tb <= self.caps[None, :]).all(axis=1)

    def fit_codes(self, A: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Per slot assignment ``A[n, P]`` with keep bits ``keep[n, K, Tn]``: :data:`FITS`, :data:`FAN_OUT` or
        :data:`CAPACITY` (not counted as rejections). By the compiled checks when they run, else numpy."""
        compiled = self._compiled()
        if compiled is not None:
            kernels, args = compiled
            codes = np.empty(A.shape[0], np.int64)
            try:
                kernels.fit_codes(np.ascontiguousarray(A, np.int64), np.ascontiguousarray(self.kept(keep), bool),
                                  self.pv, self.pd, *args, codes)
            except Exception as exc:    # an optional accelerator must not cost results: numpy serves
                SPACE_KERNELS.failed(exc)
            else:
                return codes
        fan_ok, cap_ok = self._checks(self._logs(A), keep)
        return np.where(fan_ok, np.where(cap_ok, FITS, CAPACITY), FAN_OUT)

    def _compiled(self) -> tuple | None:
        """(the kernel module, the constant arguments of its checks: fan-outs, slot bounds, capacities, the
        tensors' axes and bytes per element), or None where numpy serves: no kernels, or a tensor without axes
        or a negative coefficient (outside the integer checks' reach)."""
        kernels = SPACE_KERNELS.get()
        if kernels is None:
            return None
        if self._kernel_args is None:
            problem = self.problem
            starts = [int(x) for x in problem.axis_starts]
            ends = starts[1:] + [len(problem.coef_int)]
            applies = all(a < b for a, b in zip(starts, ends)) and bool((problem.coef_int >= 0).all())
            self._kernel_args = (
                (self.fanouts, self.max_factor, self.caps.astype(np.float64), problem.coef_int.astype(np.int64),
                 np.array(list(zip(starts, ends)), np.int64).reshape(-1, 2),
                 np.asarray(self.bits8, np.float64)) if applies else ())
        return (kernels, self._kernel_args) if self._kernel_args else None

    def _propose(self, p: np.ndarray, u: np.ndarray, s: np.ndarray) -> np.ndarray:
        """A random allowed slot for each prime index in p, given two uniform numbers per index (drawn ``u``
        first, then ``s``, each by one ``rng.random(len(p))``): ``s`` below the spatial probability tries a spatial
        row first (when one allows the factor), ``u`` picks the slot among the allowed ones."""
        scount, tcount = self.scount[p], self.tcount[p]
        spatial = (s < self.c.spatial_probability) & (scount > 0)
        srow = self.sslots[p, np.minimum((u * scount).astype(np.int64), np.maximum(scount - 1, 0))]
        tslot = self.tslots[p, np.minimum((u * tcount).astype(np.int64), np.maximum(tcount - 1, 0))]
        return np.where(spatial, self.K + srow, tslot)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random mappings that fit: start from the outermost mapping and offer every prime factor, in a
        random order, a random slot; keep the move when fan-outs and capacities still hold. The random numbers
        are drawn first (two arrays per step for :meth:`_propose`), then the moves are made by the compiled
        sampler when it runs, else numpy (the same moves)."""
        A, _, _ = self.outermost(n)
        O = rng.random((n, self.K, self.problem.D))
        keep = rng.random((n, self.K, len(self.problem.tensors))) < 0.85
        keep[:, 0] = True
        if not self.P:
            return A, O, keep
        order = np.argsort(rng.random((n, self.P)), axis=1)
        draws = np.empty((self.P, 2, n))
        for step in range(self.P):
            draws[step, 0] = rng.random(n)
            draws[step, 1] = rng.random(n)
        compiled = self._compiled()
        if compiled is not None:
            kernels, args = compiled
            moved = A.copy()
            try:
                fan, cap = kernels.sample_slots(moved, order, draws, self.free, self.pv, self.pd, self.tslots,
                                                self.tcount, self.sslots, self.scount,
                                                float(self.c.spatial_probability),
                                                np.ascontiguousarray(self.kept(keep), bool), *args)
            except Exception as exc:    # an optional accelerator must not cost results: numpy serves
                SPACE_KERNELS.failed(exc)
            else:
                self.rejected["fan-out"] += int(fan)
                self.rejected["capacity"] += int(cap)
                return moved, O, keep
        return self._sample_moves(A, order, draws, keep), O, keep

    def _sample_moves(self, A: np.ndarray, order: np.ndarray, draws: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """:meth:`sample`'s moves by numpy, in place on ``A``: at step ``t`` every row offers the factor
        ``order[:, t]`` the slot :meth:`_propose` picks with ``draws[t]``; kept when it still fits."""
        n = A.shape[0]
        LF = self._logs(A)
        rows = np.arange(n)
        for step in range(self.P):
            p = order[:, step]
            move = self.free[p]
            prop = self._propose(p, draws[step, 0], draws[step, 1])
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
        return A

    def mutate(self, rng: np.random.Generator, A, O, keep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One random change per candidate — move a factor, swap two loops or flip a bypass bit; a change
        that breaks a fan-out or a capacity is undone. The random numbers are drawn first, in the order the changes
        use them; then the changes are made by the compiled kernel when it runs, else numpy (the same changes)."""
        n = A.shape[0]
        empty = np.zeros(0, np.int64)
        kind = rng.integers(0, 3 if self.K > 1 else 2, n)
        p, u, s = empty, np.zeros(0), np.zeros(0)
        if len(self.free_idx):
            p = self.free_idx[rng.integers(0, len(self.free_idx), n)]
            u = rng.random(n)                           # _propose's numbers
            s = rng.random(n)
        lvl = rng.integers(0, self.K, n)
        d1, d2 = rng.integers(0, self.problem.D, n), rng.integers(0, self.problem.D, n)
        fl, ft = empty, empty
        if self.K > 1:
            fl = rng.integers(1, self.K, n)
            ft = rng.integers(0, len(self.problem.tensors), n)
        kernels = SPACE_KERNELS.get()
        if kernels is not None and A.dtype == np.int64 and O.dtype == np.float64 and keep.dtype == bool:
            mA, mO, mk = A.copy(), O.copy(), keep.copy()
            try:
                kernels.mutate_slots(mA, mO, mk, kind, p, u, s, lvl, d1, d2, fl, ft, self.tslots, self.tcount,
                                     self.sslots, self.scount, float(self.c.spatial_probability))
            except Exception as exc:    # an optional accelerator must not cost results: numpy serves
                SPACE_KERNELS.failed(exc)
            else:
                return mA, mO, mk
        A, O, keep = A.copy(), O.copy(), keep.copy()
        rows = np.arange(n)
        if len(p):
            move = kind == 0
            A[rows[move], p[move]] = self._propose(p, u, s)[move]
        swap = kind == 1
        a, b = O[rows, lvl, d1].copy(), O[rows, lvl, d2].copy()
        O[rows[swap], lvl[swap], d1[swap]] = b[swap]
        O[rows[swap], lvl[swap], d2[swap]] = a[swap]
        if self.K > 1:
            flip = kind == 2
            keep[rows[flip], fl[flip], ft[flip]] ^= True
        return A, O, keep

    def kick(self, rng: np.random.Generator, A, O, keep, changes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``changes`` rounds of :meth:`mutate`, each change that breaks a fan-out or a capacity undone (its loop
        order change kept: it fits whatever the order)."""
        for _ in range(changes):
            mA, O, mk = self.mutate(rng, A, O, keep)
            fit = self.fits(mA, mk)
            A = np.where(fit[:, None], mA, A)
            keep = np.where(fit[:, None, None], mk, keep)
        return A, O, keep

    def neighbours(self, A: np.ndarray, O: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every mapping one step from (A, O, keep), fitting or not: move 1..n equal prime factors of a dimension
        from their slot to another allowed slot, exchange the slots of two factors of different dimensions, make
        a loop the innermost or the outermost of its level (above the innermost level, whose order prices
        nothing), flip a keep bit below the outermost level."""
        K, D, Tn = self.K, self.problem.D, len(self.problem.tensors)
        n_o, n_k = 2 * (K - 1) * D, (K - 1) * Tn
        moves = self._neighbour_moves(A)
        NA = np.concatenate([moves, np.tile(A, (n_o + n_k, 1))]).astype(np.int64)
        if n_o:     # each loop above the innermost level made the outermost (key max + 1), then the innermost
            q = np.arange(n_o)
            lvl, d = q // (2 * D), q // 2 % D
            orders = np.tile(O, (n_o, 1, 1))
            orders[q, lvl, d] = np.where(q % 2 == 0, O.max(axis=1)[lvl] + 1, O.min(axis=1)[lvl] - 1)
        else:
            orders = np.array([]).reshape(0, K, D)
        if n_k:     # each keep bit below the outermost level flipped
            q = np.arange(n_k)
            flips = np.tile(keep, (n_k, 1, 1))
            flips[q, 1 + q // Tn, q % Tn] ^= True
        else:
            flips = np.array([]).reshape(0, K, Tn)
        n_a = len(moves)
        NO = np.concatenate([np.tile(O, (n_a, 1, 1)), orders, np.tile(O, (n_k, 1, 1))])
        NK = np.concatenate([np.tile(keep, (n_a + n_o, 1, 1)), flips])
        return NA, NO, NK

    def _neighbour_moves(self, A: np.ndarray) -> np.ndarray:
        """:meth:`neighbours`' moves and exchanges of prime factors from ``A[P]``: [rows, P] (by the compiled
        kernel when it runs, else Python lists; the same rows in the same order)."""
        kernels = SPACE_KERNELS.get()
        if kernels is not None:
            try:
                return kernels.neighbour_moves(np.ascontiguousarray(A, np.int64), self.free_idx, self.pd, self.pv,
                                               self.allowed)
            except Exception as exc:    # an optional accelerator must not cost results: Python serves
                SPACE_KERNELS.failed(exc)
        slots, pd, pv, allowed = A.tolist(), self._lists["pd"], self._lists["pv"], self._lists["allowed"]
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i in self._lists["free"]:
            groups.setdefault((pd[i], pv[i], slots[i]), []).append(i)
        # the moves and exchanges as (row, factor, new slot) changes of A, rows in the order they are listed
        rows: list[int] = []
        cols: list[int] = []
        vals: list[int] = []
        n_a = 0
        for (_, _, slot), idx in groups.items():
            targets = [t for t in self._lists["targets"][idx[0]] if t != slot]
            for m in range(1, len(idx) + 1):
                for target in targets:
                    rows += [n_a] * m
                    cols += idx[:m]
                    vals += [target] * m
                    n_a += 1
        members = list(groups.values())
        for x, gi in enumerate(members):
            i = gi[0]
            for gj in members[x + 1:]:
                j = gj[0]
                if slots[i] == slots[j] or pd[i] == pd[j] or not (allowed[i][slots[j]] and allowed[j][slots[i]]):
                    continue
                for m in range(1, len(gi) + 1):          # exchange equal products (one factor each if unequal)
                    for n in range(1, len(gj) + 1):
                        if (m, n) != (1, 1) and pv[i] ** m != pv[j] ** n:
                            continue
                        rows += [n_a] * (m + n)
                        cols += gi[:m] + gj[:n]
                        vals += [slots[j]] * m + [slots[i]] * n
                        n_a += 1
        moves = np.tile(A, (n_a, 1)).astype(np.int64)
        moves[rows, cols] = vals
        return moves

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
        """Which slot assignments fit (fan-outs and capacities); those that do not are counted as rejections."""
        codes = self.fit_codes(A, keep)
        self.rejected["fan-out"] += int((codes == FAN_OUT).sum())
        self.rejected["capacity"] += int((codes == CAPACITY).sum())
        return codes == FITS


def _choices(ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``ok[n, m]``: its allowed columns in order, padded with 0 ([n, m]; an empty choice picks column
    0), and how many there are ([n])."""
    count = ok.sum(axis=1).astype(np.int64)
    table = np.zeros(ok.shape, np.int64)
    rows, cols = np.nonzero(ok)
    table[rows, (np.cumsum(ok, axis=1) - 1)[rows, cols]] = cols
    return table, count


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


__all__ = ["CAPACITY", "FAN_OUT", "FITS", "IDLE_KICKS", "KICK", "Evaluator", "Outcome", "Shortlist", "Space",
           "objective_value",
           "batch_evaluator", "prime_factors"]
