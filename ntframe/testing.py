"""Helpers for testing ntframe and its plugins (plugin authors: import these in your own tests).

* :func:`execute_macs` runs a conv/matmul operation's loop nest literally on numpy arrays, from its
  projections and offsets alone: a reference to check that an IR expansion computes what it claims.
* :func:`check_cost_model` checks the contract every cost model must keep on a mapping.
* :func:`tiny_architecture` writes a small, fully specified architecture file and loads it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ntframe.hardware.architecture import Architecture, load_architecture
from ntframe.workload.ir import Operation


def execute_macs(op: Operation, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Run ``op`` (a multiply-accumulate nest) on ``arrays`` (one per read tensor, by data-space name) and
    return the accumulated output tensor. Points whose projected index falls outside a stored tensor read a
    padding zero (or, for the output, are dropped)."""
    if not op.is_mac:
        raise ValueError(f"{op.name} is not a multiply-accumulate operation")
    names = [d for d, _ in op.dims]
    grids = np.meshgrid(*[np.arange(b) for _, b in op.dims], indexing="ij")
    coords = {d: g.ravel() for d, g in zip(names, grids)}

    def indices(t):
        offsets = t.offsets or (0,) * len(t.projection)
        idx = [sum(c * coords[d] for d, c in axis) + off for axis, off in zip(t.projection, offsets)]
        valid = np.ones(len(idx[0]), dtype=bool)
        for i, size in zip(idx, t.shape):
            valid &= (i >= 0) & (i < size)
        return idx, valid

    (out,) = [t for t in op.tensors if t.role == "accumulate"]
    out_idx, valid = indices(out)
    product = np.ones(math.prod(b for _, b in op.dims))
    for t in op.tensors:
        if t.role != "read":
            continue
        idx, ok = indices(t)
        valid &= ok
        product = product * arrays[t.name][tuple(np.where(ok, i, 0) for i in idx)]
    result = np.zeros(out.shape)
    np.add.at(result, tuple(i[valid] for i in out_idx), product[valid])
    return result


def check_cost_model(cost, op: Operation, arch: Architecture) -> None:
    """Assert the invariants any ComputeCost must satisfy."""
    assert cost.cycles >= cost.on_die_cycles >= cost.compute_cycles >= 0
    assert cost.cycles > 0
    assert cost.energy_pJ >= cost.compute_energy_pJ >= 0
    assert 0 <= cost.utilisation <= 1 + 1e-9
    assert cost.compute_cycles * arch.peak_ops_per_cycle >= op.points * op.ops_per_point - 1e-6
    mem = [lvl for lvl in cost.levels if lvl.is_memory]
    assert len(mem) <= 1


TINY_ARCH = """\
architecture:
  version: 0.4
  name: tiny
  clock_GHz: 1.0
  precision_bits: {forward: 16, backward_data: 16, backward_weight: 16, update: 16}
  nodes:
    - !Component
      name: dram
      class: DRAM
      attributes: {bandwidth_bytes_per_cycle: 4, read_energy_pJ_per_bit: 1.0, write_energy_pJ_per_bit: 2.0}
      sources: {bandwidth_bytes_per_cycle: "[A] test", read_energy_pJ_per_bit: "[A] test",
                write_energy_pJ_per_bit: "[A] test"}
    - !Container
      name: pe
      spatial: {meshX: 2}
    - !Component
      name: rf
      class: regfile
      attributes: {capacity_bytes: 64, bandwidth_bytes_per_cycle: 8, read_energy_pJ_per_bit: 0.1,
                   write_energy_pJ_per_bit: 0.2}
      sources: {capacity_bytes: "[A] test", bandwidth_bytes_per_cycle: "[A] test",
                read_energy_pJ_per_bit: "[A] test", write_energy_pJ_per_bit: "[A] test"}
    - !Component
      name: mac
      class: compute
      attributes: {mac_energy_pJ: {16: 1.0}, add_energy_pJ: {16: 0.5}}
      sources: {mac_energy_pJ: "[A] test", add_energy_pJ: "[A] test", ops_per_cycle: "[A] test"}
"""


def tiny_architecture(folder: Path) -> Architecture:
    """DRAM (4 B/cycle, 1/2 pJ/bit read/write) → 2 PEs, each a 64-byte register file (8 B/cycle, 0.1/0.2
    pJ/bit) and one 16-bit MAC (1 pJ; add 0.5 pJ). Small enough to count every access by hand."""
    path = Path(folder) / "tiny-arch.yaml"
    path.write_text(TINY_ARCH)
    return load_architecture(path)


__all__ = ["check_cost_model", "execute_macs", "tiny_architecture"]
