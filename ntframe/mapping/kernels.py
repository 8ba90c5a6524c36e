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

Also here, below :func:`price_batch`: the mapping space's fit checks, sampler, mutations, neighbour moves and
decoder (:class:`ntframe.mapping.space.Space`, its numpy code's verdicts, moves and mappings from the same random
numbers; ``tests/test_space_kernels.py`` checks them against it), imported with the same module.
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
    layout = np.empty(A)                        # the vault-local layout: each axis of a vault's share, stored
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
                if lvl == 0:
                    layout[a] = min(float(s + 1), shape[a])
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
                    if line_bytes != 0.0:   # DRAM runs: the box under the DRAM loops, vault-local layout
                        last_short = axes[j, 0]
                        for a in range(axes[j, 0], axes[j, 1]):
                            if ext[0, a] < layout[a]:
                                last_short = a
                        run = min(ext[0, last_short], layout[last_short])
                        for a in range(last_short + 1, axes[j, 1]):
                            run *= min(ext[0, a], layout[a])
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


# --- the mapping space (ntframe.mapping.space.Space): fit checks, sampler, mutations, neighbour moves, decoder ------
# The numpy code checks a slot assignment in log space: sums of the logs of the prime factors in each slot, then
# rint(exp(...)) for the tile extents and the tensors' elements. Every such quantity is an integer (a product of
# prime factors, a bounding box), far below 2**53 and far from the tolerances (1e-9 on the logs, 0.5 for rint), so
# these kernels compute the integers themselves: the same verdicts and the same factors, without the rounding.
# The random numbers are drawn by the caller, as the numpy code draws them, and passed in.


@njit(cache=True, nogil=True)
def _fit_code(F, kept, r, fanouts, hi, caps, coef, axes, bits8, E):
    """0 when the factors ``F[2K+1, D]`` (temporal slots ``0..K-1``, spatial rows ``K..2K``) with the keep bits
    ``kept[r]`` fit; 1 when a fan-out (or a slot's upper bound) is broken; 2 when a level's capacity is. ``E``:
    scratch [K, D] for the tile extents."""
    K = fanouts.shape[0] - 1
    D = F.shape[1]
    for row in range(K + 1):
        prod = 1
        for d in range(D):
            prod *= F[K + row, d]
        if prod > fanouts[row]:
            return 1
    for s in range(2 * K + 1):
        for d in range(D):
            if F[s, d] > hi[s, d]:
                return 1
    for d in range(D):                  # E[l, d]: temporal slots >= l times spatial rows > l
        e = F[2 * K, d]
        for lvl in range(K - 1, -1, -1):
            e *= F[lvl, d]
            E[lvl, d] = e
            e *= F[K + lvl, d]
    for lvl in range(K):
        if caps[lvl] == np.inf:
            continue
        total = 0.0
        for j in range(axes.shape[0]):
            if not kept[r, lvl, j]:
                continue
            elements = 1.0
            for a in range(axes[j, 0], axes[j, 1]):
                span = 1
                for d in range(D):
                    span += (E[lvl, d] - 1) * coef[a, d]
                elements *= span
            total += np.ceil(elements * bits8[j])
        if total > caps[lvl]:
            return 2
    return 0


@njit(cache=True, nogil=True)
def _slot_factors(F, A, r, pv, pd):
    """``F[slot, d]``: the product of the prime factors ``pv[i]`` of dimension ``pd[i]`` that row ``r`` of ``A``
    puts in each slot."""
    for s in range(F.shape[0]):
        for d in range(F.shape[1]):
            F[s, d] = 1
    for i in range(A.shape[1]):
        F[A[r, i], pd[i]] *= pv[i]


@njit(cache=True, nogil=True)
def fit_codes(A, kept, pv, pd, fanouts, hi, caps, coef, axes, bits8, codes):
    """Fill ``codes[n]`` with :func:`_fit_code` of every slot assignment ``A[n, P]`` (prime factor ``i`` of
    dimension ``pd[i]``, value ``pv[i]``, in slot ``A[r, i]``) with the keep bits ``kept[n, K, Tn]``."""
    n, P = A.shape
    D = hi.shape[1]
    F = np.empty(hi.shape, np.int64)
    E = np.empty((fanouts.shape[0] - 1, D), np.int64)
    for r in range(n):
        _slot_factors(F, A, r, pv, pd)
        codes[r] = _fit_code(F, kept, r, fanouts, hi, caps, coef, axes, bits8, E)


@njit(cache=True, nogil=True)
def sample_slots(A, order, draws, free, pv, pd, tslots, tcount, sslots, scount, probability, kept, fanouts, hi,
                 caps, coef, axes, bits8):
    """The sampler's moves, in place on ``A[n, P]``: at step ``t`` every row offers its prime factor
    ``order[r, t]`` (when free) the slot chosen by the uniform numbers ``draws[t, 0, r]`` (which slot) and
    ``draws[t, 1, r]`` (spatial when below ``probability`` and a spatial row allows it; ``tslots``/``sslots``: the
    allowed temporal slots and spatial rows of each factor, ``tcount``/``scount`` how many), and keeps the move when
    the assignment still fits (:func:`_fit_code`). Returns the moves undone (fan-out, capacity)."""
    n, P = A.shape
    K = fanouts.shape[0] - 1
    D = hi.shape[1]
    F = np.empty(hi.shape, np.int64)
    E = np.empty((K, D), np.int64)
    fan_rejected, cap_rejected = 0, 0
    for r in range(n):
        _slot_factors(F, A, r, pv, pd)
        for step in range(P):
            i = order[r, step]
            if not free[i]:
                continue
            u = draws[step, 0, r]
            count = scount[i]
            if draws[step, 1, r] < probability and count > 0:
                slot = K + sslots[i, min(int(u * count), count - 1)]
            else:
                count = tcount[i]
                slot = tslots[i, min(int(u * count), max(count - 1, 0))]
            cur = A[r, i]
            if slot == cur:
                continue
            d, p = pd[i], pv[i]
            F[cur, d] //= p
            F[slot, d] *= p
            code = _fit_code(F, kept, r, fanouts, hi, caps, coef, axes, bits8, E)
            if code == 0:
                A[r, i] = slot
                continue
            F[slot, d] //= p
            F[cur, d] *= p
            if code == 1:
                fan_rejected += 1
            else:
                cap_rejected += 1
    return fan_rejected, cap_rejected


@njit(cache=True, nogil=True)
def decode_slots(A, key, pv, pd, T, S, R):
    """Fill a canonical batch's ``T[B, K, D]``, ``S[B, K+1, D]`` (products of the prime factors in each slot) and
    ``R[B, K, D]`` (the loops with a factor above 1 ranked by ``key``, ties by dimension; the others ``D``) from
    the slot assignments ``A[B, P]``."""
    B, P = A.shape
    K, D = T.shape[1], T.shape[2]
    for b in range(B):
        for lvl in range(K):
            for d in range(D):
                T[b, lvl, d] = 1
        for row in range(K + 1):
            for d in range(D):
                S[b, row, d] = 1
        for i in range(P):
            slot = A[b, i]
            if slot < K:
                T[b, slot, pd[i]] *= pv[i]
            else:
                S[b, slot - K, pd[i]] *= pv[i]
        for lvl in range(K):
            for d in range(D):
                if T[b, lvl, d] <= 1:
                    R[b, lvl, d] = D
                    continue
                k = key[b, lvl, d]
                rank = 0
                for e in range(D):
                    if T[b, lvl, e] > 1 and (key[b, lvl, e] < k or (key[b, lvl, e] == k and e < d)):
                        rank += 1
                R[b, lvl, d] = rank


@njit(cache=True, nogil=True)
def neighbour_moves(A, free_idx, pd, pv, allowed):
    """The slot assignments one move from ``A[P]``, in :meth:`ntframe.mapping.space.Space.neighbours`' order:
    the free factors grouped by (dimension, prime, slot) in order of their first factor; for each group and
    ``m = 1..size``, its first ``m`` factors moved to every other slot its first factor allows; then, for each
    pair of groups (in order) in different slots, of different dimensions and each allowed in the other's
    slot, the first ``m`` and ``n`` factors of each exchanged where the products are equal (or ``m = n = 1``).
    [rows, P]."""
    P = A.shape[0]
    nslots = allowed.shape[1]
    nf = free_idx.shape[0]
    members = np.empty((nf, nf), np.int64)
    size = np.zeros(nf, np.int64)
    G = 0
    for f in range(nf):
        i = free_idx[f]
        g = 0
        while g < G:
            first = members[g, 0]
            if pd[first] == pd[i] and pv[first] == pv[i] and A[first] == A[i]:
                break
            g += 1
        if g == G:
            G += 1
        members[g, size[g]] = i
        size[g] += 1
    most = 0
    for g in range(G):
        most += size[g] * nslots
        for h in range(g + 1, G):
            most += size[g] * size[h]
    out = np.empty((most, P), np.int64)
    n = 0
    for g in range(G):
        first = members[g, 0]
        slot = A[first]
        for m in range(1, size[g] + 1):
            for target in range(nslots):
                if not allowed[first, target] or target == slot:
                    continue
                for q in range(P):
                    out[n, q] = A[q]
                for q in range(m):
                    out[n, members[g, q]] = target
                n += 1
    for g in range(G):
        i = members[g, 0]
        for h in range(g + 1, G):
            j = members[h, 0]
            if A[i] == A[j] or pd[i] == pd[j] or not (allowed[i, A[j]] and allowed[j, A[i]]):
                continue
            pm = 1
            for m in range(1, size[g] + 1):
                pm *= pv[i]
                pn = 1
                for k in range(1, size[h] + 1):
                    pn *= pv[j]
                    if (m != 1 or k != 1) and pm != pn:
                        continue
                    for q in range(P):
                        out[n, q] = A[q]
                    for q in range(m):
                        out[n, members[g, q]] = A[j]
                    for q in range(k):
                        out[n, members[h, q]] = A[i]
                    n += 1
    return out[:n]


@njit(cache=True, nogil=True)
def mutate_slots(A, O, keep, kind, p, u, s, lvl, d1, d2, fl, ft, tslots, tcount, sslots, scount, probability):
    """:meth:`ntframe.mapping.space.Space.mutate`'s changes, in place, given its random numbers: row ``r`` of kind
    0 moves factor ``p[r]`` to the slot ``u[r]`` and ``s[r]`` pick (as :func:`sample_slots`; nothing when there
    are no free factors: ``p`` empty), kind 1 swaps the loop keys ``O[r, lvl[r], d1[r]]`` and ``O[r, lvl[r],
    d2[r]]``, kind 2 flips ``keep[r, fl[r], ft[r]]``."""
    K = O.shape[1]
    for r in range(A.shape[0]):
        if kind[r] == 0:
            if p.shape[0] == 0:
                continue
            i = p[r]
            count = scount[i]
            if s[r] < probability and count > 0:
                A[r, i] = K + sslots[i, min(int(u[r] * count), count - 1)]
            else:
                count = tcount[i]
                A[r, i] = tslots[i, min(int(u[r] * count), max(count - 1, 0))]
        elif kind[r] == 1:
            a, b = O[r, lvl[r], d1[r]], O[r, lvl[r], d2[r]]
            O[r, lvl[r], d1[r]] = b
            O[r, lvl[r], d2[r]] = a
        else:
            keep[r, fl[r], ft[r]] = not keep[r, fl[r], ft[r]]
