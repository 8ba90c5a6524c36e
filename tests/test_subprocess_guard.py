"""External programs cannot take the host down or pass garbage as a result (ntframe.interop.external and the
Ramulator, DRAMSim3 and Timeloop adapters): timeouts and interrupts stop the program's whole process group, its
output goes to files, operation names become safe folder names, malformed statistics and impossible figures fail
the operation with the folder kept and the command to rerun, and the program's identity is in the cache keys.
Every simulator here is a fake: a small shell script (tests/test_dram_backends.py's ``_fake``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.test_compare import _golden_mapping, example  # noqa: F401  (example: a fixture)
from tests.test_dram_backends import _fake, spec_with

GRANDCHILD = "sleep 30 >/dev/null 2>&1 &\necho $! > grandchild.pid\n"
"""A wrapper script's long-lived child (its output not tied to the wrapper's), its PID in grandchild.pid."""


def _gone(pid: int, within_s: float = 5.0) -> bool:
    """Whether process ``pid`` is dead (or a zombie nobody reaped yet) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def _records(n: int = 64) -> np.ndarray:
    from ntframe.memory.trace import TRACE_DTYPE
    recs = np.zeros(n, TRACE_DTYPE)
    recs["time"] = np.arange(n) * 4
    recs["address"] = np.arange(n) * 64
    recs["write"] = np.arange(n) % 4 == 0
    recs["bytes"] = 64
    return recs


def _kept(work, err) -> str:
    """The one folder ``work`` holds, checked to be named by the error with the command that reruns the program
    there."""
    (folder,) = work.iterdir()
    assert f"kept in {folder}" in str(err.value) and f"rerun: cd {folder} && " in err.value.fix, str(err.value)
    return str(folder)


def _fails(work, match: str, reason: str, run, *args, **kwargs) -> str:
    """``run(*args, **kwargs)`` raises a ToolError matching ``match``, saying ``reason``, naming the folder it kept
    and the command to rerun; returns the folder."""
    from ntframe.errors import ToolError
    with pytest.raises(ToolError, match=match) as err:
        run(*args, **kwargs)
    assert reason in str(err.value), str(err.value)
    return _kept(work, err)


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path / "work"))
    return tmp_path / "work"


def ramulator(tmp_path, body: str, operation: str = "conv1.forward", **options) -> dict:
    """RamulatorBackend's run of one stretch of trace, the program a fake with ``body``."""
    from ntframe.memory.hmc_bank import HMCParams
    from ntframe_plugins.dram_simulators import RamulatorBackend, RamulatorOptions
    exe = _fake(tmp_path, body)
    return RamulatorBackend(RamulatorOptions(**options))._run(str(exe), _records(), HMCParams(), operation)


def ramulator_stats(**values) -> str:
    """A fake Ramulator's body writing these statistics (the rest plausible)."""
    stats = {"dram_cycles": 1000, "read_requests": 48, "row_hits": 30, "row_misses": 10, "row_conflicts": 8,
             "read_latency_avg": 40.5, **values}
    lines = "".join(f"  ramulator.{k}    {v}    # a statistic\n" for k, v in stats.items() if v is not None)
    return f"cat > out.stats <<'EOF'\n{lines}EOF\n"


def dramsim3(tmp_path, json_text: str) -> dict:
    """DRAMSim3Backend's run of one stretch of trace, the program a fake writing ``json_text`` as its statistics."""
    from ntframe.memory.hmc_bank import HMCParams
    from ntframe_plugins.dram_simulators import DRAMSim3Backend
    exe = _fake(tmp_path, f"cat > out/dramsim3.json <<'EOF'\n{json_text}\nEOF\n")
    config = tmp_path / "hmc.ini"
    config.write_text("[dram_structure]\nprotocol = HMC\n")
    return DRAMSim3Backend()._run(str(exe), config, _records(), HMCParams(), "conv1.forward")


def dramsim3_vault(**values) -> dict:
    return {"num_reads_done": 10**6, "num_writes_done": 10**6, "num_read_cmds": 48, "num_write_cmds": 16,
            "num_act_cmds": 64, "num_read_row_hits": 0, "num_write_row_hits": 0, "total_energy": 2.5e5,
            "num_cycles": 5000, "average_read_latency": 43.0, "average_power": 50.0, **values}


def timeloop_model(tmp_path, monkeypatch, example, sed: str):  # noqa: F811
    """The timeloop cost model on conv2.forward's recorded mapping, the program a fake writing the recorded
    statistics edited by ``sed``."""
    from ntframe_plugins.timeloop_tools import TimeloopModel, TimeloopModelOptions
    golden = ROOT / "tests" / "golden" / "timeloop" / "conv2-forward.stats.txt"
    exe = _fake(tmp_path, f"sed -e '{sed}' '{golden}' > out/timeloop-model.stats.txt\n")
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(exe))
    resolved, ops = example
    program = TimeloopModel(TimeloopModelOptions(engine="programs"))
    return program.evaluate(ops["conv2.forward"], _golden_mapping()[0], resolved.architecture)


# --- 1. timeouts and interrupts stop the whole process group ---------------------------------------------------

def test_a_timeout_stops_the_wrapper_and_its_children(tmp_path, work):
    started = time.monotonic()
    folder = _fails(work, "Ramulator did not finish within 0.5 s", "stopped with its process group", ramulator,
                    tmp_path, GRANDCHILD + "sleep 30\n", timeout_s=0.5)
    assert _gone(int(open(f"{folder}/grandchild.pid").read()))
    assert time.monotonic() - started < 5


def test_an_interrupt_stops_the_program_and_its_children(tmp_path):
    """Ctrl-C no longer reaches a program in its own session: ntframe stops its group when interrupted."""
    exe = _fake(tmp_path, "echo $$ > wrapper.pid\n" + GRANDCHILD + "sleep 30\n")
    code = ("import sys; from pathlib import Path; from ntframe.interop.external import run_tool; "
            "run_tool([sys.argv[1]], Path(sys.argv[2]), 60, 'Fake')")
    child = subprocess.Popen([sys.executable, "-c", code, str(exe), str(tmp_path)], stderr=subprocess.PIPE,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # also when run with `&`
    deadline = time.monotonic() + 10
    while not (tmp_path / "grandchild.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=10)
    assert child.returncode != 0 and b"KeyboardInterrupt" in stderr
    for name in ("wrapper.pid", "grandchild.pid"):
        assert _gone(int((tmp_path / name).read_text())), name


def test_the_mappers_budget_stops_its_children_too(tmp_path):
    """timeloop-mapper's budget is SIGINT to its group; what ignores it (a background job of a script) is killed
    once the mapper has exited."""
    from ntframe_plugins.timeloop_tools import TimeloopMapper
    exe = _fake(tmp_path, GRANDCHILD + "echo 'MESSAGE: stopping'\nsleep 30\n")
    started = time.monotonic()
    log, truncated = TimeloopMapper._run([str(exe)], tmp_path, 0.5)
    assert truncated and "MESSAGE: stopping" in log and time.monotonic() - started < 5
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))


@pytest.mark.slow
def test_a_stopped_worker_stops_its_simulators(tmp_path, work, monkeypatch):
    """The run's deadline stops the worker processes (SIGTERM, turned into KeyboardInterrupt): each stops its
    simulator's whole group before it ends. (A deadline of 4 s: at 1.5 s a machine busy with other work had not
    started a simulator yet, and the test had nothing to check.)"""
    import ntframe
    monkeypatch.setenv("NTFRAME_RAMULATOR", str(_fake(tmp_path, GRANDCHILD + "sleep 30\n")))
    results = ntframe.run(spec_with(tmp_path, "{backend: ramulator}"), {"workload.phases": ["forward"]}, jobs=2,
                          deadline_s=4.0)
    assert results.totals["operations_failed"] > 0
    pids = [int(p.read_text()) for p in work.glob("*/grandchild.pid")]
    assert pids and all(_gone(pid) for pid in pids)


# --- 2. output goes to files, errors quote its end -------------------------------------------------------------

def test_a_programs_output_is_streamed_to_files_not_held(tmp_path):
    """200 MB on stdout: in stdout.txt, and the parent's peak memory grows by far less."""
    exe = _fake(tmp_path, "yes 0123456789abcdef | head -c 200000000\necho done >&2\n")
    code = ("import resource, sys; from pathlib import Path; from ntframe.interop.external import run_tool; "
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; before = peak(); "
            "run_tool([sys.argv[1]], Path(sys.argv[2]), 60, 'Fake'); print(peak() - before)")
    done = subprocess.run([sys.executable, "-c", code, str(exe), str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    try:
        assert int(done.stdout) < 32 * 1024, f"peak RSS grew by {int(done.stdout) / 1024:.0f} MiB"
        assert (tmp_path / "stdout.txt").stat().st_size == 200_000_000
        assert (tmp_path / "stderr.txt").read_text() == "done\n"
    finally:
        (tmp_path / "stdout.txt").unlink(missing_ok=True)


def test_a_crash_quotes_only_the_end_of_its_output(tmp_path, work):
    folder = _fails(work, r"Ramulator failed with exit code 3: line 99981 \| line 99982 \| .* \| line 100000; ",
                    "inputs kept in", ramulator, tmp_path, "seq -f 'line %.0f' 1 100000 >&2\nexit 3\n")
    assert (work / folder / "stderr.txt").read_text().startswith("line 1\n")


# --- 3. operation names are not paths ---------------------------------------------------------------------------

def test_an_onnx_node_name_is_a_safe_folder_name(tmp_path, work, monkeypatch):
    from ntframe.interop.external import workdir
    monkeypatch.setenv("NTFRAME_KEEP_FILES", "1")
    figures = ramulator(tmp_path, ramulator_stats(), operation="/features/features.0/Conv.forward")
    assert figures["cycles"] == 1000
    (folder,) = work.iterdir()
    assert folder.name.startswith("ntframe-ramulator-_features_features.0_Conv.forward-")
    assert (folder / "out.stats").is_file()
    long = workdir("x" * 80 + "/../é")
    assert long.parent == work and long.name.startswith("x" * 60) and len(long.name) < 80


# --- 4. malformed statistics fail like a crash ------------------------------------------------------------------

@pytest.mark.parametrize("body,reason", [
    ("echo 'ramulator.dram_cycles lots # x' > out.stats\n", "no ramulator.dram_cycles"),
    (ramulator_stats(row_conflicts=None), "no ramulator.row_conflicts line"),
    (":\n", "out.stats"),                                                     # no statistics file at all
    ("printf '\\377\\376 binary' > out.stats\n", "can't decode byte 0xff")])
def test_malformed_ramulator_statistics(tmp_path, work, body, reason):
    _fails(work, "Ramulator output could not be read", reason, ramulator, tmp_path, body)


@pytest.mark.parametrize("text,reason", [
    ("[1, 2]", "got an array"), ('"stats"', "got a string"), ("{}", "got an empty object"),
    ('{"0": [1]}', "vault 0: expected an object, got an array"),
    (json.dumps({"0": {"num_cycles": 5}}), "vault 0 lacks num_reads_done"),
    (json.dumps({"0": dramsim3_vault(total_energy="12 pJ")}), "total_energy is a string"),
    (json.dumps({"0": dramsim3_vault(num_act_cmds=None)}), "num_act_cmds is null"),
    (json.dumps({"0": dramsim3_vault(num_cycles=True)}), "num_cycles is a boolean"),
    (json.dumps({"0": dramsim3_vault(), "1": dramsim3_vault(num_cycles=7)}), "vaults disagree on num_cycles"),
    ('{"0": {"num_cycles": ', "Expecting value")])
def test_malformed_dramsim3_statistics(tmp_path, work, text, reason):
    _fails(work, "DRAMSim3 output could not be read", reason, dramsim3, tmp_path, text)


@pytest.mark.parametrize("sed,reason", [
    ("s/.*/garbage/", "no '=== level ===' section"),
    ("/^Cycles:/d", "no 'Cycles:' summary line"),
    ("/=== vault_dram ===/d", "no level 'vault_dram'")])
def test_malformed_timeloop_statistics(tmp_path, work, monkeypatch, example, sed, reason):  # noqa: F811
    _fails(work, "timeloop-model output could not be read", reason, timeloop_model, tmp_path, monkeypatch, example, sed)


@pytest.mark.parametrize("written,reason", [
    ("mapping: {{{", "ParserError"), ("- 1", "TypeError"), ("mapping: [{target: pe_rf}]", "KeyError: 'type'"),
    ("mapping: [{target: pe_rf, type: temporal, factors: N=x}]", "is not NAME<number>")])
def test_malformed_timeloop_mapper_output(tmp_path, work, monkeypatch, example, written, reason):  # noqa: F811
    from ntframe.components import Budget
    from ntframe_plugins.native_cost import NativeCostModel
    from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopMapperOptions
    exe = _fake(tmp_path, f"echo '{written}' > out/timeloop-mapper.map.yaml\n")
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(exe))
    resolved, ops = example
    _fails(work, "timeloop-mapper output could not be read", reason,
           TimeloopMapper(TimeloopMapperOptions(vault_split={"N": 16})).search,
           ops["conv2.forward"], resolved.architecture, NativeCostModel(), Budget(evaluations=100), 0)


def test_a_huge_statistics_file_is_not_read(tmp_path, work):
    _fails(work, "Ramulator output could not be read", "out.stats holds 100,000,000 bytes, more than the 67,108,864",
           ramulator, tmp_path, "truncate -s 100000000 out.stats\n")


# --- 5. figures that cannot be true ------------------------------------------------------------------------------

@pytest.mark.parametrize("values,figure", [
    ({"dram_cycles": "nan"}, "dram_cycles = nan (not finite)"),
    ({"dram_cycles": "inf"}, "dram_cycles = inf (not finite)"),
    ({"dram_cycles": 0}, "dram_cycles = 0.0 (zero"),
    ({"row_hits": -3}, "row_hits = -3.0 (negative)"),
    ({"row_conflicts": "1e300"}, "row_conflicts = 1e+300 (above 1e+18"),
    ({"read_latency_avg": "-nan"}, "read_latency_avg = nan (not finite)")])
def test_impossible_ramulator_figures(tmp_path, work, values, figure):
    _fails(work, "Ramulator reported ", figure, ramulator, tmp_path, ramulator_stats(**values))


def test_plausible_figures_pass(tmp_path, work):
    """No reads: Ramulator's average latency is -nan, and that is no error."""
    figures = ramulator(tmp_path, ramulator_stats(read_requests=0, read_latency_avg="-nan"))
    assert figures["reads"] == 0 and figures["read_latency_sum"] == 0 and figures["cycles"] == 1000
    figures = dramsim3(tmp_path, json.dumps({str(v): dramsim3_vault() for v in range(4)}))
    assert figures["energy_pJ"] > 0 and figures["activations"] == 4 * 64
    assert not work.exists() or not list(work.iterdir())


@pytest.mark.parametrize("values,figure", [
    ({"total_energy": float("nan")}, "total_energy = nan (not finite)"),
    ({"total_energy": -1.0}, "total_energy = -1.0 (negative)"),
    ({"total_energy": 0}, "total_energy = 0.0 (zero"),
    ({"num_cycles": 0}, "num_cycles = 0.0 (zero"),
    ({"average_read_latency": float("inf")}, "average_read_latency = inf (not finite)")])
def test_impossible_dramsim3_figures(tmp_path, work, values, figure):
    _fails(work, "DRAMSim3 reported ", figure, dramsim3, tmp_path, json.dumps({"0": dramsim3_vault(**values)}))


@pytest.mark.parametrize("sed,figure", [
    ("s/471859.20 pJ/nan pJ/", "energy_pJ = nan (not finite)"),
    ("s/471859.20 pJ/-471859.20 pJ/", "mac.energy_pJ = -471859.2 (negative)"),
    ("s/471859.20 pJ/1e300 pJ/", "energy_pJ = 1e+300 (above 1e+18"),
    ("s/^Cycles: .*/Cycles: 0/", "cycles = 0.0 (zero")])
def test_impossible_timeloop_figures(tmp_path, work, monkeypatch, example, sed, figure):  # noqa: F811
    _fails(work, "timeloop-model reported ", figure, timeloop_model, tmp_path, monkeypatch, example, sed)


def test_the_recorded_timeloop_statistics_pass(tmp_path, work, monkeypatch, example):  # noqa: F811
    cost = timeloop_model(tmp_path, monkeypatch, example, "s/x/x/")
    assert cost.cycles == 36864 and cost.energy_pJ == pytest.approx(13_590_200.32 * _golden_mapping()[1])


# --- 6. the program is part of the cache key ---------------------------------------------------------------------

def test_cache_identity_is_the_programs_content(tmp_path, monkeypatch):
    from ntframe.interop import external
    from ntframe_plugins.dram_simulators import DRAMSim3Backend, RamulatorBackend
    from ntframe_plugins.timeloop_tools import TimeloopMapper, TimeloopModel, TimeloopModelOptions
    exe = _fake(tmp_path, ramulator_stats())
    monkeypatch.setenv("NTFRAME_RAMULATOR", str(exe))
    a = RamulatorBackend().cache_identity()
    assert a == {"program": str(exe.resolve()), "sha256": external.file_sha256(exe.resolve())}
    assert RamulatorBackend().cache_identity() == a
    exe.write_text(exe.read_text() + "# another build\n")
    assert RamulatorBackend().cache_identity()["sha256"] != a["sha256"]
    (tmp_path / "hmc.ini").write_text("[dram_structure]\n")
    monkeypatch.setenv("NTFRAME_DRAMSIM3", str(exe))
    monkeypatch.setenv("NTFRAME_DRAMSIM3_CONFIG", str(tmp_path / "hmc.ini"))
    d = DRAMSim3Backend().cache_identity()
    (tmp_path / "hmc.ini").write_text("[dram_structure]\nbankgroups = 2\n")
    d2 = DRAMSim3Backend().cache_identity()
    assert d["sha256"] == d2["sha256"] and d["config"] == d2["config"] and d["config_sha256"] != d2["config_sha256"]
    (tmp_path / "bin").mkdir()
    (tmp_path / "lib").mkdir()
    for name in ("timeloop-model", "timeloop-mapper"):
        (tmp_path / "bin" / name).write_bytes(exe.read_bytes())
        (tmp_path / "bin" / name).chmod(0o755)
    (tmp_path / "lib" / "libtimeloop-model.so").write_bytes(b"one build")
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(tmp_path / "bin"))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    programs = TimeloopModelOptions(engine="programs")
    t = TimeloopModel(programs).cache_identity()
    assert t["engine"] == "programs" and t["program"].endswith("timeloop-model")
    assert TimeloopMapper().cache_identity()["sha256"] == t["sha256"]
    (tmp_path / "lib" / "libtimeloop-model.so").write_bytes(b"another build")
    assert TimeloopModel(programs).cache_identity()["libtimeloop-model.so_sha256"] != t["libtimeloop-model.so_sha256"]
    hashed = len(external._SHA256)
    TimeloopModel(programs).cache_identity()
    assert len(external._SHA256) == hashed                     # hashed once per file version


@pytest.mark.slow
def test_another_simulator_is_not_served_from_the_cache(tmp_path, monkeypatch):
    """A run with one Ramulator, then one with another at the same path: the second's memory figures are its own."""
    import ntframe
    spec = spec_with(tmp_path, "{backend: ramulator, max_requests: 2000}")
    runs = []
    for cycles in (1000, 3000):
        monkeypatch.setenv("NTFRAME_RAMULATOR", str(_fake(tmp_path, ramulator_stats(dram_cycles=cycles))))
        results = ntframe.run(spec, {"workload.phases": ["forward"]}, jobs=1)
        assert results.totals["operations_failed"] == 0
        runs.append({o["name"]: o["memory"]["cycles"] for o in results.operations if o["memory"]["read_bytes"]})
    assert runs[0] and runs[0].keys() == runs[1].keys()
    assert all(runs[1][name] > runs[0][name] for name in runs[0])



def test_the_mappers_budget_works_when_ntframe_ignores_sigint(tmp_path):
    """ntframe started in the background by a script (`ntframe ... &`) ignores SIGINT, and a program inherits
    that; the budget's SIGINT must still stop it (its disposition is reset for the program)."""
    exe = _fake(tmp_path, GRANDCHILD + "echo 'MESSAGE: stopping'\nsleep 30\n")
    code = ("import signal, sys, time; from pathlib import Path; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "from ntframe_plugins.timeloop_tools import TimeloopMapper; t = time.monotonic(); "
            "log, truncated = TimeloopMapper._run([sys.argv[1]], Path(sys.argv[2]), 0.5); "
            "print(truncated, time.monotonic() - t)")
    done = subprocess.run([sys.executable, "-c", code, str(exe), str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    truncated, seconds = done.stdout.split()
    assert truncated == "True" and float(seconds) < 5, done.stderr
    assert _gone(int((tmp_path / "grandchild.pid").read_text()))
