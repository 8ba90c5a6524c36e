"""Issue 13, item 3: the search ranks its finalists by what the run reports, and every operation shows the gap
between the cost model's memory figure and the memory backend's."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import ntframe.mapping.search as search_module
from ntframe.components import Budget, CostModel
from ntframe.host import PluginHost
from ntframe.mapping.constraints import Constraints
from ntframe.mapping.mapspace import MappingBatch, Problem, from_batch
from ntframe.mapping.space import Shortlist, objective_value
from ntframe.runner import operations_of, resolve
from ntframe.spec import load_spec
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import EXAMPLE, ntframe_cmd


def _batch(values: list[int]) -> MappingBatch:
    """Distinct one-level mappings of a one-dimension problem (T = the value)."""
    B = len(values)
    return MappingBatch(np.array(values, np.int64).reshape(B, 1, 1), np.ones((B, 2, 1), np.int64),
                        np.zeros((B, 1, 1), np.int64), np.ones((B, 1, 1), bool))


def test_shortlist_keeps_the_best_distinct_mappings_in_order():
    s = Shortlist(3)
    first = _batch([2, 3, 4, 5])
    s.offer(np.array([5.0, 3.0, np.inf, 3.0]), first.take)          # an infinite value never enters
    assert [v for v, _ in s.best()] == [3.0, 3.0, 5.0]
    assert [int(b.T[0, 0, 0]) for _, b in s.best()] == [3, 5, 2]        # ties in arrival order
    s.offer(np.array([3.0, 1.0, 4.0]), _batch([3, 6, 7]).take)         # 3 again: already held, not twice
    assert [(v, int(b.T[0, 0, 0])) for v, b in s.best()] == [(1.0, 6), (3.0, 3), (3.0, 5)]
    s.offer(np.array([9.0]), _batch([8]).take)                          # worse than the last kept
    assert len(s.best()) == 3 and s.limit() == 3.0


@pytest.fixture(scope="module")
def example():
    resolved = resolve(load_spec(EXAMPLE), PluginHost().load())
    return resolved, {op.name: op for op in operations_of(resolved)[1]}


def vgg16_b2_operation(name: str, arch):
    from ntframe.workload.ir import PHASES
    from ntframe.workload.training import expand
    from ntframe_plugins.zoo import ZOO
    network = ZOO["vgg16"][1](ZOO["vgg16"][0]()).build(2)
    return {o.name: o for o in expand(network, PHASES, arch.precision_bits)}[name]


@pytest.mark.parametrize("name", ["conv1.forward", "conv2.forward", "conv1.forward.bias", "relu1.backward_data",
                                  "vgg16-b2:pool1.backward_data"])
def test_the_chosen_mapping_is_the_best_finalist_by_the_reported_figures(example, monkeypatch, name):
    """The native model's batch price estimates the DRAM lines the reported figure counts; where they disagree the
    search's best by the estimate is not the best by the count: VGG-16's pooling gradients, whose scattered writes
    (a stride wider than the window) touch more lines than their elements fill (on the example's convolutions
    the estimate now picks the best itself). Oracle: every finalist priced by evaluate; among those that tie with
    the best, the chosen one fetches from the DRAM in the fewest steps (on the example's bias and ReLU operations
    several finalists tie exactly)."""
    resolved, ops = example
    arch, model = resolved.architecture, NativeCostModel()
    op = vgg16_b2_operation(name.split(":")[1], arch) if name.startswith("vgg16-b2:") else ops[name]
    seen: dict = {}
    real = search_module._rerank

    def spy(problem, arch_, cost_model, objective, c, found, mapping, cost, shortlist):
        seen.update(found=found, finalists=shortlist.best())
        return real(problem, arch_, cost_model, objective, c, found, mapping, cost, shortlist)

    monkeypatch.setattr(search_module, "_rerank", spy)
    result = search_module.search_operation(op, arch, model, Budget(evaluations=20000, seconds=600), 0, "edp",
                                            Constraints(), "native")
    problem = Problem(op)

    def reported(batch):
        cost = model.evaluate(op, from_batch(problem, batch, arch, 0), arch)
        return objective_value("edp", cost.energy_pJ, cost.cycles)

    found = seen["found"]
    searched_best = reported(found.batch)
    limit = objective_value("edp", found.energy_pJ, found.cycles) * (1 + search_module.RERANK_MARGIN)
    finalists = [batch for value, batch in seen["finalists"] if value <= limit]
    priced = [(searched_best, found.batch)] + [(reported(b), b) for b in finalists]
    oracle = min(value for value, _ in priced)
    chosen = objective_value("edp", result.cost.energy_pJ, result.cost.cycles)
    assert chosen == pytest.approx(oracle, rel=1e-12)
    def outer_steps(m):
        return math.prod(f for _, f in m.levels[0].temporal)

    steps = [outer_steps(from_batch(problem, b, arch, 0)) for value, b in priced if value <= oracle * (1 + 1e-12)]
    assert outer_steps(result.mapping) == min(steps)
    if name in ("conv1.forward.bias", "relu1.backward_data"):
        assert len(steps) >= 2 and max(steps) > min(steps)          # a real tie, broken by the steps
    assert result.rerank_gain == pytest.approx(searched_best / chosen - 1, rel=1e-9)
    if name.startswith("vgg16-b2:"):
        assert result.rerank_gain > 0.02                # measured: +46 %
    assert 1 <= result.reranked <= search_module.RERANK
    assert result.cost == model.evaluate(op, result.mapping, arch)      # what the runner reports


def test_a_cost_model_without_batches_is_not_ranked_twice(example):
    """A model that prices one mapping at a time has no estimate to correct: nothing is priced again."""
    resolved, ops = example

    class OneAtATime(CostModel):
        name = "one-at-a-time"
        inner = NativeCostModel()

        def evaluate(self, operation, mapping, architecture):
            return self.inner.evaluate(operation, mapping, architecture)

    result = search_module.search_operation(ops["fc1.forward"], resolved.architecture, OneAtATime(),
                                            Budget(evaluations=40, seconds=600), 0, "edp", Constraints(), "native")
    assert result.method == "sampling" and result.reranked == 0 and result.rerank_gain == 0.0


def test_the_memory_gap_is_shown_and_small_on_the_example(tmp_path):
    """operations.csv and results.json give the memory backend's energy and cycles against the cost model's own
    memory-level figures, the level says it was replaced, and the terminal prints the gap. On the shipped
    example, every operation with 1 % of the step's energy or more is reported within 2.5 % of the energy its
    mapping was chosen by (the cost model's, memory level included). Measured: at most 2.2 %, the ReLU operations
    (row hits 0.50 where the DRAM's energy per bit assumes about 0.73: the cost model has no row-buffer proxy;
    within 2 % before the estimate took the trace's boxes, which changed those mappings)."""
    proc = ntframe_cmd("run", str(EXAMPLE), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "against the cost model's memory energy" in proc.stdout.replace("\n", " ")
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {r["name"]: r for r in csv.DictReader(open(tmp_path / "out" / "operations.csv"))}
    step = doc["totals"]["energy_pJ"]
    for op in doc["operations"]:
        level = next(lv for lv in op["levels"] if lv["is_memory"])
        assert level["replaced_by_memory_backend"] is True
        assert not any(lv.get("replaced_by_memory_backend") for lv in op["levels"] if not lv["is_memory"])
        assert op["memory_energy_gap"] == pytest.approx(op["memory_energy_pJ"] / level["energy_pJ"] - 1)
        assert op["memory_cycles_gap"] == pytest.approx(op["memory_cycles"] / level["bandwidth_bound_cycles"] - 1)
        assert float(rows[op["name"]]["memory_energy_gap"]) == pytest.approx(op["memory_energy_gap"])
        chosen_by = op["on_die_energy_pJ"] + level["energy_pJ"]
        if op["energy_pJ"] >= 0.01 * step:
            assert abs(op["energy_pJ"] / chosen_by - 1) <= 0.025, op["name"]
