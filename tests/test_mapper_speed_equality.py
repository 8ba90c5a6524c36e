"""The faster mapping search computes the same numbers to the last bit.

:func:`ntframe.mapping.mapspace.analyse_batch` analyses every tensor and child level at once; it is checked against
the analysis done one tensor and one (parent, child) level pair at a time (the reference below, the algorithm
of ``docs/model.md`` step by step), bit for bit, on sampled mappings with random bypasses and on a batch that
does not factorise the bounds. The capacity penalty's memoised passes and values are checked against a fresh
bounder asked in the reverse order, and the per-structure mapper's grouping of candidates by looping dimensions
against the lexicographic order of ``np.unique`` over the masks.
"""

from __future__ import annotations

import numpy as np
import pytest

from ntframe.api import load_architecture
from ntframe.mapping.bounded import Structures
from ntframe.mapping.constraints import Constraints, for_operation
from ntframe.mapping.mapspace import (ACCUMULATE, READ, READWRITE, MappingBatch, Problem, analyse_batch,
                                      axis_extents)
from ntframe.mapping.space import Space
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import ROOT
from tests.test_bounded import big_ops, cnn_ops, lstm_ops

NEUROTRAINER = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
NAMES = ["c1.forward", "c2.backward_data", "c2.backward_weight", "fc.forward", "c1.update", "s.forward",
         "lstm.forward.recurrent", "lstm.backward_data.recurrent"]


@pytest.fixture(scope="module")
def neurotrainer():
    return load_architecture(NEUROTRAINER)


def ops() -> dict:
    return {**cnn_ops(batch=8), **big_ops(), **lstm_ops()}


def reference_analysis(problem: Problem, batch: MappingBatch) -> dict:
    """The access counts one tensor and one (parent, child) level pair at a time: {field: array}."""
    T, S, R, keep = batch.T, batch.S, batch.R, batch.keep
    B, K, D = T.shape
    Tn = len(problem.tensors)
    E = np.ones((B, K + 1, D), np.int64)
    for lvl in range(K - 1, -1, -1):
        E[:, lvl] = E[:, lvl + 1] * T[:, lvl] * S[:, lvl + 1]
    step_of_level = E[:, 1:] * S[:, 1:]
    temporal_steps = T.prod(axis=(1, 2))
    key = np.arange(K)[None, :, None] * (D + 1) + R
    share = problem.bounds[None, None, :] / np.cumprod(S[:, :K], axis=1)
    rows = np.arange(B)
    reads, fills, updates, adds = (np.zeros((B, K, Tn)) for _ in range(4))
    for j, t in enumerate(problem.tensors):
        rel, coef = t.relevant, t.coef.astype(float)
        stats = {}
        for c in range(1, K + 1):
            Tl, kl = T[:, :c], key[:, :c]
            act = (Tl > 1) & rel[None, None, :]
            masked = np.where(act, kl, -1).reshape(B, -1)
            idx = masked.argmax(axis=1)
            kmax = masked[rows, idx]
            inside = (kl <= kmax[:, None, None]) & (Tl > 1)
            changes = np.where(inside, Tl, 1).prod(axis=(1, 2)).astype(float)
            bstar = Tl.reshape(B, -1)[rows, idx].astype(float)
            step = step_of_level[rows, idx // D, idx % D]
            if c == K:
                changes, kmax = temporal_steps.astype(float), np.full(B, -1)
            stats[c] = (changes, kmax >= 0, idx % D, bstar, step)

        def moved(c: int) -> np.ndarray:
            changes, has, dstar, bstar, step = stats[c]
            ext = axis_extents(E[:, c].astype(float), coef)
            cstar = t.coef[:, dstar].T
            overlap = np.where(cstar > 0, np.clip(ext - cstar * step[:, None], 0, None) / ext, 1.0).prod(axis=1)
            new = 1.0 - np.where((cstar > 0).any(axis=1), overlap, 0.0)
            return np.where(has, changes / bstar * (1 + (bstar - 1) * new), changes) * ext.prod(axis=1)

        kept = keep[:, :, j]
        first = np.prod(axis_extents(share, coef), axis=2)
        for c in range(1, K + 1):
            child_kept = kept[:, c] if c < K else np.ones(B, bool)
            child_moved = moved(c)
            for a in range(c - 1, -1, -1):
                between = np.ones(B, bool)
                for m in range(a + 1, c):
                    between &= ~kept[:, m]
                active = child_kept & kept[:, a] & between
                if not active.any():
                    continue
                siblings = np.where(rel[None, None, :], S[:, a + 1:c + 1], 1).prod(axis=(1, 2))
                served = np.where(active, child_moved * siblings, 0.0)
                if t.role == READ:
                    reads[:, a, j] += served
                elif t.role == ACCUMULATE:
                    updates[:, a, j] += served
                    reads[:, a, j] += np.where(active, np.clip(served - first[:, a], 0, None), 0.0)
                    fan_in = np.where(rel[None, None, :], 1, S[:, a + 1:c + 1]).prod(axis=(1, 2))
                    adds[:, a, j] += served * (fan_in - 1)
                elif t.role == READWRITE:
                    reads[:, a, j] += served
                    updates[:, a, j] += served
                else:
                    updates[:, a, j] += served
                if c < K:
                    own = np.where(active, child_moved, 0.0)
                    if t.role in (READ, READWRITE):
                        fills[:, c, j] += own
                    elif t.role == ACCUMULATE:
                        fills[:, c, j] += np.where(active, np.clip(own - first[:, c], 0, None), 0.0)
    runs = np.ones((B, Tn))
    for j, t in enumerate(problem.tensors):      # the box under the DRAM loops, in a vault's share (vault-local)
        X = E[:, 1].astype(float)
        shape = np.minimum(axis_extents((problem.bounds[None, :] // S[:, 0]).astype(float), t.coef.astype(float)),
                           np.array(problem.op.tensors[j].shape, float))
        ext = np.minimum(axis_extents(X, t.coef.astype(float)), shape)
        run, partial = np.ones(B), np.zeros(B, bool)
        for a in range(ext.shape[1] - 1, -1, -1):
            run = np.where(partial, run, run * ext[:, a])
            partial |= ext[:, a] < shape[:, a]
        runs[:, j] = run
    vault_rep = np.stack([np.where(t.relevant[None, :], 1, S[:, 0]).prod(axis=1) for t in problem.tensors], 1)
    return {"reads": reads, "fills": fills, "updates": updates, "spatial_adds": adds, "dram_run_elements": runs,
            "vault_replication": vault_rep}


def assert_bitwise(problem: Problem, batch: MappingBatch) -> None:
    got = analyse_batch(problem, batch)
    for name, want in reference_analysis(problem, batch).items():
        have = getattr(got, name)
        assert have.shape == want.shape and have.dtype == want.dtype, name
        assert have.tobytes() == want.tobytes(), name


def sampled(problem: Problem, arch, seed: int, n: int = 300) -> MappingBatch:
    """Mappings that fit, from the sampling search's sampler, with random bypasses below the outermost level."""
    space = Space(problem, arch, Constraints())
    A, O, keep = space.sample(np.random.default_rng(seed), n)
    return space.decode(A, O, keep)


@pytest.mark.parametrize("name", NAMES)
def test_analysis_equals_the_one_tensor_at_a_time_analysis_bitwise(neurotrainer, name):
    problem = Problem(ops()[name])
    batch = sampled(problem, neurotrainer, seed=3)
    assert not batch.keep[:, 1:].all()                   # bypasses are exercised
    assert_bitwise(problem, batch)
    assert_bitwise(problem, batch.take(slice(0, 1)))      # one mapping


def test_analysis_of_a_batch_that_does_not_factorise_the_bounds(neurotrainer):
    """A split that does not divide a bound leaves fractional shares: counted one tensor at a time, as before."""
    problem = Problem(ops()["c2.forward"])
    batch = sampled(problem, neurotrainer, seed=5, n=40)
    S = batch.S.copy()
    S[:, 0, 0] = 3                                        # the batch dimension (8) split 3 ways at the vaults
    assert (problem.bounds[0] % 3) != 0
    assert_bitwise(problem, MappingBatch(batch.T, S, batch.R, batch.keep))


@pytest.mark.parametrize("name", ["s.forward", "c.backward_weight", "lstm.forward.recurrent"])
def test_memoised_penalty_equals_a_fresh_computation(neurotrainer, name):
    """The capacity penalty of every (structure, keep pattern) asked twice and from a fresh bounder: the same
    float; its passes (blocks selected per set of full columns) are the same whichever order the keys are first asked in."""
    problem = Problem(ops()[name])
    model = NativeCostModel()
    structures = Structures(problem, neurotrainer, for_operation(problem, neurotrainer))
    spatial = structures.spatial[:: max(1, len(structures.spatial) // 40)]
    keeps = structures.keeps[:: max(1, len(structures.keeps) // 6)]
    bounds = model.bounds(problem, neurotrainer)
    parts = bounds.parts(spatial)
    values = [bounds.penalty(parts, k, spatial[k], keep) for k in range(len(spatial)) for keep in keeps]
    again = [bounds.penalty(parts, k, spatial[k], keep) for k in range(len(spatial)) for keep in keeps]
    reverse = model.bounds(problem, neurotrainer)
    fresh = [reverse.penalty(parts, k, spatial[k], keep) for k in reversed(range(len(spatial)))
             for keep in keeps[::-1]]
    assert values == again == fresh[::-1]
    assert any(v > 0 for v in values) or name.startswith("lstm")
    for key, passes in bounds._pass_cache.items():
        other = reverse._pass_cache[key]
        assert (passes is None) == (other is None)
        assert passes is None or [(cols, mask.tobytes()) for cols, mask in passes] == \
            [(cols, mask.tobytes()) for cols, mask in other]


def test_loop_masks_grouped_in_the_order_of_unique_rows():
    """The mapper groups candidates by the set of dimensions looping at a level, as numbers whose bits are the
    mask with the first dimension most significant: the same groups in the same order as the rows of
    ``np.unique(masks, axis=0)``."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        D = int(rng.integers(1, 9))
        masks = rng.random((int(rng.integers(1, 60)), D)) < rng.random()
        codes = masks.astype(np.int64) @ (1 << np.arange(D - 1, -1, -1))
        decoded = np.array([[code >> (D - 1 - d) & 1 for d in range(D)] for code in np.unique(codes)], bool)
        assert np.array_equal(decoded, np.unique(masks, axis=0))
