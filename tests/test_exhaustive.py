"""The exhaustive enumerator (the oracle) and the native search against it.

The enumerator prices loop orders up to what the reuse analysis reads of them; the first tests check that this
reduction loses nothing (orders alike in it price alike, the innermost level's order prices nothing) and that
the space it generates is the search's (every mapping the search returns is in it, none twice). Then the
native mapper at the default budget and at the example spec's lands within 1 % of the optimum for seeds 0–9 on
three small layers of the one-vault 8×8 design (arch_specs/tiny/1vault-8x8.yaml).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from ntframe.api import load_architecture
from ntframe.mapping.exhaustive import Enumeration, optimum, space_size
from ntframe.mapping.mapspace import MappingBatch, Problem
from ntframe.mapping.search import Constraints, search
from ntframe.mapping.space import Space, batch_evaluator
from ntframe.workload.builder import NetworkBuilder
from ntframe.workload.ir import PHASES
from ntframe.workload.training import expand
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import ROOT

TINY = ROOT / "arch_specs" / "tiny" / "1vault-8x8.yaml"


@functools.lru_cache(maxsize=None)
def tiny_optimum(name: str, batch: int, features: int):
    """The exhaustive optimum of one of :func:`small_ops` on the tiny one-vault design, enumerated once per test
    session (fc.forward's 1.5 M mappings take about 45 s) for every test that checks a search against it."""
    arch = load_architecture(TINY)
    return optimum(Problem(small_ops(batch=batch, features=features)[name]), arch,
                   batch_evaluator(NativeCostModel(), arch))


def small_ops(batch: int = 1, channels: int = 2, features: int = 16) -> dict:
    b = NetworkBuilder("small")
    x = b.input("x", (channels, 6, 1))
    y = b.relu(b.conv(x, 4, (3, 1), name="conv"))
    b.linear(y, features, name="fc")
    return {op.name: op for op in expand(b.build(batch), PHASES, dict.fromkeys(PHASES, 16))}


@pytest.fixture(scope="module")
def arch():
    return load_architecture(TINY)


def test_orders_alike_in_what_the_analysis_reads_price_alike(arch):
    """Random mappings of a 6-dimension conv: every loop order of a level that keeps each tensor's innermost
    relevant loop and the loops inside it prices the same; any order at the innermost level prices the same."""
    op = small_ops(batch=2)["conv.forward"]
    problem = Problem(op)
    space = Space(problem, arch, Constraints())
    enum = Enumeration(problem, arch)
    model = NativeCostModel()
    base = space.decode(*space.sample(np.random.default_rng(3), 400))
    checked = 0
    for i in range(len(base)):
        for lvl in range(len(arch.levels)):
            dims = [d for d in range(problem.D) if base.T[i, lvl, d] > 1]
            if len(dims) < 3:
                continue
            orders = list(itertools.permutations(dims))
            R = np.repeat(base.R[i:i + 1], len(orders), axis=0)
            for k, order in enumerate(orders):
                for rank, d in enumerate(order):
                    R[k, lvl, d] = rank
            n = len(orders)
            batch = MappingBatch(np.repeat(base.T[i:i + 1], n, 0), np.repeat(base.S[i:i + 1], n, 0), R,
                                 np.repeat(base.keep[i:i + 1], n, 0))
            energy, cycles = model.evaluate_batch(problem, batch, arch)
            groups: dict = {}
            for k, order in enumerate(orders):
                key = "innermost" if lvl == len(arch.levels) - 1 else enum._signature(order)
                groups.setdefault(key, []).append((energy[k], cycles[k]))
            for values in groups.values():
                assert all(v == pytest.approx(values[0], rel=1e-12) for v in values)
            checked += 1
    assert checked >= 20


def test_enumeration_is_the_search_space(arch):
    """No mapping twice, every one valid, and the mapping every seed's search returns is among them."""
    op = small_ops()["fc.forward"]
    problem = Problem(op)
    keys = [k for b in Enumeration(problem, arch).batches() for k in b.keys()]
    assert len(keys) == len(set(keys)) == space_size(problem, arch)
    keys = set(keys)
    evaluate = batch_evaluator(NativeCostModel(), arch)
    for seed in range(3):
        found = search(problem, arch, evaluate, evaluations=300, seconds=600, seed=seed)
        assert found.batch.canonical().keys()[0] in keys


def test_constraints_shrink_the_enumeration(arch):
    """Forcing the buffer to keep every tensor and the PE array to split only M leaves a subset, whose optimum
    is no better than the whole space's."""
    op = small_ops()["fc.forward"]
    problem = Problem(op)
    K = len(arch.levels)
    m = problem.index["M"]
    c = Constraints(spatial={row: {m} for row in range(K + 1)},
                    keep={(1, t): True for t in range(len(problem.tensors))})
    whole = optimum(problem, arch, batch_evaluator(NativeCostModel(), arch))
    part = optimum(problem, arch, batch_evaluator(NativeCostModel(), arch), constraints=c)
    assert part.mappings < whole.mappings
    assert part.value >= whole.value
    assert (part.batch.S[0][:, [d for d in range(problem.D) if d != m]] == 1).all()
    assert part.batch.keep[0][1].all()


@pytest.mark.slow
@pytest.mark.parametrize("name, batch, features", [("conv.forward", 1, 16), ("conv.backward_weight", 1, 16),
                                                    ("fc.forward", 2, 32)])
def test_native_search_finds_the_optimum(arch, name, batch, features):
    """Seeds 0–9 at the example spec's budget (400 evaluations) within 1 % of the exhaustive optimum's EDP, and
    at the default budget (2,000) on it exactly (measured: at 400 at most +0.69 %; at 2,000 every seed on the
    optimum, where exploration alone, without the descent, left 1 seed of 10 off it on fc.forward, +0.014 %)."""
    op = small_ops(batch=batch, features=features)[name]
    problem = Problem(op)
    evaluate = batch_evaluator(NativeCostModel(), arch)
    best = tiny_optimum(name, batch, features)
    assert best.mappings > 100_000
    for budget, tolerance in ((400, 0.01), (2000, 1e-9)):
        for seed in range(10):
            found = search(problem, arch, evaluate, evaluations=budget, seconds=600, seed=seed, tag="native")
            assert found.energy_pJ * found.cycles <= best.value * (1 + tolerance), (budget, seed)
            assert found.energy_pJ * found.cycles >= best.value * (1 - 1e-9)
