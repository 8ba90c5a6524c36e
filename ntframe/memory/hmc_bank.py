"""A bank-level analytical model of an HMC cube, vectorised (numpy), for request traces.

Each request goes through: the request path (``request_path_cycles``: link or logic-die crossbar), its bank
(first come, first served per bank in issue order, except that a request waiting when an earlier request of its
queue to the same row issues its column command goes right after it: Ramulator's FR-FCFS), the vault's TSV data
bus (one 64-byte transfer per ``tsv_cycles_per_64B``, in the order the data are ready: column-command order),
and the response path. A bank's row buffer follows the page policy: with ``open`` a
request to the open row is a hit (``tCL``), to a closed bank a miss (``tRCD + tCL``), to another row a conflict
(``tRP + tRCD + tCL``); ``closed`` closes the row after every access (every request a miss). How long a request
keeps its bank busy depends on it and on the next one (``tRAS``, ``tRC``, ``tCCD``, write recovery ``tWR``).
Refresh takes ``tRFC`` of every ``tREFI`` from every bank (a throughput derating). Not modelled: a vault's
activation-rate limits (Ramulator's HMC_2500: ACT to ACT ``nRRDS`` 7 / ``nRRDL`` 8 cycles, four per ``nFAW``
17; docs/memory.md says why), so there is no ``tFAW`` parameter. Queueing at banks and at the
vault bus is computed exactly for the given issue times with max-plus prefix scans, so the model has no loop
over requests. Everything that does not depend on the times (orders, row-buffer classes, hold times) is
computed once per call (``_Plan``); a bounded vault queue that never fills costs no second round.

With one front end for the cube (``front_end="single"``: a host) requests and responses cross the host links
(Ramulator 1's HMC model): a request's link is ``(address // max_block_bytes) % links``; each link holds up to
``link_buffer_packets`` request packets in order (first in, first out: a head whose vault queue is full blocks
the link, and a full link buffer stops the host) and moves one a cycle to the vaults, whose read and write queues
hold ``controller_queue`` requests each until their column command; each link sends one response at a time,
``ceil(FLITs x one FLIT's time)`` cycles apiece (a read's response carries its data), in the order they are
ready. Latency is counted from the host's send to the response leaving its link. Not modelled: the links'
2048 tags per link (outstanding requests; not reached on the bench traces), flow-control packets, and the
vault controllers' write draining (write mode from 25 queued writes, or no waiting read, down to 6:
HMC_Controller.h tick), so reads never wait behind a batch of writes, nor overtake queued writes. In Ramulator
the draining lowers read latency on the bench's layer traces except conv2.forward vault-local (a Ramulator
rebuilt to serve the older queue head instead: docs/memory.md); a mode timeline fed back from the schedule
(queue counts, prefix scan over events) did not reach a fixed point, see docs/memory.md.

Speed: with numba installed (the ``fast`` extra), on traces of ``STREAM_MIN_REQUESTS`` or more, a compiled pass
over the requests in issue order (:mod:`ntframe.memory.hmc_stream`) gives the figures when its case holds (no FR-FCFS
promotion; with the engines' front ends, a full vault queue is followed through the vectorised model's rounds,
a pass each; with the host links, none full: the vectorised model's first round is then its answer), else the
vectorised model runs; the two agree to the last bit. Derated bank times are rounded to 1/256 cycle so that
every time is exact in floating point.

Energy: activate + precharge per activation, and per bit read or written (DRAM array + TSV), plus the logic
die's per-bit energy (vault controller), plus SerDes per bit for host traffic.
Defaults: HMC 2.1 timings of Ramulator 1's ``HMC_2500`` (tCK 0.8 ns); the data-path constants
(``data_cycles``, request/response paths) calibrated on Ramulator 1 runs (docs/memory.md); the host links
and queues (``links`` ... ``controller_queue``) from the HMC specification as Ramulator 1 implements it, each
field's source beside it (not fitted); energies from docs/sources.md#energies (a host's access 10.48 pJ/bit [S]:
3.7 array + TSV [S], 1.3 vault controller [I] (an engine's access 5.0 [P], the TETRIS authors'), 5.48 switch +
SerDes links [I], which only a host's traffic pays).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ntframe.jit import OptionalKernel

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
    tRFC: int = 200
    tREFI: int = 9750
    tsv_cycles_per_64B: int = 8          # 32 TSVs x 2.5 Gb/s = 10 GB/s per vault
    data_cycles: int = 15                # column command to data at the vault controller, beyond tCL
    request_path_cycles: float = 1.0     # into the cube (host link packet, or logic-die crossbar)
    response_path_cycles: float = 3.0
    page_policy: Literal["open", "closed"] = "open"
    queue_per_vault: int = 64            # requests a vault accepts before its sender stalls (0: unbounded; with
                                         # the host links, controller_queue and link_buffer_packets bound it)
    front_end: Literal["per-vault", "single"] = "per-vault"
    """Who issues: one in-order stream per vault (the logic die's engines), or one stream for the whole cube
    (a host, and Ramulator's DRAM-mode driver): a full vault then stalls everything behind it."""
    act_pre_energy_pJ: float = 500.0
    dram_pJ_per_bit: float = 3.44       # array + TSV; with the activations ~3.7 pJ/bit on a stream
    logic_pJ_per_bit: float = 1.3        # the vault controller: what an engine on the logic die pays
    serdes_pJ_per_bit: float = 5.48      # switch + SerDes links: paid by a host's traffic (front_end "single") only
    # The host links, used with front_end "single" (a host's requests and responses cross the cube's SerDes
    # links; the logic die's own engines use the crossbar). Sources: the HMC 2.1 specification (full-width
    # links of 16 lanes, lanes of 12.5-30 Gb/s, 16-byte FLITs, a read response of 1 + data FLITs, a write
    # response of one FLIT) as Ramulator 1 (hmc branch) implements it, with its HMC-config.cfg values:
    links: int = 4                       # source_mode_host_links = 4 (HMC-config.cfg); 0: no link model
    link_width: int = 16                 # link_width = HMC_Full_Width: 16 lanes (HMC.h link_width_table)
    lane_Gbps: float = 30.0              # lane_speed = HMC_30_Gbps (HMC.h lane_speed_table)
    max_block_bytes: int = 64            # maxblock = HMC_64B; the link: (address >> 6) % links (HMC_Memory.h
                                         # form_request_packet; with every Ramulator HMC mapping: vault % links)
    link_buffer_packets: int = 32        # a link's input buffer (LogicLayer.h LinkSlave::buffer_max), in packets,
                                         # a packet entering only with room for its FLITs
    controller_queue: int = 32           # a vault's read queue and its write queue (HMC_Controller.h Queue::max);
                                         # a request leaves it at its column command


BANK_ENERGIES = {"activation_energy_pJ": "act_pre_energy_pJ", "array_energy_pJ_per_bit": "dram_pJ_per_bit",
                 "logic_energy_pJ_per_bit": "logic_pJ_per_bit"}
"""The DRAM component's attributes the bank model takes its energies from, and the parameters they set."""
BANK_TIMINGS = ("tCK_ns", "tCL", "tRCD", "tRP", "tRAS", "tRC", "tCCD", "tRTP", "tWR", "tCWL", "tRFC", "tREFI",
                "tsv_cycles_per_64B", "data_cycles", "request_path_cycles", "response_path_cycles")
"""The timings the bank model needs from the DRAM component's ``timings`` (the host-link and queue parameters
keep :class:`HMCParams`' values unless the file or the backend's ``timings`` option sets them)."""


def missing_bank_figures(level) -> list[str]:
    """The attributes of the architecture's DRAM ``level`` (a StorageLevel) the bank model needs and it lacks."""
    missing = [name for name in BANK_ENERGIES if getattr(level, name) is None]
    given = dict(level.timings)
    return missing + [f"timings.{name}" for name in BANK_TIMINGS if name not in given]


def bank_params(level, overrides: dict[str, float] | None = None, **settings: str) -> HMCParams:
    """:class:`HMCParams` from the architecture's DRAM ``level``: its energies and timings, then ``overrides``
    (a study's, by parameter name). Raises ValueError naming what the level lacks."""
    missing = missing_bank_figures(level)
    if missing:
        raise ValueError(f"the bank model needs these attributes of DRAM '{level.name}': {', '.join(missing)}")
    numbers = {param: getattr(level, name) for name, param in BANK_ENERGIES.items()}
    if level.host_link_energy_pJ_per_bit is not None:
        numbers["serdes_pJ_per_bit"] = level.host_link_energy_pJ_per_bit
    numbers.update(dict(level.timings))
    numbers.update(overrides or {})
    return hmc_params(numbers, **settings)


def hmc_params(numbers: dict[str, float], **settings: str) -> HMCParams:
    """:class:`HMCParams` with some numeric fields overridden (``{"tCL": 20}``) and text settings given by name
    (``page_policy="closed"``). A name that is not a numeric field, or a fractional value for a count, raises
    ValueError naming the fields there are."""
    fields = {f.name: f for f in dataclasses.fields(HMCParams)}
    numeric = sorted(n for n, f in fields.items() if f.type in ("int", "float"))
    unknown = sorted(set(numbers) - set(numeric))
    if unknown:
        raise ValueError(f"unknown timing(s) {unknown}; the model's numeric parameters: {numeric}")
    values: dict[str, float | int | str] = dict(settings)
    for name, value in numbers.items():
        if fields[name].type == "int":
            if float(value) != int(value):
                raise ValueError(f"timing {name} counts cycles or entries: {value} is not a whole number")
            value = int(value)
        values[name] = value
    return HMCParams(**values)  # type: ignore[arg-type]


QUEUE_ROUNDS = 50
"""Rounds of :func:`simulate`'s fixed point with bounded vault queues (the compiled pass's too)."""
STREAM = OptionalKernel("ntframe.memory.hmc_stream", "the bank model's compiled pass", "the vectorised numpy model")
"""The compiled streaming pass (:mod:`ntframe.memory.hmc_stream`), optional (:mod:`ntframe.jit`)."""
STREAM_MIN_REQUESTS = 200_000
"""Traces this long or longer try the compiled pass first. Shorter ones take the vectorised model only: it
needs tens of milliseconds there, less than loading the compiled pass (about 0.3 s per process, 4 s the first
time it is compiled). The figures are the same either way."""


def _kernels():
    """The compiled streaming pass when it can run (:meth:`ntframe.jit.OptionalKernel.get`); else None."""
    return STREAM.get()


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
    if float(group[-1]) * span + hi >= 2.0 ** 44:                       # offsets beyond exact sums
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


def _hold_table(p: HMCParams, burst) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """How long a request holds its bank before the next one may start, by ``class + 3 write + 6 next_is_hit +
    12 last_in_bank`` (with one transfer size a hit's ``max(tCCD, burst)`` is in the table, else added per
    request), refresh's derating, and by class the cycles from bank start to the column command and to the data
    at the vault controller. With one transfer size the tables are made once per parameters and shared: callers
    read them only."""
    if np.ndim(burst) == 0:
        return _hold_table_of(p, float(burst))
    return _make_hold_table(p, burst)


@functools.lru_cache(maxsize=64)
def _hold_table_of(p: HMCParams, burst: float) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    return _make_hold_table(p, burst)


def _make_hold_table(p: HMCParams, burst) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    pre = np.array([0, p.tRCD, p.tRP + p.tRCD], float)                    # to the column command
    act = np.array([0, 0, p.tRP], float)                                  # PRE -> ACT
    derate = 1.0 / (1.0 - p.tRFC / p.tREFI)                              # refresh steals bank time
    c, ww, nh, la = np.unravel_index(np.arange(24), (2, 2, 2, 3))[::-1]
    rec = np.where(ww == 1, p.tCWL + p.tWR, p.tRTP)
    change = np.maximum(act[c] + p.tRAS, pre[c] + rec) if p.page_policy == "open" else \
        np.maximum(act[c] + p.tRC, pre[c] + rec + p.tRP)
    to_hit = pre[c] + max(p.tCCD, burst) if np.ndim(burst) == 0 else pre[c]
    table = _quantum(np.where(la == 1, 0.0, np.where(nh == 1, to_hit, change)) * derate)
    return table, derate, pre, pre + p.tCL + (p.data_cycles - p.tsv_cycles_per_64B)


def _frfcfs_window(p: HMCParams, n: int) -> int:
    """How many of a bank's earlier requests FR-FCFS looks back over: a vault's queue capacity
    (``controller_queue`` reads plus as many writes with the host links, else ``queue_per_vault``; 0: all)."""
    window = 2 * p.controller_queue if p.front_end == "single" and p.links > 0 else p.queue_per_vault
    return window or n


def _link_times(p: HMCParams, nbytes) -> tuple[np.ndarray, float]:
    """Cycles a response holds its host link (sent whole, one at a time per link, ceil(FLITs x one FLIT's time):
    LogicLayer.cpp LinkMaster::send; one FLIT = 128 bits over ``link_width`` lanes at ``lane_Gbps``): a read's,
    1 + data FLITs of 16 bytes (per request when ``nbytes`` is), and a write's, one FLIT."""
    one_flit = (128.0 / (p.lane_Gbps * p.link_width)) / p.tCK_ns
    return np.ceil((1.0 + np.ceil(np.asarray(nbytes, float) / 16.0)) * one_flit), float(np.ceil(one_flit))


def _quantum(cycles):
    """Derated times rounded to 1/256 cycle: with integer issue times every sum and maximum of the model is then
    exact in floating point, so the vectorised and the streaming model (and any order of summation) give the
    same figures to the last bit (for times below 2^44 cycles)."""
    return np.floor(cycles * 256.0 + 0.5) / 256.0


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
        self.bank_ids, self.bank_counts = nz.astype(np.uint16), counts[nz]
        w = np.asarray(write).astype(bool, copy=False)
        self.row = np.asarray(row)
        self.w_issue = w
        self.writes_any = bool(w.any())
        scalar = np.ndim(nbytes) == 0
        burst = float(np.ceil(float(nbytes) / 64.0) * p.tsv_cycles_per_64B) if scalar else \
            np.ceil(np.asarray(nbytes, float) / 64.0) * p.tsv_cycles_per_64B
        self.burst, self.kb, self.order = burst, kb, order
        self.rb = _small(np.asarray(row))[order] if p.page_policy == "open" else None   # rows, bank order
        self.D_bank, self.cls, self.column_offset, self.ready_offset = self._bank_service(order, p, self.rb)
        self._frfcfs_plan(p)
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
        self.links = p.front_end == "single" and p.links > 0
        if self.links:
            self._link_plan(vault_in, w, nbytes, scalar, p, link)

    def _bank_service(self, order: np.ndarray, p: HMCParams, rb: np.ndarray | None = None):
        """For a service order per bank (``order``: request numbers, grouped by bank as ``self.kb``): each
        request's row-buffer class, the exclusive prefix sum of the bank hold times, and the offsets from bank
        start to the column command and to the data at the vault controller."""
        n, kb, burst = self.n, self.kb, self.burst
        scalar = np.ndim(burst) == 0
        first = np.empty(n, bool)
        first[0] = True
        np.not_equal(kb[1:], kb[:-1], out=first[1:])
        wb = self.w_issue[order]
        if p.page_policy == "closed":
            hit = np.zeros(n, bool)
        else:
            if rb is None:
                rb = np.take(self.row, order)
            hit = np.empty(n, bool)
            hit[0] = False
            np.equal(rb[1:], rb[:-1], out=hit[1:])
            hit &= ~first
        # class code: 0 hit, 1 miss (closed bank), 2 conflict (another row open); closed page: all misses
        cls = np.ones(n, np.uint8) if p.page_policy == "closed" else \
            (~hit).view(np.uint8) + (~hit & ~first).view(np.uint8)
        last = np.empty(n, bool)
        last[-1] = True
        last[:-1] = first[1:]
        nxt_hit = np.empty(n, bool)
        nxt_hit[-1] = False
        nxt_hit[:-1] = hit[1:]
        code = cls + wb.view(np.uint8) * np.uint8(3) + nxt_hit.view(np.uint8) * np.uint8(6) \
            + last.view(np.uint8) * np.uint8(12)
        table, derate, pre, ready_add = _hold_table(p, burst)
        hold = table[code]
        if not scalar:
            hold += (nxt_hit & ~last) * _quantum(np.maximum(p.tCCD, burst[order]) * derate)
        return np.cumsum(hold) - hold, cls, pre[cls], ready_add[cls]

    def _frfcfs_plan(self, p: HMCParams) -> None:
        """For FR-FCFS (:func:`_promote`): each request's row and queue (bank, read or write: Ramulator's vault
        controllers keep separate read and write queues, HMC_Controller.h) in bank order, and the window: a
        vault's queue capacity (``controller_queue`` reads plus as many writes with the host links, else
        ``queue_per_vault``), beyond which two requests cannot be queued at the same time."""
        self.frfcfs = p.page_policy == "open" and self.n >= 3
        if not self.frfcfs:
            return
        self.window = _frfcfs_window(p, self.n)
        self.qb = None
        if self.writes_any:
            self.qb = np.repeat(self.bank_ids * 2, self.bank_counts)
            self.qb += self.w_issue[self.order]
        self._prev_same = None

    @property
    def prev_same(self) -> np.ndarray:
        """Each bank-order place's nearest earlier place with the same bank, queue and row (-1: none); computed
        on first use (only when some request waits behind two others of its bank, see :func:`_waiting_hits`)."""
        if self._prev_same is None:
            q = self.qb if self.qb is not None else np.zeros(self.n, np.int64)
            o = np.lexsort((np.arange(self.n), self.rb, q, self.kb))
            same = (self.kb[o][1:] == self.kb[o][:-1]) & (q[o][1:] == q[o][:-1]) & (self.rb[o][1:] == self.rb[o][:-1])
            self._prev_same = np.full(self.n, -1, np.int64)
            self._prev_same[o[1:][same]] = o[:-1][same]
        return self._prev_same

    def prev_same_at(self, j: np.ndarray) -> np.ndarray:
        """:attr:`prev_same` at the places ``j``, or -1 where it lies more than a window back (never used there).
        Few places: searched back directly, a window at most (one pass over them per step back); many: the table."""
        if self._prev_same is not None or len(j) * self.window > 4 * self.n:
            return self.prev_same[j]
        kb, rb, qb = self.kb, self.rb, self.qb
        c = np.full(len(j), -1, np.int64)
        left = np.arange(len(j))                                          # candidates still searching
        kj, rj = kb[j], rb[j]
        qj = qb[j] if qb is not None else None
        for d in range(1, self.window + 1):
            i = j[left] - d
            on = i >= 0
            i[~on] = 0
            on &= kb[i] == kj[left]                                       # still in the same bank
            hit = on & (rb[i] == rj[left])
            if qj is not None:
                hit &= qb[i] == qj[left]
            c[left[hit]] = i[hit]
            left = left[on & ~hit]
            if not len(left):
                break
        return c

    def _link_plan(self, vault, w, nbytes, scalar, p: HMCParams, link) -> None:
        """The host links: each request's link, the vault queues' order, and the response packets' link times;
        the rest (:meth:`_link_buffers`) only once a queue fills."""
        n = self.n
        if link is None:                       # Ramulator's HMC mappings all put the vault just above the block
            link = vault % p.links
        self.lk = _small(np.asarray(link) % p.links)
        self.data_flits = np.ceil(np.asarray(nbytes, float) / 16.0)       # 16-byte FLITs
        self.w = w
        # the vault's read queue and write queue: room when the request ``controller_queue`` places ahead leaves
        q = p.controller_queue if p.queue_per_vault else 0                # queue_per_vault 0: no bound
        if self.reads == n or self.writes == n:
            qorder, kq = self.vault_order, self.kv
        else:
            qkey = _small(vault.astype(np.int64) * 2 + w)
            qorder = np.argsort(qkey, kind="stable")
            kq = qkey[qorder]
        self.queue_order = qorder
        self.queue_same = (kq[q:] == kq[:-q]) if q and n > q else None
        if qorder is self.vault_order:
            self.queue_pos = self.bank_pos
        else:
            inverse = np.empty(n, np.intp)
            inverse[self.order] = np.arange(n)
            self.queue_pos = inverse[qorder]                               # bank-order position, queue order
        self.link_v, self.nlinks = self.lk[self.vault_order], p.links
        self.link_read, self.link_write = _link_times(p, nbytes)         # (scalar or per request, issue order)
        self.link_order = None

    def _link_buffers(self, p: HMCParams) -> None:
        """The per-link order (issue order within a link) and each request's link-buffer predecessor: a request
        packet is 1 FLIT (read) or 1 + data FLITs (write) and enters its link's buffer when at most
        ``link_buffer_packets - FLITs`` packets wait there, i.e. once the packet that many + 1 places ahead left."""
        n = self.n
        lorder = np.argsort(self.lk, kind="stable")
        self.link_order = lorder
        self.kl = self.lk[lorder].astype(np.float64)
        wl = self.w[lorder]
        df = self.data_flits if np.ndim(self.data_flits) == 0 else self.data_flits[lorder]
        lag = (p.link_buffer_packets - np.where(wl, df, 0.0)).astype(np.intp)   # buffer + 1 - (1 + data)
        src = np.arange(n) - lag
        ok = src >= 0
        src[~ok] = 0
        ok &= self.kl[src] == self.kl
        self.lbuf_src, self.lbuf_ok = src, ok


def _timing(arrive: np.ndarray, plan: _Plan, p: HMCParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bank start times and column-command times (both in issue order per bank, ``plan.order``) and completion
    times (vault order) for given arrival times at the vault (issue order). Banks serve first come first served,
    except that a request waiting for its bank when an earlier request of its queue to the same row issues its
    column command is served right after it (FR-FCFS, see :func:`_promote`); ``plan.cls_now`` gets the classes
    of that service order."""
    arr = arrive[plan.order]
    start = _scan(arr, plan.D_bank, plan.kb)                             # per bank, first come first served
    col = start + plan.column_offset
    ready = start + plan.ready_offset                                    # data at the vault controller
    plan.cls_now = plan.cls
    if plan.frfcfs:
        start, col, ready = _promote(arr, start, col, ready, plan, p)
    ready_v = ready[plan.bank_pos]
    # the vault's TSV data bus, served in the order the data are ready, i.e. in column-command order: Ramulator's
    # vault controller queues a read's data at its RD command (HMC_Controller.h tick: ``pending.push_back`` with
    # ``depart = clk + read_latency``, one per cycle from the front), so a request whose bank was free returns
    # before an older one still waiting for its bank. Issue order when the two agree (no sort needed).
    out_of_order = ready_v[1:] < ready_v[:-1]
    out_of_order &= plan.kv[1:] == plan.kv[:-1]
    if not out_of_order.any():
        done = _scan(ready_v, plan.D_bus, plan.kv)
    else:
        span = float(ready_v.max() - ready_v.min()) + 1.0
        o = np.argsort(plan.kv * span + ready_v, kind="stable")          # per vault, by ready time
        if np.ndim(plan.burst_v) == 0:
            D = plan.D_bus
        else:
            b = plan.burst_v[o]
            D = np.cumsum(b) - b
        done = np.empty_like(ready_v)
        done[o] = _scan(ready_v[o], D, plan.kv[o])
    done += plan.burst_v + p.response_path_cycles
    return start, col, done


def _waiting_hits(arr: np.ndarray, col: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (j, c), bank-order places: request ``j`` is not a hit in issue order, and ``c``, the nearest earlier
    request of its queue to the same bank and row (at least 2 places back, within the window), issued its column
    command while ``j`` waited — as did every request of the bank between them (``col >= arr[j]`` over
    ``c .. j-2``: j was still queued behind them). Only requests that arrived with at least 2 requests of their
    bank ahead still waiting can have one. ``c`` comes from the plan (:attr:`_Plan.prev_same`), the "every
    request between" test from a range minimum (:func:`_range_min`)."""
    kb, rb = plan.kb, plan.rb
    j = np.flatnonzero((kb[2:] == kb[:-2]) & (col[:-2] >= arr[2:]) & (rb[2:] != rb[1:-1])) + 2
    if not len(j):
        return j, j
    c = plan.prev_same_at(j)
    ok = (c >= 0) & (j - c >= 2) & (j - c <= plan.window)
    j, c = j[ok], c[ok]
    if not len(j):
        return j, j
    ok = _range_min(col, c, j - 2) >= arr[j]
    return j[ok], c[ok]


def _range_min(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``min(x[lo[i] .. hi[i]])`` for every i (inclusive, lo <= hi), from a sparse table of minima over runs of
    2^k elements, built only up to the longest range asked for."""
    length = hi - lo + 1
    level = np.frexp(length.astype(np.float64))[1] - 1               # floor(log2(length))
    out = np.empty(len(lo))
    table = x
    for k in range(int(level.max()) + 1):
        if k:
            half = 1 << (k - 1)
            table = np.minimum(table[:-half], table[half:])              # minima of runs of 2^k
        sel = np.flatnonzero(level == k)
        if len(sel):
            out[sel] = np.minimum(table[lo[sel]], table[hi[sel] - (1 << k) + 1])
    return out


def _promote(arr, start, col, ready, plan: _Plan, p: HMCParams):
    """FR-FCFS per bank (Ramulator's ``FRFCFS_PriorHit``, Scheduler.h: a ready row hit first, then the oldest;
    no row with a waiting hit is closed): a request ``j`` that is waiting when ``c`` (the nearest earlier request
    of its queue to the same bank and row) issues its column command finds its row open and goes before every
    older request to that bank: it joins ``c``'s run of row hits (:func:`_waiting_hits`). Runs chain (``j``'s
    run head is ``c``'s), found by following the links (at most a window of steps); each bank then serves whole
    runs in the order of their heads, the rest as before. The schedule and the promotions depend on each other:
    rounds from first come first served, the promotions decided each time against the latest column-command
    times, until they no longer change (at most 8). Returns start, column and ready times in issue order per
    bank, like the FCFS ones."""
    n = plan.n
    prev = None
    for _ in range(8):
        cj, cp = _waiting_hits(arr, col, plan)
        if not len(cj) or (prev is not None and np.array_equal(cj, prev[0]) and np.array_equal(cp, prev[1])):
            break
        prev = cj, cp
        root = np.arange(n)
        root[cj] = cp
        while True:                      # the run heads, by pointer jumping: log2(longest run) passes
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
        key = np.arange(n)
        key[cj] = root[cj]
        perm = np.argsort(key, kind="stable")                            # runs together, in their heads' places
        D, cls, co, ro = plan._bank_service(plan.order[perm], p, plan.rb[perm])
        s2 = _scan(arr[perm], D, plan.kb)
        start, col, ready = np.empty(n), np.empty(n), np.empty(n)
        start[perm] = s2
        col[perm] = s2 + co
        ready[perm] = s2 + ro
        plan.cls_now = cls
    return start, col, ready


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
             nbytes: np.ndarray | int = 64, p: HMCParams = HMCParams(), link: np.ndarray | None = None,
             compiled: bool | None = None) -> dict:
    """Simulate requests issued at ``time`` (memory cycles). Returns figures in memory cycles, ns, bytes, pJ.
    ``compiled``: try the compiled pass (when numba is there) whatever the length (True), never (False), or from
    STREAM_MIN_REQUESTS requests on (None: a caller simulating many short stretches says True, since it loads
    the pass once for all of them).
    ``link``: each request's host link (``front_end="single"``), e.g. ``(address // p.max_block_bytes) % p.links``
    as Ramulator; by default ``vault % links``, the same under every Ramulator HMC address mapping.
    With a bounded vault queue, the entry times and the service times depend on each other: a few rounds of
    the vectorised model reach their fixed point (one round when no vault queue fills)."""
    n = len(time)
    if n == 0:
        return {"requests": 0, "cycles": 0.0, "read_latency_avg": 0.0, "read_latency_ns_avg": 0.0,
                "row_hits": 0, "row_misses": 0, "row_conflicts": 0, "bytes": 0, "bandwidth_GBps": 0.0,
                "energy_pJ": 0.0, "activations": 0}
    issue = np.asarray(time, float)
    if n > 1 and (issue[1:] < issue[:-1]).any():                         # bring the requests into issue order
        by_time = np.argsort(issue, kind="stable")
        issue, vault, bank, row, write = issue[by_time], vault[by_time], bank[by_time], row[by_time], write[by_time]
        if np.ndim(nbytes):
            nbytes = np.asarray(nbytes)[by_time]
        if link is not None:
            link = np.asarray(link)[by_time]
    kern = _kernels() if (n >= STREAM_MIN_REQUESTS if compiled is None else compiled) else None
    if kern is not None:
        try:
            figures = _stream(kern, issue, vault, bank, row, write, nbytes, p, link, rounds=True)
        except Exception as exc:    # an optional accelerator (compiled by numba on first use) must not cost results
            STREAM.failed(exc)
        else:
            if figures is not None:
                return figures
    step = issue[1:] - issue[:-1]
    plan = _Plan(vault, bank, row, write, nbytes, p, link)
    if plan.links:
        entry, done = _host(issue, step, plan, p)
        return _figures(entry, done, plan, p)
    # entry without a queue bound: at least one cycle apart in every stream (already so if issued so)
    q = p.queue_per_vault
    entry = issue if not q or n < 2 or step.min() >= 1 else _inject(issue, None, plan, p)
    for _ in range(QUEUE_ROUNDS):                                         # rounds of the fixed point
        start, _, done = _timing(entry + p.request_path_cycles, plan, p)
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
    else:               # the rounds ran out before a fixed point: the completions of the entry times kept
        done = _timing(entry + p.request_path_cycles, plan, p)[2]
    return _figures(entry, done, plan, p)


def _host(issue: np.ndarray, step: np.ndarray, plan: _Plan, p: HMCParams) -> tuple[np.ndarray, np.ndarray]:
    """One host sending in order, one request per cycle, over the host links: the fixed point of the send times
    (``entry``), the times the links move requests into their vaults' queues (``moved``), and the queues'
    release times (column commands), by rounds of the vectorised model (one when nothing fills). Returns the
    send times (issue order) and the times the responses leave their links (vault order; see _respond)."""
    n = plan.n
    lo = None
    entry = issue if n < 2 or step.min() >= 1 else _single(issue)
    moved = entry + p.request_path_cycles    # one request a cycle from the host: never two a cycle on a link
    q = p.controller_queue
    rp = p.request_path_cycles
    qo, same = plan.queue_order, plan.queue_same
    for round_ in range(100):
        _, col, done = _timing(moved, plan, p)
        if same is None:
            break                                                         # unbounded vault queues
        rq = col[plan.queue_pos]                                        # column commands, queue order
        if round_ == 0:
            if rp < p.link_buffer_packets - 4 and not np.any((rq[:-q] > moved[qo[q:]]) & same):
                break                    # no vault queue was full: no link waited, no link buffer filled
            plan._link_buffers(p)
            lo = plan.link_order
        room = np.full(n, -np.inf)                                        # a place in the vault's queue
        room[qo[q:]] = np.where(same, rq[:-q], -np.inf)
        arrive = np.maximum(entry + rp, room)[lo]
        ml = _scan(arrive, np.arange(n, dtype=float), plan.kl)            # in order, one a cycle per link
        new_moved = np.empty(n)
        new_moved[lo] = ml
        earliest = issue.copy()                                           # room in the link's buffer
        earliest[lo] = np.maximum(earliest[lo], np.where(plan.lbuf_ok, ml[plan.lbuf_src], -np.inf))
        new_entry = _single(earliest)
        if np.abs(new_moved - moved).max() < 1e-6 and np.abs(new_entry - entry).max() < 1e-6:
            break
        entry, moved = new_entry, np.maximum(new_moved, new_entry + rp)
    return entry, _respond(done, plan)


def _single(earliest: np.ndarray) -> np.ndarray:
    """One in-order stream, one request per cycle: ``e_i = max(earliest_i, e_{i-1} + 1)``."""
    idx = np.arange(len(earliest), dtype=float)
    out = earliest - idx
    np.maximum.accumulate(out, out=out)
    out += idx
    return out


def _respond(ready: np.ndarray, plan: _Plan) -> np.ndarray:
    """Times the responses leave their links: per link, one at a time in the order they are ready,
    ``s_i = max(r_i, s_{i-1} + t_{i-1})``, a prefix-max scan over the ready order with the links kept apart by
    an offset per link. Vault order; when every request is a read (one service time) the values come back
    sorted by link and time instead, which is all the figures need (sums and maxima)."""
    n = plan.n
    lo = float(ready.min())
    if plan.reads == n and np.ndim(plan.link_read) == 0:                 # one service time: values suffice
        t = float(plan.link_read)
        span = float(ready.max()) - lo + t * n + 1.0                      # beyond any (ready - D) spread
        if 2.0 ** 44 <= span * plan.nlinks + abs(lo):
            return _respond_sorted(ready, plan)
        x = plan.link_v * span
        x += ready
        x.sort()
        D = np.arange(n, dtype=float)
        D *= t
        x -= D
        np.maximum.accumulate(x, out=x)
        x += D
        counts = np.bincount(plan.lk)
        x -= np.repeat(np.arange(len(counts), dtype=float) * span, counts)
        return x
    return _respond_sorted(ready, plan)


def _respond_sorted(ready: np.ndarray, plan: _Plan) -> np.ndarray:
    span = float(ready.max() - ready.min()) + 1.0
    o = np.argsort(ready + plan.link_v * span, kind="stable")          # ties: vault order
    read = plan.link_read if np.ndim(plan.link_read) == 0 else plan.link_read[plan.vault_order]
    busy = np.where(plan.reads_v, read, plan.link_write)[o]
    out = np.empty(plan.n)
    out[o] = _scan(ready[o], np.cumsum(busy) - busy, plan.link_v[o])
    return out


def _figures(entry: np.ndarray, done: np.ndarray, plan: _Plan, p: HMCParams) -> dict:
    """Latency from entering the cube (as Ramulator's: from the accepted send) to the response."""
    n = plan.n
    if plan.reads == n:
        rl = float(done.sum() - entry.sum()) / n
    elif plan.reads:
        rl = float(done[plan.reads_v].sum() - entry[plan.vault_order[plan.reads_v]].sum()) / plan.reads
    else:
        rl = 0.0
    return _report(n, plan.reads, plan.bytes, np.bincount(plan.cls_now, minlength=3), rl,
                   float(done.max() - entry.min()), p)


def _report(n: int, reads: int, total_bytes: float, cls_counts, read_latency: float, cycles: float,
            p: HMCParams) -> dict:
    hits, misses, conflicts = (int(c) for c in cls_counts[:3])
    activations = misses + conflicts
    host_pJ_per_bit = p.serdes_pJ_per_bit if p.front_end == "single" else 0.0    # engines cross no SerDes link
    energy = activations * p.act_pre_energy_pJ + total_bytes * 8 * (p.dram_pJ_per_bit + p.logic_pJ_per_bit +
                                                                    host_pJ_per_bit)
    return {"requests": n, "reads": reads, "writes": n - reads, "cycles": cycles,
            "read_latency_avg": read_latency, "read_latency_ns_avg": read_latency * p.tCK_ns,
            "row_hits": hits, "row_misses": misses, "row_conflicts": conflicts, "bytes": int(total_bytes),
            "bandwidth_GBps": total_bytes / (cycles * p.tCK_ns) if cycles else 0.0,
            "energy_pJ": energy, "activations": activations}


def _stream(kern, issue, vault, bank, row, write, nbytes, p: HMCParams, link, rounds: bool = False) -> dict | None:
    """The figures from the compiled streaming pass (:func:`ntframe.memory.hmc_stream.stream`), or None when its case does not
    hold (a request promoted by FR-FCFS, a full vault queue): then the vectorised model answers. The settings
    below are the vectorised model's, one for one (``_Plan``, ``simulate``, ``_host``). One request a cycle
    where the vectorised model spaces them changes nothing when they already are. ``rounds``: when a vault queue
    fills (engine front ends, no host links), find the times requests enter as the vectorised model's rounds do
    (:func:`ntframe.memory.hmc_stream.queue_rounds`) and stream from those, rather than decline."""
    n = len(issue)
    vault, bank, write = np.asarray(vault), np.asarray(bank), np.asarray(write)
    scalar = np.ndim(nbytes) == 0
    size = np.atleast_1d(np.asarray(nbytes, float))
    burst = np.ceil(size / 64.0) * p.tsv_cycles_per_64B
    table, derate, pre, ready_add = _hold_table(p, float(burst[0]) if scalar else burst)
    links = p.front_end == "single" and p.links > 0
    if links:
        q = p.controller_queue if p.queue_per_vault else 0
        entry_rule = 1
        if q and n > q and not p.request_path_cycles < p.link_buffer_packets - 4:
            return None                                                   # the link model's rounds always run
        link_read, link_write = _link_times(p, size)
        lk = np.zeros(0, np.int64) if link is None else np.asarray(link)
    else:
        q = p.queue_per_vault
        entry_rule = 0 if not q else 1 if p.front_end == "single" else 2
        link_read, link_write, lk = np.zeros(1), 0.0, np.zeros(0, np.int64)
    row = np.asarray(row)
    open_page, window, qcap = p.page_policy == "open", _frfcfs_window(p, n), q if q and n > q else 0
    frfcfs, given = open_page and n >= 3, np.zeros(0)
    if rounds and qcap and not links and hasattr(kern, "queue_rounds"):     # (a pass without it: as before)
        # the entry times first (one pass when no queue fills), tested for FR-FCFS there: the streaming pass
        # from those times need not test again
        status, given = kern.queue_rounds(issue, vault, bank, row, table, derate, float(p.tCCD), pre,
                                          float(p.request_path_cycles), burst, write, open_page, frfcfs, window,
                                          qcap, p.front_end == "single", QUEUE_ROUNDS)
        if status != kern.OK:
            return None
        entry_rule, frfcfs, qcap = 3, False, 0
    status, cls_counts, reads, sum_done, sum_entry, last, first = kern.stream(
        issue, vault, bank, row, write, burst, lk, link_read, link_write, p.links if links else 0,
        entry_rule, table, derate, float(p.tCCD), pre, ready_add, float(p.request_path_cycles),
        float(p.response_path_cycles), open_page, frfcfs, window, qcap, 1 if links else 0, given)
    if status != kern.OK:
        return None
    rl = (sum_done - sum_entry) / reads if reads else 0.0
    return _report(n, reads, float(nbytes) * n if scalar else float(size.sum()), cls_counts, rl, last - first, p)
