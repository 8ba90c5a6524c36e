"""``native`` compute cost model: analytical, Timeloop-style.

Access counts per level and tensor come from :func:`ntframe.nest.analyse` (tile reuse, multicast, spatial
reduction). Energy = accesses × precision bits × the level's energy per bit (reads at the read energy; fills and
updates at the write energy) + one datapath action per loop-nest point at the compute unit's energy for the
operand precision (``ops_per_point`` actions per point). Cycles = the largest of: the compute units' temporal steps
× ops per point (÷ ops per cycle) and each level's
per-instance traffic divided by its per-instance bandwidth (the slowest level bounds the operation, as in
Timeloop's ``topology.cpp``). Utilisation = points ÷ (peak ops per cycle × cycles).
The outermost ``DRAM`` level is marked as the memory level: the runner replaces its share with what the
memory backend computes.
"""

from __future__ import annotations

import ntframe
from ntframe.arch import Architecture
from ntframe.components import CostModel
from ntframe.ir import Operation
from ntframe.mapping import Mapping
from ntframe.nest import analyse
from ntframe.results import ComputeCost, LevelCost


class NativeCostModel(CostModel):
    name = "native"
    description = "analytical reuse model (Timeloop-style access counts, per-action energies, bandwidth bounds)"

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        analysis = analyse(operation, mapping)
        bits = {t.name: t.precision_bits for t in operation.tensors}
        levels, energy = [], 0.0
        dram_reads: dict[str, int] = {}
        dram_writes: dict[str, int] = {}
        for spec_level, acc in zip(architecture.levels, analysis.levels):
            per_instance_bits = 0
            reads = fills = updates = read_bits = write_bits = 0
            for t in acc.tensors:
                b = bits[t.tensor]
                reads += t.reads * acc.instances
                fills += t.fills * acc.instances
                updates += t.updates * acc.instances
                read_bits += t.reads * b * acc.instances
                write_bits += (t.fills + t.updates) * b * acc.instances
                per_instance_bits += (t.reads + t.fills + t.updates) * b
            is_memory = spec_level is architecture.levels[0] and spec_level.cls == "DRAM"
            if is_memory:
                for t in acc.tensors:
                    tensor = operation.tensor(t.tensor).tensor
                    if t.reads:
                        dram_reads[tensor] = (t.reads * bits[t.tensor] * acc.instances + 7) // 8
                    if t.updates:
                        dram_writes[tensor] = (t.updates * bits[t.tensor] * acc.instances + 7) // 8
            level_energy = (read_bits * spec_level.read_energy_pJ_per_bit
                            + write_bits * spec_level.write_energy_pJ_per_bit)
            energy += level_energy
            levels.append(LevelCost(spec_level.name, acc.instances, reads, fills, updates, read_bits, write_bits,
                                    level_energy, per_instance_bits / 8 / spec_level.bytes_per_cycle, is_memory))
        op_bits = max(bits.values())
        actions = operation.points * operation.ops_per_point
        compute_energy = actions * architecture.compute.energy_pJ(operation.action, op_bits)
        compute_cycles = analysis.temporal_steps * operation.ops_per_point / architecture.compute.ops_per_cycle
        on_die = max([compute_cycles] + [lvl.bandwidth_bound_cycles for lvl in levels if not lvl.is_memory])
        cycles = max([on_die] + [lvl.bandwidth_bound_cycles for lvl in levels])
        utilisation = actions / (architecture.peak_ops_per_cycle * cycles) if cycles else 0.0
        return ComputeCost(cycles, on_die, compute_cycles, energy + compute_energy, compute_energy, utilisation,
                           tuple(levels), dram_reads, dram_writes, analysis.levels[0].instances)


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(NativeCostModel)
