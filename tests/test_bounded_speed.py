"""The bounded search's faster paths give the same figures to the last bit.

The compiled helpers (``ntframe/mapping/bound_kernels.py``) against the numpy code they stand in for, on layers
whose working sets overflow the buffers, strided and plain convolutions, FC layers and an LSTM's time steps, on
every shipped architecture and a four-level one: the native cost model's relaxed prices (``RelaxedPricing.parts``,
also on two levels with and without a network, with DRAM lines of 64 bytes and of one element, with and without
the spatial reduction's adds); its capacity penalty (the kernel against ``_passes`` and ``_fewest``) on sampled
structures and keep patterns with the relaxed prices' weights and random ones, and on splits and first kept levels
that no structure has; the per-structure mapper's capacity-maximal tiles (``_Mapper.tiles``) under the
architectures' constraints and under factor, level and innermost constraints of their own. Equal means
``==`` / ``np.array_equal``, not close. Also: the relaxed prices' touched extents equal
:func:`~ntframe.mapping.mapspace.touched_extents`, a chunk's relaxed prices and their combination over the keep
patterns equal each structure's alone (what the search's chunks rely on), ``NTFRAME_JIT=0`` turns the kernels off
and a failing kernel costs no result.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ntframe.mapping import bounded
from ntframe.mapping.bounded import Structures, _Mapper
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import Problem, touched_extents
from ntframe_plugins.native_cost import NativeCostModel, RelaxedPricing
from tests.conftest import compiled_or_skip
from tests.test_mapper_speed_equality import ops
from tests.test_pricing_kernel import OPTIONS, SHIPPED, architecture, at_precision

ARCHS = SHIPPED + ["four-levels"]
NAMES = ["c1.forward", "c2.backward_data", "c.forward", "c.backward_weight", "s.forward", "s.backward_data",
         "fc.backward_weight", "lstm.forward.recurrent", "lstm.backward_data.recurrent"]


@pytest.fixture(scope="module")
def kernels():
    return compiled_or_skip(bounded.KERNELS)


def sampled(problem: Problem, arch, c: Constraints, structures: int, patterns: int):
    found = Structures(problem, arch, c)
    return (found.spatial[:: max(1, len(found.spatial) // structures)],
            found.keeps[:: max(1, len(found.keeps) // patterns)])


def numpy_penalty(bounds: RelaxedPricing, split: np.ndarray, first: tuple[int, ...], weights: np.ndarray) -> float:
    passes = bounds._passes(split, first)
    return 0.0 if passes is None else max(0.0, bounds._fewest(split, passes, weights))


@pytest.mark.parametrize("arch_name", ARCHS + ["two-levels", "two-levels-network"])
def test_the_compiled_relaxed_prices_equal_numpy(kernels, arch_name, tmp_path, monkeypatch):
    """Every part of the relaxed prices, with DRAM lines of 64 bytes and of one element, with and without the
    spatial reduction's adds."""
    arch = architecture(arch_name, tmp_path)
    compiled = RelaxedPricing._compiled_parts
    priced: list[bool] = []
    monkeypatch.setattr(RelaxedPricing, "_compiled_parts", lambda *args: priced.append(compiled(*args)) or priced[-1])
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        spatial, _ = sampled(problem, arch, for_operation(problem, arch), 200, 1)
        for options in OPTIONS:
            got = NativeCostModel(options).bounds(problem, arch).parts(spatial)
            assert priced[-1], "the kernel did not price the structures"
            monkeypatch.setenv("NTFRAME_JIT", "0")
            want = NativeCostModel(options).bounds(problem, arch).parts(spatial)
            monkeypatch.delenv("NTFRAME_JIT")
            assert got.keys() == want.keys()
            for key in got:
                assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), (name, options, key)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_the_compiled_penalty_equals_numpy(kernels, arch_name, tmp_path):
    arch = architecture(arch_name, tmp_path)
    rng = np.random.default_rng(3)
    compared = positive = 0
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        spatial, keeps = sampled(problem, arch, for_operation(problem, arch), 12, 8)
        bounds = NativeCostModel().bounds(problem, arch)
        parts = bounds.parts(spatial)
        for k in range(len(spatial)):
            for keep in keeps:
                tensors, chain_of, first = bounds._pattern(keep)
                weights = parts["level0"][tensors, chain_of, k]
                for w in (weights, weights * rng.random(len(weights)) * (rng.random(len(weights)) < 0.8)):
                    got = bounds._compiled_penalty(spatial[k][0], first, w)
                    assert got is not None
                    assert got == numpy_penalty(bounds, spatial[k][0], first, w), (name, k, keep, w)
                    compared += 1
                    positive += got > 0
    assert compared and positive                    # the capacities bite somewhere


@pytest.mark.parametrize("arch_name", [SHIPPED[0], "four-levels"])
def test_the_compiled_penalty_equals_numpy_on_any_split(kernels, arch_name, tmp_path):
    """Splits of the outermost level that no fan-out allows (small and whole shares, the time steps' blocks
    alone), each tensor first kept at any level, weights over six decades and some zero."""
    arch = architecture(arch_name, tmp_path)
    K = len(arch.levels)
    rng = np.random.default_rng(12)
    positive = 0
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        bounds = NativeCostModel().bounds(problem, arch)
        Tn, seq = len(problem.tensors), set(problem.sequential)
        for trial in range(30):
            if trial % 3 == 0:
                split = np.array([1 if d in seq else b for d, b in enumerate(problem.bounds.tolist())])
            else:
                most = [min(b, 8) if trial % 3 == 1 else b for b in problem.bounds.tolist()]
                split = np.array([rng.choice([f for f in range(1, top + 1) if b % f == 0])
                                  for b, top in zip(problem.bounds.tolist(), most)])
            first = tuple(int(x) for x in rng.integers(1, K + 1, Tn))
            w = rng.random(Tn) * 10.0 ** rng.integers(0, 6, Tn) * (rng.random(Tn) < 0.9)
            got = bounds._compiled_penalty(split.astype(np.int64), first, w)
            assert got == numpy_penalty(bounds, split.astype(np.int64), first, w), (name, split, first, w)
            positive += got > 0
    assert positive


def test_the_compiled_penalty_is_not_used_with_negative_weights(kernels, tmp_path):
    arch = architecture(SHIPPED[0], tmp_path)
    problem = Problem(at_precision(ops()["s.forward"], arch))
    spatial, keeps = sampled(problem, arch, for_operation(problem, arch), 4, 4)
    bounds = NativeCostModel().bounds(problem, arch)
    _, _, first = bounds._pattern(keeps[0])
    assert bounds._compiled_penalty(spatial[0][0], first, -np.ones(len(problem.tensors))) is None


def tile_requests(problem: Problem, arch, spatial: np.ndarray, rng) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(level, tile under it, share) as the mapper asks them: every level of each structure, under the split
    below it and under a bigger tile of the level below."""
    K = len(arch.levels)
    out = []
    for S in spatial:
        for level in range(K):
            below = np.prod(S[level + 1:], axis=0)
            share = problem.bounds // np.prod(S[:level + 1], axis=0)
            out.append((level, below, share))
            room = share // below
            grow = np.array([rng.choice([f for f in range(1, r + 1) if r % f == 0]) for r in room.tolist()])
            out.append((level, below * grow, share))
    return out


def constrained(problem: Problem, arch) -> Constraints:
    """The architecture's constraints with factors, levels and innermost loops of the test's own."""
    K, D = len(arch.levels), problem.D
    c = for_operation(problem, arch)
    c.factors.update({(K - 1, D - 1): (1, 4), (max(0, K - 2), 0): (2, 8)})
    c.temporal[1 % D] = {0, K - 1}
    c.innermost[K - 1] = [D - 1]
    return c


@pytest.mark.parametrize("arch_name", ARCHS)
def test_the_compiled_tiles_equal_numpy(kernels, arch_name, tmp_path, monkeypatch):
    arch = architecture(arch_name, tmp_path)
    rng = np.random.default_rng(5)
    compared = 0
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        for c in (for_operation(problem, arch), constrained(problem, arch)):
            try:
                spatial, keeps = sampled(problem, arch, c, 6, 4)
            except Exception:                       # the test's own constraints do not fit every operation
                continue
            requests = tile_requests(problem, arch, spatial, rng)
            mapper = _Mapper(problem, arch, c, None, "edp")
            assert mapper._tile_args is not None
            got = [mapper._compiled_tiles(kernels, level, below, share // below, keep[level])
                   for level, below, share in requests for keep in keeps]
            monkeypatch.setenv("NTFRAME_JIT", "0")
            want = [_Mapper(problem, arch, c, None, "edp").tiles(level, below, share, keep)
                    for level, below, share in requests for keep in keeps]
            monkeypatch.delenv("NTFRAME_JIT")
            for a, b in zip(got, want):
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), name
                compared += 1
    assert compared


def test_touched_extents_of_every_axis_at_once(tmp_path):
    arch = architecture(SHIPPED[0], tmp_path)
    rng = np.random.default_rng(9)
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        bounds = NativeCostModel().bounds(problem, arch)
        E = np.stack([rng.choice([f for f in range(1, b + 1) if b % f == 0], 500) for b in problem.bounds.tolist()],
                     axis=1).astype(float)
        want = touched_extents(E, problem.coef_all)
        got = bounds._touched(E)
        assert got.dtype == want.dtype and np.array_equal(got, want), name


@pytest.mark.parametrize("arch_name", ARCHS[:2])
def test_a_chunk_prices_each_structure_as_alone(arch_name, tmp_path):
    arch = architecture(arch_name, tmp_path)
    for name in NAMES:
        problem = Problem(at_precision(ops()[name], arch))
        found = Structures(problem, arch, for_operation(problem, arch))
        spatial = found.spatial[:: max(1, len(found.spatial) // 40)]
        bounds = NativeCostModel().bounds(problem, arch)
        parts = bounds.parts(spatial)
        energy, cycles = bounds.combine(parts, found.keeps)
        for k in range(0, len(spatial), 7):
            alone = bounds.parts(spatial[k:k + 1])
            assert all(np.array_equal(alone[key], value[..., k:k + 1]) for key, value in parts.items()), name
            one_energy, one_cycles = bounds.combine(alone, found.keeps)
            assert np.array_equal(one_energy[0], energy[k]) and np.array_equal(one_cycles[0], cycles[k]), name


def test_the_kernels_can_be_turned_off(monkeypatch, tmp_path):
    monkeypatch.setenv("NTFRAME_JIT", "0")
    assert bounded.KERNELS.get() is None and RelaxedPricing.KERNELS.get() is None
    arch = architecture(SHIPPED[0], tmp_path)
    problem = Problem(at_precision(ops()["s.forward"], arch))
    spatial, keeps = sampled(problem, arch, for_operation(problem, arch), 4, 4)
    bounds = NativeCostModel().bounds(problem, arch)
    _, _, first = bounds._pattern(keeps[0])
    assert bounds._compiled_penalty(spatial[0][0], first, np.ones(len(problem.tensors))) is None


def test_a_failing_kernel_costs_no_result(monkeypatch, tmp_path):
    """If numba cannot compile or run a helper, numpy computes, with one warning naming the switch."""

    class Broken:
        @staticmethod
        def level_tiles(*args):
            raise RuntimeError("no compiler")

        @staticmethod
        def capacity_penalty(*args):
            raise RuntimeError("no compiler")

    arch = architecture(SHIPPED[0], tmp_path)
    problem = Problem(at_precision(ops()["s.forward"], arch))
    c = for_operation(problem, arch)
    spatial, keeps = sampled(problem, arch, c, 3, 3)
    monkeypatch.setenv("NTFRAME_JIT", "0")
    below, share = np.prod(spatial[0][2:], axis=0), problem.bounds // np.prod(spatial[0][:2], axis=0)
    want_tiles = _Mapper(problem, arch, c, None, "edp").tiles(1, below, share, keeps[0])
    bounds = NativeCostModel().bounds(problem, arch)
    parts = bounds.parts(spatial)
    want_penalty = bounds.penalty(parts, 0, spatial[0], keeps[-1])
    monkeypatch.delenv("NTFRAME_JIT")
    for kernel in (bounded.KERNELS, RelaxedPricing.KERNELS):
        monkeypatch.setattr(kernel, "_loaded", Broken)
        monkeypatch.setattr(kernel, "failure", None)
    with pytest.warns(RuntimeWarning, match="NTFRAME_JIT=0"):
        got_tiles = _Mapper(problem, arch, c, None, "edp").tiles(1, below, share, keeps[0])
    with pytest.warns(RuntimeWarning, match="NTFRAME_JIT=0"):
        got_penalty = NativeCostModel().bounds(problem, arch).penalty(parts, 0, spatial[0], keeps[-1])
    assert np.array_equal(got_tiles, want_tiles) and got_penalty == want_penalty and not math.isnan(got_penalty)
    assert bounded.KERNELS.get() is None and RelaxedPricing.KERNELS.get() is None
