"""The ``cacti`` component estimator: SRAM buffers and register files by CACTI 7, the SRAM model Accelergy and
ZigZag use, run as a subprocess.

The program: ``NTFRAME_CACTI`` (the ``cacti`` executable, or a folder holding it; its ``tech_params`` folder
beside it), else the one the ``zigzag-dse`` wheel ships (``zigzag/cacti/cacti_master/cacti``, installed with the
``zigzag`` extra). Each estimate runs in a folder of its own (``tech_params`` linked into it: CACTI reads its
technology files relative to its working folder and fails on absolute configuration paths), so parallel
estimates never share a file; a component's figures are memoised per program and configuration.

What is asked of CACTI: a plain RAM (``cache type "ram"``, one bank, direct-mapped) of the component's
``capacity_bytes``, one read-write port as wide as the component moves per cycle (``bandwidth_bytes_per_cycle``,
or ``bandwidth_GBps`` over the clock; the block size equal to it), ITRS high-performance cells and periphery at
360 K, optimised for cycle time as ZigZag asks it. What is read back (``<config>.out``): dynamic read and write
energy per access, standby leakage per bank, area. Per bit: the access energy over the port's bits.

CACTI covers 22-90 nm. Inside it CACTI runs at the architecture's node (CACTI interpolates between its
technology files); outside it CACTI runs at the nearest end, and the figures are scaled from there with
Stillmaker & Baas's fits (:mod:`ntframe.hardware.technology`): energy and leakage by the energy fit's ratio (as
Accelergy's scaling does for leakage), area by the area table; the record says so. CACTI's figures are at its own
supply for the node (its ITRS technology files); the architecture's ``supply_V`` enters only through that
scaling. CACTI finds no organisation for very small arrays (a 512-byte register file, say): that is an error
naming the component, with the fix (``estimator: table``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import ntframe
from ntframe.components import ComponentEstimate, ComponentEstimator, EstimateRequest
from ntframe.errors import SpecError, ToolError
from ntframe.hardware.technology import SOURCE, Technology, area_scale, energy_scale
from ntframe.interop.external import (check_figures, cleanup, parse_failure, program_identity, read_stats, run_tool,
                                      tail, workdir)

CACTI_NM = (22.0, 90.0)
"""The nodes CACTI 7's technology files cover."""
TIMEOUT_S = 60.0
FIX = "pip install 'ntframe[zigzag]' (its wheel ships CACTI 7), or set NTFRAME_CACTI=/path/to/cacti"


def cacti_program() -> Path:
    """The CACTI executable: ``NTFRAME_CACTI``'s, else the ``zigzag-dse`` wheel's; a ToolError with the fix."""
    value = os.environ.get("NTFRAME_CACTI")
    if value:
        path = Path(value)
        program = path / "cacti" if path.is_dir() else path
        if not (program.is_file() and os.access(program, os.X_OK)):
            raise ToolError(f"NTFRAME_CACTI={value} does not name an executable CACTI", fix=FIX)
    else:
        spec = importlib.util.find_spec("zigzag")           # finds the package without importing it
        folders = list(spec.submodule_search_locations or []) if spec else []
        found = [Path(f) / "cacti" / "cacti_master" / "cacti" for f in folders]
        program = next((p for p in found if p.is_file() and os.access(p, os.X_OK)), None)  # type: ignore[assignment]
        if program is None:
            raise ToolError("CACTI not found (looked for NTFRAME_CACTI and the zigzag-dse wheel's copy)", fix=FIX)
    if not (program.parent / "tech_params").is_dir():
        raise ToolError(f"CACTI at {program} has no tech_params folder beside it", fix=FIX)
    return program


def config_text(capacity_bytes: int, port_bytes: int, node_um: float) -> str:
    """A CACTI 7 configuration of a plain one-bank RAM with one read-write port of ``port_bytes``."""
    return "\n".join([
        f"-size (bytes) {capacity_bytes}",
        f"-block size (bytes) {port_bytes}",
        "-associativity 1",
        "-read-write port 1",
        "-exclusive read port 0",
        "-exclusive write port 0",
        "-single ended read ports 0",
        "-UCA bank count 1",
        f"-technology (u) {node_um:.4f}",
        f"-output/input bus width {port_bytes * 8}",
        '-cache type "ram"',
        '-Data array cell type - "itrs-hp"',
        '-Data array peripheral type - "itrs-hp"',
        '-Tag array cell type - "itrs-hp"',
        '-Tag array peripheral type - "itrs-hp"',
        "-operating temperature (K) 360",
        '-tag size (b) "default"',
        '-access mode (normal, sequential, fast) - "normal"',
        "-design objective (weight delay, dynamic power, leakage power, cycle time, area) 0:0:0:100:0",
        "-deviate (delay, dynamic power, leakage power, cycle time, area) 20:100000:100000:100000:100000",
        "-NUCAdesign objective (weight delay, dynamic power, leakage power, cycle time, area) 100:100:0:0:100",
        "-NUCAdeviate (delay, dynamic power, leakage power, cycle time, area) 10:10000:10000:10000:10000",
        '-Optimize ED or ED^2 (ED, ED^2, NONE): "ED^2"',
        '-Cache model (NUCA, UCA)  - "UCA"',
        "-NUCA bank count 0",
        '-Wire signaling (fullswing, lowswing, default) - "Global_30"',
        '-Wire inside mat - "semi-global"',
        '-Wire outside mat - "semi-global"',
        '-Interconnect projection - "conservative"',
        "-Core count 8",
        '-Cache level (L2/L3) - "L3"',
        '-Add ECC - "true"',
        '-Print level (DETAILED, CONCISE) - "CONCISE"',
        '-Print input parameters - "false"',
        '-Force cache config - "false"',
        "-Ndwl 1", "-Ndbl 1", "-Nspd 0", "-Ndcm 1", "-Ndsam1 0", "-Ndsam2 0",
        "-page size (bits) 8192", "-burst length 8", "-internal prefetch width 8",
        '-dram_type "DDR3"', '-io state "WRITE"', "-addr_timing 1.0", "-mem_density 4 Gb", "-bus_freq 800 MHz",
        "-duty_cycle 1.0", "-activity_dq 1.0", "-activity_ca 0.5", "-num_dq 72", "-num_dqs 18", "-num_ca 25",
        "-num_clk 2", "-num_mem_dq 2", "-mem_data_width 8", "-rtt_value 10000", "-ron_value 34",
        "-tflight_value", "-num_bobs 1", "-capacity 80", "-num_channels_per_bob 1",
        '-first metric "Cost"', '-second metric "Bandwidth"', '-third metric "Energy"', '-DIMM model "ALL"',
        '-mirror_in_bob "F"', ""])


@functools.lru_cache(maxsize=256)
def run_cacti(program: str, capacity_bytes: int, port_bytes: int, node_um: float) -> dict[str, float]:
    """CACTI's figures for one RAM: ``read_nJ``, ``write_nJ`` per access, ``leakage_mW`` per bank, ``area_mm2``
    (memoised per program and configuration)."""
    folder = workdir("cacti")
    (folder / "tech_params").symlink_to(Path(program).parent / "tech_params")
    (folder / "cache.cfg").write_text(config_text(capacity_bytes, port_bytes, node_um))
    argv = [program, "-infile", "./cache.cfg"]
    try:
        run_tool(argv, folder, TIMEOUT_S, "CACTI")
    except ToolError:
        if "no valid data array organizations" in tail(folder / "stdout.txt"):
            raise SpecError(f"CACTI finds no organisation for a {capacity_bytes}-byte RAM with a {port_bytes}-byte "
                            f"port (too small for its model): use 'estimator: table' for this component "
                            f"(CACTI's folder kept: {folder})") from None
        raise
    try:
        lines = read_stats(folder / "cache.cfg.out").strip().splitlines()
        header = [h.strip() for h in lines[0].split(",")]
        row = dict(zip(header, (v.strip() for v in lines[-1].split(","))))
        figures = {"read_nJ": float(row["Dynamic read energy (nJ)"]),
                   "write_nJ": float(row["Dynamic write energy (nJ)"]),
                   "leakage_mW": float(row["Standby leakage per bank(mW)"]), "area_mm2": float(row["Area (mm2)"])}
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise parse_failure("CACTI", folder, f"{type(exc).__name__}: {exc}", argv) from None
    check_figures("CACTI", folder, argv, figures, positive=("read_nJ", "write_nJ", "area_mm2"))
    cleanup(folder)
    return figures


class CactiEstimator(ComponentEstimator):
    name = "cacti"
    description = "SRAM buffers and register files by CACTI 7 (subprocess; 22-90 nm, scaled outside)"
    classes = ("SRAM", "regfile")

    def check_available(self) -> None:
        cacti_program()

    def cache_identity(self) -> dict:
        return program_identity(cacti_program())

    def estimate(self, request: EstimateRequest) -> ComponentEstimate:
        a = request.attributes
        capacity = a.get("capacity_bytes")
        per_cycle = a.get("bandwidth_bytes_per_cycle") or a.get("bandwidth_GBps", 0) / request.clock_GHz
        port = int(round(per_cycle))
        if not capacity or port < 1 or port != per_cycle:
            raise SpecError(f"CACTI needs a capacity_bytes and a whole number of bytes per cycle for its port "
                            f"(component '{request.component}': {capacity} bytes, {per_cycle:g} bytes per cycle)")
        target = request.target
        node = min(max(target.node_nm, CACTI_NM[0]), CACTI_NM[1])
        got = run_cacti(str(cacti_program()), int(capacity), port, node / 1000)
        at_node = Technology(node)
        energy = energy_scale(at_node, target) if node != target.node_nm else 1.0
        area = area_scale(node, target.node_nm) if node != target.node_nm else 1.0
        pj_per_bit = {"read_energy_pJ_per_bit": got["read_nJ"] * 1000 / (port * 8) * energy,
                      "write_energy_pJ_per_bit": got["write_nJ"] * 1000 / (port * 8) * energy}
        note = "" if node == target.node_nm else (
            f"; outside CACTI's 22-90 nm: run at {node:g} nm and scaled to {target.label()} ({SOURCE}: energy "
            f"and leakage x{energy:.4g}, area x{area:.4g})")
        return ComponentEstimate(
            pj_per_bit, {"energy": energy, "area": area},
            f"CACTI 7: {capacity}-byte RAM, {port}-byte port, {node:g} nm ITRS-HP, 360 K{note}",
            area_um2=got["area_mm2"] * 1e6 * area, static_power_mW=got["leakage_mW"] * energy)


@ntframe.hookimpl
def ntframe_register_component_estimators(register) -> None:
    register(CactiEstimator)
