"""HMC request traces from a mapping's DRAM-level tile schedule (vectorised, streamed in chunks).

The outermost storage level (the vaults' DRAM) runs its temporal loops in order; each iteration is a *step*.
For every tensor, the box of elements the levels below use during a step (the tile under the DRAM loops, in
the tensor's stored coordinates, padding clipped) is fetched whenever it changes — reads for inputs and
read-write tensors, writes for written tensors, plus partial-sum read-backs — as many times per change as
the reuse analysis counts (:func:`ntframe.mapping.mapspace.analyse_batch`), spread evenly when fractional
(each change's share rounded to the nearest whole); a stride wider than the tiles below leaves gaps in a box that
are neither read nor written. Requests are whole 64-byte lines, so a box narrower than a line along its
contiguous axis costs more than its elements (a real effect that the element-counting analysis does not see).
The vault split (spatial factors into the DRAM level) runs all vaults side by side; with a logic-die network,
data several vaults need is read by one of them (the owner) and forwarded over the network, and results several
vaults produce are written by one — as the cost model assumes — so those requests appear once.

Layouts: ``vault-local`` (default) keeps each vault's share of a tensor in that vault (every address of
vault ``v`` has vault field ``v``); ``interleaved`` stores tensors row-major in the cube's address space, where
consecutive 64-byte lines rotate over the vaults. Issue times (memory cycles): steps are spread evenly over
the operation's compute time; within a step every vault issues one request per memory cycle.

Generation is vectorised per span of steps (about ``max_records`` requests): each box's lines are a cached
relative *pattern* shifted by the box's first line. A step's requests form rows (its largest vault queue's
ranks), row r holding the r-th request of every vault that has one; each row's vaults are a bit mask, so a
request's place in the trace is its row's start plus the number of lower vaults in that mask (no grid of
empty slots when the vaults' loads are uneven). The requests, packed as (line, vault, part) integers, are
scattered to those places; the records are then written in cache-sized blocks: a table indexed by the packed
value's low bits gives each record's template (the part's write flag, bytes and tensor and the address fields
those bits fix), and the line's high bits are shifted into the address and the row.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np

from ntframe.hardware.architecture import Architecture
from ntframe.mapping.mapping import Mapping
from ntframe.mapping.mapspace import Problem, analyse_batch, to_batch
from ntframe.memory.trace import LINE_BYTES, TRACE_DTYPE, AddressMapping
from ntframe.workload.ir import Operation

Layout = Literal["vault-local", "interleaved"]


def place(mapping: AddressMapping, local: np.ndarray, vault: np.ndarray) -> np.ndarray:
    """Byte address with ``vault`` in the vault field and the vault-local byte offset spread over the other
    fields, least significant first; vaults beyond one cube's put the cube number above the cube's address
    bits."""
    local = np.asarray(local).astype(np.uint64)
    vault = np.asarray(vault).astype(np.uint64)
    names = [f for f, _ in mapping.fields]
    vault_bits = dict(mapping.fields)["vault"]
    if names.count("vault") == 1:
        # one vault field: the local bits below it stay, the rest move up past it (the usual case, 5 passes)
        below = sum(b for _, b in mapping.fields[:names.index("vault")])
        above = mapping.total_bits - below - vault_bits
        address = (local >> np.uint64(below)) & np.uint64((1 << above) - 1)
        address <<= np.uint64(below + vault_bits)
        address |= local & np.uint64((1 << below) - 1)
        address |= (vault & np.uint64((1 << vault_bits) - 1)) << np.uint64(below)
    else:
        address = np.zeros(local.shape, np.uint64)
        shift = consumed = 0
        for field, bits in mapping.fields:
            if field == "vault":
                part = vault & np.uint64((1 << bits) - 1)
            else:
                part = (local >> np.uint64(consumed)) & np.uint64((1 << bits) - 1)
                consumed += bits
            address |= part << np.uint64(shift)
            shift += bits
    return address | ((vault >> np.uint64(vault_bits)) << np.uint64(mapping.total_bits))


class _TensorStream:
    """Everything needed to emit one tensor's requests for any set of steps, as arrays.

    A box (one fetch of the tensor by one vault) is a set of *rows* — one per combination of its leading
    axes' indices — each a contiguous run along the last axis. Its lines are ``q + pattern`` where ``q`` is
    the line holding the box's first byte and the *pattern* (relative lines, in row order, repeats of the
    same line by neighbouring rows dropped) depends only on the first byte's position within its line, the
    run length, and which rows are inside the tensor (padding). Patterns are computed once and cached."""

    def __init__(self, gen: "TraceGenerator", j: int) -> None:
        t = gen.op.tensors[j]
        self.t, self.j = t, j
        loops = gen.loops
        dims = t.dims                                                       # (a property: made on each use)
        rel = [i for i, (d, _) in enumerate(loops) if d in dims]
        inner = rel[-1] if rel else -1
        self.period = math.prod(f for _, f in loops[inner + 1:])          # steps between box changes
        self.changes = gen.steps // self.period
        a = gen.analysis
        owners = [v for v, c in enumerate(gen.vault_coords)
                  if not gen.network or all(c[d] == 0 for d in gen.split if d not in dims)]
        self.vaults = np.array(owners, np.int64)
        inst_reads = a.reads[0, 0, j] * a.instances[0, 0] / max(1, a.vault_replication[0, j]) / len(owners) \
            if gen.network else a.reads[0, 0, j]
        inst_writes = a.updates[0, 0, j] * a.instances[0, 0] / max(1, a.vault_replication[0, j]) / len(owners) \
            if gen.network else a.updates[0, 0, j]
        offs = t.offsets or (0,) * len(t.projection)
        self.coef = np.array([[sum(c for dd, c in axis if dd == d) for d in gen.dims] for axis in t.projection])
        self.offs = np.array(offs, np.int64)
        self.size = np.array(t.shape, np.int64)
        under = np.array([gen.under[d] for d in gen.dims], np.int64)
        self.extent = self.coef @ (under - 1) + 1                           # box extent per axis
        # the offsets a box holds along each axis: the union of the tiles of the nearest level below the DRAM that
        # keeps the tensor (each its bounding box, as the reuse analysis counts it; one element when the compute
        # units are served directly) over the loops and splits between them: all of the box's extent, unless a
        # stride wider than those tiles leaves gaps (a strided 1x1 convolution's input, a pooling's scattered
        # gradient) that are neither read nor written
        tile = np.array([gen.kept_tile(t.name)[d] for d in gen.dims], np.int64)
        self.touched = [_touched_offsets(row, under, tile) for row in self.coef]
        self.gapped = tuple(len(t) < e for t, e in zip(self.touched, self.extent.tolist()))
        box = int(np.prod(np.minimum([len(t) for t in self.touched], self.size)))
        self.rep_r = inst_reads / (self.changes * box) if box else 0.0
        self.rep_w = inst_writes / (self.changes * box) if box else 0.0
        self.bits = t.precision_bits                                        # element size in eighths of a byte
        share = np.array([gen.share[d] for d in gen.dims], np.int64)
        vshape = np.minimum(self.coef @ (share - 1) + 1, self.size)
        self.layout_shape = vshape if gen.layout == "vault-local" else self.size
        self.strides = np.cumprod(np.r_[1, self.layout_shape[::-1]])[::-1][1:]
        self._lead: np.ndarray | None = None                               # the rows' indices: pattern() makes it
        self.base = gen.base[t.name]
        # vault-side parts of a box's origin, per owner vault
        origin = gen.vault_origin[self.vaults] @ self.coef.T + self.offs    # [V, A]
        self.vault_box = origin
        self.vault_layout = np.maximum(origin, 0) if gen.layout == "vault-local" else np.zeros_like(origin)
        # pattern keys (phase, run length, valid index range per leading axis) packed in one integer
        radices = [512, int(self.extent[-1]) + 1] + [int(e) + 1 for e in self.extent[:-1] for _ in (0, 1)]
        self.radices = radices if math.prod(radices) < 1 << 62 else None
        self._weight = [math.prod(radices[i + 1:]) for i in range(len(radices))] if self.radices else []
        self._weight_lo = np.array(self._weight[2::2], np.int64)              # of each packed column
        self._weight_hi = np.array(self._weight[3::2], np.int64)
        # the vault's part of a box's first element offset: less its layout origin along every axis
        self._row_vault = -(self.vault_layout[:, :-1] @ self.strides[:-1]) - self.vault_layout[:, -1] \
            + self.vault_box[:, :-1] @ self.strides[:-1]
        self.patterns: dict[tuple, np.ndarray] = {}
        # what a pattern depends on besides its key: other generators' streams of the same shape share them
        self._pattern_shape = (self.bits, tuple(self.extent[:-1].tolist()), tuple(self.strides[:-1].tolist()),
                               tuple(tuple(t.tolist()) if g else () for t, g in zip(self.touched, self.gapped)))

    def pattern(self, key: tuple) -> np.ndarray:
        """Relative lines of a box with key (phase in eighths of a byte, run length, then the valid index
        range [lo, hi) of each leading axis). Read-only: shared with the streams of other generators that have
        the same element size, box extent and layout strides (:data:`_PATTERNS`)."""
        pat = self.patterns.get(key)
        if pat is None:
            shared = (self._pattern_shape, key)
            pat = _PATTERNS.get(shared)
            if pat is None:
                pat = self._make_pattern(key)
                _remember_pattern(shared, pat)
            if len(self.patterns) > 4096:
                self.patterns.clear()
            self.patterns[key] = pat
        return pat

    def _make_pattern(self, key: tuple) -> np.ndarray:
        if self._lead is None:
            lead = self.touched[:-1]
            grids = np.meshgrid(*lead, indexing="ij") if lead else []
            self._lead = np.stack([g.ravel() for g in grids], 1) if lead else np.zeros((1, 0), np.int64)
            self._row_offset = self._lead @ self.strides[:-1]              # element offset of each row
        phase, length = key[0], key[1]
        ok = np.ones(len(self._lead), bool)
        for a in range(len(self.extent) - 1):
            ok &= (self._lead[:, a] >= key[2 + 2 * a]) & (self._lead[:, a] < key[3 + 2 * a])
        off = self._row_offset[ok] * self.bits + phase
        first = off // 512
        if self.gapped[-1]:     # each held element's line (its offset counted from the run's start: exact
            last = self.touched[-1]                 # unless the box is clipped at the start along the last axis)
            lines = ((off[:, None] + last[last < length][None, :] * self.bits) // 512).ravel()
        else:
            counts = (off + length * self.bits - 8) // 512 - first + 1
            total = int(counts.sum())
            lines = np.repeat(first - (np.cumsum(counts) - counts), counts) + np.arange(total)
        keep = np.ones(len(lines), bool)
        keep[1:] = lines[1:] != lines[:-1]       # neighbouring runs can share a line
        pat = lines[keep]
        pat.setflags(write=False)
        return pat

    def boxes(self, gen: "TraceGenerator", sel: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """The boxes of changes ``sel`` (one per owner vault each, [len(sel), vaults]): the line of each box's
        first byte, the patterns used, and each box's pattern index (-1: nothing to fetch).

        A box's origin along each axis is a change's part plus a vault's, and what the key takes from an axis
        depends on that origin alone: each axis' share of the packed key (and of the first byte's offset) is
        looked up in a table over the origins the boxes reach, or is one number for all of them when the axis
        is never clipped. Integer arithmetic throughout: the figures of :meth:`_boxes_by_rows`, which makes
        every box's origin (and serves keys too wide to pack)."""
        idx = gen.dim_index(sel * self.period) @ self.coef.T                 # [M, A] loop-nest part of origin
        if self.radices is None:
            return self._boxes_by_rows(idx)
        q, packed, empty = (self._keys_at_once if len(idx) * len(self.vaults) <= FEW_BOXES else self._keys_by_axis)(idx)
        m, v = len(idx), len(self.vaults)
        flat = packed.ravel()
        if empty is None:
            uniq, inverse = np.unique(flat, return_inverse=True)
            pid = inverse.reshape(m, v)
        else:
            ok = ~empty.ravel()
            pid = np.full(m * v, -1, np.int64)
            if not ok.any():
                return q, [], pid.reshape(m, v)
            uniq, inverse = np.unique(flat[ok], return_inverse=True)
            pid[ok] = inverse
            pid = pid.reshape(m, v)
        keys = []
        for value in uniq.tolist():                                          # unpacked, last column first
            key = []
            for r in self.radices[::-1]:
                value, digit = divmod(value, r)
                key.append(digit)
            keys.append(tuple(key[::-1]))
        return q, [self.pattern(k) for k in keys], pid

    def _keys_at_once(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first line, packed key, empty) of each box [M, V], from every box's origin (few boxes: fewer calls)."""
        o = idx[:, None, :] + self.vault_box[None, :, :]                    # [M, V, A] box origin per axis
        o_last = o[..., -1]
        clipped = np.maximum(o_last, 0)
        length = np.minimum(o_last + self.extent[-1], self.size[-1]) - clipped
        x = ((idx[:, :-1] @ self.strides[:-1])[:, None] + clipped + self._row_vault) * self.bits + self.base * 8
        lead = o[..., :-1]
        a_lo = np.minimum(np.maximum(-lead, 0), self.extent[:-1])
        a_hi = np.minimum(np.maximum(self.size[:-1] - lead, 0), self.extent[:-1])
        empty = (length <= 0) | (a_hi <= a_lo).any(axis=2)
        packed = (x & 511) * self._weight[0] + np.maximum(length, 0) * self._weight[1] \
            + a_lo @ self._weight_lo + a_hi @ self._weight_hi
        return x >> 9, packed, empty

    def _keys_by_axis(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """:meth:`_keys_at_once` axis by axis, each axis' share through :func:`_per_box` (None: nothing empty)."""
        m, v, last = len(idx), len(self.vaults), len(self.extent) - 1
        vb, e_last, n_last, weight = self.vault_box, int(self.extent[-1]), int(self.size[-1]), self._weight
        # first byte, in eighths of a byte: sum over the leading axes of (origin - layout origin) x stride, plus
        # the last axis' origin clipped at 0, less its layout origin
        row_m = idx[:, :-1] @ self.strides[:-1]
        o_m, o_v = idx[:, last], vb[:, last]
        if int(o_m.min()) + int(o_v.min()) >= 0:                             # never clipped: separable
            x = ((row_m + o_m) * self.bits)[:, None] + ((self._row_vault + o_v) * self.bits + self.base * 8)[None, :]
        else:
            x = (row_m * self.bits)[:, None] + (self._row_vault * self.bits + self.base * 8)[None, :]
            x += _per_box(lambda o: np.maximum(o, 0) * self.bits, o_m, o_v)
        q, phase = x >> 9, x & 511                                            # floor division by 512, remainder
        packed = phase * weight[0]
        constant, empty = 0, None

        def run(o: np.ndarray) -> tuple[np.ndarray, np.ndarray]:             # the last axis: run length, empty
            length = np.minimum(o + e_last, n_last) - np.maximum(o, 0)
            return np.maximum(length, 0) * weight[1], length <= 0

        parts = [_per_box(run, o_m, o_v, 2)]
        for a in range(last):
            e, n, w_lo, w_hi = int(self.extent[a]), int(self.size[a]), weight[2 + 2 * a], weight[3 + 2 * a]

            def valid(o: np.ndarray, e=e, n=n, w_lo=w_lo, w_hi=w_hi) -> tuple[np.ndarray, np.ndarray]:
                a_lo = np.minimum(np.maximum(-o, 0), e)
                a_hi = np.minimum(np.maximum(n - o, 0), e)
                return a_lo * w_lo + a_hi * w_hi, a_hi <= a_lo

            parts.append(_per_box(valid, idx[:, a], vb[:, a], 2))
        for code, gone in parts:
            if np.ndim(code):
                packed += code
            else:
                constant += int(code)
            if np.ndim(gone):
                empty = gone if empty is None else empty | gone
            elif gone:
                empty = np.ones((m, v), bool)
        if constant:
            packed += constant
        return q, packed, empty

    def _boxes_by_rows(self, idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """:meth:`boxes` from each box's origin and its key's columns (keys too wide to pack in 62 bits)."""
        origin = idx[:, None, :] + self.vault_box[None, :, :]                # [M, V, A] box origin per axis
        lo = np.maximum(origin[..., -1], 0)
        length = np.minimum(origin[..., -1] + self.extent[-1], self.size[-1]) - lo
        start = ((origin[..., :-1] - self.vault_layout[None, :, :-1]) * self.strides[:-1]).sum(axis=2) \
            + lo - self.vault_layout[None, :, -1]                             # element offset of row 0
        x = start * self.bits + self.base * 8                                  # in eighths of a byte
        q, phase = x // 512, x % 512
        cols = [phase, np.maximum(length, 0)]
        empty = length <= 0
        for a in range(len(self.extent) - 1):
            o, e, n = origin[..., a], self.extent[a], self.size[a]
            a_lo, a_hi = np.clip(-o, 0, e), np.clip(n - o, 0, e)
            empty |= a_hi <= a_lo
            cols += [a_lo, a_hi]
        keys = np.stack([c.ravel() for c in cols], 1)[~empty.ravel()]
        pid = np.full(empty.size, -1, np.int64)
        if not len(keys):
            return q, [], pid.reshape(empty.shape)
        if self.radices is not None:
            packed = np.zeros(len(keys), np.int64)
            for c, r in zip(keys.T, self.radices):
                packed = packed * r + c
            _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
            uniq = keys[first]
        else:
            uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        pid[~empty.ravel()] = inverse.ravel()
        return q, [self.pattern(tuple(k)) for k in uniq.tolist()], pid.reshape(empty.shape)


def _spread(k: np.ndarray, rep: float) -> np.ndarray:
    """How many times changes ``k`` fetch a part fetched ``rep`` times per change on average: ``rep`` spread
    evenly, each change's share rounded to the nearest whole, so that ``n`` changes fetch ``round(n * rep)`` in all
    (a box whose halo is clipped at the tensor's edge has ``rep`` just under 1: every change fetches it once)."""
    return (np.floor((k + 1) * rep + 0.5 + 1e-9) - np.floor(k * rep + 0.5 + 1e-9)).astype(np.int64)


def _touched_offsets(coef: np.ndarray, under: np.ndarray, tile: np.ndarray) -> np.ndarray:
    """The offsets along one axis (``coef`` over the dimensions) that a box with extents ``under`` holds when it is
    the union of tiles with extents ``tile`` (each its whole bounding box) laid side by side: sorted."""
    offsets = np.arange(int(coef @ (tile - 1)) + 1, dtype=np.int64)
    for c, n, e in zip(coef.tolist(), under.tolist(), tile.tolist()):
        if c and n > e:
            offsets = np.unique(offsets[:, None] + c * e * np.arange(n // e, dtype=np.int64)[None, :])
    return offsets


_LINE_COUNTS: "OrderedDict[tuple, LineCounts]" = OrderedDict()
""":meth:`TraceGenerator.line_counts` by (operation, mapping, logic-die network or not, layout, its arguments),
the latest LINE_COUNTS_KEPT (and at most LINE_COUNTS_BYTES of arrays)."""
LINE_COUNTS_KEPT = 32
LINE_COUNTS_BYTES = 64 << 20
_line_counts_bytes = [0]                             # held in _LINE_COUNTS


def _remember_line_counts(key: tuple, counts: "LineCounts") -> None:
    size = counts.nbytes
    if size > LINE_COUNTS_BYTES // 4:
        return
    _LINE_COUNTS[key] = counts
    _line_counts_bytes[0] += size
    while len(_LINE_COUNTS) > LINE_COUNTS_KEPT or _line_counts_bytes[0] > LINE_COUNTS_BYTES:
        _line_counts_bytes[0] -= _LINE_COUNTS.popitem(last=False)[1].nbytes


_PATTERNS: dict[tuple, np.ndarray] = {}
"""Patterns by (element size, box extent, layout strides) and key, shared by every generator of the process: the
native cost model counts the lines of several mappings of an operation, and the memory backend those of the one
kept, whose boxes are often alike. Emptied when it holds PATTERN_MEMO_LINES lines."""
PATTERN_MEMO_LINES = 1 << 22
_pattern_lines = [0]


def _remember_pattern(shared: tuple, pat: np.ndarray) -> None:
    if len(pat) > PATTERN_MEMO_LINES // 4:
        return
    if _pattern_lines[0] + len(pat) > PATTERN_MEMO_LINES:
        _PATTERNS.clear()
        _pattern_lines[0] = 0
    _PATTERNS[shared] = pat
    _pattern_lines[0] += len(pat)


FEW_BOXES = 2048
"""Up to this many boxes :meth:`_TensorStream.boxes` makes every box's origin at once; more, axis by axis."""


def _per_box(f, part_m: np.ndarray, part_v: np.ndarray, outputs: int = 1):
    """``f`` (elementwise, integer) at every box's origin along one axis, ``part_m[:, None] + part_v[None, :]``:
    from a table of ``f`` over the origins' range when that is no longer than the boxes are many, each output a
    single number when the table holds one value; else ``f`` on every box. ``outputs``: how many arrays ``f``
    returns (1: one array, not a tuple)."""
    m, v = len(part_m), len(part_v)
    if not m or not v:
        return f(np.zeros((m, v), np.int64))
    low = int(part_m.min()) + int(part_v.min())
    span = int(part_m.max()) + int(part_v.max()) - low + 1
    if span > m * v:
        return f(part_m[:, None] + part_v[None, :])
    tables = f(np.arange(low, low + span, dtype=np.int64))
    tables = (tables,) if outputs == 1 else tables
    index = None
    out = []
    for table in tables:
        if (table == table[0]).all():
            out.append(table[0])                                             # a numpy scalar
        else:
            if index is None:
                index = (part_m - low)[:, None] + part_v[None, :]
            out.append(table.take(index))
    return out[0] if outputs == 1 else tuple(out)


class TraceGenerator:
    def __init__(self, op: Operation, mapping: Mapping, arch: Architecture, address_mapping: AddressMapping | None,
                 layout: Layout = "vault-local", compute_cycles: float | None = None) -> None:
        self.op, self.arch, self.am, self.layout = op, arch, address_mapping, layout
        self.mapping = mapping
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
        self._vault_bits = max(1, (self.vaults - 1).bit_length())            # bits of a vault number
        part_bits = max(1, (2 * len(self.streams) - 1).bit_length())       # bits of a part (2 * tensor + write)
        self._decoder = _Decoder(address_mapping, layout, self._vault_bits, part_bits) \
            if address_mapping is not None else None                   # None: counting only (line_counts)
        self._work = np.zeros(0, np.int64)
        self._steps_made: dict[int, _StepBoxes] = {}                    # _step_boxes, by step
        self._steps_held = 0                                             # boxes in them

    def kept_tile(self, tensor: str) -> dict[str, int]:
        """Extents per dimension of the tile of ``tensor`` at the nearest level below the DRAM that keeps it (all
        ones when none does: the compute units are served point by point)."""
        levels = self.mapping.levels
        kept = next((i for i in range(1, len(levels)) if tensor not in levels[i].bypass), len(levels))
        tile = {d: 1 for d in self.dims}
        factors = [f for level in levels[kept:] for f in level.temporal]
        factors += [f for level in levels[kept + 1:] for f in level.spatial] + list(self.mapping.compute_spatial)
        for d, f in factors:
            tile[d] *= f
        return tile

    @property
    def boxes(self) -> int:
        """How many boxes (one tensor's tile fetched or written by one vault) the trace holds, about: what
        counting its lines costs."""
        return sum(s.changes * len(s.vaults) * ((s.rep_r > 0) + (s.rep_w > 0)) for s in self.streams)

    def line_counts(self, max_boxes: int = 1 << 16, every_change: bool = False) -> "LineCounts":
        """The whole trace's requests counted without making it: per tensor, read and write, per step and (up to
        4 M steps x vaults) per step and issuing vault (every change of every tensor's box, each box's lines from
        its pattern; exact, as the records would sum). Beyond that, a part fetched a whole number of times per
        change counts each combination of its tensor's loops once (:meth:`_count_repeating`; ``every_change``:
        not, for the tests). The counts are kept for the process's latest operations and mappings
        (:data:`_LINE_COUNTS`): the native cost model counts a mapping's lines, then the memory backend the same
        mapping's. Their arrays are read-only."""
        key = (self.op, self.mapping, self.network, self.layout, max_boxes, every_change)
        try:
            kept = _LINE_COUNTS.get(key)
        except TypeError:                                   # a field that cannot be hashed: not kept
            return self._line_counts(max_boxes, every_change)
        if kept is None:
            kept = self._line_counts(max_boxes, every_change)
            for array in (kept.lines, kept.per_step, kept.per_step_vault):
                if array is not None:
                    array.setflags(write=False)
            _remember_line_counts(key, kept)
        else:
            _LINE_COUNTS.move_to_end(key)
        return kept

    def _line_counts(self, max_boxes: int, every_change: bool) -> "LineCounts":
        lines = np.zeros((len(self.streams), 2), np.int64)
        per_step = np.zeros(self.steps, np.int64)
        nv = 1 << self._vault_bits
        by_vault = np.zeros((self.steps, nv), np.int64) if self.steps * nv <= 1 << 22 else None
        for s in self.streams:
            chunk = max(1, max_boxes // max(1, len(s.vaults)))
            for write, rep in ((0, s.rep_r), (1, s.rep_w)):
                if rep <= 0:
                    continue
                if by_vault is None and abs(rep - round(rep)) < 1e-9 and not every_change:
                    self._count_repeating(s, write, round(rep), lines, per_step, max_boxes)
                    continue
                for k0 in range(0, s.changes, chunk):
                    k = np.arange(k0, min(s.changes, k0 + chunk))
                    times = _spread(k, rep)
                    k, times = k[times > 0], times[times > 0]
                    if not len(k):
                        continue
                    _, patterns, pid = s.boxes(self, k)
                    sizes = np.array([len(p) for p in patterns] + [0], np.int64)
                    boxes = sizes[pid] * times[:, None]                  # requests of each change and vault
                    n = boxes.sum(axis=1)
                    lines[s.j, write] += int(n.sum())
                    per_step[k * s.period] += n                          # k distinct: one add per step
                    if by_vault is not None:
                        by_vault[(k * s.period)[:, None], s.vaults[None, :]] += boxes
        return LineCounts([t.tensor for t in self.op.tensors], lines, per_step, by_vault)

    def _count_repeating(self, s: "_TensorStream", write: int, times: int, lines: np.ndarray, per_step: np.ndarray,
                         max_boxes: int) -> None:
        """:meth:`line_counts` of one part fetched a whole number of times per change, when there are too many
        steps to count by vault: a change's box depends only on the loops that index the tensor, so the boxes of
        their combinations are counted once and every change takes its combination's count."""
        inner = len(self.loops) - 1 - next((i for i, (d, _) in enumerate(reversed(self.loops)) if d in s.t.dims),
                                           len(self.loops))
        radices = [f for _, f in self.loops[:inner + 1]]              # a change's digits, outermost first
        relevant = [d in s.t.dims for d, _ in self.loops[:inner + 1]]
        place = np.cumprod([1, *radices[::-1]])[:-1][::-1]           # weight of each digit in a change's index
        kept = [r if rel else 1 for r, rel in zip(radices, relevant)]
        combos = math.prod(kept)
        # the first change of each combination of the relevant digits (the others' digits 0)
        idx = np.arange(combos, dtype=np.int64)
        first = np.zeros(combos, np.int64)
        rest = idx.copy()
        for i in range(len(kept) - 1, -1, -1):
            first += (rest % kept[i]) * place[i]
            rest //= kept[i]
        n_combo = np.zeros(combos, np.int64)
        step_boxes = max(1, max_boxes // max(1, len(s.vaults)))
        for c0 in range(0, combos, step_boxes):
            sel = first[c0:c0 + step_boxes]
            _, patterns, pid = s.boxes(self, sel)
            sizes = np.array([len(p) for p in patterns] + [0], np.int64)
            n_combo[c0:c0 + len(sel)] = sizes[pid].sum(axis=1) * times
        for k0 in range(0, s.changes, 1 << 22):                       # each change: its combination's count
            k = np.arange(k0, min(s.changes, k0 + (1 << 22)), dtype=np.int64)
            combo = np.zeros(len(k), np.int64)
            rest = k.copy()
            weight = 1
            for i in range(len(radices) - 1, -1, -1):
                digit = rest % radices[i]
                rest //= radices[i]
                if relevant[i]:
                    combo += digit * weight
                    weight *= radices[i]
            n = n_combo[combo]
            lines[s.j, write] += int(n.sum())
            per_step[k * s.period] += n

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
        """Canonical records of steps [first_step, last_step), in chunks of at most ``max_records``.

        Steps are taken in spans sized to hold about ``max_records`` (from the previous span's rate); a
        span's records are ordered by issue time, then step, then vault (this order is the trace's: a
        request issued late in a busy step is not moved past the next span's), then cut to size.
        ``count_only`` yields each span's number of requests instead."""
        last_step = self.steps if last_step is None else last_step
        span = 1                                             # grown or shrunk to hold about max_records
        lo = first_step
        while lo < last_step:
            hi = min(last_step, lo + span)
            parts, count = self._boxes(lo, hi)
            produced = int(count.sum())
            per_step = max(produced / (hi - lo), 1e-9)
            span = max(1, min(2 * span + 1, int(max_records / per_step)))
            if count_only:
                yield produced
            else:
                recs = self._records(lo, hi, parts, count, produced)
                if len(recs) <= max_records:
                    yield recs
                else:
                    for i in range(0, len(recs), max(1, max_records)):
                        yield recs[i:i + max(1, max_records)]
            lo = hi

    def _boxes(self, lo: int, hi: int) -> tuple[list, int]:
        """Every fetch of steps [lo, hi): per part (tensor, read or write) the changes' boxes and where each
        box's requests go within its (step, vault) group; returns (parts, number of requests)."""
        nv = 1 << self._vault_bits
        count = np.zeros((hi - lo) * nv, np.int64)          # requests so far per (step, vault) group
        parts = []
        for s in self.streams:
            k0, k1 = -(-lo // s.period), -(-hi // s.period)              # changes within [lo, hi)
            if k1 <= k0 or (s.rep_r <= 0 and s.rep_w <= 0):
                continue
            k = np.arange(k0, k1)
            for write, rep in ((0, s.rep_r), (1, s.rep_w)):
                if rep <= 0:
                    continue
                times = _spread(k, rep)
                sel = np.repeat(k, times)                    # a change fetched twice appears twice, in a row
                if not len(sel):
                    continue
                q, patterns, pid = s.boxes(self, sel)
                sizes = np.array([len(p) for p in patterns] + [0], np.int64)
                n = sizes[pid]                                                   # [M, V] requests per box
                group = (sel * s.period - lo)[:, None] * nv + s.vaults[None, :]
                done = np.cumsum(n, axis=0) - n                                  # earlier boxes of this part
                first = np.searchsorted(sel, sel)                               # first repeat of each change
                offset = count[group] + done - done[first]                     # rank of the box's first request
                np.add.at(count, group, n)
                parts.append((s, write, q, patterns, pid, group, offset))
        return parts, count

    def _records(self, lo: int, hi: int, parts: list, count: np.ndarray, produced: int,
                 in_step_order: bool = False) -> np.ndarray | None:
        """The records of steps [lo, hi) in trace order: within a step, round-robin over the vaults (each
        vault issues one request per memory cycle), a vault's requests in part order. ``in_step_order``: None
        when a step's requests outlast the next step's start (the records are then sorted by time)."""
        if not produced:
            return np.zeros(0, TRACE_DTYPE)
        vb = self._vault_bits
        nv = 1 << vb
        words_per_row = -(-nv // 32)
        # Rows: a step's rows are the ranks of its largest (step, vault) group; row r of a step holds the r-th
        # request of every vault that has one, in vault order, and is issued at the step's start + its row.
        per_vault = count.reshape(hi - lo, nv)
        rows = per_vault.max(axis=1)
        row0 = np.cumsum(rows) - rows
        n_rows = int(rows.sum())
        step_time = np.floor(np.arange(lo, hi) * self.step_cycles).astype(np.int64)
        row_time = np.repeat(step_time - row0, rows) + np.arange(n_rows)
        overlap = n_rows > 1 and bool(np.any(row_time[1:] < row_time[:-1]))   # a step outlasts the next's start
        if overlap and in_step_order:
            return None
        # Which vaults each row holds, as 32-vault bit masks (cells [row, word]): vault v's bit is set in rows
        # row0 .. row0 + count - 1 of each step, summed from a difference array (float sums of distinct bits
        # below 2**32 are exact). A request's output position is then its cell's start plus the number of
        # lower vaults in its row's mask — no grid of (row, vault) slots, however uneven the vaults' loads.
        step, vault = np.nonzero(per_vault)
        first = row0[step] * words_per_row + (vault >> 5)
        after = first + per_vault[step, vault] * words_per_row
        bit = np.left_shift(1, vault & 31).astype(np.float64)
        cells = (n_rows + 1) * words_per_row
        diff = np.bincount(first, bit, cells) - np.bincount(after, bit, cells)
        masks = np.cumsum(diff.reshape(n_rows + 1, words_per_row), axis=0)[:-1].astype(np.uint32).ravel()
        width = np.bitwise_count(masks).astype(np.int64)    # requests per cell
        start = np.cumsum(width) - width                     # output position of each cell's first request
        # scatter every request's packed value (line, vault, part) to its output position
        dec = self._decoder
        ordered = self._scratch(produced)
        for s, write, q, patterns, pid, group, offset in parts:
            vault = group & (nv - 1)
            cell0 = ((row0[group >> vb] + offset) * words_per_row + (vault >> 5)).ravel()   # first request's cell
            lower = (np.left_shift(1, vault & 31) - 1).astype(np.uint32).ravel()            # lower vaults in it
            value0 = dec.pack(q, vault, 2 * s.j + write).ravel()
            flat = pid.ravel()
            order = np.argsort(flat, kind="stable")
            bounds = np.searchsorted(flat[order], np.arange(len(patterns) + 1))
            for u, pat in enumerate(patterns):
                boxes = order[bounds[u]:bounds[u + 1]]
                if not len(pat) or not len(boxes):
                    continue
                cell = cell0[boxes][:, None] + np.arange(0, len(pat) * words_per_row, words_per_row)
                position = start.take(cell)
                mask = masks.take(cell)
                mask &= lower[boxes][:, None]
                position += np.bitwise_count(mask)
                ordered[position] = value0[boxes][:, None] + (pat << dec.shift)
        out = np.empty(produced, TRACE_DTYPE)
        if words_per_row > 1:
            width = width.reshape(n_rows, words_per_row).sum(axis=1)
        dec.fill(out.view("<i8").reshape(produced, 4), ordered, np.repeat(row_time, width))
        if overlap:
            out = out[np.argsort(out["time"], kind="stable")]
        return out

    def in_step_order(self, first_step: int, last_step: int,
                      max_records: int = 1 << 20) -> tuple[np.ndarray, np.ndarray] | None:
        """The records of steps [first_step, last_step) as :meth:`chunks` gives them, end to end, and each step's
        number of requests — made at once, when no step's requests outlast the next step's start (the trace is
        then in step order, and how chunks cuts it into spans changes nothing) and they are at most
        ``max_records``; else None."""
        parts, count = self._boxes(first_step, last_step)
        produced = int(count.sum())
        if produced > max_records:
            return None
        records = self._records(first_step, last_step, parts, count, produced, in_step_order=True)
        if records is None:
            return None
        return records, count.reshape(last_step - first_step, 1 << self._vault_bits).sum(axis=1)

    def _row_window(self, step: int, row_lo: int, row_hi: int) -> np.ndarray:
        """The records of issue rows [row_lo, row_hi) of one step, in trace order, times from the stretch's
        first row: each box's requests hold consecutive rows of its vault from its rank on, so only the part of
        each box inside the rows is made (from the step's boxes, :meth:`_step_boxes`)."""
        t = self._step_boxes(step)
        nv = 1 << self._vault_bits
        lo = np.minimum(np.maximum(row_lo - t.first, 0), t.size)
        n = np.minimum(np.maximum(row_hi - t.first, 0), t.size) - lo
        boxes = np.flatnonzero(n > 0)
        if not len(boxes):
            return np.zeros(0, TRACE_DTYPE)
        lo, n = lo[boxes], n[boxes]
        i = np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(int(n.sum()))   # request index in its box
        b = np.repeat(boxes, n)
        value = t.value0[b] + (t.lines[t.start[b] + i] << self._decoder.shift)
        rank = t.first[b] + i
        place = (rank - row_lo) * nv + t.vault[b]                            # row by row, vaults in order
        order = None
        if (row_hi - row_lo) * nv <= 8 * len(place) + 4096:                  # placed in a grid of (row, vault)
            slots = np.full((row_hi - row_lo) * nv, -1, np.int64)            # (a row holds a vault once)
            slots[place] = np.arange(len(place))
            order = slots[slots >= 0]
        if order is None or len(order) != len(place):
            order = np.argsort(place, kind="stable")
        out = np.empty(len(order), TRACE_DTYPE)
        self._decoder.fill(out.view("<i8").reshape(len(order), 4), value[order], rank[order] - row_lo)
        return out

    def _step_boxes(self, step: int) -> "_StepBoxes":
        """One step's boxes as a table, in the order :meth:`_row_window` makes its records: by part, then by
        pattern (in key order), then by box. Made for a block of neighbouring steps at once (about
        STEP_BLOCK_BOXES boxes: one call of :meth:`_boxes` instead of one per step) and kept (a sample draws
        several stretches of rows from a step, each after a warm-up of the rows before it) up to
        STEP_BOXES_HELD boxes."""
        table = self._steps_made.get(step)
        if table is not None:
            return table
        span = max(1, min(self.steps, int(STEP_BLOCK_BOXES * self.steps / max(1, self.boxes))))
        lo = step - step % span
        hi = min(self.steps, lo + span)
        parts, _ = self._boxes(lo, hi)
        vb = self._vault_bits
        nv = 1 << vb
        dec = self._decoder
        cols: list[list[np.ndarray]] = [[], [], [], [], [], []]
        lines, held, most = [], 0, 1 + max((len(part[3]) for part in parts), default=0)
        for t, (s, write, q, patterns, pid, group, offset) in enumerate(parts):
            flat = pid.ravel()
            keep = np.flatnonzero(flat >= 0)
            u = flat[keep]
            sizes = np.array([len(pat) for pat in patterns], np.int64)
            starts = np.cumsum(sizes) - sizes + held
            held += int(sizes.sum())
            lines += patterns
            vault = group & (nv - 1)
            # sort key: step, then part, then pattern (ties: box order)
            order = ((group.ravel()[keep] >> vb) * len(parts) + t) * most + u
            for col, values in zip(cols, (dec.pack(q, vault, 2 * s.j + write).ravel()[keep], offset.ravel()[keep],
                                          vault.ravel()[keep], starts[u], sizes[u], order)):
                col.append(values)
        value0, first, vault, start, size, order = (np.concatenate(c) if c else np.zeros(0, np.int64) for c in cols)
        by = np.argsort(order, kind="stable")
        value0, first, vault, start, size = (x[by] for x in (value0, first, vault, start, size))
        edges = np.searchsorted(order[by], np.arange(hi - lo + 1) * len(parts) * most).tolist()
        lines = np.concatenate(lines) if lines else np.zeros(0, np.int64)
        if self._steps_held + len(value0) > STEP_BOXES_HELD:
            self._steps_made.clear()
            self._steps_held = 0
        for k in range(hi - lo):
            a, b = edges[k], edges[k + 1]
            self._steps_made[lo + k] = _StepBoxes(value0[a:b], first[a:b], vault[a:b], start[a:b], size[a:b], lines)
        self._steps_held += len(value0)
        return self._steps_made[step]

    def _scratch(self, n: int) -> np.ndarray:
        """An int64 work array of ``n`` elements, kept between spans (a fresh one each span costs page faults);
        only :meth:`_records` uses it, and nothing it returns is a view of it."""
        if len(self._work) < n:
            self._work = np.empty(n, np.int64)
        return self._work[:n]



STEP_BOXES_HELD = 1 << 18
"""Boxes a generator keeps of the steps :meth:`TraceGenerator._row_window` read lately (about 10 MB)."""
STEP_BLOCK_BOXES = 1 << 13
"""Boxes (about) of the block of steps :meth:`TraceGenerator._step_boxes` makes at once."""


@dataclass(frozen=True)
class _StepBoxes:
    """A step's boxes, one entry per box that fetches something: the packed value of its first line
    (:meth:`_Decoder.pack`), its first request's rank in its vault, its vault, where its pattern starts in
    ``lines`` (the patterns of its block of steps, end to end) and the pattern's length."""

    value0: np.ndarray
    first: np.ndarray
    vault: np.ndarray
    start: np.ndarray
    size: np.ndarray
    lines: np.ndarray


@dataclass(frozen=True)
class LineCounts:
    """The DRAM requests (whole ``LINE_BYTES`` lines) of an operation's trace: ``lines[j, write]`` of its tensor
    ``j`` (``tensors[j]``, the global names; a tensor an operation names twice is added up by
    :meth:`read_bytes_by_tensor`), and per DRAM-level step."""

    tensors: list[str]
    lines: np.ndarray              # [tensors, 2]: reads, writes
    per_step: np.ndarray           # [steps]
    per_step_vault: np.ndarray | None = None    # [steps, vaults]: each vault's requests (None: too many steps)

    @property
    def requests(self) -> int:
        return int(self.lines.sum())

    @property
    def nbytes(self) -> int:
        """Bytes its arrays hold."""
        return sum(a.nbytes for a in (self.lines, self.per_step, self.per_step_vault) if a is not None)

    def _by_tensor(self, write: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, n in zip(self.tensors, self.lines[:, write].tolist()):
            if n:
                out[name] = out.get(name, 0) + n * LINE_BYTES
        return out

    def read_bytes_by_tensor(self) -> dict[str, int]:
        return self._by_tensor(0)

    def write_bytes_by_tensor(self) -> dict[str, int]:
        return self._by_tensor(1)


class _Decoder:
    """Writes records from packed request values ``line << shift | vault << part_bits | part`` (part: 2 * tensor
    + write; the vault only in the vault-local layout, where the record's vault is the issuing vault).

    A value's low bits — part, vault and the line's low ``low_bits`` — index a table of record templates (four
    64-bit words: time 0; the address bits they fix; vault/bank/row and column/write/bytes/tensor with every
    field slice of those address bits). The line's other bits, shifted (and masked) into place, are OR-ed into
    the address and into the field slices they reach (usually just the row). Records are written in blocks
    that stay in cache."""

    def __init__(self, mapping: AddressMapping, layout: Layout, vault_bits: int, part_bits: int) -> None:
        self.mapping, self.local = mapping, layout == "vault-local"
        self.part_bits, self.vault_bits = part_bits, vault_bits
        self.shift = part_bits + (vault_bits if self.local else 0)
        names = [f for f, _ in mapping.fields]
        vault_field = dict(mapping.fields)["vault"]
        below = sum(b for _, b in mapping.fields[:names.index("vault")])
        line_bits = LINE_BYTES.bit_length() - 1
        top = mapping.total_bits - mapping.fields[-1][1]             # where the last field (the row) starts
        # address = template | (line >> low_bits & high_mask) << high_place, the tables indexed by 2**16 values
        # at most unless the layout needs more
        self.split = not self.local or names.count("vault") == 1
        if not self.local:                                           # address = line << 6
            low = max(0, min(top - line_bits, 16 - self.shift))
            self.high_mask, self.high_place = None, low + line_bits
        elif self.split:                                             # place(): the vault field cut into the line
            need = max(0, below - line_bits)                         # line bits below the vault field
            low = max(need, min(top - line_bits - vault_field, 16 - self.shift))
            above = mapping.total_bits - below - vault_field
            self.high_mask = ((1 << above) - 1) >> (low + line_bits - below)
            self.high_place = low + line_bits + vault_field
        else:                                                        # several vault fields: place() per block
            low, self.high_mask, self.high_place = 0, None, 0
        self.high_shift = self.shift + low
        known = self.high_place if self.split else 0                 # address bits the templates fix
        index = np.arange(1 << self.high_shift, dtype=np.int64)
        self.index_mask = len(index) - 1
        part = index & ((1 << part_bits) - 1)
        vault = (index >> part_bits) & ((1 << vault_bits) - 1)
        line = index >> self.shift
        if not self.local:
            address = line << line_bits
        elif self.split:
            address = place(mapping, line << line_bits, vault).view(np.int64)
        else:
            address = np.zeros(len(index), np.int64)
        self.table = np.zeros((len(index), 4), np.int64)
        self.table[:, 1] = address
        self.table[:, 2] = vault & 0xFFFF if self.local else 0
        self.table[:, 3] = (part >> 1 << 48) | ((part & 1) << 16) | (LINE_BYTES << 32)
        where = {"vault": (2, 0, 16), "bank": (2, 16, 16), "row": (2, 32, 32), "column": (3, 0, 16)}
        self.slices = []                                             # (shift, mask, word, position) beyond them
        shift, seen = 0, {}
        for field, bits in mapping.fields:
            low_bit = seen.get(field, 0)
            seen[field] = low_bit + bits
            keep = min(bits, where[field][2] - low_bit) if field in where else 0
            if keep > 0 and not (field == "vault" and self.local):
                word, pos = where[field][:2]
                cut = (shift, (1 << keep) - 1, word, pos + low_bit)
                self.table[:, word] |= ((address >> shift) & cut[1]) << cut[3]
                if shift + keep > known:
                    self.slices.append(cut)
            shift += bits

    def pack(self, q: np.ndarray, vault: np.ndarray, part: int) -> np.ndarray:
        """Packed values of lines ``q`` fetched by vaults ``vault`` for ``part``; adding ``pattern << shift``
        moves them to other lines."""
        value = (q << self.shift) | part
        if self.local:
            value |= vault << self.part_bits
        return value

    def fill(self, words: np.ndarray, values: np.ndarray, time: np.ndarray, block: int = 1 << 13) -> None:
        """Writes records (``words``: [len(values), 4] int64) from packed values and issue times."""
        n = len(values)
        index, high, tmp = np.empty((3, min(block, n)), np.int64)
        for a in range(0, n, block):
            b = min(n, a + block)
            rec, val, i, h, t = words[a:b], values[a:b], index[:b - a], high[:b - a], tmp[:b - a]
            np.bitwise_and(val, self.index_mask, out=i)
            np.take(self.table, i, axis=0, out=rec, mode="clip")
            if self.split:                                           # the address bits above the templates'
                np.right_shift(val, self.high_shift, out=h)
                if self.high_mask is not None:
                    h &= self.high_mask
                h <<= self.high_place
            else:
                vault = (val >> self.part_bits) & ((1 << self.vault_bits) - 1)
                h[:] = place(self.mapping, val >> self.shift << (LINE_BYTES.bit_length() - 1), vault).view(np.int64)
            rec[:, 0] = time[a:b]
            rec[:, 1] |= h
            for shift, mask, word, pos in self.slices:
                np.right_shift(h, shift, out=t)
                t &= mask
                t <<= pos
                rec[:, word] |= t


def arch_memory_ratio(arch: Architecture) -> float:
    """Memory cycles per logic-die cycle: the DRAM's ``timings.tCK_ns`` from the architecture file (HMC 2.1's
    0.8 ns where the file gives none)."""
    tck_ns = dict(arch.levels[0].timings).get("tCK_ns", 0.8)
    return 1.0 / tck_ns / arch.clock_GHz
