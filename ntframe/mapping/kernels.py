"""The native cost model's batch pricing, compiled with numba (optional: the ``fast`` extra).

:func:`price_batch` gives, for every mapping of a :class:`~ntframe.mapping.mapspace.MappingBatch`, the energy and
cycles that :func:`ntframe.mapping.mapspace.analyse_batch` followed by the ``native`` cost model's ``price`` give,
to the last bit, one mapping at a time. The searches price batches of one to a few hundred mappings, some ten
thousand times per network: numpy spends some 0.5 ms per call on about a hundred small array operations whatever
the batch size, and some 10 µs per mapping; here a call costs about a microsecond per mapping.

Bit for bit: integers (tile extents, loop counts, sibling products) are exact in any order and are computed as
integers; every floating-point operation is the numpy code's, in its order: the divisions and roundings as
written there, products over a tensor's axes (``np.multiply.reduceat``) and sums over tensors and over levels
(``.sum(axis=...)`` over at most 7 items, which numpy adds left to right) from the first item on, the energy as
the levels' sum, then the network's, then the reductions'. ``tests/test_pricing_kernel.py`` checks it against the
numpy code on sampled batches of every shipped architecture. Not covered, and left to numpy by the caller: a share
that is a fraction (a batch that does not factorise the bounds: numpy counts its first touches with a
floating-point matrix product whose order is BLAS's), a tensor without axes, and problems with more than 7
levels or tensors (numpy sums 8 items or more pairwise).

One function, for one set of argument types (the caller passes C-ordered int64, bool and float64 arrays): numba
takes about 3 s to compile it on the first call (type inference and lowering, more than LLVM; helper functions
split out, tried, took longer), then caches it on disk (``NUMBA_CACHE_DIR``, by default ``~/.cache/ntframe-jit``),
from where a process loads it in about 0.2 s, after importing numba (about 0.3 s). Imported only when the native
cost model first prices a batch (through :mod:`ntframe.jit`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

READ, ACCUMULATE, READWRITE, WRITE = 0, 1, 2, 3     # ntframe.mapping.mapspace's role codes


@njit(cache=True, nogil=True)
def price_batch(T, S, R, keep, bounds, rel, coef, axes, roles, bits, shape, read_pJ, write_pJ, bytes_per_cycle,
                line_bytes, network, hops, hop_pJ, noc_bytes_per_cycle, noc_add_pJ, reduction, reduction_add_pJ,
                compute_energy_pJ, ops_per_point, ops_per_cycle, energy, cycles):
    """Fill ``energy[B]`` and ``cycles[B]``; False (nothing filled) when a share is a fraction.

    Batch: ``T``, ``R`` [B, K, D], ``S`` [B, K+1, D] (int64), ``keep`` [B, K, Tn]. Problem: ``bounds`` [D],
    ``rel`` [Tn, D], ``coef`` [A, D] (every tensor's axes), ``axes`` [Tn, 2] (each tensor's first axis and the one
    past its last), ``roles`` [Tn], ``bits`` [Tn], ``shape`` [A] (stored shape). Architecture, per level [K]:
    energies per bit and bytes per cycle; ``line_bytes`` (0: count elements); the network (``network`` False:
    none) and the spatial reduction's add energy per tensor (``reduction`` False: not charged); the datapath's
    energy for the whole operation, ``ops_per_point`` and ``ops_per_cycle``."""
    B, K, D = T.shape
    Tn = keep.shape[2]
    A = coef.shape[0]
    for b in range(B):                          # every share whole (else numpy's rounding of fractions)
        for d in range(D):
            split = 1
            for lvl in range(K):
                split *= S[b, lvl, d]
                if bounds[d] % split != 0:
                    return False
    E = np.empty((K + 1, D), np.int64)          # tile extents of every level, the compute units' last
    divided = np.empty(D, np.int64)
    instances = np.empty(K, np.int64)
    ext = np.empty((K, A))                      # indices each axis spans over the tile of child level c + 1
    share_ext = np.empty(A)
    first = np.empty((K, Tn))                   # elements one instance of a level touches over the operation
    moved = np.empty((K, Tn))                   # elements brought into child level c + 1 over the operation
    reads, fills, updates, adds = np.empty((K, Tn)), np.empty((K, Tn)), np.empty((K, Tn)), np.empty((K, Tn))
    parent = np.empty((K, Tn), np.int64)
    active = np.empty((K, Tn), np.bool_)
    for b in range(B):
        for d in range(D):
            E[K, d] = 1
        for lvl in range(K - 1, -1, -1):
            for d in range(D):
                E[lvl, d] = E[lvl + 1, d] * T[b, lvl, d] * S[b, lvl + 1, d]
        steps = 1
        n = 1
        for lvl in range(K):
            for d in range(D):
                steps *= T[b, lvl, d]
                n *= S[b, lvl, d]
            instances[lvl] = n
        for c in range(K):
            for a in range(A):
                s = 0
                for d in range(D):
                    s += (E[c + 1, d] - 1) * coef[a, d]
                ext[c, a] = float(s + 1)
        for d in range(D):
            divided[d] = 1
        for lvl in range(K):
            for d in range(D):
                divided[d] *= S[b, lvl, d]
            for a in range(A):
                s = 0
                for d in range(D):
                    s += (bounds[d] // divided[d] - 1) * coef[a, d]
                share_ext[a] = float(s + 1)
            for j in range(Tn):
                p = share_ext[axes[j, 0]]
                for a in range(axes[j, 0] + 1, axes[j, 1]):
                    p *= share_ext[a]
                first[lvl, j] = p

        # tile changes of each child level under the loops above it, and the sliding-window overlap along the
        # innermost loop over a dimension the tensor depends on (the first such loop in (level, dim) order)
        for c in range(K):
            for j in range(Tn):
                start, end = axes[j, 0], axes[j, 1]
                if c == K - 1:              # the compute units hold no operand between points
                    eff = float(steps)
                else:
                    kmax, il, idim = -1, 0, 0
                    for lvl in range(c + 1):
                        for d in range(D):
                            if T[b, lvl, d] > 1 and rel[j, d]:
                                k = lvl * (D + 1) + R[b, lvl, d]
                                if k > kmax:
                                    kmax, il, idim = k, lvl, d
                    count = 1
                    for lvl in range(c + 1):
                        for d in range(D):
                            if T[b, lvl, d] > 1 and lvl * (D + 1) + R[b, lvl, d] <= kmax:
                                count *= T[b, lvl, d]
                    changes = float(count)
                    if kmax >= 0:
                        bstar = float(T[b, il, idim])
                        step = E[il + 1, idim] * S[b, il + 1, idim]
                        overlap, moves = 1.0, False
                        for a in range(start, end):
                            cs = coef[a, idim]
                            if cs > 0:
                                moves = True
                                overlap *= max(ext[c, a] - float(cs * step), 0.0) / ext[c, a]
                        if not moves:
                            overlap = 0.0
                        eff = changes / bstar * (1.0 + (bstar - 1.0) * (1.0 - overlap))
                    else:
                        eff = changes
                p = ext[c, start]
                for a in range(start + 1, end):
                    p *= ext[c, a]
                moved[c, j] = eff * p

        # each child is served by the nearest level above it that keeps the tensor: its tile once per sibling
        # with different data; partial sums of siblings that split a reduction are added at the parent
        for j in range(Tn):
            nearest = -1
            for lvl in range(K):
                if keep[b, lvl, j]:
                    nearest = lvl
                active[lvl, j] = (lvl == K - 1 or keep[b, lvl + 1, j]) and nearest >= 0
                parent[lvl, j] = max(nearest, 0)
        for lvl in range(K):            # (loops: slice assignments cost compile time)
            for j in range(Tn):
                reads[lvl, j], fills[lvl, j], updates[lvl, j], adds[lvl, j] = 0.0, 0.0, 0.0, 0.0
        for c in range(K):
            for j in range(Tn):
                if not active[c, j]:
                    continue
                p_lvl = parent[c, j]
                siblings, fan_in = 1, 1
                for row in range(p_lvl + 1, c + 2):
                    for d in range(D):
                        if rel[j, d]:
                            siblings *= S[b, row, d]
                        else:
                            fan_in *= S[b, row, d]
                served = moved[c, j] * float(siblings)
                role = roles[j]
                if role == ACCUMULATE:
                    reads[p_lvl, j] += max(served - first[p_lvl, j], 0.0)
                    updates[p_lvl, j] += served
                    adds[p_lvl, j] += served * float(fan_in - 1)
                    if c < K - 1:
                        fills[c + 1, j] = max(moved[c, j] - first[c + 1, j], 0.0)
                elif role == WRITE:
                    updates[p_lvl, j] += served
                else:
                    reads[p_lvl, j] += served
                    if role == READWRITE:
                        updates[p_lvl, j] += served
                    if c < K - 1:
                        fills[c + 1, j] = moved[c, j]

        # the price (the native cost model's): levels, the network between the outermost level's instances, the adds
        # of spatial reductions, the datapath; cycles the largest bound
        bound = float(steps * ops_per_point) / ops_per_cycle
        level_pJ, noc_bits, noc_pJ = 0.0, 0.0, 0.0
        for lvl in range(K):
            inst = float(instances[lvl])
            level_sum, level_bytes = 0.0, 0.0
            for j in range(Tn):
                r, f, u = reads[lvl, j], fills[lvl, j], updates[lvl, j]
                if lvl == 0:
                    rep = 1.0
                    if network:         # vault replication: level-0 splits of dimensions the tensor ignores
                        replication = 1
                        for d in range(D):
                            if not rel[j, d]:
                                replication *= S[b, 0, d]
                        rep = float(replication)
                    noc_elements = (r + u) * (rep - 1.0) / rep * inst
                    r, u = r / rep, u / rep
                    if line_bytes != 0.0:   # DRAM runs: the child tile's trailing axes up to its last short one
                        child = K
                        for lvl2 in range(1, K):
                            if keep[b, lvl2, j]:
                                child = lvl2
                                break
                        last_short = axes[j, 0]
                        for a in range(axes[j, 0], axes[j, 1]):
                            if ext[child - 1, a] < shape[a]:
                                last_short = a
                        run = min(ext[child - 1, last_short], shape[last_short])
                        for a in range(last_short + 1, axes[j, 1]):
                            run *= min(ext[child - 1, a], shape[a])
                        run_bytes = run * bits[j] / 8.0
                        inflation = np.ceil(run_bytes / line_bytes) * line_bytes / run_bytes
                        r, u = r * inflation, u * inflation
                    if network:
                        nb = noc_elements * bits[j]
                        net_adds = 0.0 if roles[j] == READ else updates[0, j] * (rep - 1.0) / rep * inst
                        noc_bits += nb
                        noc_pJ += nb * hops * hop_pJ + net_adds * noc_add_pJ
                rbits = r * bits[j] * inst
                wbits = (f + u) * bits[j] * inst
                level_sum += rbits * read_pJ[lvl] + wbits * write_pJ[lvl]
                level_bytes += rbits + wbits
            level_pJ += level_sum
            bound = max(bound, level_bytes / inst / 8.0 / bytes_per_cycle[lvl])
        total = compute_energy_pJ + level_pJ
        if network:
            bound = max(bound, noc_bits * hops / 8.0 / noc_bytes_per_cycle)
            total = total + noc_pJ
        if reduction:
            reduction_pJ = 0.0
            for j in range(Tn):
                spatial_adds = adds[0, j] * float(instances[0])
                for lvl in range(1, K):
                    spatial_adds += adds[lvl, j] * float(instances[lvl])
                reduction_pJ += spatial_adds * reduction_add_pJ[j]
            total = total + reduction_pJ
        energy[b] = total
        cycles[b] = bound
    return True
