"""``hmc-analytic`` memory backend: HMC vaults as independent bandwidth-limited channels.

Model (first version; a bank-level model replaces it later): the operation's off-die traffic is spread evenly
over the vaults the mapping uses (``traffic.vaults``), each streaming at its TSV bandwidth. Time = per-vault
bytes ÷ per-vault bandwidth + one unloaded access latency (the pipeline fill). Energy = bits × the DRAM level's
read/write energy per bit (HMC's ≈10.48 pJ/bit covers DRAM core, TSVs and logic-die vault controller).
Bandwidth and energy default to the architecture's outermost (DRAM) level; options override them.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

import ntframe
from ntframe.arch import Architecture
from ntframe.components import MemoryBackend
from ntframe.results import DramTraffic, MemoryCost


class HMCAnalyticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vault_bandwidth_GBps: PositiveFloat | None = None
    """Per-vault bandwidth; default: the architecture's DRAM level."""
    read_energy_pJ_per_bit: float | None = Field(None, ge=0)
    write_energy_pJ_per_bit: float | None = Field(None, ge=0)
    access_latency_ns: float = Field(40.0, ge=0)
    """Unloaded read latency. Default 40 ns: Ramulator 1's HMC model, 48–53 cycles of 0.8 ns unloaded
    (../shared/design/external-tools.md)."""


class HMCAnalytic(MemoryBackend):
    name = "hmc-analytic"
    description = "HMC vaults as parallel bandwidth-limited channels, energy per bit (embedded default)"
    Options = HMCAnalyticOptions

    def simulate(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        dram = architecture.levels[0]
        o = self.options
        bandwidth = o.vault_bandwidth_GBps or dram.bandwidth_GBps
        read_pj = dram.read_energy_pJ_per_bit if o.read_energy_pJ_per_bit is None else o.read_energy_pJ_per_bit
        write_pj = dram.write_energy_pJ_per_bit if o.write_energy_pJ_per_bit is None else o.write_energy_pJ_per_bit
        vaults = max(1, traffic.vaults)
        total = traffic.read_bytes + traffic.write_bytes
        if total == 0:
            return MemoryCost(0.0, 0.0, 0, 0, 0.0, 0.0, {"vaults": vaults})
        per_vault_bytes = math.ceil(total / vaults)
        seconds = per_vault_bytes / (bandwidth * 1e9) + o.access_latency_ns * 1e-9
        cycles = seconds * architecture.clock_GHz * 1e9
        energy = 8 * (traffic.read_bytes * read_pj + traffic.write_bytes * write_pj)
        return MemoryCost(cycles, energy, traffic.read_bytes, traffic.write_bytes, total / seconds / 1e9,
                          o.access_latency_ns,
                          {"vaults": vaults, "per_vault_bytes": per_vault_bytes, "vault_bandwidth_GBps": bandwidth})


@ntframe.hookimpl
def ntframe_register_memory_backends(register):
    register(HMCAnalytic)
