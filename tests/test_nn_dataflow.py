"""The ``nn-dataflow`` cost model and searcher (plugins/nn_dataflow_tools.py): the TETRIS authors' scheduler on
ntframe's operations. The translation of operations needs no nn-dataflow; everything else skips without it (CI
installs the ``nn-dataflow`` extra)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import ntframe_cmd

needs_nnd = pytest.mark.skipif(importlib.util.find_spec("nn_dataflow") is None,
                               reason="nn-dataflow is not installed (pip install 'ntframe[nn-dataflow]')")

TETRIS = "tetris/hmc-16vault-eyeriss"

# A TETRIS-like design small enough to count by hand: 2x2 vaults, a 4 KiB buffer each, 3x3 engines with 32-word
# register files, 16-bit words; energies per 16-bit word: DRAM 64 pJ, buffer 4 pJ, register file 1 pJ, MAC 1 pJ.
TINY_TETRIS = """\
architecture:
  version: 0.4
  name: tiny-tetris
  clock_GHz: 1.0
  precision_bits: {forward: 16, backward_data: 16, backward_weight: 16, update: 16}
  nodes:
    - !Component
      name: noc
      class: network
      attributes: {hop_energy_pJ_per_bit: 0.5, link_bandwidth_bytes_per_cycle: 16}
      sources: {hop_energy_pJ_per_bit: "[A] test", link_bandwidth_bytes_per_cycle: "[A] test"}
    - !Container
      name: vault
      spatial: {meshX: 2, meshY: 2}
    - !Component
      name: dram
      class: DRAM
      attributes: {bandwidth_bytes_per_cycle: 4, read_energy_pJ_per_bit: 4.0, write_energy_pJ_per_bit: 4.0}
      sources: {bandwidth_bytes_per_cycle: "[A] test", read_energy_pJ_per_bit: "[A] test",
                write_energy_pJ_per_bit: "[A] test"}
    - !Component
      name: gbuf
      class: SRAM
      attributes: {capacity_bytes: 4096, bandwidth_bytes_per_cycle: 16, read_energy_pJ_per_bit: 0.25,
                   write_energy_pJ_per_bit: 0.25}
      sources: {capacity_bytes: "[A] test", bandwidth_bytes_per_cycle: "[A] test", read_energy_pJ_per_bit: "[A] test",
                write_energy_pJ_per_bit: "[A] test"}
    - !Container
      name: pe
      spatial: {meshX: 3, meshY: 3}
    - !Component
      name: spad
      class: regfile
      attributes: {capacity_bytes: 64, bandwidth_bytes_per_cycle: 8, read_energy_pJ_per_bit: 0.0625,
                   write_energy_pJ_per_bit: 0.0625}
      sources: {capacity_bytes: "[A] test", bandwidth_bytes_per_cycle: "[A] test", read_energy_pJ_per_bit: "[A] test",
                write_energy_pJ_per_bit: "[A] test"}
    - !Component
      name: mac
      class: compute
      attributes: {mac_energy_pJ: {16: 1.0}, add_energy_pJ: {16: 0.5}}
      sources: {mac_energy_pJ: "[A] test", add_energy_pJ: "[A] test"}
"""

SMALL_NET = """\
network:
  name: tetris-small
  input: {channels: 16, height: 14, width: 14}
  layers:
    - {name: conv1, type: conv, out_channels: 32, kernel: 3, stride: 1, padding: 1}
    - {name: relu1, type: relu}
    - {name: conv2, type: conv, out_channels: 32, kernel: 3, stride: 1, padding: 1}
    - {name: relu2, type: relu}
    - {name: fc1, type: linear, out_features: 10}
    - {name: loss, type: softmax_ce}
"""


def _ops(build, batch: int, bits: int = 16, backward_data: str = "scatter") -> dict:
    from ntframe.workload import NetworkBuilder, Phase
    from ntframe.workload.training import expand
    b = NetworkBuilder("t")
    build(b)
    phases = [Phase.forward, Phase.backward_data, Phase.backward_weight, Phase.update]
    return {o.name: o for o in expand(b.build(batch), phases, {p: bits for p in Phase}, backward_data=backward_data)}


def _small_cnn(b) -> None:
    x = b.relu(b.conv(b.input("x", (8, 14, 14)), 16, 3, 1, 1, name="conv1"))
    x = b.conv(x, 16, 3, 1, 1, name="conv2")
    b.linear(x, 10, name="fc")


@pytest.fixture(scope="module")
def tetris():
    from ntframe.api import load_architecture
    return load_architecture(TETRIS)


# --- operations (no nn-dataflow needed) -------------------------------------------------------------------------

def test_training_phases_take_nn_dataflows_layer_roles():
    """Forward natively; backward_data as the full convolution of dO with the flipped, transposed W (nifm = M,
    nofm = C, batch N); backward_weight with dO as the filter (nifm = N, nofm = M, ofmap R x S, batch C); matrix
    products likewise."""
    from ntframe_plugins.nn_dataflow_tools import roles
    ops = _ops(_small_cnn, 4)
    fwd, bd, bw = (roles(ops[f"conv2.{p}"]) for p in ("forward", "backward_data", "backward_weight"))
    assert (fwd.ifm, fwd.ofm, fwd.bat, fwd.h, fwd.w, fwd.fr, fwd.fc) == (("C",), ("M",), ("N",), "P", "Q", "R", "S")
    assert fwd.tensors == ("W", "I", "O") and not fwd.reindexed
    assert (bd.ifm, bd.ofm, bd.bat, bd.h, bd.fr) == (("M",), ("C",), ("N",), "P", "R")
    assert bd.tensors == ("W", "dO", "dI") and "full convolution" in bd.reindexed
    assert (bw.ifm, bw.ofm, bw.bat, bw.h, bw.w, bw.fr, bw.fc) == (("N",), ("M",), ("C",), "R", "S", "P", "Q")
    assert bw.tensors == ("dO", "I", "dW")
    fc = [roles(ops[f"fc.{p}"]) for p in ("forward", "backward_data", "backward_weight")]
    assert [(r.ifm, r.ofm, r.bat, r.h) for r in fc] == [(("C",), ("M",), ("N",), None), (("M",), ("C",), ("N",), None),
                                                       (("N",), ("M",), ("C",), None)]


@pytest.mark.parametrize("build, name, reason", [
    (_small_cnn, "conv1.forward.bias", "convolutions and matrix products"),
    (_small_cnn, "fc.update", "convolutions and matrix products"),
    (lambda b: b.conv(b.relu(b.conv(b.input("x", (4, 8, 8)), 8, 3, 2, 1, name="c0")), 8, 3, 2, 1, name="c"),
     "c.backward_data", "stride-2 convolution.*2×2 phase sub-convolutions"),
    (lambda b: b.conv(b.relu(b.conv(b.input("x", (4, 8, 8)), 8, 3, 1, 1, name="c0")), 8, 3, 1, 0, name="c"),
     "c.backward_data", "only 'same' padding re-indexes exactly"),
    (lambda b: b.conv(b.input("x", (4, 8, 8)), 8, 3, 2, 1, name="c"), "c.backward_weight",
     "coefficient 2 .*the forward stride of a backward_weight"),
    (lambda b: b.conv(b.input("x", (4, 8, 8)), 8, 3, 1, 1, groups=2, name="c"), "c.forward", "grouped convolution"),
])
def test_what_does_not_translate_says_why(build, name, reason):
    from ntframe_plugins.nn_dataflow_tools import NotTranslatable, roles
    with pytest.raises(NotTranslatable, match=reason):
        roles(_ops(build, 4)[name])


@needs_nnd
def test_the_re_indexings_keep_the_multiply_accumulates():
    """Every phase's nn-dataflow layer counts exactly the operation's MACs (same padding and stride 1 for the
    backward passes; a strided forward convolution and the transposed backward_data form natively)."""
    from ntframe_plugins.nn_dataflow_tools import roles

    def strided(b):
        b.linear(b.conv(b.input("x", (3, 15, 15)), 8, 5, 2, 2, name="s"), 6, name="fc")

    checked = set()
    for build, form in ((_small_cnn, "scatter"), (strided, "scatter"), (_small_cnn, "transposed")):
        for op in _ops(build, 4, backward_data=form).values():
            try:
                r = roles(op)
            except ValueError:
                continue
            layer, batch = r.layer(op.bounds)
            assert layer.total_ops(batch) == op.macs, op.name
            checked.add(f"{op.name} ({form})")
    assert {"conv2.backward_data (scatter)", "conv2.backward_data (transposed)", "conv2.backward_weight (scatter)",
            "s.forward (scatter)", "fc.backward_weight (scatter)", "fc.backward_data (transposed)"} <= checked
    assert "s.backward_weight (scatter)" not in checked         # a stride-2 convolution's: refused


# --- the architecture ---------------------------------------------------------------------------------------------

@needs_nnd
def test_the_tetris_architecture_becomes_nn_dataflows_resource_and_cost(tetris):
    from ntframe_plugins.nn_dataflow_tools import HardwareOptions, hardware
    hw = hardware(tetris, 16, HardwareOptions())
    res, cost = hw.resource, hw.cost
    assert tuple(res.proc_region.dim) == tuple(res.dram_region.dim) == (4, 4) and tuple(res.dim_array) == (14, 14)
    assert res.size_gbuf == 110592 // 2 and res.size_regf == 512 // 2
    dram, gbuf, spad = tetris.levels
    assert res.dram_bandwidth == dram.bytes_per_cycle * 16 / 2 and res.array_bus_width == gbuf.bytes_per_cycle // 2
    assert cost.mac_op == tetris.compute.mac_energy_pJ[16]
    assert cost.mem_hier == (dram.read_energy_pJ_per_bit * 16, gbuf.read_energy_pJ_per_bit * 16, 0.0,
                             spad.read_energy_pJ_per_bit * 16)
    assert cost.noc_hop == tetris.network.hop_energy_pJ_per_bit * 16
    assert hardware(tetris, 16, HardwareOptions(array_bus="unbounded")).resource.array_bus_width == float("inf")


@needs_nnd
def test_an_architecture_of_another_shape_is_refused_naming_why(tmp_path):
    from ntframe.components import Budget
    from ntframe.errors import PluginError
    from ntframe.testing import tiny_architecture
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.nn_dataflow_tools import NnDataflowSearcher
    arch = tiny_architecture(tmp_path)
    op = _ops(_small_cnn, 2)["conv2.forward"]
    with pytest.raises(PluginError, match=r"storage levels dram \(DRAM\), rf \(regfile\): nn-dataflow models DRAM → "
                                          r"one global buffer"):
        NnDataflowSearcher().search(op, arch, NativeCostModel(), Budget(), 0)


# --- pricing: by hand, round trip, determinism -------------------------------------------------------------------

@needs_nnd
def test_a_tiny_convolution_counted_by_hand(tmp_path):
    """conv 4 -> 4 channels, 3x3 output, 3x3 filter, batch 4, one image per vault; the 3x3 engines hold one
    filter-row x output-row set; the buffer loops over output then input channels. Per vault: the filters (144
    words) and the padded inputs (4 x 5 x 5 = 100) come from DRAM once, the outputs (36) go once; the buffer
    sends each input 4 times (once per output channel: 400); every MAC reads a weight and an input and reads and
    writes a partial sum in the register file; the array network carries a filter row to each of 9 engines per
    channel pair (27 x 16 = 432), an input row (5 x 9 = 45 per channel, 4 output channels: 720) and an output
    row (3 x 9 = 27 per output channel: 108)."""
    from ntframe.hardware import load_architecture
    from ntframe.mapping import Mapping
    from ntframe.testing import check_cost_model
    from ntframe_plugins.nn_dataflow_tools import NnDataflowModel
    path = tmp_path / "tiny-tetris.yaml"
    path.write_text(TINY_TETRIS)
    arch = load_architecture(path)
    op = _ops(lambda b: b.conv(b.input("x", (4, 3, 3)), 4, 3, 1, 1, bias=False, name="conv"), 4)["conv.forward"]
    mapping = Mapping.from_dict({"levels": [
        {"level": "dram", "temporal": [], "spatial": [["N", 4]], "bypass": []},
        {"level": "gbuf", "temporal": [["M", 4], ["C", 4], ["Q", 3]], "spatial": [], "bypass": ["W"]},
        {"level": "spad", "temporal": [["S", 3]], "spatial": [["P", 3], ["R", 3]], "bypass": []}],
        "compute_spatial": []})
    cost = NnDataflowModel().evaluate(op, mapping, arch)
    check_cost_model(cost, op, arch)
    levels = {lvl.level: lvl for lvl in cost.levels}
    words = {name: {t: (v.get("reads", 0), v.get("updates", 0)) for t, v in lvl.tensors.items()}
             for name, lvl in levels.items()}
    vaults, macs = 4, 4 * 4 * 4 * 9 * 9
    assert macs == op.macs
    assert words["dram"] == {"W": (144 * vaults, 0), "I": (100 * vaults, 0), "O": (0, 36 * vaults)}
    assert words["gbuf"] == {"W": (0, 0), "I": (400 * vaults, 0), "O": (0, 0)}
    assert words["spad"] == {"W": (macs, 0), "I": (macs, 0), "O": (macs, macs)}
    assert words["array_network"] == {"W": (432 * vaults, 0), "I": (720 * vaults, 0), "O": (108 * vaults, 0)}
    assert cost.compute_energy_pJ == macs * 1.0
    assert levels["dram"].energy_pJ == (144 + 100 + 36) * vaults * 64.0
    assert levels["gbuf"].energy_pJ == 400 * vaults * 4.0 and levels["spad"].energy_pJ == 4 * macs * 1.0
    assert cost.energy_pJ == pytest.approx(sum(lvl.energy_pJ for lvl in cost.levels) + cost.compute_energy_pJ)
    # 16 processing passes of 3 x 3 cycles; DRAM: 1,120 words at 2 x 4 words per cycle; array bus: 400 words per
    # vault at 8 per cycle
    assert (cost.compute_cycles, levels["dram"].bandwidth_bound_cycles, levels["gbuf"].bandwidth_bound_cycles) \
        == (144, 140, 50)
    assert cost.cycles == 144 and cost.dram_read_bytes_by_tensor == {"conv.W": 1152, "x": 800}


@needs_nnd
def test_the_searchers_mapping_prices_as_nn_dataflows_own_schedule(tetris):
    """Round trip: nn-dataflow's search → its best schedule that translates → the ntframe mapping → the cost
    model recovers that schedule and prices it: exactly the search's SchedulingResult (energy and cycles). And
    the guarded search finds what nn-dataflow's own Scheduling.schedule_search finds."""
    from ntframe.mapping import structural_problems
    from ntframe.mapping.nest import capacity_problems
    from ntframe_plugins import nn_dataflow_tools as nd
    ops = _ops(_small_cnn, 16)
    for name in ("conv2.forward", "conv2.backward_data", "conv2.backward_weight"):
        op = ops[name]
        r = nd.roles(op)
        hw = nd.hardware(tetris, r.bits, nd.HardwareOptions())
        mapping, tally = nd._search(op, tetris, r, hw, nd.NnDataflowSearchOptions())
        assert mapping is not None and tally.rank >= 0, tally
        assert structural_problems(op, mapping, tetris) == [] and capacity_problems(op, mapping, tetris) == []
        cost = nd.NnDataflowModel().evaluate(op, mapping, tetris)
        assert (cost.energy_pJ, cost.cycles) == (pytest.approx(tally.chosen[0], rel=1e-12), tally.chosen[1]), name
        nnd = nd._nnd()
        layer, batch = r.layer(op.bounds)
        plain = nnd.Scheduling(layer, batch, hw.cost, nnd.MapStrategyEyeriss).schedule_search(
            nnd.SchedulingCondition(resource=hw.resource, constraint=nnd.SchedulingConstraint(),
                                    ifmap_layout=nd.ifmap_layout(layer, batch, hw.resource), sched_seq=(0, 0, 0)),
            nd.option())[0]
        assert (plain.total_cost, plain.total_time) == pytest.approx(tally.best), name


@needs_nnd
def test_the_cost_model_refuses_a_mapping_outside_nn_dataflows_space(tetris):
    from ntframe.components import Budget
    from ntframe.errors import PluginError
    from ntframe.mapping import LevelMapping
    from ntframe.mapping.search import Constraints, search_operation
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.nn_dataflow_tools import NnDataflowModel, NnDataflowSearcher
    op = _ops(_small_cnn, 16)["conv2.forward"]
    found = NnDataflowSearcher().search(op, tetris, NativeCostModel(), Budget(), 0)
    spad = found.mapping.levels[2]
    swapped = LevelMapping(spad.level, spad.temporal[::-1], spad.spatial, spad.bypass)
    with pytest.raises(PluginError, match=r"not expressible in nn-dataflow: pe_spad: loops"):
        NnDataflowModel().evaluate(op, type(found.mapping)(found.mapping.levels[:2] + (swapped,)), tetris)
    native = search_operation(op, tetris, NativeCostModel(), Budget(evaluations=300), 0, "edp", Constraints(), "t")
    assert native.mapping != found.mapping
    with pytest.raises(PluginError, match="not expressible in nn-dataflow"):
        NnDataflowModel().evaluate(op, native.mapping, tetris)


@needs_nnd
def test_the_searcher_is_deterministic_and_maps_the_rest_natively(tetris):
    from ntframe.components import Budget
    from ntframe.errors import PluginError
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.nn_dataflow_tools import NnDataflowSearcher, NnDataflowSearchOptions
    ops = _ops(_small_cnn, 16)
    searcher = NnDataflowSearcher()
    runs = [searcher.search(ops["conv1.forward"], tetris, NativeCostModel(), Budget(), 0) for _ in range(2)]
    assert runs[0].mapping == runs[1].mapping and runs[0].cost == runs[1].cost
    assert runs[0].method.startswith("nn-dataflow solver: its schedule") and 1 <= runs[0].valid <= runs[0].evaluated
    bias = searcher.search(ops["conv1.forward.bias"], tetris, NativeCostModel(), Budget(evaluations=200), 0)
    assert bias.method.startswith("native, as nn-dataflow cannot map it: nn-dataflow schedules convolutions")
    with pytest.raises(PluginError, match="nn-dataflow cannot map conv1.forward.bias"):
        NnDataflowSearcher(NnDataflowSearchOptions(otherwise="error")).search(
            ops["conv1.forward.bias"], tetris, NativeCostModel(), Budget(), 0)


@needs_nnd
def test_the_dram_tolerance_passes_over_schedules_the_register_files_cannot_run(tetris):
    """nn-dataflow's best schedule of a 32 -> 32-channel convolution on 56 x 56 maps counts a pass's data as staying
    in the register files across the loops above it; the nest of it moves far more DRAM words, so the default takes
    a lower-ranked schedule (whose nest moves at most 1.25 times nn-dataflow's count), and ``.inf`` its best."""
    from ntframe.mapping.nest import analyse
    from ntframe_plugins import nn_dataflow_tools as nd
    op = _ops(lambda b: b.conv(b.input("x", (32, 56, 56)), 32, 3, 1, 1, name="c"), 16)["c.forward"]
    r = nd.roles(op)
    hw = nd.hardware(tetris, r.bits, nd.HardwareOptions())
    strict, tally = nd._search(op, tetris, r, hw, nd.NnDataflowSearchOptions())
    loose, tally_inf = nd._search(op, tetris, r, hw, nd.NnDataflowSearchOptions(dram_tolerance=float("inf")))
    assert tally_inf.rank < tally.rank and tally_inf.chosen[0] < tally.chosen[0]
    assert any("more than 1.25x nn-dataflow's DRAM words" in reason for reason in tally.reasons)
    assert nd.dram_words(op, loose) > 1.25 * nd.dram_words(op, strict) > 0
    assert analyse(op, strict).levels[0].instances == 16


@needs_nnd
def test_the_search_budget_stops_nn_dataflow(tetris):
    from ntframe.components import Budget
    from ntframe.errors import ToolError
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.nn_dataflow_tools import NnDataflowSearcher, NnDataflowSearchOptions
    op = _ops(_small_cnn, 16)["conv2.forward"]
    searcher = NnDataflowSearcher(NnDataflowSearchOptions(loop_blocking="exhaustive"))
    with pytest.raises(ToolError, match=r"did not finish within the search budget \(0.5 s\)"):
        searcher.search(op, tetris, NativeCostModel(), Budget(seconds=0.5), 0)


# --- ntframe compare ---------------------------------------------------------------------------------------------

@needs_nnd
@pytest.mark.slow
def test_compare_puts_nn_dataflow_beside_the_other_models(tmp_path):
    zigzag = importlib.util.find_spec("zigzag") is not None
    (tmp_path / "net.yaml").write_text(SMALL_NET)
    (tmp_path / "spec.yaml").write_text(
        "version: 1\nname: tetris-small\n"
        "workload: {frontend: layers, file: net.yaml, batch: 16, phases: [forward, backward_data, backward_weight]}\n"
        f"architecture: {{spec: {TETRIS}}}\nmapper: {{name: nn-dataflow}}\ncost_model: native\n"
        "memory: {backend: hmc-analytic}\noutput: out\n")
    models = "native,nn-dataflow" + (",zigzag" if zigzag else "")
    ops = "conv2.forward,conv2.backward_data,conv2.backward_weight,relu1.forward"
    done = ntframe_cmd("compare", str(tmp_path / "spec.yaml"), "--cost-models", models, "--ops", ops,
                       "-o", str(tmp_path / "cmp"), timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    rows = {r["name"]: r for r in doc["operations"]}
    for name in ops.split(",")[:3]:
        assert rows[name]["search"]["method"].startswith("nn-dataflow solver"), name
        for label, cell in rows[name]["cells"].items():
            assert cell["status"] == "ok", (name, label, cell.get("error"))
        assert rows[name]["cells"]["nn-dataflow"]["energy_by_level_pJ"]["array_network"] == 0.0
    relu = rows["relu1.forward"]
    assert relu["search"]["method"].startswith("native, as nn-dataflow cannot map it")
    assert relu["cells"]["native"]["status"] == "ok"
    assert relu["cells"]["nn-dataflow"]["status"] == "error"
    assert "convolutions and matrix products" in relu["cells"]["nn-dataflow"]["error"]
    assert "error [1]" in done.stdout
