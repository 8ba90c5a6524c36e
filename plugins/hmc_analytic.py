"""``hmc-analytic`` memory backend (the embedded default): HMC vaults at bank level, from a request trace.

The operation's requests come from its mapping's DRAM-level tile schedule (:mod:`ntframe.memory.tracegen`: layout,
address mapping, issue times paced by the compute model); the bank-level model (:mod:`ntframe.memory.hmc_bank`:
row-buffer state under the page policy, HMC 2.1 timings, TSV bandwidth per vault, refresh, energy per
activation and per bit) gives the time to serve them and the energy. The bytes are the trace's, counted exactly
(the native cost model counts the same); traces of more than ``max_requests`` requests are sampled by
stratified units of the schedule until the 95 % interval of the energy and cycles is within ``tolerance``
(:mod:`ntframe.memory.sampling`), and every result reports its interval and the share simulated. ``model: stream`` keeps the first-order model instead: traffic spread evenly
over the vaults at their bandwidth, plus one access latency.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field, PositiveFloat

import ntframe
from ntframe.components import MemoryBackend
from ntframe.hardware import Architecture
from ntframe.memory.hmc_bank import HMCParams, bank_params, missing_bank_figures, simulate
from ntframe.memory.sampling import SamplingOptions, sampled_memory_cost
from ntframe.results import DramTraffic, MemoryCost


class HMCAnalyticOptions(SamplingOptions):
    model: Literal["bank", "stream"] = "bank"
    """bank: the bank-level model on a request trace; stream: vaults as bandwidth-limited channels."""
    address_mapping: Literal["RoCoBaVa", "RoBaCoVa", "rocorabgbach"] = "RoCoBaVa"
    """How a byte address splits into row, column, bank and vault: Ramulator 1's HMC RoCoBaVa (its default) or
    RoBaCoVa, or DRAMSim3's rocorabgbach."""
    layout: Literal["vault-local", "interleaved"] = "vault-local"
    """Where each vault's share of a tensor is stored: vault-local (in that vault, as the engines read it) or
    interleaved (row-major over the cube, 64-byte lines rotating over the vaults)."""
    page_policy: Literal["open", "closed"] = "open"
    """open: a row stays open until another row of its bank is needed; closed: every access closes its row."""
    timings: dict[str, float] = {}
    """Overrides of the DRAM's timings and constants, which come from the architecture file (names of
    ntframe.memory.hmc_bank.HMCParams, e.g. tCL)."""
    vault_bandwidth_GBps: PositiveFloat | None = None
    """stream model: per-vault bandwidth; default: the architecture's DRAM level."""
    access_latency_ns: float = Field(40.0, ge=0)
    """stream model: unloaded read latency (Ramulator 1's HMC model: 48-53 cycles of 0.8 ns)."""


class HMCAnalytic(MemoryBackend):
    name = "hmc-analytic"
    description = "HMC at bank level on the operation's request trace (embedded default); or a stream model"
    Options = HMCAnalyticOptions

    def params(self, architecture: Architecture) -> HMCParams:
        """The bank model's parameters: the architecture's DRAM energies and timings, then ``timings``."""
        return bank_params(architecture.levels[0], self.options.timings, page_policy=self.options.page_policy)

    def missing_attributes(self, architecture: Architecture) -> list[str]:
        return [] if self.options.model == "stream" else missing_bank_figures(architecture.levels[0])

    def simulate(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        if self.options.model == "stream" or traffic.op is None:
            return self._stream(traffic, architecture)
        p, o = self.params(architecture), self.options

        def model_for(counts):
            many = counts.requests > 4 * o.window_requests       # short stretches: the compiled pass for all

            def model(w: np.ndarray) -> dict[str, float]:
                r = simulate(w["time"], w["vault"], w["bank"], w["row"], w["write"], 64, p,
                             compiled=True if many else None)
                return {**r, "read_latency_sum": r["read_latency_avg"] * r["reads"]}
            return model

        return sampled_memory_cost(traffic, architecture, o.address_mapping, o.layout, o, model_for, p.tCK_ns,
                                   {"model": "bank", "tolerance": o.tolerance, "layout": o.layout,
                                    "address_mapping": o.address_mapping, "page_policy": o.page_policy})

    def _stream(self, traffic: DramTraffic, architecture: Architecture) -> MemoryCost:
        dram = architecture.levels[0]
        bandwidth = self.options.vault_bandwidth_GBps or dram.bandwidth_GBps
        vaults = max(1, traffic.vaults)
        total = traffic.read_bytes + traffic.write_bytes
        if total == 0:
            return MemoryCost(0.0, 0.0, 0, 0, 0.0, 0.0, {"model": "stream", "vaults": vaults})
        per_vault_bytes = math.ceil(total / vaults)
        seconds = per_vault_bytes / (bandwidth * 1e9) + self.options.access_latency_ns * 1e-9
        energy = 8 * (traffic.read_bytes * dram.read_energy_pJ_per_bit + traffic.write_bytes * dram.write_energy_pJ_per_bit)
        return MemoryCost(seconds * architecture.clock_GHz * 1e9, energy, traffic.read_bytes, traffic.write_bytes,
                          total / seconds / 1e9, self.options.access_latency_ns,
                          {"model": "stream", "vaults": vaults, "per_vault_bytes": per_vault_bytes})


@ntframe.hookimpl
def ntframe_register_memory_backends(register):
    register(HMCAnalytic)
