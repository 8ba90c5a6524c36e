"""Static power and power scopes (issue 15): leakage integrated over each operation's latency, by hand, and the
scopes nested (datapath within logic die within module within system) on every operation and in the totals."""

from __future__ import annotations

import re

import pytest

import ntframe
from tests.conftest import ROOT

NEUROTRAINER = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
LEAKAGE_mW = {"logic_noc": 0.5, "vault_dram": 7.0, "vault_buffer": 3.0, "pe_rf": 0.25, "mac": 0.125}
INSTANCES = {"logic_noc": 32, "vault_dram": 32, "vault_buffer": 32, "pe_rf": 512, "mac": 512}


def leaky(tmp_path):
    """The reference architecture with a static power on every component (test figures, [A])."""
    text = NEUROTRAINER.read_text()
    for name, mw in LEAKAGE_mW.items():
        text = re.sub(rf"(      name: {name}\n(?:      .*\n)*?      attributes:\n)",
                      rf"\g<1>        static_power_mW: {mw}\n        area_um2: 1000.0\n", text, count=1)
        text = re.sub(rf"(      name: {name}\n(?:      .*\n|        .*\n)*?      sources:\n)",
                      r'\g<1>        static_power_mW: "[A] test"\n        area_um2: "[A] test"\n', text, count=1)
    path = tmp_path / "leaky.yaml"
    path.write_text(text)
    return path


def spec(arch) -> dict:
    """The run, with the reference built at the node its logic figures were measured at (45 nm, 0.9 V): nothing is
    scaled, so the test figures are the ones integrated."""
    return {"version": 1, "name": "scopes", "workload": {"frontend": "zoo", "network": "mlp", "batch": 2},
            "architecture": {"spec": str(arch), "technology": {"node_nm": 45, "supply_V": 0.9}},
            "mapper": {"budget": {"evaluations": 60, "seconds": 600}}}


def test_static_energy_is_power_times_latency_and_scopes_nest(tmp_path):
    path = leaky(tmp_path)
    logic_mW = sum(LEAKAGE_mW[c] * INSTANCES[c] for c in LEAKAGE_mW if c != "vault_dram")
    dram_mW = LEAKAGE_mW["vault_dram"] * INSTANCES["vault_dram"]
    assert (logic_mW, dram_mW) == (0.5 * 32 + 3.0 * 32 + 0.25 * 512 + 0.125 * 512, 224.0) == (304.0, 224.0)
    leaking = ntframe.run(spec(path))
    plain = ntframe.run(spec(NEUROTRAINER))
    assert leaking.totals["operations_failed"] == 0
    for op, ref in zip(leaking.operations, plain.operations):
        latency_ns = op["cycles"] / 1.0                                   # 1 GHz
        assert op["cycles"] == ref["cycles"] and op["on_die_energy_pJ"] == ref["on_die_energy_pJ"]
        assert op["static_energy_pJ"] == pytest.approx((logic_mW + dram_mW) * latency_ns, rel=1e-12)
        moved = op["memory"]["read_bytes"] + op["memory"]["write_bytes"] if op["memory"] else op["dram_bytes"]
        controller = moved * 8 * 1.3
        assert op["vault_controller_energy_pJ"] == pytest.approx(controller, rel=1e-12)      # 1.3 pJ/bit moved
        assert op["logic_die_energy_pJ"] == pytest.approx(op["on_die_energy_pJ"] + controller + logic_mW * latency_ns,
                                                          rel=1e-12)
        assert op["energy_pJ"] == pytest.approx(ref["energy_pJ"] + op["static_energy_pJ"], rel=1e-12)
        assert op["datapath_energy_pJ"] == op["compute_energy_pJ"]
        assert op["datapath_energy_pJ"] <= op["logic_die_energy_pJ"] <= op["module_energy_pJ"] <= op["system_energy_pJ"]
        assert op["module_energy_pJ"] == op["energy_pJ"] == op["system_energy_pJ"]
    t = leaking.totals
    assert t["static_energy_pJ"] == pytest.approx((logic_mW + dram_mW) * t["cycles"], rel=1e-9)
    scopes = t["scopes"]
    assert [scopes[s]["energy_pJ"] for s in ("datapath", "logic_die", "module", "system")] == sorted(
        scopes[s]["energy_pJ"] for s in scopes)
    assert scopes["module"]["efficiency_GFLOPS_per_W"] == pytest.approx(t["efficiency_GFLOPS_per_W"], rel=1e-12)
    assert scopes["logic_die"]["efficiency_GFLOPS_per_W"] == pytest.approx(
        t["flops"] / (t["logic_die_energy_pJ"] * 1e-12) / 1e9, rel=1e-12)
    # no figure, no leakage: the shipped reference counts none, and its figures are unchanged
    assert plain.totals["static_energy_pJ"] == 0.0
    area = {c["component"]: (c["area_um2"], c["instances"])
            for c in leaking.provenance["architecture"]["components"]}
    assert area["pe_rf"] == (1000.0, 512) and area["logic_noc"] == (1000.0, 32)


def test_the_logic_die_area_against_the_specs_die_area(tmp_path, capsys):
    from ntframe.cli import main
    path = leaky(tmp_path)
    logic_mm2 = 1000.0 * (32 + 32 + 512 + 512) / 1e6                 # every logic-die component, every instance
    small = {**spec(path), "architecture": {**spec(path)["architecture"], "die_area_mm2": 1.0}}
    area = ntframe.run(small).totals["area"]
    assert area == {"logic_die_mm2": pytest.approx(logic_mm2), "logic_die_mm2_per_vault": pytest.approx(logic_mm2 / 32),
                    "dram_mm2": pytest.approx(1000.0 * 32 / 1e6),
                    "without_area": [], "die_area_mm2": 1.0, "fits": False}
    spec_file = tmp_path / "small.yaml"
    spec_file.write_text(f"version: 1\nname: s\nworkload: {{frontend: zoo, network: mlp, batch: 2}}\n"
                         f"architecture: {{spec: {path}, die_area_mm2: 1.0, technology: {{node_nm: 45, supply_V: 0.9}}}}\n")
    assert main(["validate", str(spec_file)]) == 0
    assert "need 1.088 mm2, more than the 1 mm2 of architecture.die_area_mm2" in capsys.readouterr().err
    roomy = {**spec(path), "architecture": {**spec(path)["architecture"], "die_area_mm2": 2.0}}
    assert ntframe.run(roomy).totals["area"]["fits"] is True
    assert ntframe.run(spec(NEUROTRAINER)).totals["area"]["fits"] is None     # no area figures, no verdict


def test_compare_a_chosen_scope():
    from ntframe.errors import SpecError
    from tests.conftest import EXAMPLE
    cells = {}
    for scope in ("datapath", "logic_die", "module"):
        doc = ntframe.compare(EXAMPLE, cost_models=["native"], memories=["hmc-analytic"],
                              operations=["conv2.forward"], scope=scope).document
        assert doc["scope"] == scope
        cells[scope] = doc["operations"][0]["cells"]["native+hmc-analytic"]
    for scope, cell in cells.items():
        assert cell["energy_pJ"] == cell[f"{scope}_energy_pJ"] == cells["module"][f"{scope}_energy_pJ"]
    assert cells["datapath"]["energy_pJ"] == cells["module"]["compute_energy_pJ"] < cells["logic_die"]["energy_pJ"]
    with pytest.raises(SpecError, match="--scope go with --cost-models"):
        ntframe.compare(EXAMPLE, mappers=["native"], scope="datapath")
    with pytest.raises(SpecError, match="not a power scope"):
        ntframe.compare(EXAMPLE, cost_models=["native"], scope="chip")
