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

Speed: the searches price batches through :meth:`NativeCostModel.evaluate_batch` (energy and cycles only). With
numba installed (the ``fast`` extra) a compiled kernel (:mod:`ntframe.mapping.kernels`) gives them one mapping
at a time, the same figures to the last bit, about ten times faster on the searches' batches of one to a few
hundred mappings (numpy spends most of its time there on the overhead of some hundred small array operations per
call); ``NTFRAME_JIT=0`` turns it off, and a kernel that fails warns once and leaves numpy to price.
:func:`price`, with the per-level breakdown that :meth:`~NativeCostModel.evaluate` reports, is numpy's alone.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import ntframe
from ntframe.components import CostModel
from ntframe.hardware import Architecture
from ntframe.jit import OptionalKernel
from ntframe.mapping import Mapping
from ntframe.mapping.bounded import Tiles
from ntframe.mapping.mapspace import (ACCUMULATE, READ, READWRITE, Analysis, MappingBatch, Problem,
                                      analyse_batch, axis_extents, to_batch,
                                      touched_extents)
from ntframe.memory.trace import LINE_BYTES
from ntframe.memory.tracegen import LineCounts, TraceGenerator
from ntframe.results import ComputeCost, LevelCost
from ntframe.workload import Operation


def price(problem: Problem, batch: MappingBatch, arch: Architecture, a: Analysis | None = None,
          line_bytes: int = 64, reduction_adders: bool = True, dram_lines: np.ndarray | None = None) -> dict:
    """Energy and cycles of every mapping of the batch, with the per-level, per-tensor breakdown.
    ``line_bytes``: the DRAM's access granularity (0: count elements, as Timeloop with a block size of 1);
    ``reduction_adders``: charge the adds that combine partial sums split across instances (Timeloop and ZigZag
    charge none); ``dram_lines`` [B, Tn, 2]: the lines each mapping's request trace reads and writes per tensor
    (:meth:`ntframe.memory.tracegen.TraceGenerator.line_counts`), priced at the DRAM instead of the estimate
    (elements times a line inflation of the run length), which stays in ``dram_estimate_bits`` [B]."""
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
            out["dram_estimate_bits"] = ((reads + fills + updates) * bits * inst).sum(axis=1)
            if dram_lines is not None:      # the trace's own lines, in elements per instance like the estimate
                per_element = bits * inst / (LINE_BYTES * 8)
                reads, updates = dram_lines[:, :, 0] / per_element, dram_lines[:, :, 1] / per_element
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


PRICING = OptionalKernel("ntframe.mapping.kernels", "the native cost model's compiled pricing", "numpy's pricing")
"""The compiled batch pricing (:mod:`ntframe.mapping.kernels`), optional (:mod:`ntframe.jit`)."""


class CompiledPricing:
    """:func:`price`'s energy and cycles of a batch by :func:`ntframe.mapping.kernels.price_batch`, whose
    constant arguments (the problem's, the architecture's and the options') are made once here. ``applies`` is
    False, and :meth:`price` gives None, where the kernel does not cover the problem (more than 7 levels or
    tensors, a tensor without axes): numpy prices it."""

    MAX_ITEMS = 7       # numpy sums 8 items or more along an array's last axis pairwise, not left to right

    def __init__(self, problem: Problem, arch: Architecture, line_bytes: int = 64,
                 reduction_adders: bool = True) -> None:
        self.problem, self.arch = problem, arch
        op, compute, net = problem.op, arch.compute, arch.network
        starts = [int(s) for s in problem.axis_starts]
        ends = starts[1:] + [len(problem.coef_int)]
        self.applies = (len(arch.levels) <= self.MAX_ITEMS and len(starts) <= self.MAX_ITEMS
                        and all(s < e for s, e in zip(starts, ends)))
        bits = int(problem.bits.max())
        add_pJ = compute.energy_pJ("add", bits) if net is not None or reduction_adders else 0.0   # as price()
        problem_args = (problem.bounds.astype(np.int64), problem.relevant.astype(bool),
                        problem.coef_int.astype(np.int64), np.array([starts, ends], np.int64).T.copy(),
                        problem.roles.astype(np.int64), problem.bits.astype(float), problem.shape_all.astype(float))
        level_args = tuple(np.array([getattr(lv, field) for lv in arch.levels], float)
                           for field in ("read_energy_pJ_per_bit", "write_energy_pJ_per_bit", "bytes_per_cycle"))
        network_args = (True, float(net.average_hops), float(net.hop_energy_pJ_per_bit),
                        float(net.links * net.link_bandwidth_bytes_per_cycle), float(add_pJ)) if net is not None \
            else (False, 0.0, 0.0, 1.0, 0.0)
        reduction_args = (bool(reduction_adders),
                          np.array([add_pJ if t.role == ACCUMULATE else 0.0 for t in problem.tensors], float))
        compute_args = (float(op.points * op.ops_per_point * compute.energy_pJ(op.action, bits)),
                        int(op.ops_per_point), float(compute.ops_per_cycle))
        self.args = (problem_args + level_args + (float(line_bytes),) + network_args + reduction_args
                     + compute_args)

    def price(self, kernels, batch: MappingBatch) -> tuple[np.ndarray, np.ndarray] | None:
        """(energy_pJ[B], cycles[B]) by the kernel of ``kernels`` (:data:`PRICING`'s module), or None where it
        does not apply (also a batch that does not factorise the bounds)."""
        if not self.applies:
            return None
        energy, cycles = np.empty(len(batch)), np.empty(len(batch))
        whole = kernels.price_batch(np.ascontiguousarray(batch.T, np.int64), np.ascontiguousarray(batch.S, np.int64),
                                    np.ascontiguousarray(batch.R, np.int64), np.ascontiguousarray(batch.keep, bool),
                                    *self.args, energy, cycles)
        return (energy, cycles) if whole else None


class RelaxedPricing:
    """:func:`price` of *relaxed* mappings in closed form: for a structure (the spatial factors of every fan-out
    row and a keep pattern), every temporal loop at the innermost storage level and the capacities ignored.

    Moving a temporal loop inward never adds an access in the reuse analysis (a relevant loop only trades tile
    size for tile changes, an irrelevant one stops re-fetching), so no mapping of a structure moves less data at
    any level than its relaxed mapping, and the bandwidth bounds follow the traffic: the relaxed price is a lower
    bound of every mapping of the structure. Tiles count the indices they touch, not their bounding box (with a
    stride wider than the kernel, a big tile's box holds gaps that smaller tiles leave out). DRAM lines: every
    box a vault fetches lies in its share of the tensor, which the vault-local layout stores whole, so a share
    that fills a line is counted at no inflation (a box may fill its lines exactly), a smaller one at
    ``line / share``. Without the loop
    statistics the general analysis needs, and per tensor: a tensor's accesses depend on its own keep bits only,
    so a keep pattern sums per-tensor *chains* of kept levels (``tests/test_bounded.py`` checks this against
    :func:`price` on relaxed mappings).

    Speed: with numba (the ``fast`` extra), :meth:`parts` and :meth:`penalty` run compiled kernels
    (:mod:`ntframe.mapping.bound_kernels`), numpy's figures to the last bit (``tests/test_bounded_speed.py``);
    ``NTFRAME_JIT=0`` turns them off, and a kernel that fails warns once and leaves numpy to compute."""

    def __init__(self, problem: Problem, arch: Architecture, line_bytes: int = 64,
                 reduction_adders: bool = True) -> None:
        self.problem, self.arch = problem, arch
        self.line_bytes, self.reduction_adders = line_bytes, reduction_adders
        K = len(arch.levels)
        self.K = K
        self.chains = [(0,) + tuple(l for l in range(1, K) if mask >> (l - 1) & 1) + (K,)
                       for mask in range(2 ** (K - 1))]
        op = problem.op
        self.compute_energy = op.points * op.ops_per_point * arch.compute.energy_pJ(op.action,
                                                                                     int(problem.bits.max()))
        # every element of every tensor crosses the outermost level once, at least (read, or written if the
        # operation writes it), whatever the structure: with the datapath, a floor under every mapping's energy
        level0 = arch.levels[0]
        whole = problem.bounds.astype(float)[None, :]
        bits = [axis_extents(whole, t.coef.astype(float)).prod() * float(problem.bits[j])
                for j, t in enumerate(problem.tensors)]                   # each tensor's whole size, in bits
        self.compulsory_bits = sum(bits)
        self._block_cache: dict = {}
        self._pass_cache: dict = {}
        self._group_cache: tuple | None = None
        self._penalty_cache: dict = {}
        self._pattern_cache: dict[bytes, tuple[np.ndarray, np.ndarray, tuple[int, ...]]] = {}
        self._room_cache: tuple | None = None
        self._layout_cache: dict[bytes, tuple | None] = {}
        self._divisor_cache: dict[int, np.ndarray] = {}
        self._parts_args: tuple | None = None
        self._pair_cache: dict[int, dict[int, float]] = {}       # axis -> extents' pair -> indices touched
        self._kinds: tuple | None = None
        self.floor_energy_pJ = self.compute_energy + sum(
            b * (level0.read_energy_pJ_per_bit if t.role == READ else level0.write_energy_pJ_per_bit)
            for b, t in zip(bits, problem.tensors))

    def cycles_floor(self, spatial: np.ndarray) -> np.ndarray:
        """A floor under the cycles of every mapping of each structure, from its spatial factors alone: the
        compute units' steps, and the compulsory traffic of the outermost level spread over its instances in
        use."""
        op = self.problem.op
        steps = op.points / spatial.prod(axis=(1, 2)).astype(float)
        dram = self.compulsory_bits / 8 / (spatial[:, 0].prod(axis=1) * self.arch.levels[0].bytes_per_cycle)
        return np.maximum(steps * op.ops_per_point / self.arch.compute.ops_per_cycle, dram)

    def chain_index(self, keeps: np.ndarray) -> np.ndarray:
        """[P, Tn]: each pattern's chain per tensor (bit l-1 of the index: kept at level l)."""
        return (keeps[:, 1:, :] * (1 << np.arange(self.K - 1))[None, :, None]).sum(axis=1)

    def parts(self, spatial: np.ndarray) -> dict:
        """Per tensor and chain: energy [Tn, C, n], bandwidth cycles at each level [Tn, C, K, n], network bits
        [Tn, C, n]; compute cycles [n]."""
        problem, arch, K = self.problem, self.arch, self.K
        op = problem.op
        S = spatial.astype(float)
        n, _, D = S.shape
        Tn = len(problem.tensors)
        bounds = problem.bounds.astype(float)
        R = bounds[None, :] / S.prod(axis=1)                            # temporal work of one compute unit
        below = np.cumprod(S[:, ::-1], axis=1)[:, ::-1]                  # below[:, r]: product of rows r..K
        E = [R * below[:, c + 1] for c in range(K)] + [np.ones((n, D))]  # relaxed tile of each level
        steps = R.prod(axis=1)
        add_pj = arch.compute.energy_pJ("add", int(problem.bits.max()))
        e_read = [lv.read_energy_pJ_per_bit for lv in arch.levels]
        e_write = [lv.write_energy_pJ_per_bit for lv in arch.levels]
        per_cycle = [lv.bytes_per_cycle for lv in arch.levels]
        noc = arch.network
        C = len(self.chains)
        energy_tc, cycles_tc, noc_tc = np.zeros((Tn, C, n)), np.zeros((Tn, C, K, n)), np.zeros((Tn, C, n))
        level0_tc = np.zeros((Tn, C, n))                # what one more pass over the outermost level costs
        # every tensor's axes and every level at once (functions of each row and axis alone: the same counts,
        # whose products over a tensor's axes are whole numbers, exact in any order), sliced per tensor and level
        touched = self._touched(np.concatenate(E[:K]))                                          # [K*n, A]
        compiled = self._compiled_parts(spatial, touched, add_pj, (energy_tc, cycles_tc, noc_tc, level0_tc))
        if not compiled:
            inst = np.cumprod(S[:, :K].prod(axis=2), axis=1)                 # [n, K]
            above = np.cumprod(S[:, :K], axis=1)                             # [n, K, D]
            boxes = axis_extents(np.concatenate([bounds[None, :] / above[:, l] for l in range(K)]), problem.coef_all)
            axes = np.append(problem.axis_starts, len(problem.coef_all))
        for j, t in enumerate(() if compiled else problem.tensors):     # numpy's where the kernel has not priced
            coef = t.coef.astype(float)
            bits = float(problem.bits[j])
            shape = np.array(op.tensors[j].shape, float)
            relrow = np.where(t.relevant[None, None, :], S, 1.0).prod(axis=2)     # [n, K+1]
            irrrow = S.prod(axis=2) / relrow
            mine = slice(axes[j], axes[j + 1])
            moved = [touched[c * n:(c + 1) * n, mine].prod(axis=1) for c in range(K)] + [steps]
            first = [boxes[lvl * n:(lvl + 1) * n, mine].prod(axis=1) for lvl in range(K)]
            rep = irrrow[:, 0] if noc is not None else np.ones(n)
            # the outermost level's figures are scaled alike in every chain: by the replication, and by the line
            # inflation of the vault's share (every box a vault fetches lies in its share, which the vault-local
            # layout stores whole: no run is longer than the share, so no line holds more of it)
            scale = 1 / rep
            if self.line_bytes:
                run_bytes = np.minimum(axis_extents(E[0], coef), shape[None, :]).prod(axis=1) * bits / 8
                scale = scale * np.where(run_bytes >= self.line_bytes, 1.0, self.line_bytes / run_bytes)
            # each chain's reads and writes at every level [C, K, n], updates at the outermost level and adds
            # [C, n] (0 where it has none: the same figures below), each link's figures computed once
            reads_c, writes_c = np.zeros((C, K, n)), np.zeros((C, K, n))
            updates0_c, adds_c = np.zeros((C, n)), np.zeros((C, n))
            links: dict[tuple[int, int], tuple] = {}
            ends: dict[int, np.ndarray] = {}
            for ci, chain in enumerate(self.chains):
                reads = [0.0] * K
                writes = [0.0] * K                       # fills + updates
                updates0 = 0.0
                adds = 0.0
                for a, c in zip(chain, chain[1:]):
                    if (a, c) not in links:
                        served = moved[c] * relrow[:, a + 1:c + 1].prod(axis=1)
                        links[a, c] = (served, np.clip(served - first[a], 0, None),
                                       served * (irrrow[:, a + 1:c + 1].prod(axis=1) - 1) * inst[:, a]) \
                            if t.role == ACCUMULATE else (served,)
                    served = links[a, c][0]
                    if t.role == READ:
                        reads[a] = reads[a] + served
                    elif t.role == ACCUMULATE:
                        writes[a] = writes[a] + served
                        reads[a] = reads[a] + links[a, c][1]
                        adds = adds + links[a, c][2]
                    elif t.role == READWRITE:
                        reads[a] = reads[a] + served
                        writes[a] = writes[a] + served
                    else:
                        writes[a] = writes[a] + served
                    if a == 0:
                        updates0 = writes[0]
                    if c < K and t.role in (READ, READWRITE):
                        writes[c] = writes[c] + moved[c]
                    elif c < K and t.role == ACCUMULATE:
                        if c not in ends:
                            ends[c] = np.clip(moved[c] - first[c], 0, None)
                        writes[c] = writes[c] + ends[c]
                for lvl in range(K):
                    reads_c[ci, lvl], writes_c[ci, lvl] = reads[lvl], writes[lvl]
                updates0_c[ci], adds_c[ci] = updates0, adds
            # then every chain at once
            noc_elements = (reads_c[:, 0] + updates0_c) * (rep - 1) / rep * inst[:, 0]
            reads_c[:, 0] = reads_c[:, 0] * scale
            writes_c[:, 0] = writes_c[:, 0] * scale
            energy = self.reduction_adders * (t.role == ACCUMULATE) * adds_c * add_pj + 0.0
            for lvl in range(K):
                energy = energy + ((reads_c[:, lvl] * e_read[lvl] + writes_c[:, lvl] * e_write[lvl]) * bits
                                   * inst[:, lvl])
                cycles_tc[j, :, lvl] = (reads_c[:, lvl] + writes_c[:, lvl]) * bits / 8 / per_cycle[lvl]
            # one more pass at the outermost level: its reads and writes again (an accumulated tensor's
            # partial sums are read back, then written), over the network for the other replicas
            again = (reads_c[:, 0] * e_read[0] + writes_c[:, 0] * e_write[0]) * bits * inst[:, 0]
            if t.role == ACCUMULATE:
                again = again + writes_c[:, 0] * e_read[0] * bits * inst[:, 0]
            if noc is not None:
                network = noc_elements * bits * noc.average_hops * noc.hop_energy_pJ_per_bit
                if t.role != READ:
                    network = network + updates0_c * (rep - 1) / rep * inst[:, 0] * add_pj
                energy = energy + network
                again = again + network
            energy_tc[j], noc_tc[j], level0_tc[j] = energy, noc_elements * bits, again
        return {"energy": energy_tc, "cycles": cycles_tc, "noc": noc_tc, "level0": level0_tc,
                "homeless": self._homeless(S, S[:, 0]),                  # the vaults' split
                "compute_cycles": steps * op.ops_per_point / arch.compute.ops_per_cycle}

    def _compiled_parts(self, spatial: np.ndarray, touched: np.ndarray, add_pj: float, out: tuple) -> bool:
        """Fill ``out`` (:meth:`parts`' energy, cycles, network bits and one more outermost pass, per tensor and
        chain) by :func:`ntframe.mapping.bound_kernels.relaxed_parts` (numpy's figures to the last bit): False
        where it did not (no kernel, a split that does not divide the bounds, a failure)."""
        kernels = self.KERNELS.get()
        if kernels is None:
            return False
        if self._parts_args is None:
            problem, arch, noc = self.problem, self.arch, self.arch.network
            starts = [int(s) for s in problem.axis_starts]
            chains = np.full((len(self.chains), self.K + 1), -1, np.int64)
            for ci, chain in enumerate(self.chains):
                chains[ci, :len(chain)] = chain
            self._parts_args = (
                problem.bounds.astype(np.int64), problem.relevant.astype(bool), problem.coef_int.astype(np.int64),
                np.array([starts, starts[1:] + [len(problem.coef_int)]], np.int64).T.copy(),
                problem.roles.astype(np.int64), problem.bits.astype(float), problem.shape_all.astype(float),
                chains, np.array([len(chain) for chain in self.chains], np.int64),
                *(np.array([getattr(lv, field) for lv in arch.levels], float)
                  for field in ("read_energy_pJ_per_bit", "write_energy_pJ_per_bit", "bytes_per_cycle")),
                float(self.line_bytes), noc is not None, float(noc.average_hops) if noc is not None else 0.0,
                float(noc.hop_energy_pJ_per_bit) if noc is not None else 0.0)
        args = self._parts_args
        try:
            return kernels.relaxed_parts(np.ascontiguousarray(spatial, np.int64), *args[:7],
                                         np.ascontiguousarray(touched, float), *args[7:], float(add_pj),
                                         bool(self.reduction_adders), *out)
        except Exception as exc:    # an optional accelerator (compiled on first use) must not cost results
            self.KERNELS.failed(exc)
            return False

    def _touched(self, E: np.ndarray) -> np.ndarray:
        """:func:`touched_extents` of every tensor axis over tiles E [n, D]: [n, A]. An axis of two dimensions
        counts each distinct pair of their extents once (found by one number per pair, not by ``np.unique`` over
        rows, whose sort of row bytes is slow) and remembers the counts: the same counts, a function of each row
        alone."""
        coef = self.problem.coef_all
        out = np.empty((len(E), len(coef)))
        pairs = [a for a, row in enumerate(coef) if np.count_nonzero(row) == 2]
        rest = [a for a in range(len(coef)) if a not in pairs]
        if rest:
            out[:, rest] = touched_extents(E, coef[rest])
        for a in pairs:
            x, y = (E[:, d].astype(np.int64) for d in np.flatnonzero(coef[a]))
            if max(x.max(initial=0), y.max(initial=0)) >= 2 ** 31:         # (no key of one number: as it is)
                out[:, a] = touched_extents(E, coef[a:a + 1])[:, 0]
                continue
            keys, first, back = np.unique(x * 2 ** 31 + y, return_index=True, return_inverse=True)
            known = self._pair_cache.setdefault(a, {})
            keys = keys.tolist()
            new = [i for i, key in enumerate(keys) if key not in known]
            if new:
                counts = touched_extents(E[first[new]], coef[a:a + 1])[:, 0].tolist()
                known.update(zip([keys[i] for i in new], counts))
            out[:, a] = np.array([known[key] for key in keys])[back.ravel()]
        return out

    def _homeless(self, S: np.ndarray, vault_split: np.ndarray) -> np.ndarray:
        """[Tn, n]: the extra passes over the outermost level that each tensor needs in every mapping that keeps
        it somewhere below: one per step of the time-step loops it does not index, when no level below can
        hold its whole share of an outermost instance at once (then a loop over a dimension it indexes sits
        inside the time steps, which are outermost)."""
        problem, arch, K = self.problem, self.arch, self.K
        Tn = len(problem.tensors)
        out = np.zeros((Tn, len(S)))
        if not problem.sequential or K < 2:
            return out
        share = problem.bounds[None, :] / vault_split
        room = max(lvl.capacity_bytes * math.prod(arch.fanouts[1:i + 1]) for i, lvl in enumerate(arch.levels)
                   if i >= 1 and lvl.capacity_bytes)
        for j, t in enumerate(problem.tensors):
            steps = math.prod(int(problem.bounds[d]) for d in problem.sequential if not t.relevant[d])
            if steps > 1:
                need = touched_extents(share, t.coef.astype(float)).prod(axis=1) * problem.bits[j] / 8
                out[j] = np.where(need > room, steps - 1, 0.0)
        return out

    def penalty(self, parts: dict, k: int, spatial: np.ndarray, keep: np.ndarray) -> float:
        """Energy the capacities force on top of the relaxed price of structure ``k`` of ``parts`` (spatial factors
        ``spatial[K+1, D]``) under ``keep``: the outermost level's tensors fetched again because the levels below
        cannot hold them (a lower bound; ``tests/test_bounded.py`` checks it on mappings of the structure).

        The outermost level's loops split one instance's share ``X`` into blocks ``E``. Let ``d*`` be the
        dimension of the innermost such loop: a tensor that ``d*`` indexes is fetched once per block of every
        dimension it does not index (``prod X/E`` over those), a tensor ``d*`` does not index at least once, or,
        with a loop over a dimension it indexes, once per step of the time-step loops (outermost) it does not. A
        tensor kept first at level 1 must fit there with the others; one kept first deeper either has a loop over
        a dimension it indexes in between (then every block loop it does not index fetches it again) or has its
        whole block in that level across its instances. Minimised over every block, per group of dimensions that
        the same tensors index and whose tile extents the same tensors count (extents from one dimension per
        tensor axis: a lower bound), and every ``d*``."""
        tensors, chain_of, first = self._pattern(keep)
        weights = parts["level0"][tensors, chain_of, k]
        key = (spatial[0].tobytes(), first, weights.tobytes())      # structures often repeat these (memoised)
        got = self._penalty_cache.get(key)
        if got is None:
            got = self._compiled_penalty(spatial[0], first, weights)
            if got is None:
                passes = self._passes(spatial[0], first)
                got = 0.0 if passes is None else max(0.0, self._fewest(spatial[0], passes, weights))
            self._penalty_cache[key] = got
        return got

    KERNELS = OptionalKernel("ntframe.mapping.bound_kernels", "the native cost model's compiled bounds",
                             "numpy's bounds")
    """The compiled relaxed prices and penalty (:func:`ntframe.mapping.bound_kernels.relaxed_parts`,
    :func:`~ntframe.mapping.bound_kernels.capacity_penalty`), optional (:mod:`ntframe.jit`)."""

    def _pattern(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """The tensors [Tn], a keep pattern's chain per tensor [Tn] and each tensor's first kept level below the
        outermost (``K``: none) (memoised: a search asks for the same few patterns again and again)."""
        key = keep.tobytes()
        got = self._pattern_cache.get(key)
        if got is None:
            chain_of = self.chain_index(keep[None])[0]
            got = self._pattern_cache[key] = (np.arange(len(chain_of)), chain_of,
                                              tuple(self.chains[c][1] for c in chain_of))
        return got

    def _compiled_penalty(self, split: np.ndarray, first: tuple[int, ...], weights: np.ndarray) -> float | None:
        """The penalty by the compiled kernel (the numpy code's figure to the last bit), or None where there is
        none (numba missing or off, a level below the outermost without a capacity, a failure: numpy serves)."""
        kernels = self.KERNELS.get()
        rooms = self._rooms()
        if kernels is None or rooms is None or not (weights >= 0).all():     # (the kernel needs weights >= 0)
            return None
        try:
            layout = self._layout(kernels, split)
            if layout is None:
                return None
            return float(kernels.capacity_penalty(*layout, np.array(first, np.int64),
                                                  np.ascontiguousarray(weights, float), rooms, self.K))
        except Exception as exc:    # an optional accelerator (compiled on first use) must not cost results
            self.KERNELS.failed(exc)
            return None

    def _rooms(self) -> np.ndarray | None:
        """What :meth:`_fitting` compares the blocks with [max(K, 2)]: level 1's capacity, each deeper level's
        across its instances; None if a level below the outermost has no capacity."""
        if self._room_cache is None:
            arch, K = self.arch, self.K
            if any(lvl.capacity_bytes is None for lvl in arch.levels[1:]):
                self._room_cache = (None,)
            else:
                rooms = [math.inf, arch.levels[1].capacity_bytes if K > 1 else math.inf]
                rooms += [arch.levels[lvl].capacity_bytes * math.prod(arch.fanouts[1:lvl + 1]) for lvl in range(2, K)]
                self._room_cache = (np.array(rooms, float),)
        return self._room_cache[0]

    def _fewest(self, split: np.ndarray, passes: list[tuple[tuple[int, ...], np.ndarray]],
                weights: np.ndarray) -> float:
        """The smallest energy of the extra passes of :meth:`_passes`'s blocks: per set of columns counting full
        passes, each block's passes weighted by the tensors' costs of one more pass, summed tensor by tensor in
        their order (the same float whatever the blocks' positions), the least over the blocks it selects."""
        blocks = self._blocks(split)
        full, again = blocks["full_extra"] * weights[None, :], blocks["again_extra"] * weights[None, :]
        least = math.inf
        for full_cols, selected in passes:
            energy = np.zeros(len(selected))
            for j, full_j in full_cols:
                energy = energy + (full if full_j else again)[:, j]
            least = min(least, float(energy[selected].min()))
        return least

    def _passes(self, split: np.ndarray, first: tuple[int, ...]) -> list[tuple[tuple, np.ndarray]] | None:
        """For the outermost level's split and each tensor's first kept level below it, the blocks that fit
        (the smallest passes are a maximal block's: a bigger block never fetches anything more often), for every
        choice of the deeper tensors held whole and of ``d*``: per way of counting the tensors kept below
        (``((tensor, full), ...)``: ``full``, every block loop fetches it again, :meth:`_blocks`'s ``full_extra``;
        else only the time steps do, ``again_extra``), the blocks [m] bool counted that way; None when a block
        needs no loop at the outermost level (memoised)."""
        key = (split.tobytes(), first)
        if key in self._pass_cache:
            return self._pass_cache[key]
        blocks = self._blocks(split)
        looped, rel_g = blocks["looped"], blocks["rel_g"]
        counted = [j for j in range(len(first)) if first[j] < self.K]
        selected: dict[tuple, np.ndarray] = {}         # the columns counting full passes -> the blocks selected
        for whole, ok in self._fitting(first, blocks["size"]):
            if not (blocks["any_loop"] | ~ok).all():
                self._pass_cache[key] = None            # no loop at the outermost level: nothing fetched again
                return None
            inner = blocks["inner"] if (ok & blocks["any_inner"]).any() else blocks["seq_groups"]  # else time steps
            by_columns: dict[tuple, list[int]] = {}     # the d* that count the same passes, together
            for g in inner:
                by_columns.setdefault(tuple((j, bool(rel_g[j, g] or (first[j] > 1 and j not in whole)))
                                            for j in counted), []).append(int(g))
            for full_cols, group in by_columns.items():
                rows = ok & np.logical_or.reduce(looped[group], axis=0)
                if rows.any():
                    selected[full_cols] = selected[full_cols] | rows if full_cols in selected else rows
        self._pass_cache[key] = list(selected.items()) or None
        return self._pass_cache[key]

    def _fitting(self, first: tuple[int, ...], size: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
        """For each choice of the tensors kept first below level 1 whose blocks sit whole in their level: that
        choice and the blocks that fit [m]; ``size`` [Tn, m]: each tensor's block size in bytes."""
        arch, K = self.arch, self.K
        n = size.shape[1]
        fits1 = sum((size[j] for j, lvl in enumerate(first) if lvl == 1), np.zeros(n)) <= \
            (arch.levels[1].capacity_bytes if K > 1 else math.inf)
        deep = [j for j, lvl in enumerate(first) if 1 < lvl < K]
        out = []
        for held in range(2 ** len(deep)):
            whole = [deep[x] for x in range(len(deep)) if held >> x & 1]
            ok = fits1.copy()
            for lvl in range(2, K):
                room = arch.levels[lvl].capacity_bytes * math.prod(arch.fanouts[1:lvl + 1])
                ok &= sum((size[j] for j in whole if first[j] == lvl), np.zeros(n)) <= room
            if ok.any():
                out.append((whole, ok))
        return out

    def _groups(self) -> tuple[list[list[int]], np.ndarray, np.ndarray, np.ndarray]:
        """The problem's groups of dimensions (that the same tensors index and whose extents the same tensors
        count, time steps apart): their members, which are time steps [G], which index each tensor [Tn, G] and
        which count in each tensor's block size [Tn, G] (memoised)."""
        if self._group_cache is None:
            problem = self.problem
            Tn = len(problem.tensors)
            rel = np.array([t.relevant for t in problem.tensors])
            counted = np.zeros_like(rel)
            for j, t in enumerate(problem.tensors):
                for a in range(t.coef.shape[0]):
                    dims = np.flatnonzero(t.coef[a])
                    if len(dims):
                        counted[j, dims[np.argmax(problem.bounds[dims])]] = True
            seq = set(problem.sequential)
            groups: dict[tuple, list[int]] = {}
            for d in range(problem.D):
                groups.setdefault((tuple(rel[:, d]), tuple(counted[:, d]), d in seq), []).append(d)
            members = list(groups.values())
            seq_g = np.array([g[0] in seq for g in members])
            rel_g = np.array([[rel[j, g[0]] for g in members] for j in range(Tn)])
            counted_g = np.array([[counted[j, g[0]] for g in members] for j in range(Tn)])
            self._group_cache = (members, seq_g, rel_g, counted_g)
        return self._group_cache

    def _blocks(self, split: np.ndarray) -> dict:
        """For the outermost level's split, every block per group of dimensions (:meth:`_groups`): ``looped``
        [G, m], the loops over blocks per group; ``size`` [Tn, m], each tensor's block size in bytes (from one
        dimension per axis: a lower bound); ``full_extra`` and ``again_extra`` [m, Tn], each tensor's passes less
        one if every block loop fetches it again, and if only the time steps do; ``rel_g`` [Tn, G], which groups
        index each tensor; and for :meth:`_passes`: ``any_loop`` [m] (a loop at all), ``inner`` (the groups that
        are not time steps), ``any_inner`` [m] (a loop over one of those) and ``seq_groups`` (the time steps)
        (memoised)."""
        key = split.tobytes()
        if key not in self._block_cache:
            problem = self.problem
            Tn = len(problem.tensors)
            members, seq_g, rel_g, counted_g = self._groups()
            X = problem.bounds // split
            share = np.array([int(np.prod(X[g])) for g in members], np.int64)
            grid, _ = Tiles(np.where(seq_g, 1, share)).grid(len(share))    # time steps: outermost loops, always
            ratio = share[None, :] / grid.astype(float)                 # whole numbers: the grid divides
            block_loops = ratio > 1
            # per tensor [Tn, m]: products over groups of whole numbers (exact in any order), one group at a time
            grid_g, ratio_g, loops_g = grid.T.copy(), ratio.T.copy(), block_loops.T.copy()      # [G, m]
            m = len(grid)
            size, full, seq_full = np.ones((Tn, m), np.int64), np.ones((Tn, m)), np.ones((Tn, m))
            looped = np.zeros((Tn, m), bool)
            for j in range(Tn):
                for g in range(len(members)):
                    if counted_g[j, g]:
                        size[j] *= grid_g[g]
                    if not rel_g[j, g]:
                        full[j] *= ratio_g[g]
                        if seq_g[g]:
                            seq_full[j] *= ratio_g[g]
                    elif not seq_g[g]:
                        # a tensor that d* does not index still comes again for every time-step loop it does not
                        # index once it has a loop at the outermost level over a dimension it indexes (the
                        # time-step loops are outermost)
                        looped[j] |= loops_g[g]
            full, again = full.T, np.where(looped, seq_full, 1.0).T
            inner = np.flatnonzero(~seq_g)
            self._block_cache[key] = {
                "looped": loops_g, "size": size * problem.bits[:, None] / 8, "full_extra": full - 1,
                "again_extra": again - 1,
                "rel_g": rel_g, "any_loop": loops_g.any(axis=0), "inner": inner,
                "any_inner": loops_g[inner].any(axis=0), "seq_groups": np.flatnonzero(seq_g)}
        return self._block_cache[key]

    def _layout(self, kernels, split: np.ndarray) -> tuple | None:
        """For the outermost level's split, the blocks of :meth:`_blocks` as the compiled penalty walks them
        (:func:`ntframe.mapping.bound_kernels.capacity_penalty`'s arguments): each group's divisors in increasing
        order ``divisor`` and the share over each, ``ratio`` [G, most divisors] (exact whole numbers, as
        :meth:`_blocks` divides them), the blocks laid out as an array over the groups whose last axis is the group
        with the most divisors (the count ``lens`` and the stride of each group [G], the last group and the one
        laid out before it, -1: none), then the groups' kinds (time steps [G], counted in each tensor's block
        size and indexing each tensor [Tn, G]), the tensors' bits [Tn], the groups that are not time steps and
        those that are, and the tables of :func:`~ntframe.mapping.bound_kernels.block_prefixes` (by ``kernels``);
        None where the whole share is 2**53 or more (its products of whole numbers could round) (memoised)."""
        key = split.tobytes()
        if key not in self._layout_cache:
            self._layout_cache[key] = self._new_layout(kernels, split)
        return self._layout_cache[key]

    def _new_layout(self, kernels, split: np.ndarray) -> tuple | None:
        """:meth:`_layout`, not memoised."""
        members, seq_g, rel_g, counted_g = self._groups()
        X = (self.problem.bounds // split).tolist()
        shares = [math.prod(X[d] for d in g) for g in members]
        if math.prod(shares) >= 2 ** 53:
            return None
        if self._kinds is None:
            self._kinds = (np.ascontiguousarray(seq_g, bool), np.ascontiguousarray(counted_g, bool),
                           np.ascontiguousarray(rel_g, bool), self.problem.bits.astype(np.int64),
                           np.flatnonzero(~seq_g).astype(np.int64), np.flatnonzero(seq_g).astype(np.int64))
        # each group's divisors (time steps: outermost loops, always), the group with the most laid out last
        chains = [self._divisors(1 if seq else whole) for seq, whole in zip(seq_g.tolist(), shares)]
        G = len(members)
        lens = [len(c) for c in chains]
        last = lens.index(max(lens))
        laid = [g for g in range(G) if g != last] + [last]
        stride = [1] * G
        for pos in range(G - 2, -1, -1):
            stride[laid[pos]] = stride[laid[pos + 1]] * lens[laid[pos + 1]]
        divisor = np.ones((G, max(lens)), np.int64)
        ratio = np.ones((G, max(lens)))
        for g in range(G):
            divisor[g, :lens[g]] = chains[g]
            ratio[g, :lens[g]] = shares[g] / chains[g].astype(float)
        lens, stride = np.array(lens, np.int64), np.array(stride, np.int64)
        return (divisor, ratio, lens, stride, last, laid[-2] if G > 1 else -1, *self._kinds,
                *kernels.block_prefixes(divisor, ratio, lens, stride, last, *self._kinds[:3]))

    def _divisors(self, n: int) -> np.ndarray:
        """The divisors of ``n`` in increasing order (memoised)."""
        got = self._divisor_cache.get(n)
        if got is None:
            got = self._divisor_cache[n] = np.sort(Tiles(np.array([n])).grid(1)[0][:, 0])
        return got

    def _noc_cycles(self, bits: np.ndarray) -> np.ndarray:
        noc = self.arch.network
        return bits / 8 * noc.average_hops / (noc.links * noc.link_bandwidth_bytes_per_cycle)

    def combine(self, parts: dict, keeps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Energy and cycles of every structure with every keep pattern: [n, P] each."""
        chain_of = self.chain_index(keeps)
        Tn = chain_of.shape[1]
        energy = self.compute_energy + sum(parts["energy"][j, chain_of[:, j]] for j in range(Tn))      # [P, n]
        cycles = np.broadcast_to(parts["compute_cycles"], energy.shape)
        for lvl in range(self.K):
            cycles = np.maximum(cycles, sum(parts["cycles"][j, chain_of[:, j], lvl] for j in range(Tn)))
        if self.arch.network is not None:
            cycles = np.maximum(cycles, self._noc_cycles(sum(parts["noc"][j, chain_of[:, j]] for j in range(Tn))))
        return energy.T, cycles.T

    def floor(self, parts: dict, keeps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower bounds over all the keep patterns ``keeps`` of every structure: energy [n] and cycles [n] (each
        tensor's cheapest chain among the patterns', separately for energy and every level's traffic), the
        energy with the passes over the outermost level that time steps force on tensors no level can hold."""
        chain_of = self.chain_index(keeps)
        Tn = chain_of.shape[1]
        allowed = [np.unique(chain_of[:, j]) for j in range(Tn)]
        below = np.array([len(c) > 2 for c in self.chains])                # chains that keep it somewhere below
        energy = self.compute_energy + sum(
            (parts["energy"][j, allowed[j]] + below[allowed[j], None] * parts["level0"][j, allowed[j]]
             * parts["homeless"][j][None, :]).min(axis=0) for j in range(Tn))
        cycles = parts["compute_cycles"]
        for lvl in range(self.K):
            cycles = np.maximum(cycles, sum(parts["cycles"][j, allowed[j], lvl].min(axis=0) for j in range(Tn)))
        if self.arch.network is not None:
            cycles = np.maximum(cycles, self._noc_cycles(sum(parts["noc"][j, allowed[j]].min(axis=0)
                                                             for j in range(Tn))))
        return energy, cycles


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

    def __init__(self, options: NativeCostOptions | None = None) -> None:
        super().__init__(options)
        self._compiled: CompiledPricing | None = None      # the last problem's, for the compiled pricing

    def evaluate_batch(self, problem: Problem, batch: MappingBatch, architecture: Architecture):
        """:func:`price`'s energy and cycles; by the compiled kernel when there is one (the same figures)."""
        kernels = PRICING.get()
        if kernels is not None:
            try:
                compiled = self._compiled
                if compiled is None or compiled.problem is not problem or compiled.arch is not architecture:
                    compiled = self._compiled = CompiledPricing(problem, architecture, self.options.dram_line_bytes,
                                                                self.options.spatial_reduction_adders)
                got = compiled.price(kernels, batch)
            except Exception as exc:    # an optional accelerator (compiled on first use) must not cost results
                PRICING.failed(exc)
            else:
                if got is not None:
                    return got
        p = price(problem, batch, architecture, line_bytes=self.options.dram_line_bytes,
                  reduction_adders=self.options.spatial_reduction_adders)
        return p["energy_pJ"], p["cycles"]

    def bounds(self, problem: Problem, architecture: Architecture) -> RelaxedPricing:
        return RelaxedPricing(problem, architecture, self.options.dram_line_bytes,
                              self.options.spatial_reduction_adders)

    def evaluate(self, operation: Operation, mapping: Mapping, architecture: Architecture) -> ComputeCost:
        problem = Problem(operation)
        lines, notes, a = _dram_lines(problem, mapping, architecture) \
            if architecture.levels[0].cls == "DRAM" and self.options.dram_line_bytes == LINE_BYTES \
            else (None, (), None)
        p = price(problem, to_batch(problem, [mapping]), architecture, a, line_bytes=self.options.dram_line_bytes,
                  reduction_adders=self.options.spatial_reduction_adders,
                  dram_lines=None if lines is None else lines.lines[None])
        if lines is not None:
            estimate = float(p["dram_estimate_bits"][0])
            change = f"{lines.requests * LINE_BYTES * 8 / estimate - 1:+.1%}" if estimate else "no estimate"
            notes = (f"DRAM bytes: the {lines.requests:,} {LINE_BYTES}-byte lines of the operation's request trace "
                     f"({change} on the search's element-and-inflation estimate)",)
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
                           tuple(levels), dram_reads, dram_writes, int(mem["instances"][0]), notes)


EXACT_LINES_BOXES = 4_000_000


def _dram_lines(problem: Problem, mapping: Mapping,
                arch: Architecture) -> tuple[LineCounts | None, tuple[str, ...], Analysis]:
    """The lines the mapping's request trace moves (:meth:`ntframe.memory.tracegen.TraceGenerator.line_counts`,
    vault-local layout), for :func:`price` to charge at the DRAM instead of the search's estimate: every box's
    real lines — its alignment, the rows padding leaves out, neighbouring rows sharing a line. The memory
    backends simulate these same requests, so the cost model, the trace and the backends count one number of
    bytes. A mapping with more than EXACT_LINES_BOXES DRAM fetches (boxes: a tensor's tile fetched by one vault;
    some thousands in the mappings the search keeps, millions in a random one a sampling search may try) keeps
    the estimate, and the note says so: counting costs about 0.1 s per million. Also the mapping's reuse analysis,
    which the generator made, for :func:`price` (so it is not made twice)."""
    gen = TraceGenerator(problem.op, mapping, arch, None)
    if gen.boxes > EXACT_LINES_BOXES:
        return None, (f"DRAM bytes: the search's element-and-inflation estimate (the mapping's {gen.boxes:,} DRAM "
                      f"fetches are more than the {EXACT_LINES_BOXES:,} counted exactly; the memory backend's "
                      f"bytes are the trace's)",), gen.analysis
    return gen.line_counts(), (), gen.analysis


@ntframe.hookimpl
def ntframe_register_cost_models(register):
    register(NativeCostModel)
