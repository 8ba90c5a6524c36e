"""The `cacti` component estimator (issue 15): CACTI 7 as a subprocess, live when the program is found (the
``zigzag`` extra ships it) and against golden outputs recorded from a real run (tests/golden/cacti/README.md)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ntframe.errors import SpecError, ToolError
from ntframe.api import load_architecture
from ntframe.hardware.technology import Technology, area_scale, energy_scale
from ntframe.api import plugin_host
from ntframe.runner import component_estimates
from ntframe.testing import TINY_ARCH
from ntframe_plugins import cacti_estimator
from ntframe_plugins.cacti_estimator import cacti_program, config_text, run_cacti

GOLDEN = Path(__file__).parent / "golden" / "cacti"


def golden(name: str) -> dict[str, float]:
    header, row = (GOLDEN / f"{name}.out").read_text().strip().splitlines()
    fields = dict(zip((h.strip() for h in header.split(",")), (v.strip() for v in row.split(","))))
    return {"read_nJ": float(fields["Dynamic read energy (nJ)"]), "write_nJ": float(fields["Dynamic write energy (nJ)"]),
            "leakage_mW": float(fields["Standby leakage per bank(mW)"]), "area_mm2": float(fields["Area (mm2)"])}


def program() -> str:
    try:
        return str(cacti_program())
    except ToolError as exc:
        pytest.skip(f"CACTI not found: {exc} (install the zigzag extra or set NTFRAME_CACTI)")


def test_the_configuration_is_the_recorded_one():
    assert config_text(65536, 64, 0.022) == (GOLDEN / "ram-22-65536.cfg").read_text()
    assert config_text(2048, 8, 0.045) == (GOLDEN / "ram-45-2048.cfg").read_text()


@pytest.mark.parametrize("name, args", [("ram-22-65536", (65536, 64, 0.022)), ("ram-45-2048", (2048, 8, 0.045))])
def test_live_cacti_gives_the_recorded_figures(name, args):
    assert run_cacti(program(), *args) == golden(name)


def cacti_tiny(node: str) -> str:
    """The tiny architecture at ``node`` with a 2 KiB register file (8 bytes per cycle) estimated by CACTI."""
    return TINY_ARCH.replace("  precision_bits:", f"  technology: {node}\n  sources: {{technology: \"[A] test\"}}\n"
                                                   "  precision_bits:") \
        .replace("      name: rf\n", "      name: rf\n      estimator: cacti\n") \
        .replace("capacity_bytes: 64, bandwidth_bytes_per_cycle: 8, read_energy_pJ_per_bit: 0.1,\n"
                 "                   write_energy_pJ_per_bit: 0.2}", "capacity_bytes: 2048, bandwidth_bytes_per_cycle: 8}") \
        .replace("read_energy_pJ_per_bit: \"[A] test\", write_energy_pJ_per_bit: \"[A] test\"}", "}") \
        .replace("capacity_bytes: \"[A] test\", bandwidth_bytes_per_cycle: \"[A] test\",\n                }",
                 "capacity_bytes: \"[A] test\", bandwidth_bytes_per_cycle: \"[A] test\"}")


def test_a_register_file_by_cacti_per_bit_and_scaled_below_22_nm(tmp_path):
    program()
    figures = golden("ram-45-2048")
    path = tmp_path / "tiny.yaml"
    path.write_text(cacti_tiny("{node_nm: 45}"))
    arch = load_architecture(path, estimate=component_estimates(plugin_host()))
    rf = arch.levels[1]
    assert rf.read_energy_pJ_per_bit == pytest.approx(figures["read_nJ"] * 1000 / 64, rel=1e-12)
    assert rf.write_energy_pJ_per_bit == pytest.approx(figures["write_nJ"] * 1000 / 64, rel=1e-12)
    row = {e.component: e for e in arch.estimates}["rf"]
    assert (row.estimator, row.area_um2, row.static_power_mW, row.instances) == (
        "cacti", pytest.approx(figures["area_mm2"] * 1e6), figures["leakage_mW"], 2)
    assert arch.silicon()["logic_die"]["area_um2"] == pytest.approx(2 * figures["area_mm2"] * 1e6)
    assert arch.silicon()["logic_die"]["unknown_area"] == ["mac"]
    # 16 nm: CACTI at 22 nm, then Stillmaker & Baas from 22 nm (nominal 0.9 V) to 16 nm (0.85 V)
    path.write_text(cacti_tiny("{node_nm: 16}"))
    small = {e.component: e for e in load_architecture(path, estimate=component_estimates(plugin_host())).estimates}
    at22 = run_cacti(program(), 2048, 8, 0.022)
    factor = energy_scale(Technology(22), Technology(16))
    assert small["rf"].energies["read_energy_pJ_per_bit"] == pytest.approx(at22["read_nJ"] * 1000 / 64 * factor)
    assert small["rf"].area_um2 == pytest.approx(at22["area_mm2"] * 1e6 * area_scale(22, 16))
    assert "outside CACTI's 22-90 nm" in small["rf"].source


def test_too_small_for_cacti_names_the_fix(tmp_path):
    program()
    path = tmp_path / "tiny.yaml"
    path.write_text(cacti_tiny("{node_nm: 45}").replace("capacity_bytes: 2048", "capacity_bytes: 64"))
    with pytest.raises(SpecError, match=r"tiny.yaml:\d+: .*component 'rf': CACTI finds no organisation for a "
                                        r"64-byte RAM .*estimator: table"):
        load_architecture(path, estimate=component_estimates(plugin_host()))


def test_a_missing_or_broken_cacti(tmp_path, monkeypatch):
    monkeypatch.setenv("NTFRAME_CACTI", str(tmp_path / "nowhere"))
    with pytest.raises(ToolError, match="NTFRAME_CACTI=.* does not name an executable CACTI"):
        cacti_program()
    fake = tmp_path / "bin" / "cacti"
    fake.parent.mkdir()
    (fake.parent / "tech_params").mkdir()
    fake.write_text("#!/bin/sh\necho 'Tech node (nm), Dynamic read energy (nJ)' > cache.cfg.out\necho 'half' >> cache.cfg.out\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("NTFRAME_CACTI", str(fake))
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    with pytest.raises(ToolError, match=r"(?s)CACTI output could not be read .*files kept in .*rerun: cd "):
        run_cacti(str(cacti_program()), 4096, 8, 0.045)
    fake.write_text("#!/bin/sh\necho 'segfault' >&2\nexit 139\n")
    with pytest.raises(ToolError, match="CACTI failed with exit code 139: segfault"):
        run_cacti(str(cacti_program()), 8192, 8, 0.045)
    assert os.listdir(tmp_path / "work")          # the failed runs' folders are kept
    cacti_estimator.run_cacti.cache_clear()
