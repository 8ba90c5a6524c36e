"""``roofline`` cost model: the classic roofline lower bound, independent of the mapping.

Off-die traffic is the compulsory one (each tensor moved once: read tensors read, written tensors written,
read-write tensors both) spread over all memory-level instances; on-die storage is free. Cycles =
max(points ÷ peak ops per cycle, traffic ÷ aggregate memory bandwidth). Energy = one datapath action per point
+ the compulsory traffic at the memory level's energy per bit. Any real mapping costs at least this much.
"""

from __future__ import annotations

import ntframe
from ntframe.components import CostModel
from ntframe.hardware import Architecture
from ntframe.mapping import Mapping
from ntframe.results import ComputeCost, LevelCost
from ntframe.workload import Operation


class RooflineCostModel(CostModel):
    name = "roofline"
    description = "mapping-independent roofline lower bound (compulsory traffic, peak compute)"

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        mem = architecture.levels[0]
        reads = {t.tensor: t.bytes for t in operation.tensors if t.role in ("read", "readwrite")}
        writes = {t.tensor: t.bytes for t in operation.tensors if t.written}
        read_bits = 8 * sum(reads.values())
        write_bits = 8 * sum(writes.values())
        memory_cycles = (read_bits + write_bits) / 8 / (mem.bytes_per_cycle * mem.instances)
        actions = operation.points * operation.ops_per_point
        compute_cycles = actions / architecture.peak_ops_per_cycle
        bits = max(t.precision_bits for t in operation.tensors)
        compute_energy = actions * architecture.compute.energy_pJ(operation.action, bits)
        mem_energy = read_bits * mem.read_energy_pJ_per_bit + write_bits * mem.write_energy_pJ_per_bit
        read_elements = sum(t.elements for t in operation.tensors if t.role in ("read", "readwrite"))
        written_elements = sum(t.elements for t in operation.tensors if t.written)
        level = LevelCost(mem.name, mem.instances, read_elements, 0, written_elements, read_bits, write_bits,
                          mem_energy, memory_cycles, is_memory=True)
        cycles = max(compute_cycles, memory_cycles, 1e-9)
        return ComputeCost(cycles, compute_cycles, compute_cycles, compute_energy + mem_energy, compute_energy,
                           actions / (architecture.peak_ops_per_cycle * cycles) if cycles else 0.0, (level,), reads, writes,
                           mem.instances)


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(RooflineCostModel)
