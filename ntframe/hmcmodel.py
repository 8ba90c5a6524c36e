"""A bank-level analytical model of an HMC cube, vectorised (numpy), for request traces.

Each request goes through: the request path (``request_path_cycles``: link or logic-die crossbar), its bank
(first come, first served per bank, in issue order), the vault's TSV data bus (one 64-byte transfer per
``tsv_cycles_per_64B``), and the response path. A bank's row buffer follows the page policy: with ``open`` a
request to the open row is a hit (``tCL``), to a closed bank a miss (``tRCD + tCL``), to another row a conflict
(``tRP + tRCD + tCL``); ``closed`` closes the row after every access (every request a miss). How long a request
keeps its bank busy depends on it and on the next one (``tRAS``, ``tRC``, ``tCCD``, write recovery ``tWR``).
Refresh takes ``tRFC`` of every ``tREFI`` from every bank (a throughput derating). Queueing at banks and at the
vault bus is computed exactly for the given issue times with max-plus prefix scans, so the model has no loop
over requests.

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


def _fifo(arrival: np.ndarray, service: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Start times of a first-come-first-served server per group: ``s_i = max(a_i, s_{i-1} + d_{i-1})``.
    Inputs sorted by (group, arrival). Max-plus prefix scan: ``s_i = D_i + max_{j<=i}(a_j - D_j)`` with
    ``D`` the exclusive prefix sum of the service times within the group."""
    n = len(arrival)
    if n == 0:
        return arrival.astype(float)
    D = np.cumsum(service) - service
    first = np.ones(n, bool)
    first[1:] = group[1:] != group[:-1]
    base = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    Dg = D - D[base]
    x = arrival - Dg
    seg = np.cumsum(first) - 1
    span = float(np.max(np.abs(x))) * 2 + 1.0
    cm = np.maximum.accumulate(x + seg * span) - seg * span
    return Dg + cm


def _inject(issue: np.ndarray, release: np.ndarray, vault: np.ndarray, p: HMCParams) -> np.ndarray:
    """Times requests enter the cube: not before their issue time, in order (one per cycle) within their
    stream, and not before the request ``queue_per_vault`` places ahead in the same vault has left the queue."""
    n = len(issue)
    order = np.argsort(vault.astype(np.uint16), kind="stable")          # radix sort
    pos = np.empty(n, np.int64)
    counts = np.bincount(vault)
    starts = np.cumsum(counts) - counts
    pos[order] = np.arange(n) - np.repeat(starts, counts)             # rank within the vault
    earliest = issue.copy()
    q = p.queue_per_vault
    if q:
        ahead = np.full(n, -1, np.int64)
        has = pos[order] >= q
        ahead[order[has]] = order[np.flatnonzero(has) - q]               # the request q places ahead
        earliest = np.where(ahead >= 0, np.maximum(earliest, release[np.maximum(ahead, 0)]), earliest)
    if p.front_end == "single":                                           # one in-order stream, 1 per cycle
        idx = np.arange(n, dtype=float)
        return idx + np.maximum.accumulate(earliest - idx)
    out = np.empty(n)                                                     # one in-order stream per vault
    out[order] = _fifo(earliest[order], np.ones(n), vault[order])
    return out


def simulate(time: np.ndarray, vault: np.ndarray, bank: np.ndarray, row: np.ndarray, write: np.ndarray,
             nbytes: np.ndarray | int = 64, p: HMCParams = HMCParams()) -> dict:
    """Simulate requests issued at ``time`` (memory cycles). Returns figures in memory cycles, ns, bytes, pJ.
    With a bounded vault queue, the entry times and the service times depend on each other: a few rounds of
    the vectorised model reach their fixed point."""
    n = len(time)
    if n == 0 or not p.queue_per_vault:
        return _simulate(time, vault, bank, row, write, nbytes, p)
    issue = np.asarray(time, float)
    if n > 1 and np.any(issue[1:] < issue[:-1]):
        by_time = np.argsort(issue, kind="stable")
        issue, vault, bank, row, write = issue[by_time], vault[by_time], bank[by_time], row[by_time], write[by_time]
        if np.ndim(nbytes):
            nbytes = np.asarray(nbytes)[by_time]
    v = vault.astype(np.int64)
    entry = _inject(issue, issue, v, HMCParams(**{**p.__dict__, "queue_per_vault": 0}))
    for _ in range(12):
        result = _simulate(entry, vault, bank, row, write, nbytes, p, keep_order=True)
        new_entry = _inject(issue, result["_start"], v, p)
        if np.array_equal(new_entry, entry):
            break
        entry = new_entry
    result.pop("_start")
    return result


def _simulate(time: np.ndarray, vault: np.ndarray, bank: np.ndarray, row: np.ndarray, write: np.ndarray,
              nbytes: np.ndarray | int = 64, p: HMCParams = HMCParams(), keep_order: bool = False) -> dict:
    n = len(time)
    if n == 0:
        return {"requests": 0, "cycles": 0.0, "read_latency_avg": 0.0, "read_latency_ns_avg": 0.0,
                "row_hits": 0, "row_misses": 0, "row_conflicts": 0, "bytes": 0, "bandwidth_GBps": 0.0,
                "energy_pJ": 0.0, "activations": 0}
    a = time.astype(float)
    if not keep_order and n > 1 and np.any(a[1:] < a[:-1]):      # bring the requests into issue order
        by_time = np.argsort(a, kind="stable")
        a, vault, bank, row, write = a[by_time], vault[by_time], bank[by_time], row[by_time], write[by_time]
    nbytes = np.broadcast_to(np.asarray(nbytes, float), (n,))
    key = (vault.astype(np.uint16) << np.uint16(6)) | bank.astype(np.uint16)     # vault * 64 + bank
    order = np.argsort(key, kind="stable")           # radix sort: per bank, in issue order
    k, r, w, arr = key[order], row.astype(np.int64)[order], write[order].astype(bool), a[order] + p.request_path_cycles
    first = np.ones(n, bool)
    first[1:] = k[1:] != k[:-1]
    if p.page_policy == "closed":
        cls = np.full(n, MISS)
    else:
        same = np.zeros(n, bool)
        same[1:] = (r[1:] == r[:-1]) & ~first[1:]
        cls = np.where(first, MISS, np.where(same, HIT, CONFLICT))
    pre = np.select([cls == HIT, cls == MISS], [0, p.tRCD], p.tRP + p.tRCD)      # to the column command
    act_offset = np.where(cls == CONFLICT, p.tRP, 0)                              # PRE -> ACT
    burst = np.ceil(nbytes / 64.0) * p.tsv_cycles_per_64B
    # how long a request holds its bank before the next one may start, given the next one's class
    nxt = np.r_[cls[1:], HIT]
    last_in_bank = np.r_[first[1:], True]
    recovery = np.where(w, p.tCWL + p.tWR, p.tRTP)
    to_hit = pre + np.maximum(p.tCCD, burst)
    to_row_change = np.maximum(act_offset + p.tRAS, pre + recovery) if p.page_policy == "open" else \
        np.maximum(act_offset + p.tRC, pre + recovery + p.tRP)
    hold = np.where(last_in_bank, 0.0, np.where(nxt == HIT, to_hit, to_row_change)).astype(float)
    hold = hold / (1.0 - p.tRFC / p.tREFI)                                        # refresh steals bank time
    start = _fifo(arr, hold, k)
    ready = start + pre + p.tCL + (p.data_cycles - p.tsv_cycles_per_64B)
    # the vault's TSV data bus, served in issue order (the vault controller returns data in order)
    v = (k >> np.uint16(6))
    inverse = np.empty(n, np.int64)
    inverse[order] = np.arange(n)                    # bank-sorted position of each request (issue order)
    border = inverse[np.argsort(key >> np.uint16(6), kind="stable")]   # per vault, in issue order
    bus_start = np.empty(n)
    bus_start[border] = _fifo(ready[border], burst[border], v[border])
    done = bus_start + burst + p.response_path_cycles
    latency = done - (arr - p.request_path_cycles)
    reads = ~w
    total_bytes = float(nbytes.sum())
    cycles = float(done.max() - a.min()) if n else 0.0
    activations = int((cls != HIT).sum())
    bits = total_bytes * 8
    energy = activations * p.act_pre_energy_pJ + bits * (p.dram_pJ_per_bit + p.logic_pJ_per_bit +
                                                         p.serdes_pJ_per_bit)
    rl = float(latency[reads].mean()) if reads.any() else 0.0
    start_issue_order = np.empty(n)
    start_issue_order[order] = start                  # when each request left its vault's queue
    return {"requests": n, "reads": int(reads.sum()), "writes": int(w.sum()), "cycles": cycles,
            "read_latency_avg": rl, "read_latency_ns_avg": rl * p.tCK_ns,
            "row_hits": int((cls == HIT).sum()), "row_misses": int((cls == MISS).sum()),
            "row_conflicts": int((cls == CONFLICT).sum()), "bytes": int(total_bytes),
            "bandwidth_GBps": total_bytes / (cycles * p.tCK_ns) if cycles else 0.0,
            "energy_pJ": energy, "activations": activations,
            **({"_start": start_issue_order} if keep_order else {})}
