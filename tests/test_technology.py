"""Technology nodes (issue 15): Stillmaker & Baas's scaling by hand, the range it covers, and the `table`
component estimator through the host, the architecture file and `ntframe arch show`."""

from __future__ import annotations

import json
import math

import pytest

import ntframe
from ntframe.api import plugin_host
from ntframe.cli import main
from ntframe.components import ComponentEstimator
from ntframe.errors import PluginError, SpecError
from ntframe.api import load_architecture
from ntframe.hardware.technology import Technology, area_scale, energy_scale, nominal_supply_V
from ntframe.host import PluginHost
from ntframe.runner import component_estimates
from ntframe.testing import TINY_ARCH
from ntframe_plugins import component_tables
from tests.conftest import ROOT


def test_energy_and_area_from_45_to_16_nm_by_hand():
    # Table 5's energy fits at the PTM nominal supplies: HP45 at 1.0 V, HP16 at 0.85 V
    e45 = 1.018 * 1.0 ** 2 - 0.3107 * 1.0 + 0.1539
    e16 = 0.2958 * 0.85 ** 2 - 0.1241 * 0.85 + 0.03024
    assert energy_scale(Technology(45), Technology(16)) == pytest.approx(e16 / e45, rel=1e-12)
    assert e16 / e45 == pytest.approx(0.16079, abs=1e-5)
    assert area_scale(45, 16) == 0.19 and area_scale(16, 45) == 5.3 and area_scale(7, 180) == 320
    assert nominal_supply_V(45) == 1.0 and nominal_supply_V(7) == 0.7 and nominal_supply_V(180) == 1.8


def test_the_papers_erratum_example():
    # 1 pJ/op at 65 nm and 1.3 V is 0.4571 / 2.604 pJ/op at 32 nm and 0.9 V (the authors' erratum, Section 4.2.1)
    assert energy_scale(Technology(65, 1.3), Technology(32, 0.9)) == pytest.approx(0.4571 / 2.604, rel=5e-4)


def test_15_nm_is_interpolated_geometrically_between_16_and_14():
    w = math.log(16 / 15) / math.log(16 / 14)
    assert nominal_supply_V(15) == pytest.approx(math.exp((1 - w) * math.log(0.85) + w * math.log(0.8)))
    v = nominal_supply_V(15)
    e16 = 0.2958 * v * v - 0.1241 * v + 0.03024
    e14 = 0.2363 * v * v - 0.09675 * v + 0.02239
    e15 = math.exp((1 - w) * math.log(e16) + w * math.log(e14))
    e45 = 1.018 * 0.81 - 0.3107 * 0.9 + 0.1539
    assert energy_scale(Technology(45, 0.9), Technology(15)) == pytest.approx(e15 / e45, rel=1e-12)
    assert area_scale(45, 15) == pytest.approx(math.exp((1 - w) * math.log(0.19) + w * math.log(0.17)), rel=1e-12)


@pytest.mark.parametrize("node, volts", [(5, None), (250, None), (45, 0.3)])
def test_outside_the_fitted_range_is_refused_with_the_range(node, volts):
    with pytest.raises(SpecError, match=r"7-180 nm|0.5-2.0 V"):
        energy_scale(Technology(45), Technology(node, volts))


def scaled_tiny(node: str) -> str:
    """The tiny architecture built at ``node``, its register file and MAC measured at 45 nm, 0.9 V."""
    text = TINY_ARCH.replace("  precision_bits:", f"  technology: {node}\n  sources: {{technology: \"[A] test\"}}\n"
                                                   "  precision_bits:")
    for name in ("rf", "mac"):
        text = text.replace(f"      name: {name}\n", f"      name: {name}\n"
                                                      "      technology: {node_nm: 45, supply_V: 0.9}\n")
    return text.replace("      sources: {capacity_bytes", "      sources: {technology: \"[A] test\", capacity_bytes") \
        .replace("      sources: {mac_energy_pJ", "      sources: {technology: \"[A] test\", mac_energy_pJ")


def test_the_table_estimator_scales_logic_and_leaves_dram(tmp_path):
    path = tmp_path / "tiny16.yaml"
    path.write_text(scaled_tiny("{node_nm: 16}"))
    host = plugin_host()
    arch = load_architecture(path, estimate=component_estimates(host))
    factor = energy_scale(Technology(45, 0.9), Technology(16))
    assert arch.compute.mac_energy_pJ == {16: pytest.approx(1.0 * factor, rel=1e-12)}
    assert arch.compute.add_energy_pJ == {16: pytest.approx(0.5 * factor, rel=1e-12)}
    rf, dram = arch.levels[1], arch.levels[0]
    assert (rf.read_energy_pJ_per_bit, rf.write_energy_pJ_per_bit) == (pytest.approx(0.1 * factor),
                                                                        pytest.approx(0.2 * factor))
    assert (dram.read_energy_pJ_per_bit, dram.write_energy_pJ_per_bit) == (1.0, 2.0)
    rows = {e.component: e for e in arch.estimates}
    assert rows["rf"].estimator == "table" and rows["rf"].plugin.startswith("component-tables")
    assert rows["rf"].scale == {"energy": pytest.approx(factor), "area": 0.19}
    assert "not scaled" in rows["dram"].source
    # the same figures at the node they were measured at: nothing scaled, and no plugin needed to load it (the
    # file loader alone, without the host's estimators)
    from ntframe.hardware.architecture import load_architecture as load_file
    same = tmp_path / "tiny45.yaml"
    same.write_text(scaled_tiny("{node_nm: 45, supply_V: 0.9}"))
    assert load_file(same).compute.mac_energy_pJ == {16: 1.0}
    with pytest.raises(ValueError, match="needs the component estimators.*ntframe.load_architecture"):
        load_file(path)


def test_arch_show_and_a_bad_node_in_the_file(tmp_path, capsys):
    path = tmp_path / "tiny16.yaml"
    path.write_text(scaled_tiny("{node_nm: 16}"))
    assert main(["arch", "show", str(path), "--json"]) == 0
    rows = {(r["component"], r["attribute"], r["bits"]): r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows[("mac", "mac_energy_pJ", 16)]["value"] == pytest.approx(energy_scale(Technology(45, 0.9),
                                                                                     Technology(16)))
    assert rows[("mac", "mac_energy_pJ", 16)]["source"].startswith("[A] test; scaled x0.1981 from 45 nm, 0.9 V to 16 nm")
    assert "interpolated" not in rows[("mac", "mac_energy_pJ", 16)]["source"]
    bad = tmp_path / "tiny5.yaml"
    bad.write_text(scaled_tiny("{node_nm: 5}"))
    assert main(["arch", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tiny5.yaml:5:" in err and "7-180 nm" in err and "architecture.technology" in err


class Broken(ComponentEstimator):
    name = "broken"
    classes = ("regfile",)

    def estimate(self, request):
        raise ZeroDivisionError("no table")


class Plugin:
    @ntframe.hookimpl
    def ntframe_register_component_estimators(self, register):
        register(Broken)


def test_a_broken_estimator_is_the_plugins_fault(tmp_path):
    host = PluginHost()
    host.register_module(component_tables, "component-tables")
    host.register_module(Plugin(), "broken-estimator")
    path = tmp_path / "tiny.yaml"
    path.write_text(scaled_tiny("{node_nm: 16}").replace("      name: rf\n", "      name: rf\n      estimator: broken\n"))
    with pytest.raises(PluginError, match="component estimator 'broken' from plugin 'broken-estimator' failed on "
                                          "component 'rf': ZeroDivisionError"):
        load_architecture(path, estimate=component_estimates(host))
    with pytest.raises(SpecError, match="does not estimate compute"):
        load_architecture(path.write_text(path.read_text().replace("      name: mac\n", "      name: mac\n"
                                                                   "      estimator: broken\n").replace(
            "      name: rf\n      estimator: broken\n", "      name: rf\n")) and path,
            estimate=component_estimates(host))


@pytest.mark.parametrize("name", sorted(str(p.relative_to(p.parents[1])).removesuffix(".yaml")
                                        for p in (ROOT / "arch_specs").glob("*/*.yaml")))
def test_arch_show_on_every_shipped_architecture(name, capsys):
    assert main(["arch", "show", name, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    arch = load_architecture(ROOT / "arch_specs" / f"{name}.yaml")
    assert {r["component"] for r in shown["rows"]} == {e.component for e in arch.estimates}
    assert all(r["source"].startswith("[") for r in shown["rows"]), "every shipped number carries its source tag"
    assert main(["arch", "show", name]) == 0 and "logic die:" in capsys.readouterr().out


def test_a_spec_builds_the_architecture_at_another_node(tmp_path):
    shipped = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
    estimate = component_estimates(plugin_host())
    at15 = load_architecture(shipped, estimate=estimate)                    # as shipped: the paper's 15 nm
    at45 = load_architecture(shipped, estimate=estimate, technology=Technology(45, 0.9))    # where it was measured
    factor = energy_scale(Technology(45, 0.9), Technology(15))
    assert at15.technology == Technology(15) and at45.technology == Technology(45, 0.9)
    assert at15.compute.mac_energy_pJ == {b: pytest.approx(e * factor, rel=1e-12)
                                          for b, e in at45.compute.mac_energy_pJ.items()}
    assert at15.levels[1].read_energy_pJ_per_bit == pytest.approx(at45.levels[1].read_energy_pJ_per_bit * factor)
    assert at15.levels[0] == at45.levels[0]                            # the DRAM's figures are not the logic node's
    assert at15.content_sha256 != at45.content_sha256
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text(TINY_ARCH)
    with pytest.raises(ValueError, match="names no technology its figures were measured at"):
        load_architecture(tiny, estimate=estimate, technology=Technology(15))
    spec = tmp_path / "spec.yaml"
    spec.write_text("version: 1\nname: t\nworkload: {frontend: zoo, network: mlp, batch: 2}\n"
                    "architecture: {spec: neurotrainer/hmc2-32vault, technology: {node_nm: 5}}\n")
    assert main(["validate", str(spec)]) == 2


def test_arch_show_on_a_runs_spec_with_its_overrides(capsys):
    example = ROOT / "examples" / "small-cnn.yaml"
    assert main(["arch", "show", str(example), "--set", "architecture.technology.node_nm=15", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["technology"] == "15 nm, 0.825 V"
    mac = {(r["component"], r["attribute"], r["bits"]): r for r in shown["rows"]}[("mac", "mac_energy_pJ", 16)]
    assert mac["value"] == pytest.approx(0.8 * energy_scale(Technology(45, 0.9), Technology(15)))
    assert main(["arch", "show", "neurotrainer/hmc2-32vault", "--set", "workload.batch=2"]) == 2


@pytest.mark.parametrize("old, new, where", [
    ("read_energy_pJ_per_bit: 1.0", "read_energy_pJ_per_bit: .inf", "nodes.0.attributes.read_energy_pJ_per_bit"),
    ("{capacity_bytes: 64,", "{static_power_mW: .nan, capacity_bytes: 64,", "nodes.2.attributes.static_power_mW")])
def test_a_figure_that_is_not_finite_is_refused_where_it_stands(tmp_path, capsys, old, new, where):
    path = tmp_path / "tiny.yaml"
    text = TINY_ARCH.replace(old, new)
    assert text != TINY_ARCH
    path.write_text(text)
    assert main(["arch", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"at 'architecture.{where}'" in err and "finite number" in err and "tiny.yaml:" in err
