"""``ramulator`` and ``dramsim3`` memory backends: the operation's HMC request trace, simulated by the real
programs through a subprocess.

Both take the trace that ``hmc-analytic`` simulates (:mod:`ntframe.memory.tracegen`: the mapping's DRAM-level tile
schedule; its bytes counted exactly, the rest estimated from units of it by :mod:`ntframe.memory.sampling`, each
unit run twice, with and without its warm-up), write each stretch in the simulator's own format with a
configuration generated from the options, run the program (:mod:`ntframe.interop.external`: an argv list in its own
process group, a timeout, its output to files in a fresh working folder), and parse its statistics. A missing
program fails before any work, naming the variable to set; a crash, a timeout, statistics that do not parse or
are of the wrong shape, and a figure that cannot be true (not finite, negative, huge, or no cycles or energy for a
run given requests) keep the folder and say the command that reruns it. The program's identity (its path, the
SHA-256 of its binary and of DRAMSim3's ``.ini``) is part of the mapping cache's keys.

* **Ramulator 1** (the ``hmc`` branch of CMU-SAFARI/ramulator, the only Ramulator with an HMC model), from
  ``NTFRAME_RAMULATOR`` or ``ramulator`` on PATH; run in DRAM mode (``--mode=dram``), whose front end ignores
  issue times and offers one request per memory cycle. It reports no energy for HMC: the energy is the
  bank-level model's (activations and bits) applied to Ramulator's row-buffer counts.
* **DRAMSim3** (umd-memsys/DRAMsim3), from ``NTFRAME_DRAMSIM3`` or ``dramsim3main`` on PATH, with an HMC
  ``.ini`` (default: ``configs/HMC2_8GB_4Lx16.ini`` next to the program, or ``NTFRAME_DRAMSIM3_CONFIG``). It
  runs exactly ``-c`` cycles: ntframe runs it long enough to drain (doubling until every request was issued),
  sums its per-vault statistics, takes its energy (``total_energy``, pJ) and converts its mislabelled
  ``average_power`` (pJ per cycle).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

import ntframe
from ntframe.components import MemoryBackend
from ntframe.errors import ToolError
from ntframe.hardware import Architecture
from ntframe.interop.external import (check_figures, cleanup, find_binary, parse_failure, program_identity,
                                      read_stats, run_tool, workdir)
from ntframe.memory.hmc_bank import BANK_ENERGIES, HMCParams
from ntframe.memory.trace import TraceWriter
from ntframe.memory.sampling import SamplingOptions, sampled_memory_cost
from ntframe.results import DramTraffic, MemoryCost

RAMULATOR_FIX = ("build the hmc branch of CMU-SAFARI/ramulator and set NTFRAME_RAMULATOR=/path/to/ramulator "
                 "(or put 'ramulator' on PATH)")
DRAMSIM3_FIX = "build umd-memsys/DRAMsim3 and set NTFRAME_DRAMSIM3=/path/to/dramsim3main (or put it on PATH)"


class _SimOptions(SamplingOptions):
    layout: Literal["vault-local", "interleaved"] = "vault-local"
    """Where each vault's share of a tensor is stored: vault-local (in that vault, as the engines read it) or
    interleaved (row-major over the cube, 64-byte lines rotating over the vaults)."""
    tolerance: float = Field(0.05, gt=0, le=1)
    """Sampling: units of the trace are simulated (two simulator runs each: with and without its warm-up) until
    the 95 % interval of the operation's memory energy and cycles is within this share of the estimate."""
    max_requests: PositiveInt = 200_000
    """Requests simulated per operation, about, at most (the first draw of units is always made)."""
    window_requests: PositiveInt = 2_048
    """Requests of one sampling unit (a stretch of steps, or of issue rows within a step)."""
    strata: PositiveInt = 4
    """Groups of units sampled on their own (by where the schedule's loops turn over, and by position)."""
    timeout_s: PositiveFloat = 120.0
    """Wall-clock limit of one simulator run (it is stopped, with its process group, after it; real runs take
    under a second per sampled unit)."""


class RamulatorOptions(_SimOptions):
    org: str = "HMC_4GB"
    """Ramulator's ``org``: the cube's organisation (HMC_4GB: 32 vaults x 8 banks; HMC_8GB: 16 banks)."""
    speed: str = "HMC_2500"
    """Ramulator's ``speed``: the timing set (HMC_2500: tCK 0.8 ns)."""
    maxblock: str = "HMC_64B"
    """Ramulator's ``maxblock``: the largest request block."""
    link_width: str = "HMC_Full_Width"
    """Ramulator's ``link_width``: lanes per host link (full width: 16)."""
    lane_speed: str = "HMC_30_Gbps"
    """Ramulator's ``lane_speed``: rate of one lane."""
    addressing_type: Literal["RoCoBaVa", "RoBaCoVa"] = "RoCoBaVa"
    """Ramulator's ``addressing_type``: the address mapping (the trace is written with the same one)."""
    source_mode_host_links: PositiveInt = 4
    """Ramulator's ``source_mode_host_links``: host links in use."""
    payload_flits: PositiveInt = 4
    """Ramulator's ``payload_flits``: data FLITs of a 64-byte request (16-byte FLITs)."""


class DRAMSim3Options(_SimOptions):
    config: str | None = None
    """HMC .ini; default: NTFRAME_DRAMSIM3_CONFIG, else configs/HMC2_8GB_4Lx16.ini beside the program."""


def ramulator_config(o: RamulatorOptions) -> str:
    return "\n".join([
        " standard = HMC", " stacks = 1", f" speed = {o.speed}", f" org = {o.org}", f" maxblock = {o.maxblock}",
        f" link_width = {o.link_width}", f" lane_speed = {o.lane_speed}", " record_cmd_trace = off",
        " print_cmd_trace = off", " cpu_tick = 4", " mem_tick = 1", " cache = no", " early_exit = on",
        " expected_limit_insts = 200000000", " translation = None",
        f" source_mode_host_links = {o.source_mode_host_links}", " pass_thru_links = 0",
        f" payload_flits = {o.payload_flits}", f" addressing_type = {o.addressing_type}", ""])


RAMULATOR_STATS = ("dram_cycles", "read_requests", "row_hits", "row_misses", "row_conflicts", "read_latency_avg")
"""The statistics ntframe uses (every Ramulator 1 hmc run prints them)."""


def parse_ramulator_stats(text: str) -> dict[str, float]:
    """``ramulator.<name>  <value>  # description`` lines; vector elements (``[0]`` ...) and nameless lines
    are skipped; ``-nan`` (no reads) reads as NaN. ValueError when one of :data:`RAMULATOR_STATS` is missing."""
    stats: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"\s*ramulator\.(\S+)\s+(\S+)", line)
        if m:
            try:
                stats[m.group(1)] = float(m.group(2))
            except ValueError:
                continue
    missing = [k for k in RAMULATOR_STATS if k not in stats]
    if missing:
        raise ValueError("no " + ", ".join(f"ramulator.{k}" for k in missing) + " line")
    return stats


DRAMSIM3_SUMMED = ("num_reads_done", "num_writes_done", "num_read_cmds", "num_write_cmds", "num_act_cmds",
                   "num_read_row_hits", "num_write_row_hits", "total_energy")
DRAMSIM3_STATS = (*DRAMSIM3_SUMMED, "num_cycles", "average_read_latency", "average_power")
"""The statistics ntframe uses, numbers in every vault's object (every DRAMSim3 run writes them)."""


def _json_type(value) -> str:
    """What a JSON value is, for messages: 'a number' only for an int or a float (not a boolean)."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def parse_dramsim3_json(text: str) -> dict[str, float]:
    """``dramsim3.json`` (one object per vault) summed over the vaults; read latency weighted by reads.
    ValueError when it is not an object of per-vault objects holding :data:`DRAMSIM3_STATS` as numbers."""
    per_vault = json.loads(text)
    if not isinstance(per_vault, dict) or not per_vault:
        got = "an empty object" if per_vault == {} else _json_type(per_vault)
        raise ValueError(f"expected an object of per-vault objects, got {got}")
    for vault, v in per_vault.items():
        if not isinstance(v, dict):
            raise ValueError(f"vault {vault}: expected an object, got {_json_type(v)}")
        missing = [k for k in DRAMSIM3_STATS if k not in v]
        if missing:
            raise ValueError(f"vault {vault} lacks {', '.join(missing)}")
        wrong = [f"{k} is {_json_type(v[k])}" for k in DRAMSIM3_STATS if _json_type(v[k]) != "a number"]
        if wrong:
            raise ValueError(f"vault {vault}: {', '.join(wrong)}, not a number")
    out = {k: float(sum(v[k] for v in per_vault.values())) for k in DRAMSIM3_SUMMED}
    cycles = {v["num_cycles"] for v in per_vault.values()}
    if len(cycles) != 1:
        raise ValueError(f"vaults disagree on num_cycles: {sorted(cycles)}")
    out["num_cycles"] = float(cycles.pop())
    reads = out["num_reads_done"]
    out["average_read_latency"] = (sum(v["average_read_latency"] * v["num_reads_done"]
                                       for v in per_vault.values()) / reads) if reads else 0.0
    out["average_power_pJ_per_cycle"] = float(sum(v["average_power"] for v in per_vault.values()))
    return out


class _TraceDriven(MemoryBackend):
    program = ""

    def check_available(self) -> None:
        self._binary()

    def cache_identity(self) -> dict[str, str]:
        return program_identity(self._binary())

    def _estimate(self, traffic: DramTraffic, arch: Architecture, address_mapping: str, p: HMCParams,
                  run) -> MemoryCost:
        """The simulator (``run(records)``: its figures on one stretch of the trace) on the sampled trace."""
        return sampled_memory_cost(traffic, arch, address_mapping, self.options.layout, self.options,
                                   lambda counts: run, p.tCK_ns,
                                   {"simulator": self.name, "tolerance": self.options.tolerance,
                                    "layout": self.options.layout})


RAMULATOR_ENERGIES = ("activation_energy_pJ", "array_energy_pJ_per_bit", "logic_energy_pJ_per_bit")
"""Ramulator counts no energy: activations and bits are priced at the architecture's DRAM figures."""
DRAMSIM3_ENERGIES = ("logic_energy_pJ_per_bit",)
"""DRAMSim3 prices the DRAM itself; the logic die's share comes from the architecture."""


def _energies(arch: Architecture, needed: tuple[str, ...]) -> HMCParams:
    """HMCParams with the energies the architecture's DRAM states (what the simulator does not count itself)."""
    level = arch.levels[0]
    missing = [n for n in needed if getattr(level, n) is None]
    if missing:
        raise ValueError(f"DRAM '{level.name}' lacks {', '.join(missing)}")
    return dataclasses.replace(HMCParams(), **{BANK_ENERGIES[n]: getattr(level, n) for n in needed})


class RamulatorBackend(_TraceDriven):
    name = "ramulator"
    description = "Ramulator 1 (hmc branch) on the operation's request trace, through a subprocess"
    Options = RamulatorOptions
    program = "ramulator"

    def missing_attributes(self, architecture: Architecture) -> list[str]:
        return [n for n in RAMULATOR_ENERGIES if getattr(architecture.levels[0], n) is None]

    def _binary(self) -> str:
        return find_binary("NTFRAME_RAMULATOR", ["ramulator"], "Ramulator (hmc branch)", RAMULATOR_FIX)

    def simulate(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        exe = self._binary()
        p = _energies(architecture, RAMULATOR_ENERGIES)
        return self._estimate(traffic, architecture, self.options.addressing_type, p,
                              lambda records: self._run(exe, records, p, traffic.operation))

    def _run(self, exe: str, recs: np.ndarray, p: HMCParams, operation: str) -> dict[str, float]:
        """Ramulator on one stretch of the trace: its cycles and row-buffer counts, the activations and bits
        priced at the architecture's figures."""
        folder = workdir(f"ntframe-ramulator-{operation}-")
        with TraceWriter(folder / "trace.txt", "ramulator") as writer:
            writer.write(recs)
        (folder / "hmc.cfg").write_text(ramulator_config(self.options))
        argv = [exe, "--config", "hmc.cfg", "--mode=dram", "--stats", "out.stats", "--trace", "trace.txt"]
        run_tool(argv, folder, self.options.timeout_s, "Ramulator")
        try:
            s = parse_ramulator_stats(read_stats(folder / "out.stats"))
        except (OSError, ValueError) as exc:
            raise parse_failure("Ramulator", folder, str(exc), argv) from None
        reads, latency = s["read_requests"], s["read_latency_avg"]
        used = [k for k in RAMULATOR_STATS if k != "read_latency_avg" or reads or not math.isnan(latency)]
        check_figures("Ramulator", folder, argv, {k: s[k] for k in used}, ("dram_cycles",) if len(recs) else ())
        cleanup(folder)
        activations = s["row_misses"] + s["row_conflicts"]
        return {"cycles": s["dram_cycles"], "reads": reads, "row_hits": s["row_hits"],
                "row_conflicts": s["row_conflicts"], "activations": activations,
                "read_latency_sum": latency * reads if reads else 0.0,
                "energy_pJ": activations * p.act_pre_energy_pJ
                + len(recs) * 512 * (p.dram_pJ_per_bit + p.logic_pJ_per_bit)}


class DRAMSim3Backend(_TraceDriven):
    name = "dramsim3"
    description = "DRAMSim3 with an HMC configuration on the operation's request trace, through a subprocess"
    Options = DRAMSim3Options
    program = "dramsim3main"

    def missing_attributes(self, architecture: Architecture) -> list[str]:
        return [n for n in DRAMSIM3_ENERGIES if getattr(architecture.levels[0], n) is None]

    def _binary(self) -> str:
        return find_binary("NTFRAME_DRAMSIM3", ["dramsim3main"], "DRAMSim3", DRAMSIM3_FIX)

    def _config(self, exe: str) -> Path:
        given = self.options.config or os.environ.get("NTFRAME_DRAMSIM3_CONFIG")
        candidates = [Path(given)] if given else [Path(exe).resolve().parent.parent / "configs" / "HMC2_8GB_4Lx16.ini",
                                                  Path(exe).resolve().parent / "configs" / "HMC2_8GB_4Lx16.ini"]
        for c in candidates:
            if c.is_file():
                return c
        raise ToolError(f"DRAMSim3 HMC configuration not found (looked at {', '.join(map(str, candidates))})",
                        fix="set memory.config in the spec, or NTFRAME_DRAMSIM3_CONFIG, to an HMC .ini of DRAMSim3")

    def check_available(self) -> None:
        self._config(self._binary())

    def cache_identity(self) -> dict[str, str]:
        exe = self._binary()
        return program_identity(exe, config=self._config(exe))

    def simulate(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        exe = self._binary()
        config = self._config(exe)
        p = _energies(architecture, DRAMSIM3_ENERGIES)
        return self._estimate(traffic, architecture, "rocorabgbach", p,
                              lambda records: self._run(exe, config, records, p, traffic.operation))

    def _run(self, exe: str, config: Path, recs: np.ndarray, p: HMCParams, operation: str) -> dict[str, float]:
        """DRAMSim3 on one stretch of the trace, run long enough to drain: its busy time, row-buffer counts and
        energy (DRAMSim3's DRAM energy over the busy time, plus the architecture's logic-die share)."""
        folder = workdir(f"ntframe-dramsim3-{operation}-")
        with TraceWriter(folder / "trace.txt", "dramsim3") as writer:
            writer.write(recs)
        n_reads = int((recs["write"] == 0).sum())
        n_writes = len(recs) - n_reads
        cycles = int(recs["time"].max()) + 8 * len(recs) // 16 + 2000
        for _ in range(6):
            (folder / "out").mkdir(exist_ok=True)
            argv = [exe, str(config), "-c", str(cycles), "-t", "trace.txt", "-o", "out"]
            run_tool(argv, folder, self.options.timeout_s, "DRAMSim3")
            try:
                s = parse_dramsim3_json(read_stats(folder / "out" / "dramsim3.json"))
            except (OSError, ValueError) as exc:
                raise parse_failure("DRAMSim3", folder, str(exc), argv) from None
            check_figures("DRAMSim3", folder, argv, s, ("num_cycles", "total_energy") if len(recs) else ())
            if s["num_reads_done"] >= n_reads and s["num_writes_done"] >= n_writes:   # merged requests issue no command
                break
            cycles *= 2
        else:
            raise parse_failure("DRAMSim3", folder, f"not drained after {cycles} cycles", argv)
        cleanup(folder)
        # DRAMSim3 runs exactly -c cycles; the busy time is the last issue plus a read's latency, or the time to
        # move every request at the cube's internal bandwidth, whichever is longer
        busy = max(float(recs["time"].max()) + s["average_read_latency"], len(recs) * p.tsv_cycles_per_64B / 32)
        dram_energy = s["total_energy"] * busy / s["num_cycles"]          # num_cycles > 0: checked above
        return {"cycles": busy, "reads": float(n_reads), "row_hits": s["num_read_row_hits"] + s["num_write_row_hits"],
                "row_conflicts": 0.0, "activations": s["num_act_cmds"],
                "read_latency_sum": s["average_read_latency"] * n_reads,
                "energy_pJ": dram_energy + len(recs) * 512 * p.logic_pJ_per_bit}


@ntframe.hookimpl
def ntframe_register_memory_backends(register):
    register(RamulatorBackend)
    register(DRAMSim3Backend)
