"""The trace generator's and the sampling's faster paths against the plain ones they stand in for: every box's key
and first line from per-axis tables (against every box's origin), a stretch of steps made at once (against the
chunks), the sampling units and the paced cycles as arrays (against the loops they replaced), and the kept line
counts (read-only, the same figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ntframe
from ntframe.memory import sampling, tracegen
from ntframe.memory.sampling import MIN_UNITS, Unit, _paced, _strata
from ntframe.memory.trace import ADDRESS_MAPPINGS, TRACE_DTYPE
from ntframe.memory.tracegen import TraceGenerator
from ntframe.runner import map_operation, operations_of
from tests.conftest import EXAMPLE
from tests.test_dram_backends import row_mode_generator


@pytest.fixture(scope="module")
def example():
    resolved = ntframe.validate(EXAMPLE, {"mapper.budget.evaluations": 200})
    seen, out = set(), []
    for op in operations_of(resolved)[1]:
        if op.shape_key() not in seen:
            seen.add(op.shape_key())
            mapping, cost, _ = map_operation(resolved, op)
            out.append((op, mapping, cost))
    return resolved.architecture, out


def test_box_keys_from_tables_are_every_boxs(example, monkeypatch):
    """Every tensor's boxes over all its changes, both layouts, both ways of making the keys (all boxes' origins
    at once, or axis by axis through tables): the same first lines, patterns and pattern indices as from each
    box's origin and key columns."""
    arch, ops = example
    checked = 0
    for few in (0, 1 << 30):
        monkeypatch.setattr(tracegen, "FEW_BOXES", few)
        for op, mapping, cost in ops:
            for layout in ("vault-local", "interleaved"):
                gen = TraceGenerator(op, mapping, arch, None, layout)
                for s in gen.streams:
                    if s.radices is None or not s.changes:
                        continue
                    sel = np.repeat(np.arange(s.changes), 2)            # a change fetched twice: both kept
                    q, patterns, pid = s.boxes(gen, sel)
                    ref_q, ref_patterns, ref_pid = s._boxes_by_rows(gen.dim_index(sel * s.period) @ s.coef.T)
                    assert np.array_equal(q, ref_q) and np.array_equal(pid, ref_pid), (op.name, layout, s.t.name)
                    assert [p.tolist() for p in patterns] == [p.tolist() for p in ref_patterns]
                    checked += 1
    assert checked > 20


def test_a_stretch_made_at_once_is_the_chunks(example):
    """Stretches of steps of every operation: made at once, they are the chunks' records end to end, and the
    steps' counts are the line counts'; when steps outlast the next one's start (little compute time) there is
    no such stretch, or it is still the chunks'."""
    arch, ops = example
    made = 0
    for op, mapping, cost in ops:
        for compute in (cost.on_die_cycles, 1.0):
            gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", compute)
            counts = gen.line_counts()
            for lo, hi in ((0, gen.steps), (gen.steps // 3, gen.steps // 3 + 5), (gen.steps - 1, gen.steps)):
                hi = min(hi, gen.steps)
                if hi <= lo:
                    continue
                got = gen.in_step_order(lo, hi)
                if got is None:
                    continue
                records, per_step = got
                want = np.concatenate(list(gen.chunks(lo, hi)) or [np.zeros(0, TRACE_DTYPE)])
                assert len(records) == len(want) and (records == want).all(), (op.name, lo, hi)
                assert per_step.tolist() == counts.per_step[lo:hi].tolist()
                made += 1
    assert made > 10


def _strata_by_loops(gen, counts, window_requests, strata):
    """sampling._strata's row units as a loop made them (before the arrays): (units, keys, gaps)."""
    per_step = counts.per_step
    units, keys = [], []
    busy = [int(st) for st in np.flatnonzero(per_step)]
    gaps = {}
    previous = (-1, 0, 0)
    for k, step in enumerate(busy):
        per_vault = counts.per_step_vault[step]
        per_vault = per_vault[per_vault > 0]
        rows = int(per_vault.max())
        length = max(1, round(rows * window_requests / int(per_step[step])))
        gaps[step] = (float(int(math.floor(busy[k + 1] * gen.step_cycles)) - int(math.floor(step * gen.step_cycles)))
                      if k + 1 < len(busy) else None)
        lo = np.arange(0, rows, length)
        hi = np.minimum(lo + length, rows)
        requests = np.clip(per_vault[None, :] - lo[:, None], 0, (hi - lo)[:, None]).sum(axis=1)
        active = np.stack([(per_vault[None, :] > lo[:, None]).sum(axis=1),
                           (per_vault[None, :] >= hi[:, None]).sum(axis=1)], axis=1)
        for a, b, n, key in zip(lo.tolist(), hi.tolist(), requests.tolist(), map(tuple, active.tolist())):
            warm = (step, max(0, a - (b - a)), a) if a else (previous[0], max(0, previous[2] - (b - a)), previous[2])
            units.append(Unit(a, b, step, n, float(n), warm))
            keys.append(key)
            previous = (step, a, b)
    return units, keys, gaps


def _classed_by_loops(units, keys, strata):
    if len(units) <= 2:
        return [[u] for u in units]
    classes = {}
    for unit, key in zip(units[1:-1], keys[1:-1]):
        classes.setdefault(key, []).append(unit)
    inner = len(units) - 2
    out = [[units[0]]]
    for key in sorted(classes):
        members = classes[key]
        groups = max(1, min(len(members) // MIN_UNITS, round(strata * len(members) / inner)))
        out += [[members[i] for i in g] for g in np.array_split(np.arange(len(members)), groups)]
    return [*out, [units[-1]]]


def _paced_by_loops(layers, parts, gaps):
    memory = dict.fromkeys(gaps, 0.0)
    for s in layers:
        _, ys, ratio = s._sample("cycles")
        known = dict(zip(s.chosen, ys))
        for i, u in enumerate(s.units):
            memory[u.step] += known.get(i, ratio * u.span_cycles)
    bound = {step: gap is None or memory[step] >= gap for step, gap in gaps.items()}
    cycles = sum(memory[step] if bound[step] else gap for step, gap in gaps.items())
    var = 0.0
    for s, (_, v) in zip(layers, parts):
        x_all = sum(u.span_cycles for u in s.units)
        x_bound = sum(u.span_cycles for u in s.units if bound[u.step])
        var += v * (x_bound / x_all) ** 2 if x_all else 0.0
    return cycles, var


@pytest.mark.parametrize("layout", ["vault-local", "interleaved"])
@pytest.mark.parametrize("window", [64, 300, 2048])
def test_row_units_and_paced_cycles_are_the_loops(layout, window):
    """Row units (a few large steps), several window lengths: the units, their classes and strata and the steps'
    gaps are the loops'; the paced cycles and their variance, from figures of some units, are the loops' to the
    last bit (and of the same type)."""
    gen = row_mode_generator(layout)
    counts = gen.line_counts()
    layers, gaps = _strata(gen, counts, window, 8)
    assert gaps, "row mode"
    units, keys, want_gaps = _strata_by_loops(gen, counts, window, 8)
    assert gaps == want_gaps
    assert [u for s in layers for u in s.units] == [u for g in _classed_by_loops(units, keys, 8) for u in g]
    assert [s.units for s in layers] == _classed_by_loops(units, keys, 8)
    rng = np.random.default_rng(3)
    for s in layers:
        for i in rng.permutation(len(s))[:MIN_UNITS].tolist():
            s.chosen.append(i)
            s.figures.append({q: float(rng.random() * 1e4) for q in sampling.QUANTITIES})
    parts = [s.estimate("cycles") for s in layers]
    got, want = _paced(layers, parts, gaps), _paced_by_loops(layers, parts, gaps)
    assert got == want and [type(x) for x in got] == [type(x) for x in want]


def test_step_units_are_the_loops(example):
    """Step units of every operation, several window lengths: their strata are those of a loop over the units."""
    arch, ops = example
    checked = 0
    for op, mapping, cost in ops:
        gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", cost.on_die_cycles)
        counts = gen.line_counts()
        for window in (16, 256, 4096):
            if counts.requests <= window:
                continue
            layers, gaps = _strata(gen, counts, window, 8)
            if gaps:
                continue
            per_step = counts.per_step
            mean = counts.requests / max(1, len(per_step))
            length, radices = sampling._unit_loops([f for _, f in gen.loops], window / max(mean, 1e-9))
            ends = np.concatenate([[0], np.cumsum(per_step)])
            units = [Unit(lo, lo + length, -1, int(ends[lo + length] - ends[lo]), length * gen.step_cycles)
                     for lo in range(0, len(per_step), length)]
            want = _classed_by_loops(units, [sampling._turnover(u, radices) for u in range(len(units))], 8)
            assert [s.units for s in layers] == want, (op.name, window)
            checked += 1
    assert checked >= 5


def test_line_counts_are_kept_read_only(example):
    """The same operation and mapping counted again (another generator): the same counts, kept, read-only."""
    arch, ops = example
    op, mapping, cost = ops[0]
    first = TraceGenerator(op, mapping, arch, None).line_counts()
    again = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", 5.0).line_counts()
    assert again is first
    with pytest.raises(ValueError):
        first.per_step[0] = 1
    other = TraceGenerator(op, mapping, arch, None, "interleaved").line_counts()
    assert other is not first
