"""A bank-level analytical model of an HMC cube, vectorised (numpy), for request traces.

Each request goes through: the request path (``request_path_cycles``: link or logic-die crossbar), its bank
(first come, first served per bank, in issue order), the vault's TSV data bus (one 64-byte transfer per
``tsv_cycles_per_64B``), and the response path. A bank's row buffer follows the page policy: with ``open`` a
request to the open row is a hit (``tCL``), to a closed bank a miss (``tRCD + tCL``), to another row a conflict
(``tRP + tRCD + tCL``); ``closed`` closes the row after every access (every request a miss). How long a request
keeps its bank busy depends on it and on the next one (``tRAS``, ``tRC``, ``tCCD``, write recovery ``tWR``).
Refresh takes ``tRFC`` of every ``tREFI`` from every bank (a throughput derating). Queueing at banks and at the
vault bus is computed exactly for the given issue times with max-plus prefix scans, so the model has no loop
over requests. Everything that does not depend on the times (orders, row-buffer classes, hold times) is
computed once per call (``_Plan``); a bounded vault queue that never fills costs no second round.

Energy: activate + precharge per activation, and per bit read or written (DRAM array + TSV), plus the logic
die's per-bit energy (vault controller), plus SerDes per bit for host traffic.
Defaults: HMC 2.1 timings of Ramulator 1's ``HMC_2500`` (tCK 0.8 ns); the data-path constants
(``data_cycles``, request/response paths) calibrated on Ramulator 1 runs (docs/memory.md); energies from
../shared/design/neurotrainer.md ([S] 10.48 pJ/bit for the cube: 3.7 DRAM + 6.78 logic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

HIT, MISS, CONFLICT = 0, 1, 2


@dataclass(frozen=True)
class HMCParams:
    tCK_ns: float = 0.8
    tCL: int = 17
    tRCD: int = 17
    tRP: int = 17
    tRAS: int = 34
    tRC: int = 51
    tCCD: int = 4
    tRTP: int = 9
    tWR: int = 19
    tCWL: int = 13
    tFAW: int = 17
    tRFC: int = 200
    tREFI: int = 9750
    tsv_cycles_per_64B: int = 8          # 32 TSVs x 2.5 Gb/s = 10 GB/s per vault
    data_cycles: int = 15                # column command to data at the vault controller, beyond tCL
    request_path_cycles: float = 1.0     # into the cube (host link packet, or logic-die crossbar)
    response_path_cycles: float = 3.0
    page_policy: Literal["open", "closed"] = "open"
    queue_per_vault: int = 64            # requests a vault accepts before its sender stalls (0: unbounded)
    front_end: Literal["per-vault", "single"] = "per-vault"
    """Who issues: one in-order stream per vault (the logic die's engines), or one stream for the whole cube
    (a host, and Ramulator's DRAM-mode driver): a full vault then stalls everything behind it."""
    act_pre_energy_pJ: float = 500.0
    dram_pJ_per_bit: float = 3.44       # array + TSV; with the activations ~3.7 pJ/bit on a stream
    logic_pJ_per_bit: float = 6.78
    serdes_pJ_per_bit: float = 0.0       # 1.4 for host traffic over the external links
    # The host links (used with front_end "single": responses to a host leave the cube over its SerDes links;
    # the logic die's own engines read over the crossbar and do not use them). Sources: HMC 2.1 specification
    # (16-lane full-width links, 12.5-30 Gb/s lanes, 128-bit FLITs) as Ramulator 1 (hmc branch) implements it:
    # HMC-config.cfg (link_width HMC_Full_Width, lane_speed HMC_30_Gbps, source_mode_host_links 4),
    # HMC.h (link_width_table, lane_speed_table, maxblock_table: HMC_64B -> 6 address bits).
    links: int = 4                       # source-mode host links; 0: no link stage
    link_width: int = 16                 # lanes per link (full width)
    lane_Gbps: float = 30.0              # per lane
    max_block_bytes: int = 64            # the link of a request: (address // max_block_bytes) % links


def _small(x: np.ndarray) -> np.ndarray:
    """Non-negative integers in the narrowest unsigned dtype (radix sorts and gathers are cheaper)."""
    top = int(x.max()) if len(x) else 0
    return x.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64, copy=False)


def _scan(arrival: np.ndarray, D: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Start times of a first-come-first-served server per group: ``s_i = max(a_i, s_{i-1} + d_{i-1})``.
    Inputs sorted by (group, arrival order); ``D`` the exclusive prefix sum of the service times over the whole
    array (within a group, ``D_i - D_j`` is the group's own work between j and i). Max-plus prefix scan:
    ``s_i = D_i + max_{j<=i, same group}(a_j - D_j)``, the groups kept apart by an offset per group number."""
    x = arrival - D
    lo, hi = float(x.min()), float(x.max())
    span = hi - lo + 1.0
    if float(group[-1]) * span + hi >= 2.0 ** 52:                       # offsets beyond float precision
        g = np.cumsum(np.r_[True, group[1:] != group[:-1]]) - 1
        out = np.empty_like(x)
        for lo_i, hi_i in zip(*_runs(g)):
            out[lo_i:hi_i] = np.maximum.accumulate(x[lo_i:hi_i])
        return out + D
    off = group * span
    x += off
    np.maximum.accumulate(x, out=x)
    x -= off
    x += D
    return x


def _runs(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edge = np.flatnonzero(np.r_[True, g[1:] != g[:-1], True])
    return edge[:-1], edge[1:]


class _Plan:
    """Everything about a trace that does not depend on when its requests enter the cube: the per-bank order
    (issue order within a bank), each request's row-buffer class and bank hold time, and the per-vault order
    (issue order within a vault) the TSV bus and the vault queues use. Computed once per :func:`simulate`."""

    def __init__(self, vault, bank, row, write, nbytes, p: HMCParams, link=None):
        n = len(vault)
        vault_in = np.asarray(vault)
        self.n = n
        vault, bank = np.asarray(vault), np.asarray(bank)
        nb = int(bank.max()) + 1
        nv = int(vault.max()) + 1
        key = _small(vault.astype(np.uint16 if nv * nb <= 65536 else np.int64) * nb + bank)
        vault = key // key.dtype.type(nb)                               # narrow and contiguous
        order = np.argsort(key, kind="stable")                         # radix sort: per bank, in issue order
        counts = np.bincount(key)
        nz = np.flatnonzero(counts)
        kb = np.repeat(nz.astype(np.float64), counts[nz])               # bank number, bank order
        first = np.empty(n, bool)
        first[0] = True
        np.not_equal(kb[1:], kb[:-1], out=first[1:])
        w = np.asarray(write).astype(bool, copy=False)
        wb = w[order]
        if p.page_policy == "closed":
            hit = np.zeros(n, bool)
        else:
            rb = np.take(np.asarray(row), order)
            hit = np.empty(n, bool)
            hit[0] = False
            np.equal(rb[1:], rb[:-1], out=hit[1:])
            hit &= ~first
        # class code: 0 hit, 1 miss (closed bank), 2 conflict (another row open); closed page: all misses
        cls = np.ones(n, np.uint8) if p.page_policy == "closed" else \
            (~hit).view(np.uint8) + (~hit & ~first).view(np.uint8)
        pre = np.array([0, p.tRCD, p.tRP + p.tRCD], float)                # to the column command
        act = np.array([0, 0, p.tRP], float)                              # PRE -> ACT
        scalar = np.ndim(nbytes) == 0
        burst = float(np.ceil(float(nbytes) / 64.0) * p.tsv_cycles_per_64B) if scalar else \
            np.ceil(np.asarray(nbytes, float) / 64.0) * p.tsv_cycles_per_64B
        # how long a request holds its bank before the next one may start, given the next one's class:
        # a table over (class, write, next is a hit, last in its bank) when the transfer size is one scalar
        last = np.empty(n, bool)
        last[-1] = True
        last[:-1] = first[1:]
        nxt_hit = np.empty(n, bool)
        nxt_hit[-1] = False
        nxt_hit[:-1] = hit[1:]
        derate = 1.0 / (1.0 - p.tRFC / p.tREFI)                          # refresh steals bank time
        code = cls + wb.view(np.uint8) * np.uint8(3) + nxt_hit.view(np.uint8) * np.uint8(6) \
            + last.view(np.uint8) * np.uint8(12)
        c, ww, nh, la = np.unravel_index(np.arange(24), (2, 2, 2, 3))[::-1]
        rec = np.where(ww == 1, p.tCWL + p.tWR, p.tRTP)
        change = np.maximum(act[c] + p.tRAS, pre[c] + rec) if p.page_policy == "open" else \
            np.maximum(act[c] + p.tRC, pre[c] + rec + p.tRP)
        if scalar:
            table = np.where(la == 1, 0.0, np.where(nh == 1, pre[c] + max(p.tCCD, burst), change)) * derate
            hold = table[code]
        else:
            table = np.where(la == 1, 0.0, np.where(nh == 1, pre[c], change)) * derate
            hold = table[code] + ((nh == 1) & (la == 0))[code] * np.maximum(p.tCCD, burst[order]) * derate
        self.D_bank = np.cumsum(hold) - hold
        self.order, self.kb, self.cls = order, kb, cls
        self.ready_offset = (pre + p.tCL + (p.data_cycles - p.tsv_cycles_per_64B))[cls]
        # per vault, in issue order: the TSV bus, the vault queues, the results
        vorder = np.argsort(vault, kind="stable")
        vcounts = np.bincount(vault)
        vnz = np.flatnonzero(vcounts)
        self.vault_order, self.vault_counts = vorder, vcounts
        self.kv = np.repeat(vnz.astype(np.float64), vcounts[vnz])
        inverse = np.empty(n, np.intp)
        inverse[order] = np.arange(n)
        self.bank_pos = inverse[vorder]                                  # bank-order position, vault order
        self.burst_v = burst if scalar else burst[vorder]
        self.D_bus = burst * np.arange(n, dtype=float) if scalar else np.cumsum(self.burst_v) - self.burst_v
        self.reads_v = ~w[vorder]
        self.reads = int(self.reads_v.sum())
        self.writes = n - self.reads
        self.bytes = float(nbytes) * n if scalar else float(np.asarray(nbytes, float).sum())
        # the host links: each response is sent whole, one at a time per link (Ramulator LogicLayer.cpp
        # LinkMaster::send: the next packet ceil(flits x one-FLIT time) cycles later); a read's response carries
        # its data (1 header/tail FLIT + one 16-byte FLIT per 16 bytes), a write's is one FLIT
        self.link_v = None
        if p.front_end == "single" and p.links > 0:
            if link is None:                  # Ramulator's HMC mappings all put the vault just above the block
                link = vault_in % p.links
            self.link_v = _small(np.asarray(link)[vorder]).astype(np.float64)
            one_flit = (128.0 / (p.lane_Gbps * p.link_width)) / p.tCK_ns
            data_flits = np.ceil(np.asarray(nbytes, float) / 16.0)
            data_flits = data_flits if scalar else data_flits[vorder]
            self.link_busy_v = np.where(self.reads_v, np.ceil((1.0 + data_flits) * one_flit), np.ceil(one_flit))


def _timing(entry: np.ndarray, plan: _Plan, p: HMCParams) -> tuple[np.ndarray, np.ndarray]:
    """Bank start times (bank order) and completion times (vault order) for given entry times (issue order)."""
    arr = entry[plan.order]
    arr += p.request_path_cycles
    start = _scan(arr, plan.D_bank, plan.kb)                             # per bank, first come first served
    ready = start + plan.ready_offset                                    # data at the vault controller
    ready_v = ready[plan.bank_pos]
    # the vault's TSV data bus, served in issue order (the vault controller returns data in order)
    done = _scan(ready_v, plan.D_bus, plan.kv)
    done += plan.burst_v + p.response_path_cycles
    if plan.link_v is not None:                                          # the host links, in ready order
        span = float(done.max() - done.min()) + 1.0
        o = np.argsort(done + plan.link_v * span, kind="stable")         # runs (vaults) already sorted
        busy = plan.link_busy_v[o]
        D = np.cumsum(busy) - busy
        done[o] = _scan(done[o], D, plan.link_v[o])
    return start, done


def _inject(issue: np.ndarray, release_v: np.ndarray | None, plan: _Plan, p: HMCParams) -> np.ndarray:
    """Times requests enter the cube: not before their issue time, in order (one per cycle) within their
    stream, and not before the request ``queue_per_vault`` places ahead in the same vault has left the queue
    (``release_v``: those times, in vault order; None: unbounded)."""
    n = len(issue)
    vo = plan.vault_order
    q = p.queue_per_vault
    earliest_v = issue[vo]
    if release_v is not None and q and n > q:
        same = plan.kv[q:] == plan.kv[:-q]
        np.maximum(earliest_v[q:], np.where(same, release_v[:-q], -np.inf), out=earliest_v[q:])
    if p.front_end == "single":                                           # one in-order stream, 1 per cycle
        earliest = np.empty(n)
        earliest[vo] = earliest_v
        idx = np.arange(n, dtype=float)
        earliest -= idx
        np.maximum.accumulate(earliest, out=earliest)
        earliest += idx
        return earliest
    out = np.empty(n)                                                     # one in-order stream per vault
    out[vo] = _scan(earliest_v, np.arange(n, dtype=float), plan.kv)
    return out


def simulate(time: np.ndarray, vault: np.ndarray, bank: np.ndarray, row: np.ndarray, write: np.ndarray,
             nbytes: np.ndarray | int = 64, p: HMCParams = HMCParams()) -> dict:
    """Simulate requests issued at ``time`` (memory cycles). Returns figures in memory cycles, ns, bytes, pJ.
    With a bounded vault queue, the entry times and the service times depend on each other: a few rounds of
    the vectorised model reach their fixed point (one round when no vault queue fills)."""
    n = len(time)
    if n == 0:
        return {"requests": 0, "cycles": 0.0, "read_latency_avg": 0.0, "read_latency_ns_avg": 0.0,
                "row_hits": 0, "row_misses": 0, "row_conflicts": 0, "bytes": 0, "bandwidth_GBps": 0.0,
                "energy_pJ": 0.0, "activations": 0}
    issue = np.asarray(time, float)
    step = issue[1:] - issue[:-1]
    if n > 1 and step.min() < 0:                                          # bring the requests into issue order
        by_time = np.argsort(issue, kind="stable")
        issue, vault, bank, row, write = issue[by_time], vault[by_time], bank[by_time], row[by_time], write[by_time]
        if np.ndim(nbytes):
            nbytes = np.asarray(nbytes)[by_time]
        step = issue[1:] - issue[:-1]
    plan = _Plan(vault, bank, row, write, nbytes, p)
    # entry without a queue bound: at least one cycle apart in every stream (already so if issued so)
    q = p.queue_per_vault
    entry = issue if not q or n < 2 or step.min() >= 1 else _inject(issue, None, plan, p)
    for _ in range(50):                                                   # rounds of the fixed point
        start, done = _timing(entry, plan, p)
        if not q or n <= q:
            break
        release_v = start[plan.bank_pos]                                  # left the vault queue, vault order
        same = plan.kv[q:] == plan.kv[:-q]
        if not np.any((release_v[:-q] > entry[plan.vault_order[q:]]) & same):
            break                                                         # no full vault held anyone back
        new_entry = _inject(issue, release_v, plan, p)
        if np.array_equal(new_entry, entry):
            break
        entry = new_entry
    return _figures(entry, done, plan, p)


def _figures(entry: np.ndarray, done: np.ndarray, plan: _Plan, p: HMCParams) -> dict:
    """Latency from entering the cube (as Ramulator's: from the accepted send) to the response."""
    n = plan.n
    cls_counts = np.bincount(plan.cls, minlength=3)
    hits, misses, conflicts = (int(c) for c in cls_counts[:3])
    if plan.reads == n:
        rl = float(done.sum() - entry.sum()) / n
    elif plan.reads:
        rl = float(done[plan.reads_v].sum() - entry[plan.vault_order[plan.reads_v]].sum()) / plan.reads
    else:
        rl = 0.0
    cycles = float(done.max() - entry.min())
    total_bytes = plan.bytes
    activations = misses + conflicts
    energy = activations * p.act_pre_energy_pJ + total_bytes * 8 * (p.dram_pJ_per_bit + p.logic_pJ_per_bit +
                                                                    p.serdes_pJ_per_bit)
    return {"requests": n, "reads": plan.reads, "writes": plan.writes, "cycles": cycles,
            "read_latency_avg": rl, "read_latency_ns_avg": rl * p.tCK_ns,
            "row_hits": hits, "row_misses": misses, "row_conflicts": conflicts, "bytes": int(total_bytes),
            "bandwidth_GBps": total_bytes / (cycles * p.tCK_ns) if cycles else 0.0,
            "energy_pJ": energy, "activations": activations}
