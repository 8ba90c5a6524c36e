"""Worker processes: the same figures with one worker or several, the cache's counts kept, a dying worker costs
only its own operation."""

from __future__ import annotations

import json
import os
import signal

import pytest

from ntframe import hookimpl
from ntframe.errors import SpecError
from ntframe.host import PluginHost
from ntframe.parallel import can_fork, default_jobs, run_pieces
from ntframe.runner import resolve, run
from ntframe.spec import load_spec
from tests.conftest import ntframe_cmd
from tests.test_runner import small_spec

needs_fork = pytest.mark.skipif(not can_fork(), reason="worker processes are forked; this platform cannot fork")


def _square_or_die(i: int) -> tuple[int, int]:
    if i == 3:
        os.kill(os.getpid(), signal.SIGKILL)             # as the kernel's out-of-memory killer would
    return i * i, os.getpid()


@needs_fork
def test_pieces_come_back_in_order_and_a_dying_one_costs_only_itself():
    seen = []
    out = run_pieces(_square_or_die, 7, 2, order=[6, 5, 4, 3, 2, 1, 0], done=lambda i, r: seen.append(i),
                     died=lambda i: ("died", i))
    assert [r[0] for r in out[:3] + out[4:]] == [0, 1, 4, 16, 25, 36]
    assert out[3] == ("died", 3)
    assert sorted(seen) == list(range(7))
    assert all(pid != os.getpid() for _, pid in out[:3] + out[4:])         # computed in workers


def test_one_job_runs_here_in_the_order_given():
    seen = []
    out = run_pieces(lambda i: (i, os.getpid()), 4, 1, order=[2, 0, 3, 1], done=lambda i, r: seen.append(i))
    assert seen == [2, 0, 3, 1] and out == [(i, os.getpid()) for i in range(4)]


def test_jobs_from_the_environment(monkeypatch):
    monkeypatch.setenv("NTFRAME_JOBS", "3")
    assert default_jobs() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("NTFRAME_JOBS", bad)
        with pytest.raises(SpecError, match="NTFRAME_JOBS"):
            default_jobs()


@needs_fork
def test_workers_change_nothing_but_the_time(tmp_path, host, monkeypatch):
    docs, counts = [], []
    for jobs in (1, 2):
        monkeypatch.setenv("NTFRAME_CACHE_DIR", str(tmp_path / f"cache{jobs}"))
        resolved = resolve(load_spec(small_spec(tmp_path, evaluations=200)), host)
        docs.append(run(resolved, jobs=jobs))
        counts.append((resolved.cache.hits, resolved.cache.misses))
    assert docs[0]["operations"] == docs[1]["operations"] and docs[0]["totals"] == docs[1]["totals"]
    distinct = len({o["name"] for o in docs[0]["operations"]})
    assert counts[0] == counts[1] and counts[0][0] == 0 and 0 < counts[0][1] <= 2 * distinct
    again = resolve(load_spec(small_spec(tmp_path, evaluations=200)), host)
    assert run(again, jobs=2)["operations"] == docs[1]["operations"]         # all from the cache, in this process
    assert again.cache.misses == 0 and again.cache.hits == counts[1][1]


class _Fragile:
    """Delegates to hmc-analytic but its process dies on conv2's backward_weight."""

    @staticmethod
    @hookimpl
    def ntframe_register_memory_backends(register):
        from ntframe_plugins.hmc_analytic import HMCAnalytic

        class Fragile(HMCAnalytic):
            name = "fragile"

            def simulate(self, traffic, architecture):
                if traffic.operation == "conv2.backward_weight":
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().simulate(traffic, architecture)

        register(Fragile)


@needs_fork
def test_a_worker_killed_mid_run_costs_only_its_operation(tmp_path):
    host = PluginHost().load()
    host.register_module(_Fragile, "fragile-plugin", "1.0")
    spec = small_spec(tmp_path, 60)
    spec.write_text(spec.read_text().replace("backend: hmc-analytic", "backend: fragile"))
    doc = run(resolve(load_spec(spec), host), jobs=2)
    failed = [o for o in doc["operations"] if o["status"] == "error"]
    assert [o["name"] for o in failed] == ["conv2.backward_weight"]
    assert "worker process simulating conv2.backward_weight died" in failed[0]["error"]
    assert doc["totals"]["operations_ok"] == len(doc["operations"]) - 1


def test_cli_jobs_must_be_a_positive_whole_number(tmp_path):
    done = ntframe_cmd("run", str(small_spec(tmp_path, 20)), "-q", "-j", "0", "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and "at least 1" in done.stderr
    done = ntframe_cmd("run", str(small_spec(tmp_path, 20)), "-q", "-j", "2", "-o", str(tmp_path / "out"),
                       timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text())["totals"]["operations_failed"] == 0


def _sleep_on(i: int) -> int:
    if i == 2:
        import time
        time.sleep(600)                                   # a hung plugin
    return i


@needs_fork
def test_a_piece_over_its_time_is_stopped_and_costs_only_itself():
    import time
    started = time.monotonic()
    out = run_pieces(_sleep_on, 5, 2, timeout_s=1.0, late=lambda i, why: ("late", why))
    assert out[:2] + out[3:] == [0, 1, 3, 4]
    assert out[2] == ("late", "it did not finish within 1 s")
    assert time.monotonic() - started < 10


@needs_fork
def test_the_deadline_stops_what_is_left_and_keeps_what_finished():
    import time
    started = time.monotonic()
    out = run_pieces(_sleep_on, 5, 1, order=[0, 1, 2, 3, 4], deadline=time.monotonic() + 2.0,
                     late=lambda i, why: ("late", why))
    assert out[:2] == [0, 1]
    assert out[2] == ("late", "the run's deadline passed while it ran")
    assert out[3:] == [("late", "the run's deadline passed before it started")] * 2
    assert time.monotonic() - started < 10


class _Sleepy:
    """The native cost model, except that it hangs on conv2's forward operation."""

    @staticmethod
    @hookimpl
    def ntframe_register_cost_models(register):
        from ntframe_plugins.native_cost import NativeCostModel

        class Sleepy(NativeCostModel):
            name = "sleepy"

            def evaluate_batch(self, problem, batch, architecture):
                if problem.op.name == "conv2.forward":
                    import time
                    time.sleep(600)
                return super().evaluate_batch(problem, batch, architecture)

        register(Sleepy)


@needs_fork
def test_a_hanging_cost_model_costs_its_operation_not_the_run(tmp_path, host):
    import time

    import ntframe
    host.register_module(_Sleepy, "sleepy-plugin", "1.0")
    spec = small_spec(tmp_path, 60)
    spec.write_text(spec.read_text().replace("cost_model: native", "cost_model: sleepy"))
    started = time.monotonic()
    results = ntframe.run(spec, host=host, jobs=2, operation_timeout_s=3.0, write=tmp_path / "out")
    assert time.monotonic() - started < 60
    failed = {row["name"]: row["error"] for row in results.failed}
    assert list(failed) == ["conv2.forward"]
    assert "conv2.forward was stopped: it did not finish within 3 s" in failed["conv2.forward"]
    assert results.totals["operations_ok"] == len(results.operations) - 1
    assert json.loads((tmp_path / "out" / "results.json").read_text())["totals"] == results.totals
