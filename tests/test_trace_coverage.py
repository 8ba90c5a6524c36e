"""The request trace fetches everything an operation needs: every element of a read tensor that the operation
touches is in a line the trace reads, and every element a written tensor receives is in a line it writes.

Two defects this catches (fixed 2026-12-07): a box fetched ``rep`` times per change on average, ``rep`` just under
1 because its halo is clipped at the tensor's edge, was fetched on only some of its changes (the per-change shares
were rounded down: the small CNN's ``conv1.forward`` read 58 KB of its 96 KB input), and a box with strided gaps
(a pooling's scattered gradient, a strided 1x1 convolution's input) counted its whole bounding box in ``rep``'s
denominator (``rep`` 0.29 rounded to 0: ``pool5.backward_data`` of VGG-16 wrote nothing).
"""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest

from ntframe.components import Budget
from ntframe.api import load_architecture
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import Problem, from_batch
from ntframe.mapping.search import search_operation
from ntframe.mapping.space import Space
from ntframe.memory.tracegen import TraceGenerator, _touched_offsets
from ntframe.workload.builder import NetworkBuilder
from ntframe.workload.ir import PHASES
from ntframe.workload.training import expand
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import ROOT
from tests.test_bounded import cnn_ops

NEUROTRAINER = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"


def strided_ops(batch: int = 2) -> dict:
    """A max pooling (its gradient is scattered with a stride wider than its window) and a strided 1x1 convolution
    (its input is read with gaps)."""
    b = NetworkBuilder("strided")
    x = b.input("x", (8, 16, 16))
    x = b.pool(b.conv(x, 8, 3, padding=1, name="c"), "max", 2, name="p")
    b.conv(x, 16, 1, stride=2, name="d")
    bits = {"forward": 16, "backward_data": 32, "backward_weight": 32, "update": 32}
    return {op.name: op for op in expand(b.build(batch), PHASES, bits)}


def touched_elements(op, j: int) -> int:
    """Distinct elements of tensor ``j`` the whole operation touches: per axis, the offsets its projection takes
    over the operation's bounds, shifted by the axis' offset (padding) and kept inside the tensor."""
    t = op.tensors[j]
    dims = [d for d, _ in op.dims]
    bounds = np.array([n for _, n in op.dims], np.int64)
    offsets = t.offsets or (0,) * len(t.projection)
    count = 1
    for axis, size, off in zip(t.projection, t.shape, offsets):
        coef = np.array([sum(c for dd, c in axis if dd == d) for d in dims], np.int64)
        positions = _touched_offsets(coef, bounds, np.ones_like(bounds)) + off
        count *= int(((positions >= 0) & (positions < size)).sum())
    return count


def mappings(op, arch, count: int):
    """The native mapper's answer and ``count`` random valid mappings of the operation."""
    problem = Problem(op)
    found = search_operation(op, arch, NativeCostModel(), Budget(evaluations=300, seconds=600), 0, "edp",
                             Constraints(), "native")
    out = [found.mapping]
    space = Space(problem, arch, for_operation(problem, arch, Constraints()))
    A, O, keep = space.sample(np.random.default_rng(7), count * 4)
    fit = space.fits(A, keep)
    batch = space.decode(A[fit], O[fit], keep[fit])
    for i in range(min(count, len(batch))):
        out.append(from_batch(problem, batch.take([i]), arch, 0))
    return out


@pytest.fixture(scope="module")
def arch():
    return load_architecture(NEUROTRAINER)


@pytest.mark.parametrize("group", ["cnn", "strided"])
def test_every_touched_element_is_in_a_line_the_trace_moves(arch, group):
    ops = cnn_ops(batch=2) if group == "cnn" else strided_ops()
    checked = 0
    for name, op in ops.items():
        if op.points > 2_000_000:
            continue
        for mapping in mappings(op, arch, 3):
            gen = TraceGenerator(op, mapping, arch, None)
            counts = gen.line_counts()
            for s in gen.streams:
                t = op.tensors[s.j]
                need_bytes = touched_elements(op, s.j) * t.precision_bits / 8
                # a line holds 64 bytes: the lines read (written) hold at least the elements needed
                if s.rep_r > 0:
                    assert counts.lines[s.j, 0] * 64 >= need_bytes, (name, t.name, "read", mapping)
                if s.rep_w > 0:
                    assert counts.lines[s.j, 1] * 64 >= need_bytes, (name, t.name, "write", mapping)
                assert s.rep_r > 0 or s.rep_w > 0, (name, t.name)
                checked += 1
    assert checked >= 40


def test_a_strided_gradient_is_written_once_where_it_lands(arch):
    """The pooling's gradient served point by point (no level below the DRAM keeps it): a box spans 2q - 1
    columns but receives q; it is written once per change (rep 1) and its lines are those of the elements it
    receives (brute force over one box). Kept by a level below, the box is the union of that level's tiles
    (bounding boxes, as the reuse analysis counts them), and every element it receives is still written."""
    op = strided_ops()["p.backward_data"]
    for kept in mappings(op, arch, 3):
        direct = dataclasses.replace(kept, levels=(kept.levels[0],) + tuple(
            dataclasses.replace(level, bypass=tuple(sorted(set(level.bypass) | {"dI"}))) for level in kept.levels[1:]))
        for mapping, gaps in ((kept, False), (direct, True)):
            if not gaps and all("dI" in level.bypass for level in kept.levels[1:]):
                continue
            gen = TraceGenerator(op, mapping, arch, None)
            s = next(s for s in gen.streams if op.tensors[s.j].name == "dI")
            assert gen.line_counts().lines[s.j, 1] * 64 >= touched_elements(op, s.j) * 4, mapping
            if not gaps:
                continue
            assert any(s.gapped), mapping
            assert s.rep_w == pytest.approx(1.0)
            key = (0, int(s.extent[-1])) + tuple(v for e in s.extent[:-1] for v in (0, int(e)))
            rows = np.array(np.meshgrid(*s.touched[:-1], indexing="ij")).reshape(len(s.extent) - 1, -1).T
            starts = rows @ s.strides[:-1]
            addresses = (starts[:, None] + s.touched[-1][None, :]).ravel() * s.bits // 8
            brute = np.unique(addresses // 64)
            assert np.array_equal(np.asarray(s.pattern(key)), brute - brute[0]), mapping


def test_a_clipped_halo_is_fetched_on_every_change(arch):
    """A convolution's input box whose halo is clipped at the image's edge is fetched a little less than once per
    change on average (``rep`` in (0.5, 1)): every change fetches it once, so the trace reads at least the whole
    input (the shares rounded to the nearest whole, not down)."""
    seen = 0
    for name, op in cnn_ops(batch=2).items():
        if name not in ("c1.forward", "c2.forward"):
            continue
        for mapping in mappings(op, arch, 12):
            gen = TraceGenerator(op, mapping, arch, None)
            s = next(s for s in gen.streams if op.tensors[s.j].name == "I")
            if 0.5 < s.rep_r < 1:
                seen += 1
                assert gen.line_counts().lines[s.j, 0] * 64 >= touched_elements(op, s.j) * 2, (name, mapping)
    assert seen >= 1
