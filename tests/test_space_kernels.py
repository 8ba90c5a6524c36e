"""The mapping space's compiled kernels (``ntframe/mapping/kernels.py``, below ``price_batch``) give the numpy
code's verdicts, moves and mappings, and the sampling search the outcomes it gave before them, to the last bit.

The numpy code checks slot assignments in log space (sums of logs, ``rint(exp(...))``); the kernels compute the
same integers exactly. Checked here: the fit verdicts on random assignments (most break a fan-out or a capacity,
unlike the sampler's), the sampler, the mutations, the neighbourhoods and the decoded batches with the kernels and
with ``NTFRAME_JIT=0`` (the random numbers consumed alike), and :func:`ntframe.mapping.search.search` against
outcomes recorded from the code before the kernels.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ntframe.errors import MappingError
from ntframe.api import load_architecture
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import MappingBatch, Problem
from ntframe.mapping.search import search
from ntframe.mapping.space import CAPACITY, FAN_OUT, FITS, SPACE_KERNELS, Space, batch_evaluator
from ntframe_plugins.dataflow_mapper import template
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import ROOT, compiled_or_skip
from tests.test_bounded import big_ops, cnn_ops, lstm_ops

ARCHS = ["neurotrainer/hmc2-32vault.yaml", "tetris/hmc-16vault-eyeriss.yaml", "neurocube/hmc-16vault.yaml"]


def ops() -> dict:
    return {**cnn_ops(batch=8), **big_ops(), **lstm_ops()}


def constraints(problem: Problem, arch, kind: str) -> Constraints:
    """The architecture's rules (``arch``), with the data-flow template (``flow``), or with a hand-made set of an
    upper bound, an exact factor, a bypass and an innermost loop (``custom``)."""
    base = None
    if kind == "flow":
        base = template(problem.op, problem, len(arch.levels))[0]
    elif kind == "custom":
        K, d = len(arch.levels), int(np.argmax(problem.bounds))
        base = Constraints(factors={(K, d): (1, 4), (K - 1, d): (2, 2)}, keep={(1, 0): False},
                           innermost={K - 1: [d]}, spatial_probability=0.4)
    return for_operation(problem, arch, base)


@pytest.fixture(scope="module")
def kernels():
    return compiled_or_skip(SPACE_KERNELS)


def random_assignments(space: Space, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` slot assignments, each factor in a slot it allows, chosen uniformly (fixed factors in theirs), and
    random keep bits."""
    count = space.allowed.sum(axis=1)
    pick = np.minimum((rng.random((n, space.P)) * count).astype(np.int64), count - 1)
    A = ((np.cumsum(space.allowed, axis=1)[None] - 1 == pick[..., None]) & space.allowed[None]).argmax(axis=2)
    keep = rng.random((n, space.K, len(space.problem.tensors))) < 0.7
    return np.where(space.fixed >= 0, space.fixed, A), keep


@pytest.mark.parametrize("arch_path", ARCHS)
def test_compiled_verdicts_are_numpys(kernels, arch_path):
    """Fits, fan-out or capacity: the same verdict for every one of 2000 random assignments per operation."""
    arch = load_architecture(ROOT / "arch_specs" / arch_path)
    seen = np.zeros(3, np.int64)
    for i, (name, op) in enumerate(ops().items()):
        problem = Problem(op)
        for kind in ("arch", "custom"):
            try:
                space = Space(problem, arch, constraints(problem, arch, kind))
            except MappingError:            # a hand-made factor the operation cannot take
                continue
            A, keep = random_assignments(space, np.random.default_rng(i), 2000)
            fan_ok, cap_ok = space._checks(space._logs(A), keep)
            expected = np.where(fan_ok, np.where(cap_ok, FITS, CAPACITY), FAN_OUT)
            got = space.fit_codes(A, keep)
            assert np.array_equal(got, expected), (name, kind)
            seen += np.bincount(got, minlength=3)
    assert (seen > 1000).all()                 # every verdict is exercised


def moves(space: Space, seed: int) -> list[np.ndarray]:
    """Everything the searches take from the space, in the order they take it: samples, three rounds of
    mutations kept where they fit, neighbourhoods, decoded batches, the rejection counts and the random state."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    A, O, keep = space.sample(rng, 150)
    out += [A, O, keep]
    for _ in range(3):
        mA, O, mk = space.mutate(rng, A, O, keep)
        fit = space.fits(mA, mk)
        A, keep = np.where(fit[:, None], mA, A), np.where(fit[:, None, None], mk, keep)
        out += [mA, O, mk, fit]
    kA, kO, kk = space.mutate(rng, A[:1], O[:1], keep[:1])
    out += [kA, kO, kk]
    for i in range(3):
        NA, NO, NK = space.neighbours(A[i], O[i], keep[i])
        batch = space.decode(NA, NO, NK)
        out += [NA, NO, NK, space.fits(NA, NK), batch.T, batch.S, batch.R, batch.keep]
    batch = space.decode(A, O, keep)
    out += [batch.T, batch.S, batch.R, batch.keep, np.array(batch.keys(), dtype=object)]
    out += [space.fit_codes(*space.outermost()[::2])]
    out += [np.array(list(space.rejected.values())), rng.random(4)]
    return out


@pytest.mark.parametrize("arch_path", ARCHS[:2])
@pytest.mark.parametrize("kind", ["arch", "flow", "custom"])
def test_compiled_moves_are_numpys(kernels, monkeypatch, arch_path, kind):
    """The sampler, the mutations, the neighbourhoods and the decoder with the kernels and without: equal arrays,
    equal dtypes, equal rejection counts, the same random numbers consumed."""
    arch = load_architecture(ROOT / "arch_specs" / arch_path)
    for i, name in enumerate(["c1.forward", "c2.backward_weight", "s.forward", "fc.backward_data",
                              "lstm.forward.recurrent", "c.update"]):
        problem = Problem(ops()[name])
        c = constraints(problem, arch, kind)
        compiled = moves(Space(problem, arch, c), i)
        with monkeypatch.context() as m:
            m.setenv("NTFRAME_JIT", "0")
            plain = moves(Space(problem, arch, c), i)
        assert len(compiled) == len(plain)
        for k, (x, y) in enumerate(zip(compiled, plain)):
            assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), (name, k)


# search() outcomes recorded with the code before the kernels (commit 470046b: ntframe/mapping/space.py, search.py
# and mapspace.py as of that commit, the native cost model with numba), recorded again with NTFRAME_JIT=0 (numpy
# only) when the native model's DRAM estimate took the trace's boxes (2026-12-07), and again with NTFRAME_JIT=0 when
# the shipped architectures moved to an engine's DRAM energy and the reference to 15 nm (issue 15, 2026-12-08;
# the architectures' identities, which seed the search, changed with them): operation, architecture,
# constraints, seed, budget, objective -> energy (pJ), cycles, evaluated, valid, invalid reasons, sha256 of the best
# mapping's arrays
GOLDEN = [
    ("c1.forward", "neurotrainer/hmc2-32vault.yaml", "arch", 0, 400, "edp", 1010015.1162540106, 288.0, 823, 400,
     {"fan-out": 247, "duplicate": 176}, "b8e9ffa26e9c7cc9"),
    ("c2.backward_weight", "neurotrainer/hmc2-32vault.yaml", "arch", 1, 400, "edp", 3448123.384421062, 1536.0, 869,
     400, {"fan-out": 330, "duplicate": 139}, "5340c6a3fc0e300b"),
    ("fc.forward", "tetris/hmc-16vault-eyeriss.yaml", "arch", 2, 400, "energy", 1180994641.9199998, 644966.4, 1104,
     400, {"fan-out": 447, "capacity": 71, "duplicate": 186}, "a746a172aeca585e"),
    ("s.forward", "neurotrainer/hmc2-32vault.yaml", "flow", 0, 600, "edp", 82561490.44066331, 129024.0, 1362, 600,
     {"fan-out": 326, "capacity": 155, "duplicate": 281}, "1c15842315b82fcc"),
    ("c.forward", "neurocube/hmc-16vault.yaml", "flow", 3, 400, "delay", 9509454895.875874, 903168.0, 929, 400,
     {"fan-out": 295, "capacity": 126, "duplicate": 108}, "29d3926a319b0404"),
    ("lstm.forward.recurrent", "neurotrainer/hmc2-32vault.yaml", "arch", 0, 400, "edp", 954438916.4435846, 90112.0,
     984, 400, {"fan-out": 431, "capacity": 9, "duplicate": 144}, "6f52d1904d25f3da"),
    ("c2.forward", "neurotrainer/hmc2-32vault.yaml", "custom", 4, 400, "edp", 4096344.6883540475, 1536.0, 718, 400,
     {"fan-out": 140, "duplicate": 178}, "c6665629810400eb"),
]


def digest(batch: MappingBatch) -> str:
    arrays = (batch.T, batch.S, batch.R, batch.keep)
    return hashlib.sha256(b"".join(np.ascontiguousarray(x, np.int64).tobytes() for x in arrays)).hexdigest()[:16]


@pytest.mark.parametrize("jit", ["1", "0"])
def test_the_sampling_search_finds_what_it_found_before(monkeypatch, jit):
    """The sampling search as the whole search (a cost model without bounds): the recorded outcomes, with the
    compiled kernels and without."""
    monkeypatch.setenv("NTFRAME_JIT", jit)
    all_ops = ops()
    for name, arch_path, kind, seed, budget, objective, energy, cycles, evaluated, valid, reasons, best in GOLDEN:
        arch = load_architecture(ROOT / "arch_specs" / arch_path)
        problem = Problem(all_ops[name])
        found = search(problem, arch, batch_evaluator(NativeCostModel(), arch), evaluations=budget, seconds=1e9,
                       seed=seed, objective=objective, constraints=constraints(problem, arch, kind), tag="golden")
        assert (found.energy_pJ, found.cycles, found.evaluated, found.valid, found.invalid_reasons,
                digest(found.batch)) == (energy, cycles, evaluated, valid, reasons, best), name


def test_a_failing_kernel_costs_no_result(monkeypatch):
    """If a kernel cannot compile or run (here: it raises, after scribbling over its output), numpy serves with one
    warning naming the switch, and the kernels are not tried again in the process: the same results, the inputs
    untouched."""

    class Broken:
        @staticmethod
        def sample_slots(A, *_):
            A[...] = 0
            raise RuntimeError("cannot compile")

        @staticmethod
        def mutate_slots(A, O, keep, *_):
            A[...], O[...] = 0, 0.0
            raise RuntimeError("cannot compile")

        @staticmethod
        def fit_codes(*_):
            raise RuntimeError("cannot compile")

        neighbour_moves = decode_slots = fit_codes

    arch = load_architecture(ROOT / "arch_specs" / ARCHS[0])
    problem = Problem(ops()["c2.backward_weight"])
    space = Space(problem, arch, constraints(problem, arch, "arch"))
    monkeypatch.delenv("NTFRAME_JIT", raising=False)

    def plain(call):
        with monkeypatch.context() as m:
            m.setenv("NTFRAME_JIT", "0")
            return call()

    A, O, keep = plain(lambda: space.sample(np.random.default_rng(0), 50))
    inputs = [x.copy() for x in (A, O, keep)]
    calls = {"sample": lambda: space.sample(np.random.default_rng(1), 50),
             "mutate": lambda: space.mutate(np.random.default_rng(2), A, O, keep),
             "fits": lambda: (space.fit_codes(A, keep),),
             "neighbours": lambda: space.neighbours(A[0], O[0], keep[0]),
             "decode": lambda: (lambda b: (b.T, b.S, b.R, b.keep))(space.decode(A, O, keep))}
    for name, call in calls.items():
        want = plain(call)
        monkeypatch.setattr(SPACE_KERNELS, "_loaded", Broken)
        monkeypatch.setattr(SPACE_KERNELS, "failure", None)
        with pytest.warns(RuntimeWarning, match="NTFRAME_JIT=0"):
            got = call()
        assert SPACE_KERNELS.get() is None and SPACE_KERNELS.failure == "RuntimeError: cannot compile", name
        assert all(x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(got, want)), name
        assert all(np.array_equal(x, y) for x, y in zip((A, O, keep), inputs)), name
