"""Trace generation from mappings, the `ntframe trace` and `doctor` commands, and the Ramulator and DRAMSim3
backends: parsers against recorded outputs, failures (missing, crashing, garbled), and live runs."""

from __future__ import annotations

import gzip
import json
import os
import stat

import numpy as np
import pytest

from tests.conftest import EXAMPLE, ROOT, ntframe_cmd

GOLDEN = ROOT / "tests" / "golden"


def spec_with(tmp_path, memory: str, evaluations: int = 30):
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE.read_text().replace("memory: {backend: hmc-analytic}", f"memory: {memory}")
                    .replace("evaluations: 20000", f"evaluations: {evaluations}"))
    return path


def test_parsers_read_recorded_outputs():
    from ntframe_plugins.dram_simulators import parse_dramsim3_json, parse_ramulator_stats
    s = parse_ramulator_stats(gzip.open(GOLDEN / "ramulator" / "seq.stats.gz", "rt").read())
    assert s["dram_cycles"] == 20028 and s["read_requests"] == 20000 and s["row_hits"] == 14628
    assert s["read_bandwidth"] == 79888156581 and s["read_latency_avg"] == pytest.approx(44.995)
    d = parse_dramsim3_json(gzip.open(GOLDEN / "dramsim3" / "rw.dramsim3.json.gz", "rt").read())
    assert d["num_cycles"] == 20092 and d["num_write_cmds"] == 10000 and d["num_read_cmds"] == 10000
    assert d["num_reads_done"] == 10001                  # DRAMSim3 re-submits the last line as a read
    assert d["total_energy"] == pytest.approx(3.342e7, rel=1e-3)
    with pytest.raises(ValueError):
        parse_ramulator_stats("not a stats file\n")


def test_trace_follows_the_mapping_and_the_analysis(tmp_path):
    """FC 1024 -> 10, batch 16, rows of X and W fetched whole (2 KiB, line-aligned): the trace carries exactly
    the cost model's DRAM bytes, the one-element output tiles costing a whole line each in both."""
    import dataclasses

    from ntframe.api import load_architecture
    from ntframe.mapping.mapping import LevelMapping, Mapping
    from ntframe.memory.trace import ADDRESS_MAPPINGS
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.paths import shipped_root
    from ntframe.workload.builder import NetworkBuilder
    from ntframe.workload.ir import Phase
    from ntframe.workload.training import expand
    from ntframe_plugins.native_cost import NativeCostModel
    arch = load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")
    arch = dataclasses.replace(arch, network=None)
    b = NetworkBuilder("t")
    b.linear(b.input("x", (1024,)), 10, bias=False, name="fc")
    op = expand(b.build(16), [Phase.forward], dict.fromkeys(Phase, 16))[0]
    mapping = Mapping((LevelMapping("vault_dram", (("N", 16), ("M", 10))), LevelMapping("vault_buffer", (("C", 1024),)),
                       LevelMapping("pe_rf", ())))
    cost = NativeCostModel().evaluate(op, mapping, arch)
    gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", cost.on_die_cycles)
    recs = np.concatenate(list(gen.chunks()))
    again = np.concatenate(list(gen.chunks(max_records=97)))
    assert (recs == again).all()                                     # chunking does not change the trace
    assert (np.diff(recs["time"].astype(np.int64)) >= 0).all()
    per_tensor = {name: int((recs["tensor"] == j).sum()) * 64 for j, name in enumerate(t.tensor for t in op.tensors)}
    assert per_tensor["x"] == cost.dram_read_bytes_by_tensor["x"] == 16 * 1024 * 2
    assert per_tensor["fc.W"] == cost.dram_read_bytes_by_tensor["fc.W"] == 16 * 10 * 1024 * 2
    # one 2-byte output per tile: a whole 64-byte line each, in the trace and in the line-aware cost model
    assert cost.dram_write_bytes_by_tensor["fc.Y"] == per_tensor["fc.Y"] == 16 * 10 * 64
    assert set(np.unique(recs["write"][recs["tensor"] == 2])) == {1}
    steps = recs["time"][recs["tensor"] == 1]
    assert len(np.unique(steps // 1)) > 1                             # spread over the operation's steps


def row_mode_generator(layout: str):
    """A fully connected layer in 4 large steps (a vault split, the vaults' whole tiles fetched in each): a
    TraceGenerator in ``layout``, sampled by stretches of issue rows."""
    import dataclasses

    from ntframe.api import load_architecture
    from ntframe.mapping.mapping import LevelMapping, Mapping
    from ntframe.memory.trace import ADDRESS_MAPPINGS
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.paths import shipped_root
    from ntframe.workload.builder import NetworkBuilder
    from ntframe.workload.ir import Phase
    from ntframe.workload.training import expand
    arch = load_architecture(shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml")
    arch = dataclasses.replace(arch, network=None)
    b = NetworkBuilder("t")
    b.linear(b.input("x", (4096,)), 64, bias=False, name="fc")
    op = expand(b.build(32), [Phase.forward], dict.fromkeys(Phase, 32))[0]
    mapping = Mapping((LevelMapping("vault_dram", (("M", 4),), (("N", 32),)),
                       LevelMapping("vault_buffer", (("M", 16), ("C", 4096))), LevelMapping("pe_rf", ())))
    return TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], layout, 1e6)


def test_row_windows_are_the_rows_of_the_whole_trace():
    """An operation with few, large steps (:func:`row_mode_generator`) is sampled by stretches of issue rows: each
    is exactly the records of those rows in the full step's trace (both layouts), and the counts without the
    trace are its counts, step by step."""
    for layout in ("vault-local", "interleaved"):
        gen = row_mode_generator(layout)
        assert gen.steps == 4
        full = [np.concatenate(list(gen.chunks(s, s + 1))) for s in range(gen.steps)]
        total = sum(len(f) for f in full)
        for step in (0, 3):
            rows = full[step]["time"] - full[step]["time"].min()
            for lo, hi in ((0, 1), (5, 77), (int(rows.max()) - 3, int(rows.max()) + 9)):
                inside = (rows >= lo) & (rows < hi)
                want = full[step][inside].copy()
                want["time"] = rows[inside] - lo
                got = gen._row_window(step, lo, hi)
                assert len(got) == len(want) > 0 and (got == want).all(), (layout, step, lo, hi)
        assert gen.line_counts().requests == total and gen.line_counts().per_step.tolist() == [len(f) for f in full]


def test_trace_and_inspect_commands(tmp_path):
    out = tmp_path / "t.ramulator"
    done = ntframe_cmd("trace", str(spec_with(tmp_path, "{backend: hmc-analytic}")), "--layer", "conv2", "--phase",
                       "forward", "--format", "ramulator", "-o", str(out), "--max-requests", "5000")
    assert done.returncode == 0, done.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 5000 and all(ln.startswith("0x") and ln[-2:] in (" R", " W") for ln in lines)
    info = json.loads(ntframe_cmd("trace", "inspect", str(out), "--json").stdout)
    assert info["requests"] == 5000 and info["reads"] + info["writes"] == 5000
    bad = ntframe_cmd("trace", "inspect", str(EXAMPLE))
    assert bad.returncode == 2 and "not a trace file" in bad.stderr


def test_missing_simulator_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.delenv("NTFRAME_RAMULATOR", raising=False)
    monkeypatch.setenv("PATH", os.path.dirname(os.sys.executable))
    done = ntframe_cmd("run", str(spec_with(tmp_path, "{backend: ramulator}")), "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "NTFRAME_RAMULATOR" in done.stderr
    assert not (tmp_path / "out").exists()
    doctor = ntframe_cmd("doctor")
    assert doctor.returncode == 0 and "ramulator" in doctor.stdout and "NTFRAME_RAMULATOR" in doctor.stdout
    assert "python: nn_dataflow" in doctor.stdout and "python: pytimeloop" in doctor.stdout    # found or the fix


def _fake(tmp_path, body: str):
    exe = tmp_path / "fake-ramulator"
    exe.write_text("#!/bin/sh\n" + body)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.mark.parametrize("body,words", [
    ("echo 'segmentation fault' >&2; exit 139\n", ["failed with exit code 139", "segmentation fault"]),
    ("echo garbage > out.stats\n", ["output could not be read", "no ramulator.dram_cycles"])])
def test_a_failing_simulator_keeps_its_inputs_and_the_other_results(tmp_path, body, words):
    work = tmp_path / "work"
    env = {"NTFRAME_RAMULATOR": str(_fake(tmp_path, body)), "NTFRAME_WORK_DIR": str(work)}
    done = ntframe_cmd("run", str(spec_with(tmp_path, "{backend: ramulator}")), "-q", "-o", str(tmp_path / "out"),
                       env=env)
    assert done.returncode == 1
    for w in words:
        assert w in done.stderr
    assert "rerun: cd " in done.stderr and "--mode=dram" in done.stderr
    kept = list(work.iterdir())
    assert kept and all((k / "trace.txt").is_file() and (k / "hmc.cfg").is_file() for k in kept)
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["totals"]["operations_failed"] > 0
    assert doc["operations"] and all(o["status"] == "error" and "Ramulator" in o["error"]
                                     for o in doc["operations"] if o["status"] == "error")


@pytest.mark.skipif(not os.environ.get("NTFRAME_RAMULATOR"),
                    reason="set NTFRAME_RAMULATOR to a Ramulator 1 hmc-branch binary to run it live")
def test_ramulator_live(tmp_path):
    done = ntframe_cmd("run", str(spec_with(tmp_path, "{backend: ramulator, max_requests: 5000}")), "-q", "-o",
                       str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    ops = [o for o in doc["operations"] if o["memory"]["read_bytes"] + o["memory"]["write_bytes"]]
    assert ops and all(0 < o["memory"]["bandwidth_GBps"] <= 80.5 for o in ops)   # its 1-per-cycle front end
    assert all(o["memory"]["details"]["simulator"] == "ramulator" for o in ops)


@pytest.mark.skipif(not os.environ.get("NTFRAME_DRAMSIM3"),
                    reason="set NTFRAME_DRAMSIM3 to a DRAMSim3 binary (dramsim3main) to run it live")
def test_dramsim3_live(tmp_path):
    done = ntframe_cmd("run", str(spec_with(tmp_path, "{backend: dramsim3, max_requests: 5000}")), "-q", "-o",
                       str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    ops = [o for o in doc["operations"] if o["memory"]["read_bytes"]]
    assert ops and all(o["memory"]["energy_pJ"] > 0 for o in ops)
    assert all(o["memory"]["details"]["row_hit_rate"] == 0 for o in ops)        # its HMC config: closed page


def test_two_cubes_keep_their_vaults_apart(tmp_path):
    """With two cubes (64 vaults) each vault's share is addressed in its own vault: a mapping over all 64 puts
    bytes in every one, the second cube's included; the searched mapping's trace (``ntframe trace``) stays within
    the vaults its split names (data several vaults share is read by one and forwarded over the logic-die network,
    so some vaults may read nothing)."""
    import math

    import ntframe
    from ntframe.mapping import LevelMapping, Mapping, structural_problems
    from ntframe.mapping.nest import capacity_problems
    from ntframe.memory.trace import ADDRESS_MAPPINGS, TraceWriter, inspect
    from ntframe.memory.tracegen import TraceGenerator
    from ntframe.runner import operations_of
    spec = spec_with(tmp_path, "{backend: hmc-analytic}")
    resolved = ntframe.validate(spec, {"architecture.cubes": 2})
    arch = resolved.architecture
    op = next(o for o in operations_of(resolved)[1] if o.name == "conv2.forward")
    mapping = Mapping((LevelMapping("vault_dram", (("M", 8), ("C", 16), ("P", 16), ("Q", 16), ("R", 3), ("S", 3)),
                                    (("N", 16), ("M", 4))), LevelMapping("vault_buffer", ()), LevelMapping("pe_rf", ())))
    assert structural_problems(op, mapping, arch) == [] and capacity_problems(op, mapping, arch) == []
    gen = TraceGenerator(op, mapping, arch, ADDRESS_MAPPINGS["RoCoBaVa"], "vault-local", 1e6)
    with TraceWriter(tmp_path / "all.nttrace", "nttrace", {"operation": op.name}) as writer:
        for chunk in gen.chunks():
            writer.write(chunk)
    per_vault = inspect(tmp_path / "all.nttrace", ADDRESS_MAPPINGS["RoCoBaVa"])["bytes_per_vault"]
    assert len(per_vault) == 64 and all(per_vault)
    out = tmp_path / "t.nttrace"
    spec.write_text(spec.read_text().replace("cubes: 1", "cubes: 2"))
    done = ntframe_cmd("trace", str(spec), "--layer", "conv2", "--phase", "forward", "-o", str(out))
    assert done.returncode == 0, done.stderr
    info = json.loads(ntframe_cmd("trace", "inspect", str(out), "--json").stdout)
    used = [v for v, b in enumerate(info["bytes_per_vault"]) if b]
    split = math.prod(f for _, f in info["header"]["mapping"]["levels"][0]["spatial"])
    assert used and max(used) < split <= 64


