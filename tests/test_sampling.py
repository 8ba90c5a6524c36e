"""One DRAM byte count (the trace's lines, counted without the trace, are what the native cost model and the memory
backend report) and the sampled memory estimate against the whole trace simulated at once (the oracle)."""

from __future__ import annotations

import numpy as np
import pytest

import ntframe
from ntframe.memory.hmc_bank import bank_params, simulate
from ntframe.memory.sampling import _turnover, _unit_loops, estimate
from ntframe.memory.trace import ADDRESS_MAPPINGS
from ntframe.memory.tracegen import TraceGenerator
from ntframe.results import DramTraffic
from ntframe.runner import map_operation, operations_of
from ntframe_plugins.hmc_analytic import HMCAnalytic
from tests.conftest import EXAMPLE


def distinct_operations(resolved):
    seen, out = set(), []
    for op in operations_of(resolved)[1]:
        if op.shape_key() not in seen:
            seen.add(op.shape_key())
            out.append(op)
    return out


@pytest.fixture(scope="module")
def example():
    return ntframe.validate(EXAMPLE, {"mapper.budget.evaluations": 200})


def test_line_counts_are_the_trace_and_the_cost_models_bytes(example):
    """On every operation of the example, both layouts: the counts made without the trace equal the records of
    the whole trace, per tensor, read and write, and per step; the native cost model reports exactly those
    bytes (vault-local) and prices its DRAM level on them."""
    arch = example.architecture
    for op in distinct_operations(example):
        mapping, cost, _ = map_operation(example, op)
        for layout in ("vault-local", "interleaved"):
            gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], layout, cost.on_die_cycles)
            counts = gen.line_counts()
            records = np.concatenate(list(gen.chunks()))
            seen = np.zeros_like(counts.lines)
            np.add.at(seen, (records["tensor"].astype(int), records["write"].astype(int)), 1)
            assert (seen == counts.lines).all(), (op.name, layout)
            if gen.steps <= 64:
                per_step = [sum(len(c) for c in gen.chunks(s, s + 1)) for s in range(gen.steps)]
                assert counts.per_step.tolist() == per_step, (op.name, layout)
            if layout == "vault-local":
                assert cost.dram_read_bytes_by_tensor == counts.read_bytes_by_tensor(), op.name
                assert cost.dram_write_bytes_by_tensor == counts.write_bytes_by_tensor(), op.name
                dram = cost.memory_level
                assert dram.read_bits + dram.write_bits == pytest.approx(counts.requests * 64 * 8)


def test_the_backend_reports_the_cost_models_bytes(example):
    """A whole run: every operation's memory backend bytes are its DRAM bytes (the cost model's)."""
    doc = ntframe.run(example).document
    for op in doc["operations"]:
        memory = op["memory"]
        assert memory["read_bytes"] == op["dram_read_bytes"] and memory["write_bytes"] == op["dram_write_bytes"]
        assert memory["details"]["requests"] * 64 == op["dram_bytes"]
        assert memory["details"]["whole_trace"] and memory["details"]["converged"]


def test_unit_lengths_follow_the_loops():
    """Hand-checked: DRAM loops C4 (outer) x M32, about 3 steps per unit -> units of 2 steps (a divisor of 32),
    16 of them per turn of C; units start where C turns over every 16 units."""
    assert _unit_loops([4, 32], 3.0) == (2, [4, 16])
    assert _unit_loops([4, 32], 32.0) == (32, [4])          # the inner loop whole
    assert _unit_loops([4, 32], 100.0) == (64, [2])         # and half the outer one
    assert _unit_loops([7], 0.3) == (1, [7])                # at least one step
    assert [_turnover(u, [4, 16]) for u in (1, 15, 16, 32, 0)] == [0, 0, 1, 1, 2]


@pytest.fixture(scope="module")
def vgg_layers():
    """VGG-16 at batch 2: convolutions and fully connected layers large enough to be sampled."""
    resolved = ntframe.validate({"version": 1, "name": "vgg", "workload": {"frontend": "zoo", "network": "vgg16",
                                                                          "batch": 2},
                                 "architecture": {"spec": "neurotrainer/hmc2-32vault"},
                                 "mapper": {"name": "native", "budget": {"evaluations": 200}}})
    wanted = ("conv1_2.backward_weight", "conv2_1.backward_data", "conv2_2.backward_weight", "conv3_3.backward_data",
              "fc7.forward", "fc7.backward_weight")
    ops = [op for op in distinct_operations(resolved) if op.name in wanted]
    assert len(ops) == len(wanted)
    return resolved, ops


@pytest.mark.slow
def test_sampled_estimates_cover_the_whole_trace(vgg_layers):
    """Sampled (2,048-request units, so that these layers are sampled) against the whole trace simulated at
    once: energy and cycles within 2 %, the reported 95 % intervals cover the oracle, the bytes are exact; the
    same seed gives the same figures; a tighter tolerance simulates more."""
    resolved, ops = vgg_layers
    arch = resolved.architecture
    params = bank_params(arch.levels[0], {})

    def model(w):
        r = simulate(w["time"], w["vault"], w["bank"], w["row"], w["write"], 64, params, compiled=True)
        return {**r, "read_latency_sum": r["read_latency_avg"] * r["reads"]}

    sampled = 0
    for op in ops:
        mapping, cost, _ = map_operation(resolved, op)
        gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", cost.on_die_cycles)
        counts = gen.line_counts()
        whole = model(np.concatenate(list(gen.chunks())))
        est = estimate(gen, counts, model, tolerance=0.02, max_requests=10 ** 7, window_requests=2048, strata=8)
        again = estimate(gen, counts, model, tolerance=0.02, max_requests=10 ** 7, window_requests=2048, strata=8)
        assert est.totals == again.totals
        sampled += not est.exact
        for q in ("energy_pJ", "cycles"):
            assert est.totals[q] == pytest.approx(whole[q], rel=0.02), (op.name, q)
        # activations: a part of the energy, with no interval of their own (measured: within 4.5 %)
        assert est.totals["activations"] == pytest.approx(whole["activations"], rel=0.05), op.name
        for q in ("energy_pJ", "cycles"):
            assert abs(est.totals[q] - whole[q]) <= est.half_width[q], (op.name, q)
            assert est.half_width[q] <= 0.02 * est.totals[q] or not est.converged
        tight = estimate(gen, counts, model, tolerance=0.002, max_requests=10 ** 7, window_requests=2048, strata=8)
        assert tight.simulated_requests >= est.simulated_requests
        assert abs(tight.totals["energy_pJ"] - whole["energy_pJ"]) <= tight.half_width["energy_pJ"]
    assert sampled >= 4


def test_the_backend_on_a_sampled_layer_keeps_its_bytes(vgg_layers):
    """hmc-analytic on a sampled layer: the bytes are the trace's, counted; the details say what was simulated."""
    resolved, ops = vgg_layers
    op = next(o for o in ops if o.name == "conv2_1.backward_data")
    mapping, cost, _ = map_operation(resolved, op)
    memory = HMCAnalytic(HMCAnalytic.Options(window_requests=2048))
    traffic = DramTraffic(op.name, cost.dram_read_bytes_by_tensor, cost.dram_write_bytes_by_tensor,
                          cost.dram_instances, cost.on_die_cycles, op, mapping)
    result = memory.simulate(traffic, resolved.architecture)
    d = result.details
    assert not d["whole_trace"] and 0 < d["share_simulated"] < 1 and d["units_simulated"] < d["units"]
    assert result.read_bytes == sum(cost.dram_read_bytes_by_tensor.values())
    assert result.write_bytes == sum(cost.dram_write_bytes_by_tensor.values())
    low, high = d["energy_interval_pJ"]
    assert low < result.energy_pJ < high and (high - low) / 2 <= 0.02 * result.energy_pJ


@pytest.mark.slow
def test_counting_by_loop_combination_equals_every_change(example):
    """A mapping with too many DRAM steps to count per vault (every loop of a fully connected layer at the DRAM,
    4 M steps): counting each combination of a tensor's loops once gives the counts of every change, per tensor
    and per step."""
    from ntframe.mapping.mapping import LevelMapping, Mapping
    from ntframe.workload.builder import NetworkBuilder
    from ntframe.workload.ir import Phase
    from ntframe.workload.training import expand
    b = NetworkBuilder("t")
    b.linear(b.input("x", (512,)), 64, bias=False, name="fc")
    op = expand(b.build(128), [Phase.forward], dict.fromkeys(Phase, 16))[0]
    mapping = Mapping((LevelMapping("vault_dram", (("N", 128), ("M", 64), ("C", 512))),
                       LevelMapping("vault_buffer", ()), LevelMapping("pe_rf", ())))
    gen = TraceGenerator(op, mapping, example.architecture, None)
    assert gen.steps == 128 * 64 * 512
    fast, every = gen.line_counts(), gen.line_counts(every_change=True)
    assert fast.per_step_vault is None
    assert (fast.lines == every.lines).all() and (fast.per_step == every.per_step).all()
