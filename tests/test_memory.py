"""Traces (format, round trips, address mappings), the bank-level HMC model (by hand and against recorded
Ramulator runs), and trace generation from a mapping."""

from __future__ import annotations

import gzip
import random
import re

import numpy as np
import pytest

from ntframe.memory.hmc_bank import HMCParams, simulate
from ntframe.memory.trace import ADDRESS_MAPPINGS, TraceWriter, inspect, read_trace, records
from tests.conftest import ROOT

RAMULATOR = ROOT / "tests" / "golden" / "ramulator"
ROCOBAVA = ADDRESS_MAPPINGS["RoCoBaVa"]


def ramulator_stat(pattern: str, key: str) -> float:
    text = gzip.open(RAMULATOR / f"{pattern}.stats.gz", "rt").read()
    return float(re.search(rf"^\s*ramulator\.{re.escape(key)}\s+(\S+)", text, re.M).group(1))


def patterns(n=20000):
    """The request streams of tests/golden/ramulator (see its README): same generator, same seed."""
    rng = random.Random(12345)
    rw = []
    for i in range(n // 2):
        rw += [(i * 64, 0), ((1 << 31) + i * 64, 1)]
    return {"seq": [(i * 64, 0) for i in range(n)],
            "rand": [(rng.randrange(0, 1 << 26) * 64, 0) for _ in range(n)],
            "rw": rw, "conflict": [(i << 16, 0) for i in range(2000)]}


def run_model(reqs, **params):
    address = np.array([a for a, _ in reqs], np.uint64)
    write = np.array([w for _, w in reqs], np.uint8)
    f = ROCOBAVA.decode(address)
    # Ramulator's DRAM-mode front end offers one request per memory cycle, one stream for the whole cube
    return simulate(np.arange(len(reqs), dtype=float), f["vault"], f["bank"], f["row"], write, 64,
                    HMCParams(**{"front_end": "single", **params}))


def test_address_mapping_fields_match_ramulators_hmc_layout():
    # bits 0-4 offset, 5 column, 6-10 vault, 11-13 bank (+ group), 14-15 column, 16-31 row (Ramulator src/HMC.h)
    f = ROCOBAVA.decode(np.array([64, 1 << 11, 1 << 14, 1 << 16, 0x12345680], np.uint64))
    assert f["vault"].tolist() == [1, 0, 0, 0, 0x12345680 >> 6 & 31]
    assert f["bank"].tolist() == [0, 1, 0, 0, 0x12345680 >> 11 & 7]
    assert f["column"].tolist() == [0, 0, 2, 0, ((0x12345680 >> 14 & 3) << 1) | (0x12345680 >> 5 & 1)]
    assert f["row"].tolist() == [0, 0, 0, 1, 0x1234]
    addresses = np.arange(0, 1 << 20, 64, dtype=np.uint64)
    for m in ADDRESS_MAPPINGS.values():
        assert (m.encode(**m.decode(addresses)) == addresses).all(), m.name


@pytest.mark.parametrize("fmt", ["nttrace", "csv", "ramulator", "dramsim3"])
def test_trace_formats_round_trip(tmp_path, fmt):
    rng = np.random.default_rng(0)
    address = rng.integers(0, 1 << 26, 5000).astype(np.uint64) * np.uint64(64)
    recs = records(np.arange(5000, dtype=np.uint64) * np.uint64(3), address, rng.integers(0, 2, 5000), ROCOBAVA,
                   tensor=rng.integers(0, 3, 5000))
    path = tmp_path / f"t.{fmt}"
    with TraceWriter(path, fmt, {"tensors": ["A", "B", "C"]}) as w:
        w.write(recs[:2000])
        w.write(recs[2000:])
    text = path.read_bytes()
    if fmt in ("ramulator", "dramsim3", "csv"):
        assert text.endswith(b"\n")                      # Ramulator drops an unterminated last line
    if fmt == "dramsim3":
        assert b" WRITE " in text and b" W " not in text  # DRAMSim3 reads 'W' as a read
        assert text.splitlines()[1] == f"0x{int(address[1]):X} {'WRITE' if recs['write'][1] else 'READ'} 3".encode()
    if fmt == "ramulator":
        assert text.splitlines()[0] == f"0x{int(address[0]):x} {'W' if recs['write'][0] else 'R'}".encode()
    header, chunks = read_trace(path, chunk=1500)
    back = np.concatenate(list(chunks))
    assert len(back) == 5000
    for field in ("address", "write", "vault", "bank", "row", "column"):
        assert (back[field] == recs[field]).all(), field
    if fmt in ("nttrace", "csv", "dramsim3"):
        assert (back["time"] == recs["time"]).all()
    if fmt in ("nttrace", "csv"):
        assert (back["tensor"] == recs["tensor"]).all()
    if fmt == "nttrace":
        assert header["tensors"] == ["A", "B", "C"]


def test_inspect_counts_by_hand(tmp_path):
    # vault 0 bank 0: rows 0, 0, 1, 1, 0 -> hits on requests 2 and 4 of 5; one write
    address = np.array([0, 1 << 14, 1 << 16, (1 << 16) | (1 << 14), 0], np.uint64)
    recs = records(np.arange(5, dtype=np.uint64), address, [0, 0, 0, 1, 0], ROCOBAVA)
    with TraceWriter(tmp_path / "t.nttrace", "nttrace") as w:
        w.write(recs)
    info = inspect(tmp_path / "t.nttrace")
    assert (info["reads"], info["writes"], info["bytes"]) == (4, 1, 320)
    assert info["bytes_per_vault"][0] == 320 and info["open_page_row_hit_rate"] == pytest.approx(2 / 5)


def test_bank_model_by_hand():
    p = HMCParams()
    # one bank, one row, 8 requests: a miss then 7 hits; the bank serves a hit every max(tCCD, burst) cycles
    r = simulate(np.zeros(8), np.zeros(8, int), np.zeros(8, int), np.zeros(8, int), np.zeros(8, int), 64, p)
    assert (r["row_misses"], r["row_hits"], r["row_conflicts"]) == (1, 7, 0)
    first_data = p.request_path_cycles + p.tRCD + p.tCL + (p.data_cycles - p.tsv_cycles_per_64B)
    derate = 1 / (1 - p.tRFC / p.tREFI)
    assert r["cycles"] == pytest.approx(first_data + p.tsv_cycles_per_64B * (1 + 7 * derate) + p.response_path_cycles
                                        + 0 * derate, rel=0.02)
    # one bank, a new row each time: back to back at tRAS + tRP = tRC apart
    n = 100
    r = simulate(np.zeros(n), np.zeros(n, int), np.zeros(n, int), np.arange(n), np.zeros(n, int), 64, p)
    assert (r["row_misses"], r["row_conflicts"]) == (1, n - 1)
    assert r["cycles"] == pytest.approx((n - 1) * p.tRC * derate + p.tRP + p.tRCD + p.tCL + p.data_cycles + 4,
                                        rel=0.02)
    assert r["bandwidth_GBps"] == pytest.approx(n * 64 / (r["cycles"] * 0.8), rel=1e-9)
    closed = simulate(np.zeros(8), np.zeros(8, int), np.zeros(8, int), np.zeros(8, int), np.zeros(8, int), 64,
                      HMCParams(page_policy="closed"))
    assert closed["row_misses"] == 8 and closed["activations"] == 8


@pytest.mark.parametrize("pattern", ["seq", "rand", "rw"])
def test_bank_model_within_10_percent_of_ramulator(pattern):
    """Bandwidth and average read latency against Ramulator 1 (hmc branch, HMC-config.cfg), recorded."""
    r = run_model(patterns()[pattern])
    bandwidth = (ramulator_stat(pattern, "read_bandwidth") + ramulator_stat(pattern, "write_bandwidth")) / 1e9
    assert r["bandwidth_GBps"] == pytest.approx(bandwidth, rel=0.10)
    assert r["read_latency_avg"] == pytest.approx(ramulator_stat(pattern, "read_latency_avg"), rel=0.10)
    ram_hits = ramulator_stat(pattern, "row_hits") / (ramulator_stat(pattern, "read_requests")
                                                     + ramulator_stat(pattern, "write_requests"))
    assert r["row_hits"] / r["requests"] == pytest.approx(ram_hits, abs=0.03)


def test_conflict_pattern_matches_ramulator_with_bounded_queues():
    """2,000 reads to one bank: tRC apart; Ramulator's sender stalls while the vault's queues are full, so
    latency counts from acceptance — the bounded-queue model reproduces it, an unbounded queue does not."""
    r = run_model(patterns()["conflict"])
    assert r["bandwidth_GBps"] == pytest.approx(ramulator_stat("conflict", "read_bandwidth") / 1e9, rel=0.10)
    assert r["read_latency_avg"] == pytest.approx(ramulator_stat("conflict", "read_latency_avg"), rel=0.10)
    unbounded = run_model(patterns()["conflict"], queue_per_vault=0)
    assert unbounded["read_latency_avg"] > 10 * ramulator_stat("conflict", "read_latency_avg")


def test_frfcfs_row_hit_overtakes_older_conflict_by_hand():
    """Ramulator's vault controllers schedule FR-FCFS (Scheduler.h FRFCFS_PriorHit): a queued row hit goes before
    an older request that would close the row. One bank, reads issued at 0, 1, 2 to rows 0, 1, 0 (per-vault
    front end, no host links; each enters after request_path_cycles = 1):
      A (row 0) enters at 1, bank closed: a miss, its column command at 1 + tRCD = 18;
      B (row 1) enters at 2, C (row 0) at 3: C waits while A's column command issues (3 <= 18), finds row 0
      open and goes before B. Service order A, C, B: classes miss, hit, conflict (FCFS: miss, conflict,
      conflict). A holds the bank tRCD + max(tCCD, burst 8) = 25 before the hit C; C (a hit followed by a row
      change) holds it max(tRAS, tRTP) = 34; both derated for refresh (x 1 / (1 - tRFC / tREFI)) and rounded
      to 1/256 cycle. B starts at 1 + 25 x derate + 34 x derate, its data at the vault + tRP + tRCD + tCL +
      (data_cycles - 8) = 58 later, then the 8-cycle TSV transfer and the 3-cycle response path: the last
      response at start_B + 69."""
    p = HMCParams()
    r = simulate(np.array([0.0, 1.0, 2.0]), np.zeros(3, int), np.zeros(3, int), np.array([0, 1, 0]),
                 np.zeros(3, int), 64, p)
    assert (r["row_misses"], r["row_hits"], r["row_conflicts"]) == (1, 1, 1)
    derate = 1 / (1 - p.tRFC / p.tREFI)
    in_256ths = lambda cycles: round(cycles * 256) / 256  # noqa: E731
    assert r["cycles"] == 1 + in_256ths(25 * derate) + in_256ths(34 * derate) + 69


def test_frfcfs_predecessor_search_matches_the_table():
    """FR-FCFS looks up, for a request waiting behind two of its bank, the nearest earlier request of its queue to
    the same bank and row. With few such requests it searches back directly (at most a window); with many it
    builds the table of all of them: both must agree wherever the answer lies within the window.
    By hand: one bank, reads to rows 0, 1, 2, 0, 1 -> places 3 and 4 find places 0 and 1."""
    from ntframe.memory.hmc_bank import _Plan
    p = HMCParams()
    plan = _Plan(np.zeros(5, int), np.zeros(5, int), np.array([0, 1, 2, 0, 1]), np.zeros(5, int), 64, p)
    assert plan.prev_same_at(np.array([3, 4])).tolist() == [0, 1]
    rng = np.random.default_rng(3)
    n = 4000
    plan = _Plan(rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 3, n), rng.integers(0, 2, n), 64, p)
    j = np.flatnonzero(plan.kb[2:] == plan.kb[:-2])[:30] + 2
    direct = plan.prev_same_at(j)
    table = plan.prev_same[j]
    near = (table >= 0) & (j - table <= plan.window)
    assert (direct[near] == table[near]).all() and (direct[~near] == -1).all() and near.any()


def test_timings_not_in_the_model_are_refused_by_name():
    """The bank model has no activation-rate limit (docs/memory.md), so a tFAW override is an error that lists
    the timings it does have, not a silent no-op."""
    from ntframe.api import load_architecture
    from ntframe_plugins.hmc_analytic import HMCAnalytic, HMCAnalyticOptions
    arch = load_architecture(ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml")
    assert HMCAnalytic().params(arch).tRCD == 17
    assert HMCAnalytic(HMCAnalyticOptions(timings={"tRCD": 20})).params(arch).tRCD == 20
    with pytest.raises(ValueError, match=r"unknown timing\(s\) \['tFAW'\]; the model's numeric parameters: .*'tRCD'"):
        HMCAnalytic(HMCAnalyticOptions(timings={"tFAW": 30})).params(arch)


def test_count_timings_arrive_as_whole_numbers():
    """The option holds floats (YAML's 32 and 32.0 alike); counts reach the model as ints, fractions are refused."""
    from ntframe.api import load_architecture
    from ntframe_plugins.hmc_analytic import HMCAnalytic, HMCAnalyticOptions
    arch = load_architecture(ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml")
    params = HMCAnalytic(HMCAnalyticOptions(timings={"queue_per_vault": 32, "controller_queue": 16.0,
                                                     "tCK_ns": 1.25}, page_policy="closed")).params(arch)
    assert (params.queue_per_vault, params.controller_queue, params.tCK_ns, params.page_policy) == (32, 16, 1.25, "closed")
    assert type(params.queue_per_vault) is int and type(params.controller_queue) is int
    with pytest.raises(ValueError, match="tCL counts cycles or entries: 17.5 is not a whole number"):
        HMCAnalytic(HMCAnalyticOptions(timings={"tCL": 17.5})).params(arch)
    traffic_windows = np.arange(64), np.zeros(64, int), np.zeros(64, int), np.arange(64) // 8, np.zeros(64, int)
    assert simulate(*traffic_windows, 64, params)["requests"] == 64


def test_bank_model_takes_its_energies_and_timings_from_the_architecture_file(tmp_path):
    """One source of truth: with the same traffic, 1 pJ/bit more for the logic die in the file adds exactly 8 pJ
    per byte the backend moves; a slower tCK in the file makes the same requests take longer; a file without the
    figures is refused before any work."""
    import ntframe
    from ntframe.errors import SpecError
    from ntframe.api import load_architecture
    from ntframe.mapping.search import search_operation, Constraints
    from ntframe.results import DramTraffic
    from ntframe_plugins.hmc_analytic import HMCAnalytic
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe.components import Budget
    from tests.test_exhaustive import small_ops
    shipped = (ROOT / "arch_specs" / "tiny" / "1vault-8x8.yaml").read_text()
    assert "logic_energy_pJ_per_bit: 6.78" in shipped and "tCK_ns: 0.8" in shipped
    variants = {"base": shipped,
                "logic": shipped.replace("logic_energy_pJ_per_bit: 6.78", "logic_energy_pJ_per_bit: 7.78"),
                "clock": shipped.replace("tCK_ns: 0.8", "tCK_ns: 1.6")}
    archs = {}
    for name, text in variants.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        archs[name] = load_architecture(tmp_path / f"{name}.yaml")
    op = small_ops(batch=4, features=32)["fc.forward"]
    found = search_operation(op, archs["base"], NativeCostModel(), Budget(evaluations=200), 0, "edp",
                             Constraints(), "test")
    cost = found.cost
    traffic = DramTraffic(op.name, cost.dram_read_bytes_by_tensor, cost.dram_write_bytes_by_tensor,
                          cost.dram_instances, cost.on_die_cycles, op, found.mapping)
    backend = HMCAnalytic()
    base, logic, clock = (backend.simulate(traffic, archs[n]) for n in ("base", "logic", "clock"))
    moved = base.read_bytes + base.write_bytes
    assert moved > 0 and (logic.read_bytes, logic.write_bytes) == (base.read_bytes, base.write_bytes)
    assert logic.energy_pJ - base.energy_pJ == pytest.approx(8 * moved, rel=1e-9)
    assert clock.energy_pJ == pytest.approx(base.energy_pJ) and clock.cycles > base.cycles
    lacking = shipped.replace("        activation_energy_pJ: 500.0\n", "")
    (tmp_path / "lacking.yaml").write_text(lacking)
    spec = {"version": 1, "name": "x", "workload": {"frontend": "zoo", "network": "mlp"},
            "architecture": {"spec": str(tmp_path / "lacking.yaml")}}
    with pytest.raises(SpecError, match="needs attributes of 'dram' the architecture file lacks: activation_energy_pJ"):
        ntframe.validate(spec)
    assert ntframe.validate({**spec, "memory": {"backend": "hmc-analytic", "model": "stream"}}) is not None


def test_only_a_hosts_traffic_pays_the_switch_and_serdes_links():
    """An engine on the logic die reaches its vault through the vault controller; a host's request also crosses
    the cube's switch and SerDes links (docs/sources.md#energies). The same 64 requests cost 64 x 64 B x 8 bit x
    host_link_energy_pJ_per_bit more from the host (front_end "single") than from the engines (per-vault), and
    the architecture file's figure becomes the bank model's."""
    import numpy as np

    from ntframe.api import load_architecture
    from ntframe.memory.hmc_bank import HMCParams, bank_params, simulate
    n = 64
    time, vault = np.arange(n, dtype=float), np.arange(n) % 32
    bank, row, write = np.zeros(n, int), np.zeros(n, int), np.zeros(n, bool)
    engines = simulate(time, vault, bank, row, write, 64, HMCParams(front_end="per-vault", serdes_pJ_per_bit=5.48))
    host = simulate(time, vault, bank, row, write, 64, HMCParams(front_end="single", serdes_pJ_per_bit=5.48))
    assert (engines["row_misses"] + engines["row_conflicts"], host["row_misses"] + host["row_conflicts"]) == (32, 32)
    assert engines["energy_pJ"] == pytest.approx(32 * 500.0 + n * 64 * 8 * (3.44 + 1.3))          # by hand
    assert host["energy_pJ"] - engines["energy_pJ"] == pytest.approx(n * 64 * 8 * 5.48)
    reference = load_architecture(ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml").levels[0]
    params = bank_params(reference)
    assert (params.dram_pJ_per_bit, params.logic_pJ_per_bit, params.serdes_pJ_per_bit) == (3.44, 1.3, 5.48)


def test_a_fixed_point_cut_short_still_pairs_each_request_with_its_own_entry(monkeypatch):
    """When the vault queues' rounds run out before a fixed point, the completions reported are those of the entry
    times kept (a transformer's GELU, 786,432 mixed requests, once reported a read latency of -414.9 ns: the
    last round's entries against the previous round's completions). One round here, on requests that fill a
    two-deep vault queue: every read takes at least the unloaded latency."""
    import numpy as np

    from ntframe.memory import hmc_bank
    monkeypatch.setattr(hmc_bank, "QUEUE_ROUNDS", 1)
    n = 400
    rng = np.random.default_rng(0)
    time = np.sort(rng.integers(0, 50, n)).astype(float)
    vault, bank = rng.integers(0, 2, n), rng.integers(0, 4, n)
    row, write = rng.integers(0, 3, n), rng.random(n) < 0.5
    p = hmc_bank.HMCParams(queue_per_vault=2)
    r = hmc_bank.simulate(time, vault, bank, row, write, 64, p, compiled=False)
    unloaded = hmc_bank.simulate(time[:1], vault[:1], bank[:1], row[:1], np.zeros(1, bool), 64, p, compiled=False)
    assert r["read_latency_avg"] >= unloaded["read_latency_avg"] > 0
