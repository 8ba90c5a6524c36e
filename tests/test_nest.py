"""Per-level access counts, energy and cycles of tiny mappings, counted by hand."""

from __future__ import annotations

import pytest

from ntframe.mapping.mapping import LevelMapping, Mapping, structural_problems
from ntframe.mapping.nest import analyse, capacity_problems, tile_bytes
from ntframe.testing import check_cost_model, tiny_architecture
from ntframe.workload.builder import NetworkBuilder
from ntframe.workload.ir import Phase
from ntframe.workload.training import expand

BITS = dict.fromkeys(Phase, 16)


def fc_forward(n, c, m):
    b = NetworkBuilder("t")
    b.linear(b.input("x", (c,)), m, bias=False, name="fc")
    return expand(b.build(n), [Phase.forward], BITS)[0]


def counts(analysis):
    return {(lvl.level, t.tensor): (t.reads, t.fills, t.updates) for lvl in analysis.levels for t in lvl.tensors}


def test_output_stationary_fc_with_weight_multicast(tmp_path):
    """FC N=2, C=3, M=4 on DRAM -> 2 PEs (register file + MAC):
         dram: for M in [0:2)
         rf:   spatial M in [0:2);  for N in [0:2), for C in [0:3)
    """
    arch = tiny_architecture(tmp_path)
    op = fc_forward(2, 3, 4)
    mapping = Mapping((LevelMapping("dram", (("M", 2),)),
                       LevelMapping("rf", (("N", 2), ("C", 3)), (("M", 2),))))
    assert structural_problems(op, mapping, arch) == []
    a = analyse(op, mapping)
    assert [lvl.instances for lvl in a.levels] == [1, 2]
    assert a.temporal_steps == 12 and a.compute_instances == 2
    got = counts(a)
    # DRAM, per step it sends the union of the 2 PEs' tiles; the input is the same for both PEs (multicast)
    assert got[("dram", "I")] == (6, 0, 0)        # I stays in the RFs across the M loop: read once
    assert got[("dram", "W")] == (12, 0, 0)       # every weight once
    assert got[("dram", "O")] == (0, 0, 8)        # every output written once, never read back
    # one RF (per instance): every MAC reads its operands and updates its output there (the MAC holds nothing
    # between points, as in Timeloop)
    assert got[("rf", "I")] == (12, 6, 0)         # 12 operand reads; filled once with its 2x3 tile
    assert got[("rf", "W")] == (12, 6, 0)         # refilled (3 weights) for each of the 2 M steps
    assert got[("rf", "O")] == (8, 0, 12)         # 12 updates; all but the first of each of 4 outputs read
    assert tile_bytes(op, mapping) == [(6 + 12 + 8) * 2, (6 + 3 + 2) * 2]

    from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions
    cost = NativeCostModel(NativeCostOptions(dram_line_bytes=0)).evaluate(op, mapping, arch)
    dram, rf = cost.levels
    assert dram.energy_pJ == pytest.approx(18 * 16 * 1.0 + 8 * 16 * 2.0)       # 544 pJ
    assert rf.energy_pJ == pytest.approx(2 * (32 * 16 * 0.1 + 24 * 16 * 0.2))  # 256 pJ
    assert cost.compute_energy_pJ == pytest.approx(24 * 1.0)
    assert cost.energy_pJ == pytest.approx(824.0)
    assert dram.bandwidth_bound_cycles == pytest.approx((18 + 8) * 2 / 4)      # 13 cycles at 4 B/cycle
    assert rf.bandwidth_bound_cycles == pytest.approx((32 + 24) * 2 / 8)       # 14 cycles at 8 B/cycle
    assert cost.compute_cycles == 12 and cost.on_die_cycles == 14 and cost.cycles == 14
    assert cost.utilisation == pytest.approx(24 / (2 * 14))
    assert cost.dram_read_bytes_by_tensor == {"x": 12, "fc.W": 24}
    assert cost.dram_write_bytes_by_tensor == {"fc.Y": 16}
    check_cost_model(cost, op, arch)


def test_spatial_reduction_of_partial_sums(tmp_path):
    """FC N=1, C=4, M=2; the two PEs split C, so their partial sums are reduced on the way up:
         dram: for M in [0:2)
         rf:   spatial C in [0:2); for C in [0:2)
    """
    arch = tiny_architecture(tmp_path)
    op = fc_forward(1, 4, 2)
    mapping = Mapping((LevelMapping("dram", (("M", 2),)), LevelMapping("rf", (("C", 2),), (("C", 2),))))
    assert structural_problems(op, mapping, arch) == []
    got = counts(analyse(op, mapping))
    assert got[("dram", "I")] == (4, 0, 0)
    assert got[("dram", "W")] == (8, 0, 0)
    assert got[("dram", "O")] == (0, 0, 2)        # 2 updates, not 4: the PEs' sums are reduced spatially
    assert got[("rf", "I")] == (4, 2, 0)
    assert got[("rf", "W")] == (4, 4, 0)
    assert got[("rf", "O")] == (2, 0, 4)          # 4 MAC updates, 2 of them onto a partial sum
    # not free: each of the 2 outputs DRAM receives adds the 2 PEs' partial sums, 1 add of 0.5 pJ each
    from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions
    cost = NativeCostModel(NativeCostOptions(dram_line_bytes=0)).evaluate(op, mapping, arch)
    reduction = cost.levels[-1]
    assert reduction.level == "mac.spatial_reduction" and reduction.tensors["O"]["adds"] == 2
    assert reduction.energy_pJ == pytest.approx(2 * 0.5) and reduction.tensors["I"]["adds"] == 0
    free = NativeCostModel(NativeCostOptions(dram_line_bytes=0, spatial_reduction_adders=False))
    without = free.evaluate(op, mapping, arch)
    assert cost.energy_pJ - without.energy_pJ == pytest.approx(1.0)
    assert [lv.level for lv in without.levels] == ["dram", "rf"] and cost.cycles == without.cycles
    # splitting M (which indexes the output) instead needs no adds: no reduction level is listed
    by_m = Mapping((LevelMapping("dram", ()), LevelMapping("rf", (("C", 4),), (("M", 2),))))
    assert structural_problems(op, by_m, arch) == []
    assert [lv.level for lv in NativeCostModel().evaluate(op, by_m, arch).levels] == ["dram", "rf"]


def test_partial_sums_read_back_when_reduction_is_outer(tmp_path):
    """C outside M at DRAM: each output is revisited, so its partial sum is read back once per revisit."""
    arch = tiny_architecture(tmp_path)
    op = fc_forward(1, 2, 2)
    mapping = Mapping((LevelMapping("dram", (("C", 2), ("M", 2))), LevelMapping("rf", ())))
    got = counts(analyse(op, mapping))
    assert got[("dram", "O")] == (2, 0, 4)        # 4 updates, the first 2 need no read
    assert got[("rf", "O")] == (2, 2, 4)          # 2 partial sums filled back and read by the MAC
    assert structural_problems(op, mapping, arch) == []


def test_capacity_and_fanout_problems(tmp_path):
    arch = tiny_architecture(tmp_path)
    op = fc_forward(4, 8, 4)
    everything_in_rf = Mapping((LevelMapping("dram", ()), LevelMapping("rf", (("N", 4), ("C", 8), ("M", 4)))))
    # I 4x8 + W 4x8 + O 4x4 = 80 elements of 2 bytes in one 64-byte register file
    assert capacity_problems(op, everything_in_rf, arch) == ["capacity: rf needs 160 B per instance, holds 64 B"]
    too_wide = Mapping((LevelMapping("dram", (("N", 4), ("C", 8))), LevelMapping("rf", (), (("M", 4),))))
    assert structural_problems(op, too_wide, arch) == [
        "fan-out: rf has 2 instances per parent, the mapping uses 4"]
    wrong_product = Mapping((LevelMapping("dram", (("N", 2), ("C", 8))), LevelMapping("rf", (), (("M", 2),))))
    assert structural_problems(op, wrong_product, arch) == ["factors of N multiply to 2, not its bound 4",
                                                            "factors of M multiply to 2, not its bound 4"]
