"""The bounded search (ntframe/mapping/bounded.py) and the native cost model's bounds it relies on.

The bounds are checked against the cost model itself: the closed-form relaxed price equals price() on the
relaxed mappings (every temporal loop at the innermost level), and no mapping of a structure, sampled at
random, costs less than its structure's bound, with or without the capacity penalty. The search is checked
against the exhaustive optimum (the oracle of tests/test_exhaustive.py), for independence from the seed, and
for its certificate.
"""

from __future__ import annotations

import numpy as np
import pytest

from ntframe.components import Budget
from ntframe.api import load_architecture
from ntframe.mapping.bounded import Structures, Tiles, bounded_search
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import MappingBatch, Problem
from ntframe.mapping.search import search_operation
from ntframe.mapping.space import Space, batch_evaluator
from ntframe.workload.builder import NetworkBuilder
from ntframe.workload.ir import PHASES
from ntframe.workload.training import expand
from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions, price
from tests.conftest import ROOT
from tests.test_exhaustive import TINY, small_ops, tiny_optimum

NEUROTRAINER = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"


def cnn_ops(batch: int = 4) -> dict:
    """A strided conv, a conv and an FC layer with every training phase: halos, strides, accumulations."""
    b = NetworkBuilder("cnn")
    x = b.input("x", (3, 16, 16))
    x = b.relu(b.conv(x, 8, 3, stride=2, padding=1, name="c1"))
    x = b.relu(b.conv(x, 16, 3, padding=1, name="c2"))
    b.linear(x, 10, name="fc")
    bits = {"forward": 16, "backward_data": 32, "backward_weight": 32, "update": 32}
    return {op.name: op for op in expand(b.build(batch), PHASES, bits)}


def lstm_ops(batch: int = 4) -> dict:
    """A recurrent layer: its time steps must stay the outermost loops, so weights no level can hold come again
    every step."""
    b = NetworkBuilder("rnn")
    x = b.input("x", (12, 64))
    b.recurrent(x, "lstm", 512, name="lstm")
    bits = {"forward": 16, "backward_data": 32, "backward_weight": 32, "update": 32}
    return {op.name: op for op in expand(b.build(batch), PHASES, bits)}


def big_ops(batch: int = 4) -> dict:
    """Layers whose working sets overflow the NeuroTrainer reference's buffers, so the capacity penalty bites."""
    b = NetworkBuilder("big")
    x = b.input("x", (64, 28, 28))
    x = b.relu(b.conv(x, 128, 3, padding=1, name="c"))
    b.linear(b.conv(x, 64, 3, stride=2, padding=1, name="s"), 1024, name="fc")
    bits = {"forward": 16, "backward_data": 32, "backward_weight": 32, "update": 32}
    return {op.name: op for op in expand(b.build(batch), PHASES, bits)}


@pytest.fixture(scope="module")
def neurotrainer():
    return load_architecture(NEUROTRAINER)


def relaxed_batch(problem: Problem, spatial: np.ndarray, keeps: np.ndarray, K: int) -> MappingBatch:
    n, P = len(spatial), len(keeps)
    T = np.ones((n * P, K, problem.D), np.int64)
    S = np.repeat(spatial, P, 0)
    T[:, K - 1] = problem.bounds[None] // S.prod(axis=1)
    R = np.tile(np.arange(problem.D), (n * P, K, 1))
    return MappingBatch(T, S, R, np.tile(keeps, (n, 1, 1))).canonical()


@pytest.mark.parametrize("name", ["c1.forward", "c2.backward_data", "c2.backward_weight", "fc.forward",
                                  "c1.update"])
def test_relaxed_prices_equal_the_cost_model_on_relaxed_mappings(neurotrainer, name):
    """Closed form = price() with DRAM lines counted as elements, where no stride leaves gaps in a tile (c1 has
    stride 2 over a 3-wide kernel: tiles count the indices they touch, not their bounding box, so the bound is
    lower there); with lines, never above it (a run that reaches a line is counted at no inflation); the floor
    over patterns is under every pattern."""
    problem = Problem(cnn_ops()[name])
    structures = Structures(problem, neurotrainer, for_operation(problem, neurotrainer))
    spatial = structures.spatial[np.random.default_rng(1).choice(len(structures.spatial),
                                                                 min(80, len(structures.spatial)), replace=False)]
    for line in (0, 64):
        bounds = NativeCostModel(NativeCostOptions(dram_line_bytes=line)).bounds(problem, neurotrainer)
        parts = bounds.parts(spatial)
        energy, cycles = bounds.combine(parts, structures.keeps)
        priced = price(problem, relaxed_batch(problem, spatial, structures.keeps, 3), neurotrainer, line_bytes=line)
        exact_energy = priced["energy_pJ"].reshape(energy.shape)
        exact_cycles = priced["cycles"].reshape(cycles.shape)
        if line == 0 and not name.startswith("c1"):
            assert energy == pytest.approx(exact_energy, rel=1e-12)
            assert cycles == pytest.approx(exact_cycles, rel=1e-12)
        else:
            assert (energy <= exact_energy * (1 + 1e-12)).all() and (cycles <= exact_cycles * (1 + 1e-12)).all()
            if "update" not in name:                                    # the line rule or the gaps bite
                assert (energy < exact_energy * (1 - 1e-9)).any()
        floor_energy, floor_cycles = bounds.floor(parts, structures.keeps)
        assert (floor_energy[:, None] <= energy * (1 + 1e-12)).all()
        assert (floor_cycles[:, None] <= cycles * (1 + 1e-12)).all()
        assert (bounds.cycles_floor(spatial)[:, None] <= cycles * (1 + 1e-12)).all()
        assert (bounds.floor_energy_pJ <= energy * (1 + 1e-12)).all()


@pytest.mark.parametrize("name", ["c1.forward", "c2.backward_weight", "c.forward", "c.backward_weight",
                                  "s.forward", "s.backward_data", "fc.backward_weight", "lstm.forward.recurrent",
                                  "lstm.backward_data.recurrent"])
def test_no_mapping_costs_less_than_its_structures_bound(neurotrainer, name):
    """600 random mappings that fit (the sampling search's sampler): each costs at least its structure's relaxed
    price plus the capacity penalty (which bites on some of them in the big layers), and at least the floor of
    its spatial split over every keep pattern."""
    problem = Problem({**cnn_ops(batch=8), **big_ops(), **lstm_ops()}[name])
    model = NativeCostModel()
    space = Space(problem, neurotrainer, Constraints())
    batch = space.decode(*space.sample(np.random.default_rng(7), 600))
    energy, cycles = model.evaluate_batch(problem, batch, neurotrainer)
    bounds = model.bounds(problem, neurotrainer)
    parts = bounds.parts(batch.S)
    checked = penalised = 0
    for i in range(len(batch)):
        row = {key: value[..., i:i + 1] for key, value in parts.items()}
        lb_energy, lb_cycles = bounds.combine(row, batch.keep[i:i + 1])
        extra = bounds.penalty(parts, i, batch.S[i], batch.keep[i])
        floor_energy, floor_cycles = bounds.floor(row, batch.keep[i:i + 1])
        assert floor_energy[0] <= energy[i] * (1 + 1e-9) and floor_cycles[0] <= cycles[i] * (1 + 1e-9)
        assert lb_cycles[0, 0] <= cycles[i] * (1 + 1e-9)
        assert lb_energy[0, 0] + extra <= energy[i] * (1 + 1e-9), (i, lb_energy[0, 0], extra, energy[i])
        checked += 1
        penalised += extra > 0
    assert checked == 600 and (penalised > 0 or name.startswith(("c1", "c2")))


def test_maximal_tiles_by_hand():
    """Tiles of 4 x 3 that fit 'a * b <= 4': (4, 1), (2, 1)... the maximal ones are (4, 1) and (1, 3)."""
    tiles = Tiles(np.array([4, 3]))
    t, codes = tiles.grid(2)
    assert sorted(map(tuple, t.tolist())) == [(a, b) for a in (1, 2, 4) for b in (1, 3)]
    fit = t.prod(axis=1) <= 4
    kept = tiles.maximal(codes[fit])
    assert sorted(map(tuple, t[fit][kept].tolist())) == [(1, 3), (4, 1)]


def test_structures_are_every_spatial_split(neurotrainer):
    """Every vector of factors per fan-out row within the fan-out, whose products divide the bounds, once."""
    problem = Problem(cnn_ops()["fc.forward"])           # N 4, M 10, C 1024
    structures = Structures(problem, neurotrainer, Constraints())
    keys = {s.tobytes() for s in structures.spatial}
    assert len(keys) == len(structures.spatial)
    fan = neurotrainer.fanouts
    brute = 0
    divisors = [[f for f in range(1, b + 1) if b % f == 0] for b in problem.bounds]
    for r0 in np.ndindex(*[len(d) for d in divisors]):
        v0 = [divisors[d][i] for d, i in enumerate(r0)]
        if np.prod(v0) > fan[0]:
            continue
        for r2 in np.ndindex(*[len(d) for d in divisors]):
            v2 = [divisors[d][i] for d, i in enumerate(r2)]
            if np.prod(v2) <= fan[2] and all(b % (a * c) == 0 for a, c, b in zip(v0, v2, problem.bounds)):
                brute += 1
    assert brute == len(structures.spatial)
    assert len(structures.keeps) == 2 ** 6          # two storage levels below DRAM, three tensors


@pytest.mark.slow
@pytest.mark.parametrize("name, batch, features", [("conv.forward", 1, 16), ("conv.backward_weight", 1, 16),
                                                    ("fc.forward", 2, 32)])
def test_bounded_search_finds_the_exhaustive_optimum(name, batch, features):
    """On the tiny one-vault design, the bounded search returns the optimum of the whole space and proves it
    (its lower bound over the structures it did not map is not below its answer)."""
    arch = load_architecture(TINY)
    problem = Problem(small_ops(batch=batch, features=features)[name])
    model = NativeCostModel()
    evaluate = batch_evaluator(model, arch)
    best = tiny_optimum(name, batch, features)
    found = bounded_search(problem, arch, model.bounds(problem, arch), evaluate, evaluations=100_000, seconds=600,
                           constraints=for_operation(problem, arch))
    value = found.energy_pJ * found.cycles
    assert value == pytest.approx(best.value, rel=1e-9)
    assert found.lower_bound >= value * (1 - 1e-9)
    assert found.evaluated < best.mappings / 50     # far fewer than the enumeration priced


def test_the_seed_changes_nothing(neurotrainer):
    op = cnn_ops()["c2.forward"]
    model = NativeCostModel()
    results = [search_operation(op, neurotrainer, model, Budget(evaluations=4000, seconds=600), seed, "edp",
                                Constraints(), "native") for seed in (0, 1, 7)]
    assert all(r.mapping == results[0].mapping and r.cost == results[0].cost for r in results)
    assert results[0].method == "bounded" and results[0].structures_mapped >= 1


def test_without_bounds_the_sampling_search_answers(neurotrainer):
    """A cost model that cannot bound structures gets the sampling search (which depends on the seed)."""

    class Plain(NativeCostModel):
        def bounds(self, problem, architecture):
            return None

    op = cnn_ops()["fc.forward"]
    found = search_operation(op, neurotrainer, Plain(), Budget(evaluations=300, seconds=600), 0, "edp",
                             Constraints(), "native")
    assert found.method == "sampling" and found.lower_bound is None


def test_a_search_not_certified_iterates_its_descent():
    """The reference LSTM layer of bench/bench_mapper.py (lstm_lm, batch 16, lstm1.backward_weight.input) is not
    certified at the default 20,000 evaluations: the iterated descent then spends what the structures left of the
    budget. Its EDP lands within 3.5 % of the best of 20 sampling searches (seeds 0-9 at 20,000 and 100,000
    evaluations: 7.14982e17 pJ x cycles, recorded by /tmp scripts on 2026-12-07), on the reference as it was then
    (tests/golden/hmc2-32vault.recorded.yaml). Where it lands depends on the incumbent, a short sampling search
    whose stream the architecture's identity seeds (with seed 0 whatever the spec's: seeds 0-4 alike): measured 2026-12-08 with
    identities 'a', 'b', 'c' and the file's own, 1.0307, 1.0000, 1.0000 and 1.0323 of the oracle (0.16 % with the
    identity before issue 15 left absent figures out of it). Deterministic: the same mapping twice."""
    neurotrainer = load_architecture(ROOT / "tests" / "golden" / "hmc2-32vault.recorded.yaml")
    from ntframe_plugins.zoo import ZOO
    ops = {o.name: o for o in expand(ZOO["lstm_lm"][1](ZOO["lstm_lm"][0]()).build(16), PHASES,
                                     neurotrainer.precision_bits)}
    op = ops["lstm1.backward_weight.input"]
    model = NativeCostModel()
    found = [search_operation(op, neurotrainer, model, Budget(evaluations=20_000, seconds=600), 0, "edp",
                              Constraints(), "native") for _ in range(2)]
    assert found[0].mapping == found[1].mapping and found[0].cost == found[1].cost
    assert found[0].lower_bound < found[0].cost.energy_pJ * found[0].cost.cycles * (1 - 0.005)    # not certified
    assert found[0].cost.energy_pJ * found[0].cost.cycles / 7.149824498508759e17 == pytest.approx(1.0323, abs=0.0005)
