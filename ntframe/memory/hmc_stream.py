"""The bank model's streaming pass, compiled with numba (optional: the ``fast`` extra).

:func:`stream` computes :func:`ntframe.memory.hmc_bank.simulate`'s figures in one pass over the requests in issue order,
with a little state per bank, vault, queue and link, instead of the vectorised model's sorts into bank and vault
order: those are memory-bound gathers, and compiling the same passes (tried) gains only 10-15 %. It covers the
common case: no request is promoted by FR-FCFS and no vault queue fills, so the first round of the vectorised
model is its answer (both 1M-request streams of the benchmark and most layer traces). It detects exactly when
that is not so, with the vectorised model's own tests (``_waiting_hits``; the vault-queue checks of
``simulate`` and ``_host``) on the same first-come-first-served schedule, and then returns a status and the
vectorised model answers. With the engines' front ends a full vault queue need not end it: :func:`queue_rounds`
runs the vectorised model's rounds of entry times, a pass each (most sampled stretches of the layer traces fill
a queue), and :func:`stream` goes on from the times they settle on. The figures are the same to the last bit
(times are exact in floating point: integer issue times, derated bank times in 1/256 cycles), which tests check
on random traces and layer traces.

The orders the vectorised model gets from sorts come from two queues here: the vault's data bus serves in ready
order (ties: issue order; a calendar queue, each cycle's list searched from its end, where a request mostly
goes), the host links in response order (ties: vault order; a binary heap). An item leaves a queue only once
no later request can precede it: every later request is issued no earlier, so its data are ready no sooner than
``issue + request path + the shortest bank-to-data time``.
The queues are written out in the loop: in numba, a call per request to a helper costs more than the queue.

Imported only when the model first runs (``hmc_bank.STREAM``, :mod:`ntframe.jit`); compiled on the first call for
each set of argument types (about 4 s) and cached on disk (``NUMBA_CACHE_DIR``, by default ``~/.cache/ntframe-jit``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

OK, PROMOTED, QUEUE_FULL, UNDECIDED = 0, 1, 2, 3   # UNDECIDED: beyond this pass's bounded state (see below)

SLOTS = 1 << 16     # the bus's calendar queue: whole cycles an item may lie ahead of its cursor
MASK = SLOTS - 1
RING = 256          # a bank's requests kept for the FR-FCFS test (the window is at most this)


@njit(cache=True, nogil=True)
def _bank_state(nbanks, ring, frfcfs):
    """Per bank: last start, class, write, row, transfer and count; with FR-FCFS, its last ``ring`` requests
    (column command, row, write)."""
    keep = nbanks if frfcfs else 1
    return (np.zeros(nbanks), np.zeros(nbanks, np.int64), np.zeros(nbanks, np.bool_), np.zeros(nbanks, np.int64),
            np.zeros(nbanks), np.zeros(nbanks, np.int64), np.zeros((keep, ring)), np.zeros((keep, ring), np.int64),
            np.zeros((keep, ring), np.bool_))


@njit(cache=True, nogil=True)
def stream(issue, vault, bank, row, write, burst, link, link_read, link_write, nlinks, entry_rule, table, derate,
           tCCD, pre, ready_add, rp, resp, open_page, frfcfs, window, qcap, qkind, given):
    """One pass in issue order (``issue`` sorted). ``entry_rule``: 0 enter at issue, 1 one a cycle for the cube,
    2 one a cycle per vault, 3 at the times ``given`` (none before its issue: :func:`queue_rounds`'s).
    ``nlinks`` > 0: responses cross the host links (``link``: each request's, or empty
    for ``vault % nlinks``; ``link_read`` per request or one value, ``link_write``). ``table``, ``derate``,
    ``pre``, ``ready_add``: ``hmc_bank._hold_table``; ``burst`` per request or one value (then in the table).
    ``frfcfs``: test for promotions, searching back ``window`` requests of a bank (the last RING are kept;
    deeper: status UNDECIDED). ``qcap``: the vault queue bound to test (0: none); ``qkind`` 0 a vault's requests
    against their bank start times and entry, 1 a vault's read and write queues against column commands and
    arrival. Returns (status, class counts, reads, sum of read completions, sum of read entries, last completion,
    first entry)."""
    n = len(issue)
    links = nlinks > 0
    nvaults = 0
    nbanks_per_vault = 0
    for i in range(n):
        nvaults = max(nvaults, np.int64(vault[i]) + 1)             # (unsigned 64-bit indices mix badly)
        nbanks_per_vault = max(nbanks_per_vault, np.int64(bank[i]) + 1)
    nbanks = nvaults * nbanks_per_vault
    ring = 1                                                           # powers of two: masks, not divisions
    while ring < min(window, RING):
        ring *= 2
    qring = 1
    while qring < qcap:
        qring *= 2
    reads = 0
    cls_count = np.zeros(3, np.int64)
    sum_done = 0.0
    sum_entry = 0.0
    max_done = -np.inf
    per_burst = len(burst) > 1
    per_link = len(link_read) > 1
    given_link = len(link) > 0
    min_burst = burst.min()
    min_ready = ready_add.min()
    b_start, b_cls, b_write, b_row, b_burst, b_count, r_col, r_row, r_write = _bank_state(nbanks, ring, frfcfs)
    v_entry = np.full(nvaults, -np.inf)
    v_bus = np.full(nvaults, -np.inf)
    q_ring = np.zeros((2 * nvaults, qring))
    q_count = np.zeros(2 * nvaults, np.int64)
    l_free = np.full(max(nlinks, 1), -np.inf)
    v_link = np.arange(nvaults) % max(nlinks, 1)            # Ramulator: the vault's link, vault % links
    bus_head, bus_next, bus_key = np.full(SLOTS, -1, np.int64), np.empty(n, np.int64), np.empty(n)
    bus_tail, bus_prev = np.empty(SLOTS, np.int64), np.empty(n, np.int64)
    bus_at = np.int64(np.floor(min(issue[0], issue[0] + rp + min_ready))) if n else np.int64(0)
    res_cap = n if links else 1
    res_k, res_t, res_v = np.empty(res_cap), np.empty(res_cap, np.int64), np.empty(res_cap, np.int64)
    bus_n = res_n = 0
    horizon = -np.inf
    last_entry = -np.inf
    for i in range(n):
        v = np.int64(vault[i])
        rw = np.int64(row[i])
        e = issue[i]
        if entry_rule == 1:
            e = max(e, last_entry + 1.0)
            last_entry = e
        elif entry_rule == 2:
            e = max(e, v_entry[v] + 1.0)
            v_entry[v] = e
        elif entry_rule == 3:
            e = given[i]
        a = e + rp
        w = write[i] != 0
        bi = burst[i] if per_burst else burst[0]
        if not w:
            sum_entry += e
            reads += 1
        # the bank, first come first served in issue order
        b = v * nbanks_per_vault + np.int64(bank[i])
        k = b_count[b]
        if k == 0:
            c = 1
            s = a
        else:
            hit = open_page and rw == b_row[b]
            c = 0 if hit else (2 if open_page else 1)
            hold = table[b_cls[b] + 3 * (1 if b_write[b] else 0) + 6 * (1 if hit else 0)]
            if per_burst and hit:                        # hmc_bank._quantum
                hold += np.floor(max(tCCD, b_burst[b]) * derate * 256.0 + 0.5) / 256.0
            s = max(a, b_start[b] + hold)
        col = s + pre[c]
        # FR-FCFS: would this request join the run of an earlier one of its queue to the same row?
        if frfcfs:
            mask = ring - 1
            if k >= 2 and b_row[b] != rw and r_col[b, (k - 2) & mask] >= a:   # b_row: the last one's row
                d = 2
                while d <= window and d <= k:
                    if d > ring:
                        return UNDECIDED, cls_count, 0, 0.0, 0.0, 0.0, 0.0
                    slot = (k - d) & mask
                    if r_col[b, slot] < a:
                        break
                    if r_row[b, slot] == rw and r_write[b, slot] == w:
                        return PROMOTED, cls_count, 0, 0.0, 0.0, 0.0, 0.0
                    d += 1
            slot = k & mask
            r_col[b, slot], r_row[b, slot], r_write[b, slot] = col, rw, w
        b_start[b], b_cls[b], b_write[b], b_row[b], b_burst[b] = s, c, w, rw, bi
        b_count[b] = k + 1
        cls_count[c] += 1
        # the vault's queue: full when the request ``qcap`` places ahead in it had not left it
        if qcap:
            q = 2 * v + (1 if w else 0) if qkind == 1 else v
            m = q_count[q]
            release, now = (col, a) if qkind == 1 else (s, e)
            if m >= qcap and q_ring[q, (m - qcap) & (qring - 1)] > now:
                return QUEUE_FULL, cls_count, 0, 0.0, 0.0, 0.0, 0.0
            q_ring[q, m & (qring - 1)] = release
            q_count[q] = m + 1
        # the data bus, in ready order (ties: issue order): a calendar queue (a list per whole cycle in a ring of
        # SLOTS cycles, each list in order), which the request skips when it goes next anyway. Served: what no
        # later request can precede (its data are ready no sooner than ``horizon``).
        key = s + ready_add[c]
        earlier = horizon
        horizon = issue[i + 1] + rp + min_ready if i + 1 < n else np.inf
        direct = key <= horizon and (bus_n == 0 or key <= earlier)   # everything queued is ready after ``earlier``
        if not direct:
            bus_key[i] = key
            cyc = np.int64(np.floor(key))
            if cyc >= bus_at + SLOTS:
                return UNDECIDED, cls_count, 0, 0.0, 0.0, 0.0, 0.0
            slot = cyc & MASK                             # a doubly linked list: searched from its tail,
            cur = bus_tail[slot] if bus_head[slot] != -1 else -1    # where most requests go
            while cur != -1 and bus_key[cur] > key:         # after the last one ready no later
                cur = bus_prev[cur]
            if cur == -1:
                after = bus_head[slot]
                bus_head[slot] = i
            else:
                after = bus_next[cur]
                bus_next[cur] = i
            bus_prev[i], bus_next[i] = cur, after
            if after == -1:
                bus_tail[slot] = i
            else:
                bus_prev[after] = i
            bus_n += 1
        while True:
            if direct:
                r, j = key, i
                direct = False
            elif bus_n:
                j = bus_head[bus_at & MASK]
                if j == -1:
                    if bus_at + 1 > horizon:
                        break
                    bus_at += 1
                    continue
                r = bus_key[j]
                if r > horizon:
                    break
                bus_head[bus_at & MASK] = bus_next[j]
                if bus_next[j] != -1:
                    bus_prev[bus_next[j]] = -1
                bus_n -= 1
            else:
                if horizon < np.inf:
                    bus_at = max(bus_at, np.int64(np.floor(horizon)))
                break
            vj = np.int64(vault[j])
            bj = burst[j] if per_burst else burst[0]
            start = max(r, v_bus[vj])
            v_bus[vj] = start + bj
            done = start + bj + resp
            if not links:
                max_done = max(max_done, done)
                if write[j] == 0:
                    sum_done += done
                continue
            # the host links, in response order (ties: vault order, i.e. by vault, then issue order): a binary
            # min-heap on (time, vault x n + request)
            tie, h = vj * n + j, res_n
            while h > 0:
                up = (h - 1) >> 1
                if res_k[up] < done or (res_k[up] == done and res_t[up] < tie):
                    break
                res_k[h], res_t[h], res_v[h] = res_k[up], res_t[up], res_v[up]
                h = up
            res_k[h], res_t[h], res_v[h] = done, tie, j
            res_n += 1
        if links:
            # every response still to come is from a request ready after the horizon
            bound = horizon + min_burst + resp
            while res_n and res_k[0] < bound:
                r, j = res_k[0], res_v[0]
                res_n -= 1
                last_k, last_t, last_v = res_k[res_n], res_t[res_n], res_v[res_n]
                h = 0
                while True:
                    down = 2 * h + 1
                    if down >= res_n:
                        break
                    if down + 1 < res_n and (res_k[down + 1] < res_k[down] or
                                             (res_k[down + 1] == res_k[down] and res_t[down + 1] < res_t[down])):
                        down += 1
                    if last_k < res_k[down] or (last_k == res_k[down] and last_t < res_t[down]):
                        break
                    res_k[h], res_t[h], res_v[h] = res_k[down], res_t[down], res_v[down]
                    h = down
                res_k[h], res_t[h], res_v[h] = last_k, last_t, last_v
                lj = np.int64(link[j]) % nlinks if given_link else v_link[np.int64(vault[j])]
                start = max(r, l_free[lj])
                if write[j] != 0:
                    l_free[lj] = start + link_write
                else:
                    l_free[lj] = start + (link_read[j] if per_link else link_read[0])
                    sum_done += start
                max_done = max(max_done, start)
    return OK, cls_count, reads, sum_done, sum_entry, max_done, issue[0] if n else 0.0   # first in: first issued


@njit(cache=True, nogil=True)
def queue_rounds(issue, vault, bank, row, table, derate, tCCD, pre, rp, burst, write, open_page, frfcfs, window,
                 qcap, single, rounds):
    """The times requests enter the cube when a vault queue of ``qcap`` requests fills (the engines' front ends,
    no host links): the rounds of :func:`ntframe.memory.hmc_bank.simulate`, each a pass in issue order. Round 0
    enters one request a cycle per stream (``single``: one stream for the cube, else one per vault); each round
    serves the banks first come first served from those times and tests, as ``simulate`` does, whether a request
    entered before the one ``qcap`` places ahead in its vault left the queue (its bank start); if none did, or
    the next round's times (not before that start) are the same, these are the vectorised model's times. Returns
    (status, entry times): PROMOTED when a round's schedule has an FR-FCFS promotion (the vectorised model's
    rounds then differ: it answers), UNDECIDED beyond ``rounds`` rounds or the kept FR-FCFS state."""
    n = len(issue)
    nvaults = 0
    nbanks_per_vault = 0
    for i in range(n):
        nvaults = max(nvaults, np.int64(vault[i]) + 1)
        nbanks_per_vault = max(nbanks_per_vault, np.int64(bank[i]) + 1)
    nbanks = nvaults * nbanks_per_vault
    ring = 1
    while ring < min(window, RING):
        ring *= 2
    qring = 1
    while qring < qcap:
        qring *= 2
    per_burst = len(burst) > 1
    b_start, b_cls, b_write, b_row, b_burst, b_count, r_col, r_row, r_write = _bank_state(nbanks, ring, frfcfs)
    q_ring = np.zeros((nvaults, qring))
    q_count = np.zeros(nvaults, np.int64)
    v_entry = np.full(nvaults, -np.inf)
    entry = np.empty(n)
    after = np.empty(n)
    last_entry = -np.inf
    for i in range(n):                                   # round 0: one request a cycle per stream
        e = issue[i]
        if single:
            e = max(e, last_entry + 1.0)
            last_entry = e
        else:
            v = np.int64(vault[i])
            e = max(e, v_entry[v] + 1.0)
            v_entry[v] = e
        entry[i] = e
    for _ in range(rounds):
        b_count[:] = 0
        q_count[:] = 0
        v_entry[:] = -np.inf
        last_entry = -np.inf
        held = False                                     # a request entered before there was room for it
        same = True                                      # the next round's times are these
        for i in range(n):
            v = np.int64(vault[i])
            rw = np.int64(row[i])
            a = entry[i] + rp
            w = write[i] != 0
            bi = burst[i] if per_burst else burst[0]
            # the bank, first come first served in issue order (as stream)
            b = v * nbanks_per_vault + np.int64(bank[i])
            k = b_count[b]
            if k == 0:
                c = 1
                s = a
            else:
                hit = open_page and rw == b_row[b]
                c = 0 if hit else (2 if open_page else 1)
                hold = table[b_cls[b] + 3 * (1 if b_write[b] else 0) + 6 * (1 if hit else 0)]
                if per_burst and hit:
                    hold += np.floor(max(tCCD, b_burst[b]) * derate * 256.0 + 0.5) / 256.0
                s = max(a, b_start[b] + hold)
            col = s + pre[c]
            if frfcfs:
                mask = ring - 1
                if k >= 2 and b_row[b] != rw and r_col[b, (k - 2) & mask] >= a:
                    d = 2
                    while d <= window and d <= k:
                        if d > ring:
                            return UNDECIDED, entry
                        slot = (k - d) & mask
                        if r_col[b, slot] < a:
                            break
                        if r_row[b, slot] == rw and r_write[b, slot] == w:
                            return PROMOTED, entry
                        d += 1
                slot = k & mask
                r_col[b, slot], r_row[b, slot], r_write[b, slot] = col, rw, w
            b_start[b], b_cls[b], b_write[b], b_row[b], b_burst[b] = s, c, w, rw, bi
            b_count[b] = k + 1
            # the vault's queue: the request qcap places ahead leaves it at its bank start
            m = q_count[v]
            release = -np.inf
            if m >= qcap:
                release = q_ring[v, (m - qcap) & (qring - 1)]
                if release > entry[i]:
                    held = True
            q_ring[v, m & (qring - 1)] = s
            q_count[v] = m + 1
            e = max(issue[i], release)                   # the next round: not before there is room
            if single:
                e = max(e, last_entry + 1.0)
                last_entry = e
            else:
                e = max(e, v_entry[v] + 1.0)
                v_entry[v] = e
            after[i] = e
            if e != entry[i]:
                same = False
        if not held or same:
            return OK, entry
        entry, after = after, entry
    return UNDECIDED, entry

