"""Issue 14: figures that cross a plugin boundary are checked (finite, not negative, within physical bounds, of the
right type), a violation costs only its operation and is attributed, results.json is strict JSON, the output
folder is checked before any work, and computed results are never lost to a failed write."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import time

import numpy as np
import pytest

import ntframe
import ntframe.bundle
from ntframe.host import PluginHost
from ntframe.results import MemoryCost
from ntframe.runner import resolve, run
from ntframe.spec import load_spec
from ntframe_plugins.hmc_analytic import HMCAnalytic
from ntframe_plugins.native_cost import NativeCostModel
from tests.conftest import ROOT, ntframe_cmd
from tests.test_runner import small_spec


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


class _Lying(NativeCostModel):
    """The native model, except on backward_weight operations, where it answers what ``how`` says."""

    how = ""

    def evaluate(self, operation, mapping, architecture):
        cost = super().evaluate(operation, mapping, architecture)
        if operation.phase != "backward_weight":
            return cost
        if self.how == "nan":
            return dataclasses.replace(cost, energy_pJ=math.nan)
        if self.how == "negative":
            return dataclasses.replace(cost, energy_pJ=-cost.energy_pJ)
        if self.how == "dict":
            return dataclasses.asdict(cost)
        if self.how == "too-fast":
            return dataclasses.replace(cost, cycles=1.0, on_die_cycles=1.0)
        raise AssertionError(self.how)


def _lying(how: str) -> type:
    return type(f"Lying_{how}", (_Lying,), {"name": f"lying-{how}", "how": how})


class _NanBatch(NativeCostModel):
    name = "nan-batch"

    def evaluate_batch(self, problem, batch, architecture):
        energy, cycles = super().evaluate_batch(problem, batch, architecture)
        if problem.op.phase == "backward_weight":
            energy = np.where(np.arange(len(energy)) == len(energy) - 1, np.nan, energy)
        return energy, cycles


class _BadMemory(HMCAnalytic):
    """hmc-analytic, except on forward operations: infinite cycles, or nothing at all."""

    how = ""

    def simulate(self, traffic, architecture):
        mem = super().simulate(traffic, architecture)
        if traffic.op.phase != "forward":
            return mem
        return None if self.how == "none" else dataclasses.replace(mem, cycles=math.inf)


def _bad_memory(how: str) -> type:
    return type(f"BadMemory_{how}", (_BadMemory,), {"name": f"bad-memory-{how}", "how": how})


class _Plugin:
    cost_models = [_lying(h) for h in ("nan", "negative", "dict", "too-fast")] + [_NanBatch]
    memories = [_bad_memory(h) for h in ("inf", "none")]

    @staticmethod
    @ntframe.hookimpl
    def ntframe_register_cost_models(register):
        for cls in _Plugin.cost_models:
            register(cls)

    @staticmethod
    @ntframe.hookimpl
    def ntframe_register_memory_backends(register):
        for cls in _Plugin.memories:
            register(cls)


@pytest.fixture(scope="module")
def liars():
    host = PluginHost().load()
    host.register_module(_Plugin, "liars", "6.6")
    return host


CASES = [
    ("cost_model: native", "cost_model: lying-nan", "backward_weight", "energy_pJ = nan: every figure must be finite"),
    ("cost_model: native", "cost_model: lying-negative", "backward_weight", "energy_pJ = -"),
    ("cost_model: native", "cost_model: lying-dict", "backward_weight",
     "returned a dict, not a ntframe.results.ComputeCost"),
    ("cost_model: native", "cost_model: lying-too-fast", "backward_weight",
     "1 cycles, fewer than the datapath's bound"),
    ("cost_model: native", "cost_model: nan-batch", "backward_weight", "energy_pJ[")
    , ("backend: hmc-analytic", "backend: bad-memory-inf", "forward", "cycles = inf"),
    ("backend: hmc-analytic", "backend: bad-memory-none", "forward", "returned a NoneType, not a ntframe.results.MemoryCost"),
]


@pytest.mark.parametrize("old,new,phase,message", CASES, ids=[c[1].split(": ")[1] for c in CASES])
def test_a_wrong_figure_costs_only_its_operations(tmp_path, liars, old, new, phase, message):
    spec = small_spec(tmp_path, 20)
    spec.write_text(spec.read_text().replace(old, new))
    doc = run(resolve(load_spec(spec), liars), jobs=1)
    failed = [o for o in doc["operations"] if o["status"] == "error"]
    assert failed, "the wrong figures passed as results"
    assert {o["phase"] for o in failed} == {phase}
    component = new.split(": ")[1]
    for o in failed:
        assert f"plugin 'liars' / component '{component}'" in o["error"] and message in o["error"], o["error"]
    assert doc["totals"]["operations_ok"] == len(doc["operations"]) - len(failed) > 0
    folder = ntframe.bundle.write_bundle(doc, tmp_path / "out").paths[0].parent
    _strict((folder / "results.json").read_text())          # strict JSON: no NaN, no Infinity


def test_results_json_refuses_non_finite_numbers(tmp_path):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        ntframe.bundle.write_bundle({"operations": [], "totals": {"energy_pJ": math.nan}}, tmp_path)


def test_an_unusable_output_folder_fails_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for output in (blocker, blocker / "under"):
        started = time.monotonic()
        done = ntframe_cmd("run", str(small_spec(tmp_path, 20000)), "-o", str(output))
        assert done.returncode == 2, done.stderr
        assert time.monotonic() - started < 20                     # no search ran (20,000 evaluations each)
        assert "Traceback" not in done.stderr
        assert f"the output folder {output} cannot be written" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_results_are_kept_when_the_folder_fails_at_the_end(tmp_path, monkeypatch):
    """A full disk when writing: the bundle goes to a fresh temporary folder, and the run says so."""
    real = ntframe.bundle.write_bundle
    target = tmp_path / "target"

    def full_disk(document, folder):
        if folder == target:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(document, folder)

    monkeypatch.setattr(ntframe.bundle, "write_bundle", full_disk)
    results = ntframe.run(small_spec(tmp_path, 20), write=target, jobs=1)
    written = results.written
    assert written.rescued_from == f"{target} (No space left on device)"
    rescued = _strict(written.paths[0].read_text())
    assert written.paths[0].parent != target and rescued["totals"] == results.totals


def test_memory_cost_is_checked_by_type_and_physics():
    from ntframe import checks
    from ntframe.errors import PluginError

    class Reg:
        plugin, name = "p", "m"

    ok = MemoryCost(10.0, 5.0, 64, 0, 1.0, 1.0, {"row_hit_rate": 0.5})
    assert checks.memory_cost(ok, "x", Reg) is ok
    with pytest.raises(PluginError, match="64 bytes moved in 0 cycles"):
        checks.memory_cost(dataclasses.replace(ok, cycles=0.0), "x", Reg)
    with pytest.raises(PluginError, match=r"details.row_hit_rate = nan"):
        checks.memory_cost(dataclasses.replace(ok, details={"row_hit_rate": math.nan}), "x", Reg)
    assert checks.bad_number({"memory_energy_gap": -0.5, "search": {"rerank_gain": 0.1}}) is None
    assert checks.bad_number({"a": [1, {"b": -2}]}) == "a.1.b = -2.0"


def test_an_operation_larger_than_the_cube_is_refused(tmp_path):
    """A 1e9-channel convolution needs thousands of times the 4 GiB cube: an error row each, never 'ok'."""
    workload = tmp_path / "huge.yaml"
    workload.write_text("network:\n  name: huge\n  input: {channels: 3, height: 32, width: 32}\n  layers:\n"
                        "    - {name: small, type: conv, out_channels: 8, kernel: 3, padding: 1}\n"
                        "    - {name: wide, type: conv, out_channels: 1000000000, kernel: 3, padding: 1}\n")
    spec = small_spec(tmp_path, 20)
    spec.write_text(spec.read_text().replace(str(ROOT / "workloads/small-cnn.yaml"), str(workload)))
    results = ntframe.run(spec, jobs=1)
    failed = {row["name"]: row["error"] for row in results.failed}
    assert failed and all(name.startswith("wide.") for name in failed)
    assert all("more than the 4.0 GiB that vault_dram holds (32 x 128.0 MiB)" in e and "architecture.cubes" in e
               for e in failed.values())
    assert any(o["name"].startswith("small.") and o["status"] == "ok" for o in results.operations)


def test_api_overrides_take_strings_and_refuse_other_shapes():
    from ntframe.errors import SpecError
    from tests.conftest import EXAMPLE
    assert ntframe.validate(EXAMPLE, ["workload.batch=4"]).loaded.spec.workload.batch == 4
    for bad, message in (([3], "not an item of type int"), ("workload.batch=4", "not a str"),
                         (["nonsense"], "expected PATH=VALUE")):
        with pytest.raises(SpecError, match=message):
            ntframe.validate(EXAMPLE, bad)
