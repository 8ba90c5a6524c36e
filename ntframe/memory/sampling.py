"""Whole-operation memory figures from simulated units of its request trace: stratified sampling by the
schedule's structure, with a 95 % interval, extended until the interval is within the tolerance asked.

The trace's requests are counted exactly first (:meth:`ntframe.memory.tracegen.TraceGenerator.line_counts`), so
the bytes are never estimated. A trace whose sample would cost as much as the trace is simulated whole. Otherwise
what the memory model adds — cycles, activations, row hits, latency — is estimated from *units*:

* **Units.** Stretches of DRAM-level steps of about ``window_requests`` requests, cut where the schedule's loops
  turn over (the innermost loops whole, times a divisor of the next one's factor); or, when a step holds
  ROW_MODE_WINDOWS windows or more (at most ROW_MODE_STEPS such steps), stretches of issue rows of each step.
* **Strata.** The first and the last unit of the trace are always simulated: the cold start and the drain are
  unlike the rest. The others are classed by what they fetch — a unit where an outer loop turns over fetches
  that loop's tensors anew (step units); how many vaults still issue in its rows (row units: the busiest
  vaults' tail is served with less parallelism) — and each class is cut into
  groups of consecutive units, about ``strata`` in all. Each stratum starts with MIN_UNITS units drawn at
  random (``seed``, without replacement).
* **A unit's figures** are what it adds to the trace: the model on the unit preceded by a warm-up (the stretch
  of the same length before it), less the model on the warm-up alone, so that the unit starts with the row
  buffers, queues and backlog its predecessors leave. Every unit of a trace so simulated adds up to the whole
  trace simulated at once within 0.33 % (METHOD_ERROR).
* **Estimates.** A quantity's stratum total is the ratio estimate ``X_h Σy / Σx`` over its simulated units,
  ``x`` each unit's exact number of requests (for the cycles of step units, their issue span); its variance
  is the ratio estimator's, ``M_h² (1 − n_h/M_h) s_h² / n_h``, with ``s_h²`` the larger of the stratum's own
  residual variance and every stratum's pooled. With row units, a step's memory time (its units' figures, or
  their stratum's ratio) counts where it outlasts the compute until the next step is issued. The half-width is
  ``t √Σ_h Var_h`` (Student's t at the pooled residuals' degrees of freedom), at least METHOD_ERROR of
  the estimate; units are added where they remove the most variance until the energy's and the cycles'
  half-widths are within ``tolerance``, the sample has cost half the trace (then the whole trace is simulated),
  or ``max_requests`` requests have been simulated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from ntframe.hardware.architecture import Architecture
from ntframe.memory.trace import ADDRESS_MAPPINGS, LINE_BYTES, TRACE_DTYPE
from ntframe.memory.tracegen import LineCounts, TraceGenerator, arch_memory_ratio
from ntframe.results import DramTraffic, MemoryCost

Z95 = 1.959963984540054
METHOD_ERROR = 0.005
"""The least half-width of a sampled estimate, relative: the method's own error. Every unit of a trace simulated
with its warm-up and combined (a census), against the whole trace simulated at once: at most 0.33 % (the cycles
of VGG-16's fc7.backward_weight at batch 8), under 0.03 % on the 25 other sampled layers of VGG-16 at batch 8
(``bench/bench_sampling.py --census``)."""
QUANTITIES = ("cycles", "energy_pJ", "activations", "row_hits", "row_conflicts", "read_latency_sum", "reads")
CONVERGED_ON = ("energy_pJ", "cycles")


@dataclass(frozen=True)
class Unit:
    """A sampling unit: steps [lo, hi) (``step`` is -1), or issue rows [lo, hi) of step ``step``."""

    lo: int
    hi: int
    step: int
    requests: int
    span_cycles: float                  # x of the cycles: issue span (steps), or requests (rows: see _paced)
    warm: tuple[int, int, int] = (-1, 0, 0)     # rows: the warm-up's (step, first row, end row)


@dataclass
class Estimate:
    """Totals of the whole operation, each quantity's 95 % half-width, and how much was simulated."""

    totals: dict[str, float]
    half_width: dict[str, float]
    simulated_requests: int
    requests: int
    units_simulated: int
    units: int
    exact: bool                         # the whole trace simulated at once: no sampling error
    converged: bool                     # the energy's and cycles' half-widths within the tolerance
    pooled: dict[str, float] = field(default_factory=dict)   # pooled relative residual variance per quantity

    @property
    def share_simulated(self) -> float:
        return self.simulated_requests / self.requests if self.requests else 1.0

    def relative_half_width(self, quantity: str) -> float:
        total = self.totals.get(quantity, 0.0)
        return self.half_width.get(quantity, 0.0) / abs(total) if total else 0.0


@dataclass(frozen=True)
class _Units:
    """Units as arrays, one entry per unit in trace order (:class:`Unit`'s fields; ``warm`` [n, 3])."""

    lo: np.ndarray
    hi: np.ndarray
    step: np.ndarray
    requests: np.ndarray
    span_cycles: np.ndarray
    warm: np.ndarray | None = None        # rows: each unit's warm-up (step, first row, end row); steps: None

    def __len__(self) -> int:
        return len(self.lo)

    def unit(self, i: int) -> Unit:
        warm = (-1, 0, 0) if self.warm is None else tuple(int(w) for w in self.warm[i])
        return Unit(int(self.lo[i]), int(self.hi[i]), int(self.step[i]), int(self.requests[i]),
                    float(self.span_cycles[i]), warm)


class _Stratum:
    """A stratum: its units (``members``, places in a :class:`_Units` table), those simulated (``chosen``, places
    in ``members``) and their figures."""

    def __init__(self, units: _Units, members: np.ndarray) -> None:
        self.table, self.members = units, members
        self.chosen: list[int] = []
        self.figures: list[dict[str, float]] = []
        self.x_cycles = units.span_cycles[self.members]
        self.x_requests = units.requests[self.members].astype(np.float64)
        self._totals = {"cycles": float(sum(self.x_cycles.tolist())),      # in order, as a loop adds them
                        "requests": float(int(units.requests[self.members].sum()))}
        self._samples: dict[str, dict] = {}                                  # _kept, by quantity

    def __len__(self) -> int:
        return len(self.members)

    def unit(self, i: int) -> Unit:
        return self.table.unit(int(self.members[i]))

    @property
    def units(self) -> list[Unit]:
        """Every unit as a :class:`Unit` (for inspection: the sampling reads the arrays)."""
        return [self.unit(i) for i in range(len(self))]

    def xs(self, quantity: str) -> np.ndarray:
        """The ``x`` of every unit for ``quantity``: issue span (cycles) or requests."""
        return self.x_cycles if quantity == "cycles" else self.x_requests

    def total_x(self, quantity: str) -> float:
        return self._totals["cycles" if quantity == "cycles" else "requests"]

    def _sample(self, quantity: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(x, y of the units simulated, their ratio)."""
        return self._kept(quantity)["sample"]

    def _kept(self, quantity: str) -> dict:
        """What the sample of ``quantity`` gives (:meth:`_sample`, and what :meth:`residuals` and :meth:`estimate`
        make of it), kept until a unit is added: the estimates are combined again after every few units. Read
        the arrays only."""
        kept = self._samples.get(quantity)
        if kept is None or kept["units"] != len(self.figures):
            xs = self.xs(quantity)[self.chosen] if self.chosen else np.zeros(0)
            ys = np.array([f[quantity] for f in self.figures])
            kept = {"units": len(self.figures), "sample": (xs, ys, (ys.sum() / xs.sum() if xs.sum() else 0.0))}
            self._samples[quantity] = kept
        return kept

    def residuals(self, quantity: str) -> np.ndarray:
        """The sample's residuals from its ratio, relative to its mean ``x`` (empty when nothing is unknown)."""
        kept = self._kept(quantity)
        if "residuals" not in kept:
            xs, ys, ratio = kept["sample"]
            kept["residuals"] = np.zeros(0) if len(self.chosen) >= len(self) or len(xs) < 2 or not xs.mean() \
                else (ys - ratio * xs) / xs.mean()
        return kept["residuals"]

    def estimate(self, quantity: str, pooled: float = 0.0) -> tuple[float, float]:
        """(stratum total, its variance; inf when a second unit is needed to know it). ``pooled``: the relative
        residual variance of every stratum's sample together, the least this stratum's is taken to be."""
        m, n = len(self), len(self.chosen)
        kept = self._kept(quantity)
        xs, ys, ratio = kept["sample"]
        total = self.total_x(quantity) * ratio
        if n >= m:
            return total, 0.0
        if n < 2:
            return total, math.inf
        if "own" not in kept:
            kept["own"] = float((ys - ratio * xs).var(ddof=1)), xs.mean() ** 2
        own, mean_x2 = kept["own"]
        return total, m * m * (1 - n / m) * max(own, pooled * mean_x2) / n


def whole_trace(gen: TraceGenerator) -> np.ndarray:
    return np.concatenate(list(gen.chunks()) or [np.zeros(0, TRACE_DTYPE)])


class SamplingOptions(BaseModel):
    """How a trace-driven memory backend samples an operation's trace (its options inherit these)."""

    model_config = ConfigDict(extra="forbid")
    tolerance: float = Field(0.02, gt=0, le=1)
    """Sampling: units of the trace are simulated until the 95 % interval of the operation's memory energy and
    cycles is within this share of the estimate (ntframe.memory.sampling)."""
    max_requests: PositiveInt = 1_000_000
    """Requests simulated per operation, about, at most. A trace is simulated whole when a sample would cost as
    much; a longer one is sampled until the tolerance is met or this many requests have been simulated (then
    `converged` is false)."""
    window_requests: PositiveInt = 2_048
    """Requests of one sampling unit (a stretch of steps, or of issue rows within a step)."""
    strata: PositiveInt = 8
    """Groups of units sampled on their own (by where the schedule's loops turn over, and by position)."""
    sample_seed: int = 0
    """Seed of the units drawn (the figures depend on it only within their interval)."""

    def estimate(self, gen: TraceGenerator, counts: LineCounts,
                 simulate: Callable[[np.ndarray], dict[str, float]]) -> Estimate:
        return estimate(gen, counts, simulate, tolerance=self.tolerance, max_requests=self.max_requests,
                        window_requests=self.window_requests, strata=self.strata, seed=self.sample_seed)


def estimate(gen: TraceGenerator, counts: LineCounts, simulate: Callable[[np.ndarray], dict[str, float]], *,
             tolerance: float, max_requests: int, window_requests: int, strata: int, seed: int = 0) -> Estimate:
    """The operation's totals: ``simulate(records)`` (the memory model on one stretch of the trace, returning the
    :data:`QUANTITIES`) on the whole trace when a sample's first draw would cost as much, else on sampled units
    until the interval is within ``tolerance`` or ``max_requests`` requests have been simulated (module
    docstring)."""
    total = counts.requests
    layers, gaps = _strata(gen, counts, window_requests, strata) if total > window_requests else ([], {})
    # the first draw, warm-ups too
    first = sum(3 * int(s.table.requests[s.members[:MIN_UNITS]].sum()) for s in layers)
    if not layers or first >= total:
        return _whole(gen, simulate, total, 0)              # a sample would cost more: the exact figures
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(s)).tolist() for s in layers]
    simulated = 0

    def take(h: int) -> None:
        nonlocal simulated
        s = layers[h]
        i = orders[h][len(s.chosen)]
        unit = s.unit(i)
        warm, both = _records(gen, unit)
        s.chosen.append(i)
        s.figures.append(_marginal(simulate, warm, both))
        simulated += len(both) + len(warm)

    for h, s in enumerate(layers):
        for _ in range(min(MIN_UNITS, len(s))):
            take(h)
    while True:
        result = _combine(layers, simulated, total, gaps)
        # units are marginal figures (a unit after its warm-up, less the warm-up alone), which may be negative: a
        # total below zero is no estimate, whatever its interval says
        plausible = all(result.totals[q] >= 0 for q in QUANTITIES)
        if plausible and result.converged and all(result.relative_half_width(q) <= tolerance for q in CONVERGED_ON):
            return result
        if simulated >= total / 2 and total <= max_requests:
            return _whole(gen, simulate, total, simulated)       # as dear as the whole trace by now, and exact
        open_ = [h for h, s in enumerate(layers) if len(s.chosen) < len(s)]
        if not open_ or simulated >= max_requests:
            if not plausible and total <= max_requests:
                return _whole(gen, simulate, total, simulated)   # the sample cannot tell: the exact figures
            result.converged = plausible and all(result.relative_half_width(q) <= tolerance for q in CONVERGED_ON)
            return result
        # the strata whose next unit removes the most variance (relative to the quantity's total), a few at a time
        gain = {}
        for h in open_:
            s = layers[h]
            gain[h] = max(s.estimate(q, result.pooled[q])[1] / max(result.totals[q], 1e-300) ** 2
                          / (len(s.chosen) + 1) for q in CONVERGED_ON)
        batch = max(1, sum(len(s.chosen) for s in layers) // 4)
        for h in sorted(open_, key=lambda h: -gain[h])[:batch]:
            if simulated >= max_requests:
                break
            take(h)


def sampled_memory_cost(traffic: DramTraffic, arch: Architecture, address_mapping: str, layout: str,
                        options: SamplingOptions,
                        simulator: Callable[[LineCounts], Callable[[np.ndarray], dict[str, float]]],
                        tck_ns: float, details: dict) -> MemoryCost:
    """A trace-driven memory backend's answer: the operation's request trace (``address_mapping``, ``layout``),
    its lines counted, the rest estimated by ``options`` with ``simulator(counts)`` (the memory model on one
    stretch of the trace; given the counts, to choose how to simulate) and combined by :func:`memory_cost`."""
    gen = TraceGenerator(traffic.op, traffic.mapping, arch, ADDRESS_MAPPINGS[address_mapping], layout,
                         traffic.compute_cycles)
    counts = gen.line_counts()
    return memory_cost(options.estimate(gen, counts, simulator(counts)), counts, tck_ns, arch_memory_ratio(arch),
                       details)


def memory_cost(est: Estimate, counts: LineCounts, tck_ns: float, memory_ratio: float,
                details: dict) -> MemoryCost:
    """A memory backend's figures from an estimate: the bytes counted, the rest estimated, with the intervals
    and the share simulated in ``details`` (after the backend's own ``details``)."""
    if not counts.requests:
        return MemoryCost(0.0, 0.0, 0, 0, 0.0, 0.0, {**details, "requests": 0})
    t, half = est.totals, est.half_width
    mem_cycles = t["cycles"]
    reads, writes = int(counts.lines[:, 0].sum()) * LINE_BYTES, int(counts.lines[:, 1].sum()) * LINE_BYTES
    seconds = mem_cycles * tck_ns * 1e-9
    return MemoryCost(
        mem_cycles / memory_ratio, t["energy_pJ"], reads, writes, (reads + writes) / seconds / 1e9 if seconds else 0.0,
        t["read_latency_sum"] / t["reads"] * tck_ns if t["reads"] > 0 else 0.0,
        {**details, "memory_cycles": mem_cycles, "requests": counts.requests,
         "simulated_requests": est.simulated_requests, "share_simulated": est.share_simulated,
         "whole_trace": est.exact, "units_simulated": est.units_simulated, "units": est.units,
         "energy_interval_pJ": [t["energy_pJ"] - half["energy_pJ"], t["energy_pJ"] + half["energy_pJ"]],
         "cycles_interval": [(mem_cycles - half["cycles"]) / memory_ratio,
                             (mem_cycles + half["cycles"]) / memory_ratio],
         "converged": est.converged, "row_hit_rate": t["row_hits"] / counts.requests,
         "activations": t["activations"], "row_conflicts": t["row_conflicts"]})


def _whole(gen: TraceGenerator, simulate: Callable[[np.ndarray], dict[str, float]], total: int,
           already: int) -> Estimate:
    figures = simulate(whole_trace(gen)) if total else {q: 0.0 for q in QUANTITIES}
    return Estimate({q: float(figures[q]) for q in QUANTITIES}, {q: 0.0 for q in QUANTITIES}, already + total,
                    total, 1, 1, True, True)


def student_t(dof: int) -> float:
    """The 97.5 % quantile of Student's t with ``dof`` degrees of freedom (Cornish-Fisher expansion about the
    normal's, within 0.5 % from 3 degrees on; 1.96 without residuals to count)."""
    if dof <= 0:
        return Z95
    z, v = Z95, max(dof, 3)
    return (z + (z ** 3 + z) / (4 * v) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * v ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * v ** 3))


def _paced(layers: list[_Stratum], parts: list[tuple[float, float]],
           gaps: dict[int, float | None]) -> tuple[float, float]:
    """The cycles of row units: each step's memory time (its units' figures where simulated, else their
    stratum's ratio times their requests) counts where it outlasts the compute until the next step is issued
    (``gaps``; the last step's counts whole); the variance of the strata's share in such steps. Sums are taken
    in the order of the strata and their units, one addition at a time (as a loop over them would)."""
    steps = np.fromiter(gaps, np.int64, len(gaps))                          # in order (as _strata makes them)
    last = np.array([g is None for g in gaps.values()])                      # counted whole
    gap = np.array([math.nan if g is None else g for g in gaps.values()])
    where, values, typed = [], [], np.zeros(len(steps), bool)
    for s in layers:
        _, ys, ratio = s._sample("cycles")
        value = ratio * s.x_cycles
        if s.chosen:
            value[s.chosen] = ys
        at = s.table.step[s.members]
        place = np.searchsorted(steps, at)
        where.append(place)
        values.append(value)
        # a step's time is a numpy float once a numpy float is added to it (a figure, or a numpy ratio)
        typed[place if isinstance(ratio, np.floating) else place[s.chosen]] = True
    memory = np.zeros(len(steps))
    np.add.at(memory, np.concatenate(where), np.concatenate(values))        # in order, one at a time
    bound = (memory >= gap) | last
    cycles = sum(np.where(bound, memory, gap).tolist())
    if (bound & typed).any():
        cycles = np.float64(cycles)
    var = 0.0
    for s, (_, v), at in zip(layers, parts, where):
        x_all = s.total_x("cycles")
        x_bound = sum(s.x_cycles[bound[at]].tolist())
        var += v * (x_bound / x_all) ** 2 if x_all else 0.0
    return cycles, var


def _combine(layers: list[_Stratum], simulated: int, total: int, gaps: dict[int, float | None]) -> Estimate:
    totals, half, pooled_by = {}, {}, {}
    for q in QUANTITIES:
        # three units cannot tell a stratum's spread (a tile fetched once in eight units is missed more often
        # than not): each stratum's variance is at least that of every stratum's residuals pooled
        residuals = [s.residuals(q) for s in layers]
        dof = sum(max(0, len(r) - 1) for r in residuals)
        pooled = sum(float((r ** 2).sum()) for r in residuals) / dof if dof else 0.0
        parts = [s.estimate(q, pooled) for s in layers]
        totals[q] = sum(t for t, _ in parts)
        pooled_by[q] = pooled
        var = sum(v for _, v in parts)
        if q == "cycles" and gaps:
            totals[q], var = _paced(layers, parts, gaps)
        half[q] = max(student_t(dof) * math.sqrt(var), METHOD_ERROR * abs(totals[q])) if math.isfinite(var) \
            else math.inf
    return Estimate(totals, half, simulated, total, sum(len(s.chosen) for s in layers),
                    sum(len(s) for s in layers), False, all(math.isfinite(half[q]) for q in CONVERGED_ON),
                    pooled_by)


ROW_MODE_STEPS = 4096
ROW_MODE_WINDOWS = 2                    # a step this many windows long or longer is sampled by its rows
MIN_UNITS = 3                           # simulated in each stratum before its variance is believed


def _strata(gen: TraceGenerator, counts: LineCounts, window_requests: int,
            strata: int) -> tuple[list[_Stratum], dict[int, float | None]]:
    """The units and their strata (module docstring): stretches of steps, or stretches of issue rows when a step
    holds ROW_MODE_WINDOWS windows or more (and there are at most ROW_MODE_STEPS steps); with rows, the memory
    cycles from each busy step's start to the next one's (None for the last)."""
    per_step = counts.per_step
    steps = len(per_step)
    mean = counts.requests / max(1, steps)
    if mean <= ROW_MODE_WINDOWS * window_requests or steps > ROW_MODE_STEPS:
        length, radices = _unit_loops([f for _, f in gen.loops], window_requests / max(mean, 1e-9))
        ends = np.concatenate([[0], np.cumsum(per_step)])
        lo = np.arange(0, steps, length)
        units = _Units(lo, lo + length, np.full(len(lo), -1), (ends[lo + length] - ends[lo]).astype(np.int64),
                       np.full(len(lo), length * gen.step_cycles))
        return _classed(units, _turnovers(len(lo), radices)[:, None], strata), {}
    busy = np.flatnonzero(per_step)
    # requests of each vault in each busy step (a vault without any adds nothing below)
    per_vault = counts.per_step_vault[busy] if counts.per_step_vault is not None \
        else np.stack([gen._boxes(int(step), int(step) + 1)[1] for step in busy])
    rows = per_vault.max(axis=1)
    length = np.maximum(1, np.rint(rows * window_requests / per_step[busy].astype(np.float64)).astype(np.int64))
    start = np.floor(busy * gen.step_cycles).astype(np.int64)               # each step's first row: the whole
                                                                             # trace's time (memory cycles)
    gaps: dict[int, float | None] = dict(zip(busy.tolist(), (start[1:] - start[:-1]).astype(np.float64).tolist()
                                             + [None]))
    many = -(-rows // length)                                                 # units per step
    step = np.repeat(busy, many)
    at = np.repeat(np.arange(len(busy)), many)
    lo = (np.arange(len(step)) - np.repeat(np.cumsum(many) - many, many)) * length[at]
    hi = np.minimum(lo + length[at], rows[at])
    requests = np.zeros(len(step), np.int64)
    # rows where fewer vaults still issue (the busiest vaults' tail) are served with less parallelism
    keys = np.zeros((len(step), 2), np.int64)
    for v in range(per_vault.shape[1]):
        load = per_vault[at, v]
        requests += np.minimum(np.maximum(load - lo, 0), hi - lo)
        keys[:, 0] += load > lo
        keys[:, 1] += load >= hi
    # the warm-up: as many rows before the unit, in its step or (a step's first unit) the last rows of the unit
    # before it
    size = hi - lo
    warm = np.stack([step, np.maximum(0, lo - size), lo], axis=1)
    head = np.flatnonzero(lo == 0)
    before = head - 1
    warm[head, 0] = np.where(before >= 0, step[before], -1)
    warm[head, 2] = np.where(before >= 0, hi[before], 0)
    warm[head, 1] = np.maximum(0, warm[head, 2] - size[head])
    units = _Units(lo, hi, step, requests, requests.astype(np.float64), warm)
    return _classed(units, keys, strata), gaps


def _turnovers(n: int, radices: list[int]) -> np.ndarray:
    """:func:`_turnover` of units 0 .. n-1."""
    level = np.zeros(n, np.int64)
    u = np.arange(n)
    going = np.ones(n, bool)                         # every loop inside still turned over
    for r in reversed(radices):
        going &= u % r == 0
        level += going
        u //= r
    return level


def _unit_loops(factors: list[int], target_steps: float) -> tuple[int, list[int]]:
    """A unit's length in steps — the innermost DRAM loops whole, times a divisor of the next loop's factor, as
    long as that stays within ``target_steps`` (at least one step) — and the radices of a unit's index over the
    loops outside it (outermost first). Units so cut start where the schedule's loops turn over, so a unit's
    place among those loops tells which tensors it fetches anew."""
    length = 1
    for j in range(len(factors) - 1, -1, -1):
        f = factors[j]
        if length * f <= target_steps:
            length *= f
            continue
        m = max(d for d in range(1, f + 1) if f % d == 0 and length * d <= max(target_steps, 1))
        return length * m, [*factors[:j], f // m]
    return length, []


def _turnover(u: int, radices: list[int]) -> int:
    """How many of the loops outside a unit turn over where unit ``u`` starts (0: only the innermost moves on)."""
    level = 0
    for r in reversed(radices):
        if u % r:
            break
        level, u = level + 1, u // r
    return level


def _classed(units: _Units, keys: np.ndarray, strata: int) -> list[_Stratum]:
    """Strata: the first and the last unit alone; the others by class (``keys``, a row per unit: units of a class
    fetch alike), each class cut into groups of consecutive units (a tensor's edges differ from its middle) in
    proportion to its size, about ``strata`` in all."""
    n = len(units)
    if n <= 2:
        return [_Stratum(units, np.array([i])) for i in range(n)]
    _, cls = np.unique(keys[1:-1], axis=0, return_inverse=True)               # classes in the keys' order
    cls = cls.ravel()
    order = np.argsort(cls, kind="stable") + 1                                # by class, in trace order
    bounds = np.flatnonzero(np.diff(cls[order - 1], prepend=-1, append=-1))
    inner = n - 2
    out = [_Stratum(units, np.array([0]))]
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        members = order[a:b]
        groups = max(1, min(len(members) // MIN_UNITS, round(strata * len(members) / inner)))
        out += [_Stratum(units, g) for g in np.array_split(members, groups)]
    return [*out, _Stratum(units, np.array([n - 1]))]


def _records(gen: TraceGenerator, unit: Unit) -> tuple[np.ndarray, np.ndarray]:
    """The records of the unit's warm-up (the stretch of its length before it) and of the warm-up and the unit
    together, times from the warm-up's start: a stretch of steps at its times in the whole trace; a stretch of
    rows right after its warm-up rows (the pause between steps is set against the memory time in _paced)."""
    if unit.step < 0:
        before = max(0, unit.lo - (unit.hi - unit.lo))
        made = gen.in_step_order(before, unit.hi)
        if made is not None:                # the warm-up's records are the first of the two together's
            both, per_step = made
            warm = both[:int(per_step[:unit.lo - before].sum())].copy()
        else:
            warm, both = (np.concatenate(list(gen.chunks(before, end)) or [np.zeros(0, TRACE_DTYPE)])
                          for end in (unit.lo, unit.hi))
        shift = both["time"].min() if len(both) else 0
        warm["time"] -= shift
        both["time"] -= shift
        return warm, both
    step, lo, hi = unit.warm
    warm = gen._row_window(step, lo, hi) if step >= 0 and hi > lo else np.zeros(0, TRACE_DTYPE)
    this = gen._row_window(unit.step, unit.lo, unit.hi)
    this["time"] += max(0, hi - lo)
    return warm, np.concatenate([warm, this])


def _marginal(simulate: Callable[[np.ndarray], dict[str, float]], warm: np.ndarray,
              both: np.ndarray) -> dict[str, float]:
    """What the unit adds to the trace: the model on the warm-up and the unit, less the model on the warm-up
    alone (so the unit starts with the row buffers, queues and backlog its predecessors leave, not empty)."""
    zero = {q: 0.0 for q in QUANTITIES}
    whole = simulate(both) if len(both) else zero
    lead = simulate(warm) if len(warm) else zero
    return {q: float(whole[q]) - float(lead[q]) for q in QUANTITIES}
