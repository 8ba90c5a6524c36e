"""``native`` compute cost model: analytical, Timeloop-style, vectorised.

Access counts per level and tensor come from :func:`ntframe.mapping.mapspace.analyse_batch` (tile reuse under the
loop order, sliding-window reuse, multicast, spatial reduction, bypass). Energy = accesses × precision bits ×
the level's energy per bit (reads at the read energy; fills and updates at the write energy) + ``ops_per_point``
datapath actions per loop-nest point at the compute unit's energy for the operand precision. Where the
architecture has a logic-die network between the vaults, data that ``k`` vaults need is read once from DRAM
and sent to the other ``k − 1`` over the mesh (average hop count × energy per bit per hop), and partial sums
that ``k`` vaults produce are sent to one and added there. Cycles = the largest of: the compute units'
temporal steps × ops per point ÷ ops per cycle, each level's per-instance traffic ÷ its bandwidth, and the
network's traffic ÷ its aggregate link bandwidth (the slowest bounds the operation, as in Timeloop's
``topology.cpp``). The outermost ``DRAM`` level is marked as the memory level: the runner replaces its share
with the memory backend's figures. The DRAM moves whole lines (``dram_line_bytes``, 64): a tile whose
contiguous run (row-major in the stored tensor) is shorter than a line costs whole lines, so the mapper prefers
DRAM tiles that are wide along the contiguous axis; ``dram_line_bytes: 0`` counts elements, as Timeloop does
with a block size of one word.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import ntframe
from ntframe.components import CostModel
from ntframe.hardware import Architecture
from ntframe.mapping import Mapping
from ntframe.mapping.mapspace import Analysis, MappingBatch, Problem, analyse_batch, to_batch
from ntframe.results import ComputeCost, LevelCost
from ntframe.workload import Operation


def price(problem: Problem, batch: MappingBatch, arch: Architecture, a: Analysis | None = None,
          line_bytes: int = 64, reduction_adders: bool = True) -> dict:
    """Energy and cycles of every mapping of the batch, with the per-level, per-tensor breakdown.
    ``line_bytes``: the DRAM's access granularity (0: count elements, as Timeloop with a block size of 1);
    ``reduction_adders``: charge the adds that combine partial sums split across instances (Timeloop and ZigZag
    charge none)."""
    a = a or analyse_batch(problem, batch)
    op = problem.op
    bits = problem.bits[None, :].astype(float)                      # [1, Tn]
    K = len(arch.levels)
    out: dict = {"levels": []}
    dram_is_memory = arch.levels[0].cls == "DRAM"
    rep = a.vault_replication.astype(float) if arch.network is not None else np.ones_like(a.vault_replication,
                                                                                         dtype=float)
    noc_elements = np.zeros_like(a.reads[:, 0, :])
    for lvl, spec in enumerate(arch.levels):
        inst = a.instances[:, lvl][:, None].astype(float)
        reads, fills, updates = a.reads[:, lvl, :], a.fills[:, lvl, :], a.updates[:, lvl, :]
        if lvl == 0:        # data shared by vaults moves once from DRAM, then over the network
            noc_elements = (reads + updates) * (rep - 1) / rep * inst
            reads, updates = reads / rep, updates / rep
            if line_bytes:  # DRAM moves whole lines: a run of the tile shorter than a line costs a line
                run_bytes = a.dram_run_elements * bits / 8
                inflation = np.ceil(run_bytes / line_bytes) * line_bytes / run_bytes
                reads, updates = reads * inflation, updates * inflation
        rbits = reads * bits * inst
        wbits = (fills + updates) * bits * inst
        energy = rbits * spec.read_energy_pJ_per_bit + wbits * spec.write_energy_pJ_per_bit   # [B, Tn]
        per_instance_bytes = (rbits + wbits).sum(axis=1) / inst[:, 0] / 8
        out["levels"].append({"name": spec.name, "instances": a.instances[:, lvl], "reads": reads * inst,
                              "fills": fills * inst, "updates": updates * inst, "read_bits": rbits,
                              "write_bits": wbits, "energy_pJ": energy,
                              "bound_cycles": per_instance_bytes / spec.bytes_per_cycle,
                              "is_memory": lvl == 0 and dram_is_memory})
    if arch.network is not None:
        net = arch.network
        noc_bits = noc_elements * bits                                   # [B, Tn]
        adds = np.zeros_like(noc_bits)
        for j, t in enumerate(problem.tensors):
            if t.role != 0:      # partial results are added where they meet
                adds[:, j] = (a.updates[:, 0, j] * (rep[:, j] - 1) / rep[:, j] * a.instances[:, 0])
        add_pj = arch.compute.energy_pJ("add", int(problem.bits.max()))
        energy = noc_bits * net.average_hops * net.hop_energy_pJ_per_bit + adds * add_pj
        out["network"] = {"name": net.name, "bits": noc_bits, "energy_pJ": energy,
                          "bound_cycles": noc_bits.sum(axis=1) * net.average_hops / 8
                          / (net.links * net.link_bandwidth_bytes_per_cycle)}
    if reduction_adders and a.spatial_adds is not None:
        adds = (a.spatial_adds * a.instances[:, :, None]).sum(axis=1)                 # [B, Tn], whole system
        add = arch.compute.energy_pJ("add", int(problem.bits.max()))              # at the operation's precision
        add_pj = np.array([add if t.role == 1 else 0.0 for t in problem.tensors])   # accumulated tensors only
        out["reduction"] = {"name": f"{arch.compute.name}.spatial_reduction", "adds": adds,
                            "energy_pJ": adds * add_pj[None, :]}
    actions = op.points * op.ops_per_point
    compute_energy = np.full(len(batch), actions * arch.compute.energy_pJ(op.action, int(problem.bits.max())))
    compute_cycles = a.temporal_steps * op.ops_per_point / arch.compute.ops_per_cycle
    on_die_bounds = [compute_cycles] + [lv["bound_cycles"] for lv in out["levels"] if not lv["is_memory"]]
    if "network" in out:
        on_die_bounds.append(out["network"]["bound_cycles"])
    on_die = np.max(on_die_bounds, axis=0)
    cycles = np.max([on_die] + [lv["bound_cycles"] for lv in out["levels"] if lv["is_memory"]], axis=0)
    energy = compute_energy + sum(lv["energy_pJ"].sum(axis=1) for lv in out["levels"])
    if "network" in out:
        energy = energy + out["network"]["energy_pJ"].sum(axis=1)
    if "reduction" in out:
        energy = energy + out["reduction"]["energy_pJ"].sum(axis=1)
    out.update(energy_pJ=energy, cycles=cycles, on_die_cycles=on_die, compute_cycles=compute_cycles,
               compute_energy_pJ=compute_energy, actions=actions, analysis=a, K=K)
    return out


class NativeCostOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dram_line_bytes: int = Field(64, ge=0)
    """DRAM access granularity: a tile run shorter than a line costs a whole line (0: count elements)."""
    spatial_reduction_adders: bool = True
    """Charge the adds that combine partial sums a mapping splits across instances (processing engines, buffers)
    at the compute unit's add energy; Timeloop and ZigZag charge none (false compares like for like). Across
    vaults the logic-die network's adds are charged either way."""


class NativeCostModel(CostModel):
    name = "native"
    description = "analytical reuse model (Timeloop-style access counts, per-action energies, bandwidth bounds)"
    Options = NativeCostOptions

    def evaluate_batch(self, problem: Problem, batch: MappingBatch, architecture: Architecture):
        p = price(problem, batch, architecture, line_bytes=self.options.dram_line_bytes,
                  reduction_adders=self.options.spatial_reduction_adders)
        return p["energy_pJ"], p["cycles"]

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        problem = Problem(operation)
        p = price(problem, to_batch(problem, [mapping]), architecture, line_bytes=self.options.dram_line_bytes,
                  reduction_adders=self.options.spatial_reduction_adders)
        names = [t.name for t in problem.tensors]
        tensors = [t.tensor for t in problem.tensors]
        levels = []
        for lv in p["levels"]:
            per_tensor = {names[j]: {"reads": float(lv["reads"][0, j]), "fills": float(lv["fills"][0, j]),
                                     "updates": float(lv["updates"][0, j]),
                                     "energy_pJ": float(lv["energy_pJ"][0, j])} for j in range(len(names))}
            levels.append(LevelCost(lv["name"], int(lv["instances"][0]), float(lv["reads"][0].sum()),
                                    float(lv["fills"][0].sum()), float(lv["updates"][0].sum()),
                                    float(lv["read_bits"][0].sum()), float(lv["write_bits"][0].sum()),
                                    float(lv["energy_pJ"][0].sum()), float(lv["bound_cycles"][0]),
                                    bool(lv["is_memory"]), per_tensor))
        if "network" in p:
            net = p["network"]
            per_tensor = {names[j]: {"bits": float(net["bits"][0, j]), "energy_pJ": float(net["energy_pJ"][0, j])}
                          for j in range(len(names))}
            levels.append(LevelCost(net["name"], 1, 0.0, 0.0, 0.0, 0.0, float(net["bits"][0].sum()),
                                    float(net["energy_pJ"][0].sum()), float(net["bound_cycles"][0]), False,
                                    per_tensor))
        if "reduction" in p and p["reduction"]["adds"][0].any():      # listed where the mapping has partial sums
            red = p["reduction"]
            per_tensor = {names[j]: {"adds": float(red["adds"][0, j]), "energy_pJ": float(red["energy_pJ"][0, j])}
                          for j in range(len(names))}
            levels.append(LevelCost(red["name"], 1, 0.0, 0.0, 0.0, 0.0, 0.0, float(red["energy_pJ"][0].sum()), 0.0,
                                    False, per_tensor))
        mem = p["levels"][0]
        dram_reads, dram_writes = {}, {}
        if mem["is_memory"]:
            for j, tensor in enumerate(tensors):
                r = int(round(float(mem["read_bits"][0, j]) / 8))
                w = int(round(float((mem["updates"][0, j]) * problem.bits[j]) / 8))
                if r:
                    dram_reads[tensor] = dram_reads.get(tensor, 0) + r
                if w:
                    dram_writes[tensor] = dram_writes.get(tensor, 0) + w
        cycles = float(p["cycles"][0])
        return ComputeCost(cycles, float(p["on_die_cycles"][0]), float(p["compute_cycles"][0]),
                           float(p["energy_pJ"][0]), float(p["compute_energy_pJ"][0]),
                           p["actions"] / (architecture.peak_ops_per_cycle * cycles) if cycles else 0.0,
                           tuple(levels), dram_reads, dram_writes, int(mem["instances"][0]))


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(NativeCostModel)
