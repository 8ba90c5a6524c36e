"""The Timeloop and ZigZag plugins and `ntframe compare`: the same mapping through several models."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import os
import shutil

import pytest
import yaml

from tests.conftest import EXAMPLE, ROOT, ntframe_cmd

GOLDEN = ROOT / "tests" / "golden" / "timeloop"


@pytest.fixture(scope="module")
def example():
    """The example spec resolved on the reference architecture the Timeloop golden files were recorded on, and its
    operations."""
    from ntframe.host import PluginHost
    from ntframe.runner import operations_of, resolve
    from ntframe.spec import load_spec
    resolved = resolve(load_spec(EXAMPLE, {"architecture.spec": str(GOLDEN.parent / "hmc2-32vault.recorded.yaml")}),
                       PluginHost().load())
    _, ops = operations_of(resolved)
    return resolved, {op.name: op for op in ops}


def _native(resolved, op, element_counting=True, network=False):
    from ntframe_plugins.native_cost import NativeCostModel, NativeCostOptions
    arch = resolved.architecture if network else dataclasses.replace(resolved.architecture, network=None)
    model = NativeCostModel(NativeCostOptions(dram_line_bytes=0 if element_counting else 64,     # as Timeloop:
                                              spatial_reduction_adders=not element_counting))  # no adders
    return model, arch


def _golden_mapping():
    from ntframe.mapping.mapping import Mapping
    meta = json.loads((GOLDEN / "ntframe.json").read_text())
    return Mapping.from_dict(meta["mapping"]), meta["vaults"]


# --- Timeloop plugin, offline against recorded timeloop-model / timeloop-mapper runs ---------------------------

def test_timeloop_stats_become_the_whole_operations_cost(example):
    """Golden conv2.forward stats (one vault, ERT energies) x the vaults = ntframe's element-counting model
    without the network, level by level."""
    from ntframe.interop.timeloop import parse_stats
    from ntframe_plugins.timeloop_tools import to_compute_cost
    resolved, ops = example
    op = ops["conv2.forward"]
    mapping, vaults = _golden_mapping()
    stats = parse_stats((GOLDEN / "conv2-forward.stats.txt").read_text())
    assert stats["utilisation"] == 1.0
    cost = to_compute_cost(op, resolved.architecture, stats, vaults)
    model, arch = _native(resolved, op)
    native = model.evaluate(op, mapping, arch)
    assert cost.cycles == native.cycles == 36864
    assert cost.energy_pJ == pytest.approx(native.energy_pJ, rel=1e-9)
    assert cost.energy_pJ == pytest.approx(13_590_200.32 * vaults)
    for mine, theirs in zip(cost.levels, native.levels):
        assert mine.level == theirs.level
        assert mine.energy_pJ == pytest.approx(theirs.energy_pJ, rel=1e-9)
        for tensor, counts in theirs.tensors.items():
            for key in ("reads", "fills", "updates"):
                assert mine.tensors.get(tensor, {}).get(key, 0.0) == pytest.approx(counts[key]), (mine.level, tensor)
    assert cost.dram_read_bytes_by_tensor == native.dram_read_bytes_by_tensor
    assert cost.levels[0].is_memory and cost.dram_instances == vaults
    assert not any("WARNING" in n for n in cost.notes)
    assert any("network is not modelled" in n for n in cost.notes)


def test_timeloop_builtin_energies_are_flagged_loudly(example):
    from ntframe.interop.timeloop import parse_stats
    from ntframe_plugins.timeloop_tools import to_compute_cost
    resolved, ops = example
    _, vaults = _golden_mapping()
    stats = parse_stats((GOLDEN / "conv2-forward.builtin-energies.stats.txt").read_text())
    cost = to_compute_cost(ops["conv2.forward"], resolved.architecture, stats, vaults)
    warning = [n for n in cost.notes if n.startswith("WARNING")]
    assert len(warning) == 1
    for level in ("vault_dram", "vault_buffer", "pe_rf"):
        assert f"{level} (PAT)" in warning[0]
    # the same counts, other energies: the cycles agree, the energy does not
    assert cost.cycles == 36864 and cost.energy_pJ != pytest.approx(13_590_200.32 * vaults, rel=1e-3)


def test_timeloop_mapper_finding_nothing_says_so_and_how_to_fix_it(example, tmp_path, monkeypatch):
    """timeloop-mapper that finds no valid mapping exits 0 and leaves an empty map.yaml (what the real one did on
    conv3_2 under the reference's constraints with its default timeout): one line saying so, with its message
    and the option that helps, not a parse failure."""
    import stat

    from ntframe.components import Budget
    from ntframe.errors import ToolError
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopMapperOptions
    resolved, ops = example
    exe = tmp_path / "timeloop-mapper"
    exe.write_text("#!/bin/sh\necho 'MESSAGE: no valid mappings found within search criteria. Some suggestions:'\n"
                   ": > out/timeloop-mapper.map.yaml\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(tmp_path))
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    mapper = TimeloopMapper(TimeloopMapperOptions(vault_split={"N": 16}, invalid_timeout=77))
    with pytest.raises(ToolError, match=r"found no valid mapping for conv2.forward \(no valid mappings found within "
                                        r"search criteria") as err:
        mapper.search(ops["conv2.forward"], resolved.architecture, NativeCostModel(), Budget(evaluations=100), 0)
    assert "invalid_timeout" in err.value.fix and "now 77" in err.value.fix


def test_timeloop_mapper_output_translates_to_a_valid_ntframe_mapping(example):
    from ntframe.interop.timeloop import per_vault_bounds, mapping_yaml, parse_mapping
    from ntframe.mapping.mapping import structural_problems
    from ntframe.mapping.nest import capacity_problems
    resolved, ops = example
    op, arch = ops["conv2.forward"], resolved.architecture
    golden, _ = _golden_mapping()
    split = golden.levels[0].spatial
    found = parse_mapping(yaml.safe_load((GOLDEN / "conv2-forward.mapper.map.yaml").read_text()), op, arch, split)
    assert structural_problems(op, found, arch) == [] and capacity_problems(op, found, arch) == []
    # what the mapper wrote, read by hand: pe_rf keeps W and O (bypasses I), loops N2 C16 P2 Q4 S3 with N
    # innermost; N2 M2 Q2 across the 16 engines; R3 N2 M2 at the buffer (which bypasses O); M2 P2 N2 at the DRAM
    rf, buf, dram = found.levels[2], found.levels[1], found.levels[0]
    assert rf.bypass == ("I",) and rf.temporal == (("S", 3), ("Q", 4), ("P", 2), ("C", 16), ("N", 2))
    assert rf.spatial == (("N", 2), ("M", 2), ("Q", 2))
    assert buf.bypass == ("O",) and buf.temporal == (("M", 2), ("N", 2), ("R", 3))
    assert dram.temporal == (("N", 2), ("P", 2), ("M", 2)) and dram.spatial == split
    # and the exporter's own mapping reads back as itself
    bounds, _ = per_vault_bounds(op, golden)
    assert parse_mapping(mapping_yaml(op, arch, golden, bounds), op, arch, split) == golden


def test_timeloop_missing_names_the_variable(monkeypatch, tmp_path):
    from ntframe.errors import ToolError
    from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopModel, TimeloopModelOptions
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(tmp_path))
    for component in (TimeloopModel(TimeloopModelOptions(engine="programs")), TimeloopMapper()):
        with pytest.raises(ToolError) as err:
            component.check_available()
        assert "NTFRAME_TIMELOOP_BIN" in str(err.value) and "fix:" in str(err.value)


def _timeloop_bin() -> bool:
    folder = os.environ.get("NTFRAME_TIMELOOP_BIN")
    return bool(folder and os.path.exists(os.path.join(folder, "timeloop-mapper"))) or bool(
        shutil.which("timeloop-mapper"))


live_timeloop = pytest.mark.skipif(not _timeloop_bin(), reason="timeloop-model/timeloop-mapper not found (set "
                                   "NTFRAME_TIMELOOP_BIN to the folder holding them to run the live checks)")


@live_timeloop
def test_timeloop_model_live_matches_the_recorded_run(example):
    from ntframe_plugins.timeloop_tools import TimeloopModel, TimeloopModelOptions
    resolved, ops = example
    mapping, vaults = _golden_mapping()
    program = TimeloopModel(TimeloopModelOptions(engine="programs"))
    cost = program.evaluate(ops["conv2.forward"], mapping, resolved.architecture)
    assert cost.cycles == 36864 and cost.energy_pJ == pytest.approx(13_590_200.32 * vaults, rel=1e-9)


@live_timeloop
def test_timeloop_mapper_live_gives_a_valid_mapping_deterministically(example):
    from ntframe.components import Budget
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopMapperOptions
    resolved, ops = example
    mapper = TimeloopMapper(TimeloopMapperOptions(vault_split={"N": 2, "C": 16}))
    runs = [mapper.search(ops["fc1.forward"], resolved.architecture, NativeCostModel(), Budget(evaluations=300), 0)
            for _ in range(2)]
    assert runs[0].mapping == runs[1].mapping and runs[0].mapping.levels[0].spatial == (("N", 2), ("C", 16))
    assert runs[0].cost.cycles > 0 and not runs[0].truncated_by_time


# --- ZigZag plugin (zigzag-dse is installed by the README's setup) ---------------------------------------------

needs_zigzag = pytest.mark.skipif(importlib.util.find_spec("zigzag") is None,
                                  reason="zigzag-dse is not installed (pip install 'ntframe[zigzag]')")


@needs_zigzag
def test_zigzag_translation_of_a_strided_conv_and_its_backward_phases(example):
    from ntframe_plugins.zigzag_tools import layer_dict
    _, ops = example
    fwd = layer_dict(ops["conv2.forward"])
    assert fwd["equation"] == "O[n][m][p][q]+=W[m][c][r][s]*I[n][c][ia][ib]"
    assert fwd["dimension_relations"] == ["ia=2*p+1*r", "ib=2*q+1*s"]
    assert fwd["loop_sizes"] == [16, 32, 16, 16, 16, 3, 3]
    bd = layer_dict(ops["conv2.backward_data"])        # writes through the window: the output has the relation
    assert bd["equation"] == "O[n][c][ia][ib]+=W[m][c][r][s]*I[n][m][p][q]"
    assert bd["operand_precision"] == {"I": 32, "W": 32, "O": 32, "O_final": 32}


@needs_zigzag
def test_zigzag_holds_the_mapping_fixed_and_agrees_where_the_models_agree(example):
    """ZigZag on ntframe's own mapping: its temporal mapping is exactly ours; the MAC energy and the DRAM
    reads of the inputs match ntframe's element-counting model (ZigZag counts whole port words, rounded down)."""
    from ntframe.runner import map_operation
    from ntframe_plugins.zigzag_tools import ZigZagModel, _port_bits, evaluate_fixed, temporal_per_operand
    resolved, ops = example
    for name in ("conv2.forward", "fc1.backward_data", "conv3.backward_weight"):
        op = ops[name]
        mapping, _, _ = map_operation(resolved, op)
        cme = evaluate_fixed(op, resolved.architecture, mapping)
        ours = temporal_per_operand(op, mapping)
        theirs = {str(o): [[(str(d), int(f)) for d, f in lvl] for lvl in lvls]
                  for o, lvls in cme.temporal_mapping.mapping_dic_origin.items()}
        assert theirs == ours, name
        cost = ZigZagModel().evaluate(op, mapping, resolved.architecture)
        model, arch = _native(resolved, op)
        native = model.evaluate(op, mapping, arch)
        assert cost.compute_energy_pJ == pytest.approx(native.compute_energy_pJ, rel=1e-12)
        engines = math.prod(f for row in mapping.spatial_rows() for _, f in row)
        assert cost.compute_cycles == op.points / engines     # the engines the mapping uses, all busy (ideal cycles)
        for t in op.tensors:
            ours, theirs = native.levels[0].tensors[t.name]["reads"], cost.levels[0].tensors[t.name]["reads"]
            if t.written:
                continue
            if all(len(axis) == 1 for axis in t.projection):
                assert theirs == pytest.approx(ours, rel=1e-3), (name, t.name)
            else:
                # a window over a padded input: ZigZag sizes it from the loop bounds, padding included, and credits
                # no sliding-window (halo) reuse between successive tiles, which ntframe (as Timeloop) does: on
                # conv3.backward_weight, 3-row input tiles stepping by 2 rows at the DRAM level read 4/3 as much;
                # its counts are whole DRAM port words (80 bits: 5 16-bit elements), rounded down
                words = _port_bits(resolved.architecture.levels[0]) // t.precision_bits
                assert ours - (words - 1) <= theirs <= 1.5 * ours, (name, t.name)
        assert cost.cycles >= cost.compute_cycles


@needs_zigzag
def test_zigzag_says_why_it_cannot_evaluate_an_elementwise_operation(example):
    from ntframe.errors import PluginError
    from ntframe.runner import map_operation
    from ntframe_plugins.zigzag_tools import ZigZagModel
    resolved, ops = example
    op = ops["relu1.forward"]
    mapping, _, _ = map_operation(resolved, op)
    with pytest.raises(PluginError, match=r"O \+= W \* I .* elementwise \(add\), with 1 input"):
        ZigZagModel().evaluate(op, mapping, resolved.architecture)


@needs_zigzag
def test_zigzag_loma_finds_a_valid_mapping_deterministically(example):
    from ntframe.components import Budget
    from ntframe.mapping.mapping import structural_problems
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.zigzag_tools import ZigZagLoma, ZigZagLomaOptions
    resolved, ops = example
    op, arch = ops["fc1.forward"], resolved.architecture
    searcher = ZigZagLoma(ZigZagLomaOptions(lpf_limit=4, vault_split={"N": 2, "C": 16}))
    runs = [searcher.search(op, arch, NativeCostModel(), Budget(evaluations=100), 0) for _ in range(2)]
    assert runs[0].mapping == runs[1].mapping
    assert structural_problems(op, runs[0].mapping, arch) == []
    assert runs[0].mapping.levels[0].spatial == (("N", 2), ("C", 16))


@needs_zigzag
def test_zigzag_loma_honours_the_time_budget(example):
    """LOMA has no time limit of its own: the searcher runs it in a child process and stops it at the budget."""
    import time

    from ntframe.components import Budget
    from ntframe.errors import ToolError
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.zigzag_tools import ZigZagLoma, ZigZagLomaOptions
    resolved, ops = example
    searcher = ZigZagLoma(ZigZagLomaOptions(lpf_limit=6, vault_split={"N": 4, "M": 4, "P": 2}))
    started = time.perf_counter()
    with pytest.raises(ToolError, match=r"did not finish within the search budget \(1.0 s\)") as err:
        searcher.search(ops["conv2.forward"], resolved.architecture, NativeCostModel(),
                        Budget(evaluations=100, seconds=1.0), 0)
    assert time.perf_counter() - started < 10 and "lpf_limit" in str(err.value)


# --- ntframe compare -------------------------------------------------------------------------------------------

@needs_zigzag
def test_compare_cli_table_files_and_plots(tmp_path):
    out = tmp_path / "cmp"
    done = ntframe_cmd("compare", str(EXAMPLE), "--cost-models", "native,zigzag", "--ops",
                       "conv2.forward,fc1.backward_weight,relu1.forward", "-o", str(out), timeout=300)
    assert done.returncode == 0, done.stderr
    assert "conv2.forward" in done.stdout and "zigzag" in done.stdout and "error [1]" in done.stdout
    doc = json.loads((out / "compare.json").read_text())
    assert [c["label"] for c in doc["columns"]] == ["native", "zigzag"] and doc["baseline"] == "native"
    rows = {r["name"]: r for r in doc["operations"]}
    assert rows["relu1.forward"]["cells"]["zigzag"]["status"] == "error"
    assert "O += W * I" in rows["relu1.forward"]["cells"]["zigzag"]["error"]
    assert rows["relu1.forward"]["cells"]["native"]["status"] == "ok"
    assert doc["common_totals"]["native"]["operations_ok"] == 2
    for row in (rows["conv2.forward"], rows["fc1.backward_weight"]):
        for cell in row["cells"].values():
            assert cell["status"] == "ok" and cell["energy_pJ"] == pytest.approx(
                sum(cell["energy_by_level_pJ"].values()), rel=1e-9)
    table = list(csv.DictReader((out / "compare.csv").open()))
    assert len(table) == 6
    native_rows = [r for r in table if r["column"] == "native" and r["status"] == "ok"]
    assert all(float(r["energy_ratio_to_native"]) == 1.0 for r in native_rows)
    for png in ("compare_by_operation.png", "compare_energy_levels.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_raising_cost_model_leaves_the_other_columns_intact(example):
    import types

    import ntframe
    from ntframe.components import CostModel
    from ntframe.host import PluginHost
    from ntframe.studies.compare import compare_cost_models

    class Flaky(CostModel):
        name = "flaky"
        description = "raises on convolutions"

        def evaluate(self, operation, mapping, architecture):
            if operation.kind.value == "conv":
                raise ZeroDivisionError("boom")
            from ntframe_plugins.native_cost import NativeCostModel
            return NativeCostModel().evaluate(operation, mapping, architecture)

    module = types.ModuleType("flaky_plugin")
    module.ntframe_register_cost_models = ntframe.hookimpl(lambda register: register(Flaky))
    host = PluginHost().load()
    host.register_module(module, "flaky-plugin", "9.9")
    resolved, _ = example
    doc = compare_cost_models(resolved, host, ["native", "flaky"], only="conv2.forward,fc1.forward")
    rows = {r["name"]: r["cells"] for r in doc["operations"]}
    assert rows["conv2.forward"]["native"]["status"] == "ok"
    err = rows["conv2.forward"]["flaky"]
    assert err["status"] == "error" and "flaky-plugin" in err["error"] and "ZeroDivisionError: boom" in err["error"]
    assert rows["fc1.forward"]["flaky"]["status"] == "ok"
    assert rows["fc1.forward"]["flaky"]["energy_pJ"] == rows["fc1.forward"]["native"]["energy_pJ"]
    assert doc["totals"]["flaky"]["operations_failed"] == 1


@needs_zigzag
def test_compare_mappers_on_one_cost_model(tmp_path):
    out = tmp_path / "m"
    done = ntframe_cmd("compare", str(EXAMPLE), "--mappers", "native,neurotrainer-dataflow,zigzag-loma",
                       "--ops", "fc1.forward", "-o", str(out), "--no-plots",
                       "--set", "mapper.budget.seconds=600",     # LOMA's lpf_limit bounds it, not the clock
                       timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "compare.json").read_text())
    assert doc["kind"] == "mappers" and doc["cost_model"]["name"] == "native"
    cells = doc["operations"][0]["cells"]
    for name in ("native", "neurotrainer-dataflow", "zigzag-loma"):
        assert cells[name]["status"] == "ok", cells[name]
        assert cells[name]["edp_pJ_cycles"] == pytest.approx(cells[name]["cycles"] * cells[name]["energy_pJ"])
        assert cells[name]["search_s"] > 0
    assert "EDP" in done.stdout


def test_compare_rejects_bad_arguments(tmp_path):
    done = ntframe_cmd("compare", str(EXAMPLE), "--cost-models", "native,nope")
    assert done.returncode == 2 and "nope" in done.stderr and "native" in done.stderr
    done = ntframe_cmd("compare", str(EXAMPLE), "--cost-models", "native", "--mappers", "native")
    assert done.returncode == 2 and "exactly one of" in done.stderr
    done = ntframe_cmd("compare", str(EXAMPLE), "--cost-models", "native,zigzag", "--baseline", "timeloop",
                       "--ops", "fc1.forward", "-o", str(tmp_path / "x"), "--no-plots")
    assert done.returncode == 2 and "--baseline timeloop" in done.stderr


@needs_zigzag
def test_compare_through_a_memory_backend_and_mapping_from_another_model(example):
    """--memory: every model's DRAM traffic through the backend, combined as `ntframe run` does; --mapping-from:
    the spec's mapper searching with that model, and the run's own row (native, native mapping) unchanged."""
    from ntframe.host import PluginHost
    from ntframe.runner import map_operation
    from ntframe.studies.compare import compare_cost_models
    resolved, ops = example
    host = PluginHost().load()
    doc = compare_cost_models(resolved, host, ["native", "zigzag"], ["hmc-analytic"], only="fc1.forward")
    assert [c["label"] for c in doc["columns"]] == ["native+hmc-analytic", "zigzag+hmc-analytic"]
    cells = doc["operations"][0]["cells"]
    for cell in cells.values():
        assert cell["status"] == "ok" and cell["memory"]["energy_pJ"] == cell["memory_energy_pJ"]
        assert cell["energy_pJ"] == pytest.approx(cell["on_die_energy_pJ"] + cell["memory_energy_pJ"])
        assert cell["cycles"] == max(cell["on_die_cycles"], cell["memory_cycles"])
    # ZigZag counts more DRAM traffic on this mapping (it reads the output back even the first time), but the
    # bank-level backend simulates the request trace of the mapping's own tile schedule: the same requests and
    # memory energy for both columns, issued over each model's own on-die time
    z, n = cells["zigzag+hmc-analytic"], cells["native+hmc-analytic"]
    assert z["dram_bytes"] > n["dram_bytes"]
    for key in ("energy_pJ", "read_bytes", "write_bytes"):
        assert z["memory"][key] == n["memory"][key]
    # (a slower on-die time issues the trace no faster: equal bandwidth where the memory bounds the issue)
    assert z["on_die_cycles"] > n["on_die_cycles"] and z["memory"]["bandwidth_GBps"] <= n["memory"]["bandwidth_GBps"]
    from ntframe.runner import resolve
    from ntframe.spec import load_spec
    by_evaluations = resolve(load_spec(EXAMPLE, {"mapper.budget.evaluations": 1000, "mapper.budget.seconds": 600}),
                             host)                  # a search bounded by its evaluations, never by the clock
    mapped_by_zigzag = compare_cost_models(by_evaluations, host, ["native", "zigzag"], mapping_from="zigzag",
                                           only="fc1.forward")
    assert mapped_by_zigzag["mapping_by"]["cost_model"] == "zigzag"
    native_mapping, _, _ = map_operation(resolved, ops["fc1.forward"])
    assert mapped_by_zigzag["operations"][0]["mapping"] != native_mapping.to_dict()
    z = mapped_by_zigzag["operations"][0]["cells"]["zigzag"]
    assert z["cycles"] * z["energy_pJ"] <= cells["zigzag+hmc-analytic"]["on_die_cycles"] * (
        cells["zigzag+hmc-analytic"]["on_die_energy_pJ"] + sum(
            lv["energy_pJ"] for lv in cells["zigzag+hmc-analytic"]["levels"] if lv["is_memory"]))
