"""HMC request traces from a mapping's DRAM-level tile schedule (vectorised, streamed in chunks).

The outermost storage level (the vaults' DRAM) runs its temporal loops in order; each iteration is a *step*.
For every tensor, the box of elements the levels below use during a step (the tile under the DRAM loops, in
the tensor's stored coordinates, padding clipped) is fetched whenever it changes — reads for inputs and
read-write tensors, writes for written tensors, plus partial-sum read-backs — as many times per change as
the reuse analysis counts (:func:`ntframe.mapspace.analyse_batch`), spread evenly when fractional. Requests are
whole 64-byte lines, so a box narrower than a line along its contiguous axis costs more than its elements
(a real effect that the element-counting analysis does not see). The vault split (spatial factors into the
DRAM level) runs all vaults side by side; with a logic-die network, data several vaults need is read by one
of them (the owner) and forwarded over the network, and results several vaults produce are written by one —
as the cost model assumes — so those requests appear once.

Layouts: ``vault-local`` (default) keeps each vault's share of a tensor in that vault (every address of
vault ``v`` has vault field ``v``); ``interleaved`` stores tensors row-major in the cube's address space, where
consecutive 64-byte lines rotate over the vaults. Issue times (memory cycles): steps are spread evenly over
the operation's compute time; within a step every vault issues one request per memory cycle.
"""

from __future__ import annotations

import math
from typing import Iterator, Literal

import numpy as np

from ntframe.arch import Architecture
from ntframe.ir import Operation
from ntframe.mapping import Mapping
from ntframe.mapspace import Problem, analyse_batch, to_batch
from ntframe.trace import LINE_BYTES, TRACE_DTYPE, AddressMapping

Layout = Literal["vault-local", "interleaved"]


def place(mapping: AddressMapping, local: np.ndarray, vault: np.ndarray) -> np.ndarray:
    """Byte address with ``vault`` in the vault field and the vault-local byte offset spread over the other
    fields, least significant first; vaults beyond one cube's put the cube number above the cube's address
    bits."""
    address = np.zeros(local.shape, np.uint64)
    shift = consumed = 0
    local = local.astype(np.uint64)
    for field, bits in mapping.fields:
        if field == "vault":
            part = vault.astype(np.uint64) & np.uint64((1 << bits) - 1)
        else:
            part = (local >> np.uint64(consumed)) & np.uint64((1 << bits) - 1)
            consumed += bits
        address |= part << np.uint64(shift)
        shift += bits
    vault_bits = dict(mapping.fields)["vault"]
    return address | ((vault.astype(np.uint64) >> np.uint64(vault_bits)) << np.uint64(mapping.total_bits))


class _TensorStream:
    """Everything needed to emit one tensor's requests for any set of steps, as arrays."""

    def __init__(self, gen: "TraceGenerator", j: int) -> None:
        t = gen.op.tensors[j]
        self.t, self.j = t, j
        loops = gen.loops
        rel = [i for i, (d, _) in enumerate(loops) if d in t.dims]
        inner = rel[-1] if rel else -1
        self.period = math.prod(f for _, f in loops[inner + 1:])          # steps between box changes
        self.changes = gen.steps // self.period
        a = gen.analysis
        n_vaults_all = gen.vaults
        owners = [v for v, c in enumerate(gen.vault_coords)
                  if not gen.network or all(c[d] == 0 for d in gen.split if d not in t.dims)]
        self.vaults = np.array(owners, np.int64)
        inst_reads = a.reads[0, 0, j] * a.instances[0, 0] / max(1, a.vault_replication[0, j]) / len(owners) \
            if gen.network else a.reads[0, 0, j]
        inst_writes = a.updates[0, 0, j] * a.instances[0, 0] / max(1, a.vault_replication[0, j]) / len(owners) \
            if gen.network else a.updates[0, 0, j]
        del n_vaults_all
        offs = t.offsets or (0,) * len(t.projection)
        self.coef = np.array([[sum(c for dd, c in axis if dd == d) for d in gen.dims] for axis in t.projection])
        self.offs = np.array(offs, np.int64)
        self.size = np.array(t.shape, np.int64)
        under = np.array([gen.under[d] for d in gen.dims], np.int64)
        self.extent = self.coef @ (under - 1) + 1                           # box extent per axis
        box = int(np.prod(np.minimum(self.extent, self.size)))
        self.rep_r = inst_reads / (self.changes * box) if box else 0.0
        self.rep_w = inst_writes / (self.changes * box) if box else 0.0
        self.elem = t.precision_bits / 8
        share = np.array([gen.share[d] for d in gen.dims], np.int64)
        vshape = np.minimum(self.coef @ (share - 1) + 1, self.size)
        self.layout_shape = vshape if gen.layout == "vault-local" else self.size
        self.strides = np.cumprod(np.r_[1, self.layout_shape[::-1]])[::-1][1:]
        lead = [np.arange(e) for e in self.extent[:-1]]
        grids = np.meshgrid(*lead, indexing="ij") if lead else []
        self.lead = np.stack([g.ravel() for g in grids], 1) if lead else np.zeros((1, 0), np.int64)
        self.base = gen.base[t.name]

    def lines(self, gen: "TraceGenerator", steps: np.ndarray, vaults: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Line addresses and their instance index for every (step, vault) pair given as parallel arrays."""
        idx = gen.dim_index(steps)                                          # [I, D] loop-nest origin
        coord = idx + gen.vault_origin[vaults]                               # global iteration coordinates
        origin = coord @ self.coef.T + self.offs                             # [I, A] box origin per axis
        if gen.layout == "vault-local":
            vorigin = np.maximum(gen.vault_origin[vaults] @ self.coef.T + self.offs, 0)
        else:
            vorigin = np.zeros_like(origin)
        A = len(self.size)
        g = origin[:, None, :-1] + self.lead[None, :, :]                     # [I, R, A-1] leading coordinates
        valid = ((g >= 0) & (g < self.size[None, None, :-1])).all(axis=2)
        lo = np.maximum(origin[:, -1], 0)
        hi = np.minimum(origin[:, -1] + self.extent[-1], self.size[-1])
        valid &= (hi > lo)[:, None]
        local_lead = ((g - vorigin[:, None, :-1]) * self.strides[None, None, :-1]).sum(axis=2) if A > 1 else \
            np.zeros(valid.shape, np.int64)
        start = local_lead + (lo - vorigin[:, -1])[:, None]
        end = start + (hi - lo)[:, None]
        inst = np.broadcast_to(np.arange(len(steps))[:, None], valid.shape)[valid]
        first = ((start[valid] * self.elem + self.base) // LINE_BYTES).astype(np.int64)
        last = ((end[valid] * self.elem - 1 + self.base) // LINE_BYTES).astype(np.int64)
        counts = last - first + 1
        total = int(counts.sum())
        run_start = np.repeat(np.cumsum(counts) - counts, counts)
        lines = np.repeat(first, counts) + (np.arange(total) - run_start)
        owner = np.repeat(inst, counts)
        # neighbouring runs can share a line: drop repeats within an instance
        keep = np.ones(total, bool)
        keep[1:] = (lines[1:] != lines[:-1]) | (owner[1:] != owner[:-1])
        return lines[keep].astype(np.uint64) * np.uint64(LINE_BYTES), owner[keep]


class TraceGenerator:
    def __init__(self, op: Operation, mapping: Mapping, arch: Architecture, address_mapping: AddressMapping,
                 layout: Layout = "vault-local", compute_cycles: float | None = None) -> None:
        self.op, self.arch, self.am, self.layout = op, arch, address_mapping, layout
        problem = Problem(op)
        self.analysis = analyse_batch(problem, to_batch(problem, [mapping]))
        self.dims = problem.dims
        top = mapping.levels[0]
        self.loops = [(d, f) for d, f in top.temporal if f > 1]
        self.steps = math.prod(f for _, f in self.loops)
        self.split = dict(top.spatial)
        self.network = arch.network is not None
        bounds = op.bounds
        self.share = {d: bounds[d] // self.split.get(d, 1) for d in bounds}
        self.under = {d: self.share[d] // math.prod(f for dd, f in self.loops if dd == d) for d in bounds}
        split_dims = list(self.split)
        coords = np.array(np.meshgrid(*[np.arange(self.split[d]) for d in split_dims], indexing="ij")).reshape(
            len(split_dims), -1).T if split_dims else np.zeros((1, 0), np.int64)
        self.vault_coords = [dict(zip(split_dims, c.tolist())) for c in coords]
        self.vaults = len(self.vault_coords)
        self.vault_origin = np.array([[c.get(d, 0) * self.share[d] for d in self.dims] for c in self.vault_coords],
                                     np.int64)
        # loop-nest strides of each DRAM loop, in iteration coordinates
        self._loop_dim = np.array([self.dims.index(d) for d, _ in self.loops], np.int64)
        self._loop_size = np.array([f for _, f in self.loops], np.int64)
        inner = [math.prod(f for dd, f in self.loops[i + 1:] if dd == d) for i, (d, _) in enumerate(self.loops)]
        self._loop_scale = np.array([self.under[d] * s for (d, _), s in zip(self.loops, inner)], np.int64)
        self.step_cycles = (compute_cycles or self.steps) * arch_memory_ratio(arch) / self.steps
        self.base = {}
        offset = 0
        for t in op.tensors:
            self.base[t.name] = offset
            shape = t.shape
            offset += -(-(math.prod(shape) * t.precision_bits // 8 + LINE_BYTES) // 4096) * 4096
        self.streams = [_TensorStream(self, j) for j in range(len(op.tensors))]

    def dim_index(self, steps: np.ndarray) -> np.ndarray:
        """Iteration-space origin [len(steps), D] of the DRAM-level tile at each step."""
        out = np.zeros((len(steps), len(self.dims)), np.int64)
        rest = steps.astype(np.int64)
        for i in range(len(self.loops) - 1, -1, -1):
            digit = rest % self._loop_size[i]
            rest = rest // self._loop_size[i]
            out[:, self._loop_dim[i]] += digit * self._loop_scale[i]
        return out

    def chunks(self, first_step: int = 0, last_step: int | None = None, max_records: int = 1 << 20,
               count_only: bool = False) -> Iterator:
        """Canonical records of steps [first_step, last_step), in chunks of about ``max_records``."""
        last_step = self.steps if last_step is None else last_step
        span = 1                                             # grown or shrunk to hold about max_records
        lo = first_step
        while lo < last_step:
            hi = min(last_step, lo + span)
            parts = []
            for s in self.streams:
                k0, k1 = -(-lo // s.period), -(-hi // s.period)              # changes within [lo, hi)
                if k1 <= k0 or (s.rep_r <= 0 and s.rep_w <= 0):
                    continue
                k = np.arange(k0, k1)
                for write, rep in ((0, s.rep_r), (1, s.rep_w)):
                    if rep <= 0:
                        continue
                    times = (np.floor((k + 1) * rep + 1e-9) - np.floor(k * rep + 1e-9)).astype(np.int64)
                    sel = np.repeat(k, times)
                    if not len(sel):
                        continue
                    steps = np.repeat(sel * s.period, len(s.vaults))
                    vaults = np.tile(s.vaults, len(sel))
                    lines, inst = s.lines(self, steps, vaults)
                    parts.append((lines, steps[inst], vaults[inst], write, s.j))
            produced = sum(len(p[0]) for p in parts)
            per_step = max(produced / (hi - lo), 1e-9)
            span = max(1, min(2 * span + 1, int(max_records / per_step)))
            lo = hi
            if count_only:
                yield produced
                continue
            yield self._records(parts)

    def _records(self, parts) -> np.ndarray:
        if not parts:
            return np.zeros(0, TRACE_DTYPE)
        address = np.concatenate([p[0] for p in parts])
        step = np.concatenate([p[1] for p in parts])
        vault = np.concatenate([p[2] for p in parts])
        write = np.concatenate([np.full(len(p[0]), p[3], np.uint8) for p in parts])
        tensor = np.concatenate([np.full(len(p[0]), p[4], np.uint16) for p in parts])
        if self.layout == "vault-local":
            address = place(self.am, address, vault)
        group = step * (self.vaults + 1) + vault
        order = np.argsort(group, kind="stable")          # the parts are sorted runs: a merge
        address, step, vault, write, tensor, group = (x[order] for x in (address, step, vault, write, tensor, group))
        new = np.ones(len(group), bool)
        new[1:] = group[1:] != group[:-1]
        base = np.maximum.accumulate(np.where(new, np.arange(len(group)), 0))
        rank = np.arange(len(group)) - base                                   # one request per memory cycle
        out = np.zeros(len(address), TRACE_DTYPE)
        out["time"] = (np.floor(step * self.step_cycles) + rank).astype(np.uint64)
        out["address"] = address
        fields = self.am.decode(address)
        for f in ("bank", "row", "column"):
            out[f] = fields.get(f, 0)
        out["vault"] = vault if self.layout == "vault-local" else fields["vault"]     # every cube's vaults
        out["write"] = write
        out["bytes"] = LINE_BYTES
        out["tensor"] = tensor
        times = out["time"]
        if len(times) > 1 and np.any(times[1:] < times[:-1]):
            out = out[np.argsort(times, kind="stable")]
        return out

    def sample(self, max_requests: int, windows: int = 8) -> tuple[list[np.ndarray], float]:
        """The whole trace if it has at most about ``max_requests`` requests, else ``windows`` stretches of
        steps spread over the operation holding about that many in all (the requests per step are estimated
        from one step of each window). Returns (one record array per window, the share of the operation's
        steps they cover)."""
        if self.steps <= 2 * windows:
            return [np.concatenate(list(self.chunks()) or [np.zeros(0, TRACE_DTYPE)])], 1.0
        starts = [(self.steps * w) // windows for w in range(windows)]
        probe = sum(sum(self.chunks(s, s + 1, count_only=True)) for s in starts) / windows
        if probe * self.steps <= max_requests:
            return [np.concatenate(list(self.chunks()) or [np.zeros(0, TRACE_DTYPE)])], 1.0
        per_window = max(1, min(self.steps // windows, int(max_requests / windows / max(probe, 1e-9))))
        out = []
        for first in starts:
            recs = np.concatenate(list(self.chunks(first, first + per_window)) or [np.zeros(0, TRACE_DTYPE)])
            if len(recs):
                recs["time"] -= recs["time"].min()
            out.append(recs)
        return out, windows * per_window / self.steps


def arch_memory_ratio(arch: Architecture, memory_clock_GHz: float = 1.25) -> float:
    """Memory cycles per logic-die cycle (HMC 2.1: tCK 0.8 ns)."""
    return memory_clock_GHz / arch.clock_GHz


def sample_traffic(traffic, arch: Architecture, address_mapping: AddressMapping, layout: Layout, max_requests: int,
                   windows: int) -> tuple[list[np.ndarray], float]:
    """The (sampled) request trace of a memory backend's traffic: :meth:`TraceGenerator.sample` of its
    operation and mapping, paced by its compute cycles."""
    gen = TraceGenerator(traffic.op, traffic.mapping, arch, address_mapping, layout, traffic.compute_cycles)
    return gen.sample(max_requests, windows)
