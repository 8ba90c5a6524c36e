"""Issue 13, item 3: the search ranks its finalists by what the run reports, and every operation shows the gap
between the cost model's memory figure and the memory backend's."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

import ntframe.mapping.search as search_module
import ntframe.runner as runner
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

    def offer(values, Ts):
        batch = _batch(Ts)
        s.offer(np.array(values), batch.take, batch.T)      # one level: the DRAM steps are T itself

    offer([5.0, 3.0, np.inf, 3.0], [2, 3, 4, 5])                     # an infinite value never enters
    assert [v for v, _ in s.best()] == [3.0, 3.0, 5.0]
    assert [int(b.T[0, 0, 0]) for _, b in s.best()] == [3, 5, 2]        # ties in arrival order
    assert int(s.fewest_steps().T[0, 0, 0]) == 3                        # the tie of the fewest DRAM steps
    offer([3.0, 1.0, 4.0], [3, 6, 7])                                 # 3 again: already held, not twice
    assert [(v, int(b.T[0, 0, 0])) for v, b in s.best()] == [(1.0, 6), (3.0, 3), (3.0, 5)]
    assert int(s.fewest_steps().T[0, 0, 0]) == 6                        # a better value starts it again
    offer([9.0, 1.0, 1.0], [8, 9, 2])                                 # worse than the last kept; ties of 1
    assert len(s.best()) == 3 and s.limit() == 1.0
    assert [(v, int(b.T[0, 0, 0])) for v, b in s.best()] == [(1.0, 6), (1.0, 9), (1.0, 2)]
    assert int(s.fewest_steps().T[0, 0, 0]) == 2                        # fewer steps than the first tie


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


@pytest.mark.parametrize("name", ["conv1.forward", "conv2.forward", "conv1.backward_weight.bias", "relu1.backward_data",
                                  "vgg16-b2:pool3.backward_data"])
def test_the_chosen_mapping_is_the_best_finalist_by_the_reported_figures(example, monkeypatch, name):
    """The native model's batch price estimates the DRAM lines the reported figure counts; where they disagree the
    search's best by the estimate is not the best by the count: VGG-16's pooling gradients, whose scattered writes
    (a stride wider than the window) touch more lines than their elements fill (on the example's convolutions
    the estimate now picks the best itself). Oracle: every finalist priced by evaluate; among those that tie with
    the best, the chosen one fetches from the DRAM in the fewest steps (on the example's bias and ReLU operations
    several finalists tie exactly: conv1.backward_weight.bias's in 4 or 8 steps, measured 2026-12-08)."""
    resolved, ops = example
    arch, model = resolved.architecture, NativeCostModel()
    op = vgg16_b2_operation(name.split(":")[1], arch) if name.startswith("vgg16-b2:") else ops[name]
    seen: dict = {}
    real = search_module._rerank

    def spy(problem, arch_, cost_model, objective, c, found, mapping, cost, shortlist):
        seen.update(found=found, finalists=shortlist.best(), fewest=shortlist.fewest_steps())
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
    fewest = (reported(seen["fewest"]), seen["fewest"])
    oracle = min(value for value, _ in priced + [fewest])
    chosen = objective_value("edp", result.cost.energy_pJ, result.cost.cycles)
    assert chosen == pytest.approx(oracle, rel=1e-12)

    def outer_steps(m):
        return math.prod(f for _, f in m.levels[0].temporal)

    steps = [outer_steps(from_batch(problem, b, arch, 0)) for value, b in priced if value <= oracle * (1 + 1e-12)]
    if fewest[0] >= oracle * (1 - 1e-12) and steps:     # the finalists hold a best one: the fewest steps of them
        assert outer_steps(result.mapping) == min(steps)
    if name in ("conv1.backward_weight.bias", "relu1.backward_data"):
        assert len(steps) >= 2 and max(steps) > min(steps)          # a real tie, broken by the steps
    # the estimate's tie of the fewest DRAM steps, if the count ties it too and it is another mapping, goes to the
    # runner as a tie (the memory backend decides)
    fewest_mapping = from_batch(problem, fewest[1], arch, 0)
    expect_tie = fewest[0] == pytest.approx(chosen, rel=1e-12) and fewest_mapping != result.mapping \
        and all(fewest[1].keys()[0] != b.canonical().keys()[0] for _, b in priced)
    assert result.ties == ((fewest_mapping,) if expect_tie else ())
    if name == "relu1.backward_data":
        assert result.ties                              # the example's ReLU gradient: a tie the runner decides
    assert result.rerank_gain == pytest.approx(searched_best / chosen - 1, rel=1e-9)
    if name.startswith("vgg16-b2:"):
        assert result.rerank_gain > 0.02                # measured: +37.7 % (pool1's +0.8 %, pool4's +39 %)
    assert 1 <= result.reranked <= search_module.RERANK + 1
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
    example, every operation with 1 % of the step's energy or more is reported within 5 % of the energy its
    mapping was chosen by (the cost model's, memory level included). Measured: at most 4.6 %, relu1.backward_data,
    whose DRAM traffic streams at 0.50 row hits where the DRAM's energy per bit assumes about 0.73 (its tie streams
    at 0.50 too); the others within 0.7 %. (With the host's 10.48 pJ/bit before issue 15 the same misses were a
    smaller share of a larger figure: at most 1.3 %.)"""
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
            assert abs(op["energy_pJ"] / chosen_by - 1) <= 0.05, op["name"]


def test_ties_go_to_the_mapping_the_memory_backend_makes_best(example):
    """The example's relu2.forward: the search's pick and the estimate's tie of the fewest DRAM steps are
    priced exactly alike by the cost model, and the bank model gives them 0.50 and 0.75 row hits. The run keeps
    the one the reported figures make best, says so in the search record (``ties``, ``tie_gain``: measured
    +4.9 %), and its memory figures are those of the mapping it keeps."""
    resolved, ops = example
    op, arch = ops["relu2.forward"], resolved.architecture
    (mb_reg, memory), (_, model) = resolved.components["memory"], resolved.components["cost_model"]
    pick, pick_cost, _, ties = runner._searched(resolved, op)
    assert len(ties) == 1 and ties[0] != pick
    tie_cost = model.evaluate(op, ties[0], arch)
    assert objective_value("edp", tie_cost.energy_pJ, tie_cost.cycles) == \
        pytest.approx(objective_value("edp", pick_cost.energy_pJ, pick_cost.cycles), rel=1e-12)

    def reported(mapping, cost):
        figures = runner.combine(op, arch, cost, runner.simulate_memory(resolved, mb_reg, memory, op, mapping, cost))
        return figures["energy_pJ"] * figures["cycles"], figures["memory"]["details"]["row_hit_rate"]

    (pick_edp, pick_hits), (tie_edp, tie_hits) = reported(pick, pick_cost), reported(ties[0], tie_cost)
    assert (pick_hits, tie_hits) == (0.5, 0.75)
    chosen, cost, record = runner.map_operation(resolved, op)
    assert chosen == ties[0] and cost == tie_cost
    assert record["ties"] == 1 and record["tie_gain"] == pytest.approx(pick_edp / tie_edp - 1, rel=1e-9)
    assert record["tie_gain"] == pytest.approx(0.049, abs=0.001)
    # the kept mapping's memory figures wait for the run's own call (no second simulation), the other's are gone
    assert len(resolved.kept_memory) == 1
    kept = next(iter(resolved.kept_memory.values()))
    assert runner.simulate_memory(resolved, mb_reg, memory, op, chosen, cost) is kept and not resolved.kept_memory
    assert kept.details["row_hit_rate"] == 0.75


def test_the_trace_command_writes_the_mapping_the_run_keeps(tmp_path):
    """``ntframe trace`` maps through the same decision as ``ntframe run``: the example's relu2.forward is
    written with the tie the memory backend kept (its trace's open-page row hits 0.75; the search's own pick
    streams at 0.50), so a trace given to Ramulator or DRAMSim3 is the traffic the run reported."""
    out = tmp_path / "relu2.nttrace"
    done = ntframe_cmd("trace", str(EXAMPLE), "--layer", "relu2", "--phase", "forward", "-o", str(out))
    assert done.returncode == 0, done.stderr
    info = json.loads(ntframe_cmd("trace", "inspect", str(out), "--json").stdout)
    assert info["requests"] == 8192 and info["open_page_row_hit_rate"] == 0.75
