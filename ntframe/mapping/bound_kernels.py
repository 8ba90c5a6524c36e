"""The bounded search's compiled helpers, with numba (optional: the ``fast`` extra): the same figures as the numpy
code they stand in for, to the last bit (``tests/test_bounded_speed.py``).

:func:`capacity_penalty` gives the ``native`` cost model's capacity penalty of one structure and keep pattern
(``RelaxedPricing.penalty`` in ``plugins/native_cost.py``: its ``_blocks``, ``_fitting``, ``_passes`` and
``_fewest`` in one pass). numpy tabulates every block of the outermost level's split (some thousands) and spends
some hundred microseconds a call on array operations over them; this walks only the edge of the blocks that fit,
some tens of microseconds. Why the edge is enough: a block is a choice of a divisor per group of dimensions, and
with a bigger divisor in any group a block's size in every tensor only grows, its passes only shrink, and its
loops only go: so the blocks that fit, and those among them with a loop over a given group, are closed
downwards, and the least passes over such a set are at blocks whose divisor in the last group (of the layout) is
the largest that fits with the others'. Bit for bit: sizes are integers; passes are products of whole numbers
(the shares over the divisors), exact in any order below 2**53 (the caller checks the whole share); each
tensor's block sizes are added, and each block's passes times the tensor's weight are added, in tensor order from
zero, as numpy does; rounding keeps those sums monotone (weights of at least zero), so the least is numpy's.

:func:`level_tiles` gives the per-structure mapper's capacity-maximal tiles of a level (``_Mapper.tiles`` in
:mod:`ntframe.mapping.bounded`): the grid, the constraints, the tiles' bytes (integers: the bounding boxes that
``Problem.extents`` rounds its sums of logarithms to) and the maximal ones in one pass, skipping the tiles that a
tile already too big divides.

Imported only when first asked for (through :mod:`ntframe.jit`); compiled once, then cached on disk
(``NUMBA_CACHE_DIR``, by default ``~/.cache/ntframe-jit``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

READ, ACCUMULATE, READWRITE, WRITE = 0, 1, 2, 3     # ntframe.mapping.mapspace's role codes


@njit(cache=True, nogil=True)
def _block_bytes(size_pre, divisor, counted, bits, last, p, c, j):
    """Tensor ``j``'s bytes in the block of prefix ``p`` and divisor ``c`` of the last group: its size (a whole
    number: the product in any order) times its bits, over 8, as numpy computes them."""
    size = size_pre[p, j] * divisor[last, c] if counted[j, last] else size_pre[p, j]
    return float(size * bits[j]) / 8.0


@njit(cache=True, nogil=True)
def _fits(size_pre, divisor, counted, bits, last, p, c, first, whole, rooms, K, levels):
    """The block of prefix ``p`` and divisor ``c`` of the last group fits (``levels`` 1: at level 1 alone, 2:
    the deeper levels alone, 3: both): the tensors first kept at level 1 in it, and those held whole deeper in
    theirs (sizes added in tensor order from zero)."""
    Tn = first.shape[0]
    if levels & 1:
        acc = 0.0
        for j in range(Tn):
            if first[j] == 1:
                acc = acc + _block_bytes(size_pre, divisor, counted, bits, last, p, c, j)
        if not acc <= rooms[1]:
            return False
    if levels & 2:
        for lvl in range(2, K):
            acc = 0.0
            for j in range(Tn):
                if whole[j] and first[j] == lvl:
                    acc = acc + _block_bytes(size_pre, divisor, counted, bits, last, p, c, j)
            if not acc <= rooms[lvl]:
                return False
    return True


@njit(cache=True, nogil=True)
def _staircase(size_pre, divisor, counted, bits, last, before, lens, first, whole, rooms, K, levels, top):
    """Fill ``top`` [prefixes]: per prefix, the largest divisor of the last group whose block fits at ``levels``
    (:func:`_fits`; -1: none). It only shrinks as a prefix grows: a prefix one more than the previous in the
    group laid out before the last starts from the previous one's."""
    n_last = lens[last]
    for p in range(top.shape[0]):
        hi = top[p - 1] if before >= 0 and p % lens[before] != 0 else n_last - 1
        if hi < 0 or _fits(size_pre, divisor, counted, bits, last, p, hi, first, whole, rooms, K, levels):
            top[p] = hi
        elif not _fits(size_pre, divisor, counted, bits, last, p, 0, first, whole, rooms, K, levels):
            top[p] = -1
        else:
            lo, hi = 0, hi - 1                          # lo fits, hi + 1 does not
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if _fits(size_pre, divisor, counted, bits, last, p, mid, first, whole, rooms, K, levels):
                    lo = mid
                else:
                    hi = mid - 1
            top[p] = lo


@njit(cache=True, nogil=True)
def block_prefixes(divisor, ratio, lens, stride, last, seq_g, counted, rel_g):
    """What :func:`capacity_penalty` needs of the blocks of one split whatever the keep pattern
    (``RelaxedPricing._layout`` keeps them). Per prefix of the layout (a divisor of every group but the last, in
    the layout's order) and tensor [prefixes, Tn], over those groups: its block size's product, the product of the
    shares over the divisors of the groups that do not index it and of the time steps among them (whole numbers:
    exact in any order), and a loop over a group that indexes it and is not time steps; per prefix and group, a
    loop over the group [prefixes, G]."""
    G = lens.shape[0]
    Tn = counted.shape[0]
    n_last = lens[last]
    prefixes = 1
    for g in range(G):
        if g != last:
            prefixes *= lens[g]
    size_pre = np.empty((prefixes, Tn), np.int64)
    full_pre = np.empty((prefixes, Tn))
    seq_pre = np.empty((prefixes, Tn))
    loop_pre = np.empty((prefixes, Tn), np.bool_)
    group_loops = np.zeros((prefixes, G), np.bool_)
    for p in range(prefixes):
        for g in range(G):
            if g != last:
                group_loops[p, g] = ratio[g, (p * n_last // stride[g]) % lens[g]] > 1
        for j in range(Tn):
            size, full, seq_full, looped = 1, 1.0, 1.0, False
            for g in range(G):
                if g == last:
                    continue
                c = (p * n_last // stride[g]) % lens[g]
                if counted[j, g]:
                    size *= divisor[g, c]
                if not rel_g[j, g]:
                    full *= ratio[g, c]
                    if seq_g[g]:
                        seq_full *= ratio[g, c]
                elif not seq_g[g]:
                    looped = looped or ratio[g, c] > 1
            size_pre[p, j], full_pre[p, j], seq_pre[p, j], loop_pre[p, j] = size, full, seq_full, looped
    return size_pre, full_pre, seq_pre, loop_pre, group_loops


@njit(cache=True, nogil=True)
def capacity_penalty(divisor, ratio, lens, stride, last, before, seq_g, counted, rel_g, bits, inner, seq_groups,
                     size_pre, full_pre, seq_pre, loop_pre, group_loops, first, weights, rooms, K):
    """The penalty (pJ, at least 0) of one keep pattern on one split of the outermost level.

    Blocks (``RelaxedPricing._layout``): per group, its divisors in increasing order ``divisor`` and the share
    over each ``ratio`` [G, most divisors], ``lens`` and ``stride`` [G] (each group's divisors and its stride in
    the layout), ``last`` (stride 1) and ``before`` (stride ``lens[last]``; -1: none) the groups laid out last
    and before it; ``seq_g`` [G] (time steps), ``counted`` and ``rel_g`` [Tn, G] (the group counts in the
    tensor's block size, indexes the tensor), ``bits`` [Tn]; ``inner`` and ``seq_groups``: the groups that are
    not time steps, and those that are; :func:`block_prefixes`'s tables. Pattern: ``first`` [Tn] (each tensor's
    first kept level below the outermost, ``K``: none), ``weights`` [Tn] (each tensor's cost of one more pass, at
    least 0). ``rooms`` [max(K, 2)]: level 1's capacity, and each deeper level's across its instances."""
    G = lens.shape[0]
    Tn = first.shape[0]
    n_last = lens[last]
    prefixes = size_pre.shape[0]
    # the block without a loop, if any: every group at the divisor that is its share (-1: none)
    unlooped_p, unlooped_c = 0, 0
    for g in range(G):
        at = -1
        for c in range(lens[g]):
            if not ratio[g, c] > 1:
                at = c
        if at < 0:
            unlooped_c = -1
            break
        if g == last:
            unlooped_c = at
        else:
            unlooped_p += at * stride[g] // n_last
    inner_bottom = False                                # the smallest block loops over a group not time steps
    for g in inner:
        if ratio[g, 0] > 1:
            inner_bottom = True
    deep = np.empty(Tn, np.int64)
    ndeep = 0
    for j in range(Tn):
        if 1 < first[j] < K:
            deep[ndeep] = j
            ndeep += 1
    last_looped = -1                                    # the largest divisor of the last group with a loop
    for c in range(n_last):
        if ratio[last, c] > 1:
            last_looped = c
    # per prefix, the largest divisor of the last group that fits at level 1 (whatever is held whole deeper),
    # then with the deeper levels too: the smaller of the two (each fits the smaller blocks of the other's)
    top1 = np.empty(prefixes, np.int64)
    top1[0] = -2                                        # not yet known
    top = np.empty(prefixes, np.int64)
    whole = np.zeros(Tn, np.bool_)
    least = np.inf
    found = False
    for held in range(1 << ndeep):                      # each choice of the deeper tensors held whole
        held_any = False
        for j in range(Tn):
            whole[j] = False
        for x in range(ndeep):
            if held >> x & 1:
                whole[deep[x]] = True
                held_any = True
        if not _fits(size_pre, divisor, counted, bits, last, 0, 0, first, whole, rooms, K, 3):
            continue                                    # no block fits (not even the smallest)
        if unlooped_c >= 0 and _fits(size_pre, divisor, counted, bits, last, unlooped_p, unlooped_c, first, whole,
                                     rooms, K, 3):
            return 0.0                                  # a block needs no loop: nothing is fetched again
        groups = inner if inner_bottom else seq_groups  # else the time steps
        if len(groups) == 0:
            continue
        if top1[0] == -2:
            _staircase(size_pre, divisor, counted, bits, last, before, lens, first, whole, rooms, K, 1, top1)
        if held_any:
            _staircase(size_pre, divisor, counted, bits, last, before, lens, first, whole, rooms, K, 2, top)
            for p in range(prefixes):
                top[p] = min(top[p], top1[p])
        else:
            top[:] = top1
        for g in groups:
            mask = 0                                    # the tensors counting full passes, as bits
            for j in range(Tn):
                if first[j] < K and (rel_g[j, g] or (first[j] > 1 and not whole[j])):
                    mask |= 1 << j
            for p in range(prefixes):
                c = top[p]
                if g == last:
                    c = min(c, last_looped)
                elif not group_loops[p, g]:
                    continue
                if c < 0:
                    continue
                found = True
                r = ratio[last, c]
                energy = 0.0
                for j in range(Tn):
                    if first[j] < K:
                        if mask >> j & 1:
                            passes = (full_pre[p, j] * r if not rel_g[j, last] else full_pre[p, j]) - 1.0
                        else:
                            looped = loop_pre[p, j] or (rel_g[j, last] and not seq_g[last] and r > 1)
                            seq_full = seq_pre[p, j] * r if not rel_g[j, last] and seq_g[last] else seq_pre[p, j]
                            passes = (seq_full if looped else 1.0) - 1.0
                        energy = energy + passes * weights[j]
                if energy < least:
                    least = energy
    if not found:
        return 0.0
    return least if least > 0.0 else 0.0


@njit(cache=True, nogil=True)
def level_tiles(below, pair_dim, pair_prime, pair_exp, radix, fixed, rule_lo, rule_hi, free, terms, term_dim,
                term_coef, axes, bits8, keep_level, capacity):
    """The bounded search's capacity-maximal tiles of one level (``_Mapper.tiles`` in
    :mod:`ntframe.mapping.bounded`: :class:`~ntframe.mapping.bounded.Tiles`'s grid and maximal tiles, the
    constraints and the tiles' bytes, in one pass): [n, D], in the grid's order.

    Tiles ``below * t``, ``t`` from the prime factors of the room per dimension: ``pair_dim``, ``pair_prime``,
    ``pair_exp`` and ``radix`` [P] (each factor's dimension, prime, largest exponent and place in the exponent
    codes); the grid in numpy's order (``np.indices`` over the factors: the last fastest). A tile is allowed when
    every ``fixed`` dimension [D] is 1 and each dimension with a rule (``rule_lo`` > 0) is a multiple of
    ``rule_lo`` within ``rule_hi``, and fits when the bytes of the tensors kept (``keep_level`` [Tn]) are at most
    ``capacity``: each tensor's bounding box (the product over its axes ``axes`` [Tn, 2] of ``1 + sum c (E - 1)``
    over the axis's terms, ``terms`` [A + 1] into ``term_dim`` and ``term_coef``: whole numbers, as
    ``Problem.extents`` rounds them) times ``bits8`` [Tn], rounded up, added (whole numbers: exact in any order).
    Maximal: no fitting tile is a prime of a dimension not ``free`` [D] bigger. The coefficients are at least 0,
    so a bigger tile never has fewer bytes: the tiles after one too big that it divides (the rest of the grid up
    to the next change of the last factor it does not leave at 0) are skipped, as too big. The caller checks that
    the boxes are below 2**40 (``bounded.BOXES``)."""
    D = below.shape[0]
    P = pair_dim.shape[0]
    Tn = axes.shape[0]
    m = 1
    for k in range(P):
        m *= pair_exp[k] + 1
    E = np.empty((m, D), np.int64)
    codes = np.empty(m, np.int64)
    fits = np.zeros(m, np.bool_)
    present = np.zeros(m + 1, np.bool_)
    exps = np.zeros(P, np.int64)
    stride = np.ones(P, np.int64)                       # of each factor in the grid's order
    for k in range(P - 2, -1, -1):
        stride[k] = stride[k + 1] * (pair_exp[k + 1] + 1)
    t = np.ones(D, np.int64)
    code = 0
    r = 0
    while r < m:
        codes[r] = code
        too_big = False
        ok = True
        for d in range(D):
            if fixed[d] and t[d] != 1:
                ok = False
            lo = rule_lo[d]
            if lo > 0 and not (t[d] >= lo and t[d] <= rule_hi[d] and t[d] % lo == 0):
                ok = False
            E[r, d] = below[d] * t[d]
        if ok:
            total = 0.0
            for j in range(Tn):
                if keep_level[j]:
                    box = 1
                    for a in range(axes[j, 0], axes[j, 1]):
                        span = 1
                        for x in range(terms[a], terms[a + 1]):
                            span += (E[r, term_dim[x]] - 1) * term_coef[x]
                        box *= span
                    total += np.ceil(box * bits8[j])
            ok = total <= capacity
            too_big = not ok
        fits[r] = ok
        if ok:
            present[code] = True
        k = P - 1                                       # the next exponents: the last factor fastest
        step = 1
        if too_big and P > 0:                           # every tile up to the next change of factor z - 1
            z = P - 1
            while z > 0 and exps[z] == 0:
                z -= 1
            if z == 0:
                break
            for x in range(z, P):
                step += (pair_exp[x] - exps[x]) * stride[x]
                code += (pair_exp[x] - exps[x]) * radix[x]
                while exps[x] < pair_exp[x]:
                    t[pair_dim[x]] *= pair_prime[x]
                    exps[x] += 1
        r += step
        while k >= 0:
            if exps[k] < pair_exp[k]:
                exps[k] += 1
                t[pair_dim[k]] *= pair_prime[k]
                code += radix[k]
                break
            for _ in range(exps[k]):
                t[pair_dim[k]] //= pair_prime[k]
            code -= exps[k] * radix[k]
            exps[k] = 0
            k -= 1
    out = np.empty((m, D), np.int64)
    n = 0
    for r in range(m):
        if not fits[r]:
            continue
        keep = True
        for k in range(P):
            if not free[pair_dim[k]] and (codes[r] // radix[k]) % (pair_exp[k] + 1) < pair_exp[k] \
                    and present[codes[r] + radix[k]]:
                keep = False
                break
        if keep:
            for d in range(D):
                out[n, d] = E[r, d]
            n += 1
    return out[:n].copy()


@njit(cache=True, nogil=True)
def relaxed_parts(S, bounds, rel, coef, axes, roles, bits, shape, touched, chains, chain_len, e_read, e_write,
                  per_cycle, line_bytes, network, hops, hop_pJ, add_pJ, reduction, energy, cycles, noc, level0):
    """The native cost model's relaxed prices per tensor and chain of kept levels (``RelaxedPricing.parts`` in
    ``plugins/native_cost.py``), one structure at a time: fills ``energy``, ``noc`` and ``level0`` [Tn, C, n]
    and ``cycles`` [Tn, C, K, n]; False (nothing filled) when a split does not divide the bounds.

    Structures ``S`` [n, K+1, D]; the problem: ``bounds`` [D], ``rel`` [Tn, D], ``coef`` [A, D] (every tensor's
    axes), ``axes`` [Tn, 2] (each tensor's first axis and the one past its last), ``roles``, ``bits`` [Tn],
    ``shape`` [A] (stored shape); ``touched`` [K*n, A]: the indices each axis touches over the relaxed tile of
    each level (level-major, from ``RelaxedPricing._touched``); ``chains`` [C, K+1] and ``chain_len`` [C]: the
    levels of each chain; per level [K], energies per bit and bytes per cycle; ``line_bytes`` (0: none); the
    network (``network`` False: none: hops, energy per bit and hop) and the add energy; ``reduction``: charge
    the spatial reduction's adds.

    Bit for bit: tile extents, instances, counts of elements and boxes are whole numbers, exact in any order, as
    numpy's products of whole floats are; every other floating-point operation is the numpy code's, in its order
    (the reads and writes of each level from zero, the energy over the levels in order, then the network)."""
    n, rows, D = S.shape
    K = rows - 1
    Tn = rel.shape[0]
    C = chains.shape[0]
    for i in range(n):
        for d in range(D):
            split = 1
            for r in range(rows):
                split *= S[i, r, d]
            if bounds[d] % split != 0:
                return False
    below = np.empty((rows + 1, D), np.int64)            # below[r]: the product of rows r..K (row K+1: 1)
    above = np.empty((K, D), np.int64)                   # above[l]: the product of rows 0..l
    inst = np.empty(K)
    tile = np.empty((rows, D), np.int64)                 # the relaxed tile of each level (the compute units': 1)
    relrow, irrrow = np.empty(rows), np.empty(rows)
    moved, first = np.empty(rows), np.empty(K)
    reads, writes = np.empty(K), np.empty(K)
    for i in range(n):
        for d in range(D):
            below[rows, d] = 1
            for r in range(rows - 1, -1, -1):
                below[r, d] = below[r + 1, d] * S[i, r, d]
            split = 1
            for r in range(K):
                split *= S[i, r, d]
                above[r, d] = split
        count = 1
        for r in range(K):
            for d in range(D):
                count *= S[i, r, d]
            inst[r] = count
        steps = 1
        for d in range(D):
            work = bounds[d] // below[0, d]              # temporal work of one compute unit
            steps *= work
            for c in range(K):
                tile[c, d] = work * below[c + 1, d]
            tile[K, d] = 1
        for j in range(Tn):
            role = roles[j]
            b = bits[j]
            for r in range(rows):
                whole, mine = 1, 1
                for d in range(D):
                    whole *= S[i, r, d]
                    if rel[j, d]:
                        mine *= S[i, r, d]
                relrow[r] = mine
                irrrow[r] = whole // mine
            for c in range(K):
                m = 1.0
                for a in range(axes[j, 0], axes[j, 1]):
                    m *= touched[c * n + i, a]
                moved[c] = m
                box = 1
                for a in range(axes[j, 0], axes[j, 1]):
                    span = 1
                    for d in range(D):
                        span += coef[a, d] * (bounds[d] // above[c, d] - 1)
                    box *= span
                first[c] = box
            moved[K] = steps
            rep = irrrow[0] if network else 1.0
            # the outermost level's figures are scaled alike in every chain: by the replication, and by the line
            # inflation of the vault's whole share (vault-local layout: no box's run is longer)
            scale = 1 / rep
            if line_bytes:
                run = 1.0
                for a in range(axes[j, 1] - 1, axes[j, 0] - 1, -1):
                    span = 1
                    for d in range(D):
                        span += (tile[0, d] - 1) * coef[a, d]
                    run = run * min(float(span), shape[a])
                run_bytes = run * b / 8
                scale = scale * (1.0 if run_bytes >= line_bytes else line_bytes / run_bytes)
            for ci in range(C):
                for lvl in range(K):
                    reads[lvl] = 0.0
                    writes[lvl] = 0.0
                updates0 = 0.0
                adds = 0.0
                for x in range(chain_len[ci] - 1):
                    a, c = chains[ci, x], chains[ci, x + 1]
                    rel_between, irr_between = 1.0, 1.0
                    for r in range(a + 1, c + 1):
                        rel_between *= relrow[r]
                        irr_between *= irrrow[r]
                    served = moved[c] * rel_between
                    if role == READ:
                        reads[a] = reads[a] + served
                    elif role == ACCUMULATE:
                        writes[a] = writes[a] + served
                        reads[a] = reads[a] + max(served - first[a], 0.0)
                        adds = adds + served * (irr_between - 1) * inst[a]
                    elif role == READWRITE:
                        reads[a] = reads[a] + served
                        writes[a] = writes[a] + served
                    else:
                        writes[a] = writes[a] + served
                    if a == 0:
                        updates0 = writes[0]
                    if c < K and (role == READ or role == READWRITE):
                        writes[c] = writes[c] + moved[c]
                    elif c < K and role == ACCUMULATE:
                        writes[c] = writes[c] + max(moved[c] - first[c], 0.0)
                noc_elements = (reads[0] + updates0) * (rep - 1) / rep * inst[0]
                reads[0] = reads[0] * scale
                writes[0] = writes[0] * scale
                e = (adds * add_pJ if reduction and role == ACCUMULATE else 0.0) + 0.0
                for lvl in range(K):
                    e = e + (reads[lvl] * e_read[lvl] + writes[lvl] * e_write[lvl]) * b * inst[lvl]
                    cycles[j, ci, lvl, i] = (reads[lvl] + writes[lvl]) * b / 8 / per_cycle[lvl]
                again = (reads[0] * e_read[0] + writes[0] * e_write[0]) * b * inst[0]
                if role == ACCUMULATE:
                    again = again + writes[0] * e_read[0] * b * inst[0]
                if network:
                    hop = noc_elements * b * hops * hop_pJ
                    if role != READ:
                        hop = hop + updates0 * (rep - 1) / rep * inst[0] * add_pJ
                    e = e + hop
                    again = again + hop
                energy[j, ci, i] = e
                noc[j, ci, i] = noc_elements * b
                level0[j, ci, i] = again
    return True
