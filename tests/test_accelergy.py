"""The `accelergy` component estimator (issue 15): Accelergy as a subprocess on its own v0.4 format, its ERT and
ART read back. The tables below were recorded from a real run (tests/golden/accelergy/README.md); a stand-in
program that answers with them runs the whole path in any environment, and the live test runs Accelergy itself
when it is found (NTFRAME_ACCELERGY or PATH) and skips with the reason otherwise."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ntframe.api import plugin_host
from ntframe.errors import SpecError, ToolError
from ntframe.api import load_architecture
from ntframe.runner import component_estimates
from ntframe_plugins.accelergy_estimator import accelergy_program

GOLDEN = Path(__file__).parent / "golden" / "accelergy"
ARCH = """\
architecture:
  version: 0.4
  name: tiny-acc
  clock_GHz: 1.0
  precision_bits: {forward: 16, backward_data: 16, backward_weight: 16, update: 16}
  technology: {node_nm: 45}
  sources: {technology: "[A] test"}
  nodes:
    - !Component
      name: dram
      class: DRAM
      attributes: {bandwidth_bytes_per_cycle: 4, read_energy_pJ_per_bit: 1.0, write_energy_pJ_per_bit: 2.0}
      sources: {bandwidth_bytes_per_cycle: "[A] test", read_energy_pJ_per_bit: "[A] test", write_energy_pJ_per_bit: "[A] test"}
    - !Component
      name: buffer
      class: SRAM
      estimator: accelergy
      attributes: {capacity_bytes: 65536, bandwidth_bytes_per_cycle: 64}
      sources: {capacity_bytes: "[A] test", bandwidth_bytes_per_cycle: "[A] test"}
    - !Container
      name: pe
      spatial: {meshX: 2}
    - !Component
      name: rf
      class: regfile
      estimator: accelergy
      attributes: {capacity_bytes: 512, bandwidth_bytes_per_cycle: 2}
      sources: {capacity_bytes: "[A] test", bandwidth_bytes_per_cycle: "[A] test"}
    - !Component
      name: mac
      class: compute
      estimator: accelergy
      attributes: {mac_energy_pJ: {16: 1.0}, add_energy_pJ: {16: 0.5}}
      sources: {mac_energy_pJ: "[A] test", add_energy_pJ: "[A] test"}
"""
# what the recorded ERT/ART say (pJ per access, um2 per instance, pJ of leakage per 1 ns cycle)
RECORDED = {"buffer": (76.7312 / 512, 126.628 / 512, 221984.0, 0.00167152),
            "rf": (1.89508 / 16, 1.89508 / 16, 4485.98, 0.0016764)}


def stand_in(folder: Path, code: int = 0) -> Path:
    """A program that answers as the recorded run did (the component's class picks the tables), or fails."""
    program = folder / "accelergy"
    program.write_text(f"""#!/bin/sh
for kind in sram regfile compute; do
  if grep -qi "class: $(echo $kind | sed 's/compute/intmac/')" arch.yaml; then
    cp {GOLDEN}/$kind/ERT.yaml {GOLDEN}/$kind/ART.yaml . ; cp arch.yaml written-$kind.yaml
  fi
done
echo "Technology 65 is not supported" >&{2 if code else 1}
exit {code}
""")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program


def check(arch) -> None:
    levels = {lv.name: lv for lv in arch.levels}
    for name, (read, write, area, leak) in RECORDED.items():
        assert (levels[name].read_energy_pJ_per_bit, levels[name].write_energy_pJ_per_bit) == (
            pytest.approx(read, rel=1e-12), pytest.approx(write, rel=1e-12))
        row = {e.component: e for e in arch.estimates}[name]
        assert (row.estimator, row.area_um2, row.static_power_mW) == ("accelergy", area, pytest.approx(leak))
    assert arch.compute.mac_energy_pJ == {16: 3.275} and arch.compute.add_energy_pJ == {16: 0.105}
    assert {e.component: e for e in arch.estimates}["mac"].area_um2 == 1726.5


def test_the_recorded_tables_through_the_whole_path(tmp_path, monkeypatch):
    monkeypatch.setenv("NTFRAME_ACCELERGY", str(stand_in(tmp_path)))
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("NTFRAME_KEEP_FILES", "1")
    path = tmp_path / "tiny.yaml"
    path.write_text(ARCH)
    check(load_architecture(path, estimate=component_estimates(plugin_host())))
    for kind in ("sram", "regfile", "compute"):          # what the estimator writes is what was recorded
        written = list((tmp_path / "work").glob(f"*/written-{kind}.yaml"))
        assert len(written) == 1 and written[0].read_text() == (GOLDEN / kind / "arch.yaml").read_text()


def test_what_accelergy_cannot_estimate_names_the_component(tmp_path, monkeypatch):
    monkeypatch.setenv("NTFRAME_ACCELERGY", str(stand_in(tmp_path, code=1)))
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    path = tmp_path / "tiny.yaml"
    path.write_text(ARCH.replace("node_nm: 45", "node_nm: 65"))
    with pytest.raises(SpecError, match=r"(?s)tiny.yaml:\d+: .*component 'buffer': Accelergy estimates no figure for "
                                        r"component 'buffer' \(SRAM at 65 nm\): Technology 65 is not supported.*"
                                        r"estimator: table"):
        load_architecture(path, estimate=component_estimates(plugin_host()))
    monkeypatch.setenv("NTFRAME_ACCELERGY", str(tmp_path / "nowhere"))
    with pytest.raises(ToolError, match="NTFRAME_ACCELERGY=.* does not name an executable Accelergy"):
        accelergy_program()


def test_live_accelergy_gives_the_recorded_tables(tmp_path, monkeypatch):
    try:
        accelergy_program()
    except ToolError as exc:
        pytest.skip(str(exc).splitlines()[0] + " (install it from source and set NTFRAME_ACCELERGY)")
    path = tmp_path / "tiny.yaml"
    path.write_text(ARCH)
    check(load_architecture(path, estimate=component_estimates(plugin_host())))
