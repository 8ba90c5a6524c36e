"""The ``timeloop`` cost model's two engines: pytimeloop (Timeloop's model through its Python bindings) and the
timeloop-model program.

Live (pytimeloop importable and timeloop-model found): the same operations and mappings through both engines —
a conv forward, a backward_data and a backward_weight of the example's network on the tiny one-vault design and on
the NeuroTrainer reference — give the same cycles and, level by level and tensor by tensor, the same counts and
energies, forked or not; the v0.4 architecture through timeloopfe gives them too. pytimeloop prints nothing,
writes nothing in the working folder, leaves no folder behind, turns what Timeloop refuses into a ToolError, and a
Timeloop exit() in the forked copy leaves this process standing. Without pytimeloop: asking for it is a ToolError
with the fix, ``auto`` runs the programs and says so, and the fork returns results and turns a child that raises,
exits, crashes or hangs into an error.
"""

from __future__ import annotations

import math
import os
import shutil
import sys

import pytest

from tests.conftest import EXAMPLE, ROOT
from tests.test_dram_backends import _fake

LAYERS = ("conv2.forward", "conv3.backward_data", "conv2.backward_weight")
ARCHS = {"tiny": "tiny/1vault-8x8", "neurotrainer": "neurotrainer/hmc2-32vault"}
GOLDEN = ROOT / "tests" / "golden" / "timeloop"


def _missing() -> str | None:
    """Why the live checks cannot run (which engine is missing and what fixes it), or None."""
    from ntframe_plugins.timeloop_tools import pytimeloop_error
    why = []
    error = pytimeloop_error()
    if error:
        why.append(f"{error}: install timeloop-python, built from source against a Timeloop build, and set "
                   "LD_LIBRARY_PATH to Timeloop's and barvinok's lib folders")
    folder = os.environ.get("NTFRAME_TIMELOOP_BIN")
    if not (folder and os.path.exists(os.path.join(folder, "timeloop-model"))) and not shutil.which("timeloop-model"):
        why.append("timeloop-model not found: set NTFRAME_TIMELOOP_BIN to the folder holding Timeloop's programs")
    return "; ".join(why) or None


MISSING = _missing()
live = pytest.mark.skipif(MISSING is not None, reason=f"both engines needed: {MISSING}")


def _model(**options):
    from ntframe_plugins.timeloop_tools import TimeloopModel, TimeloopModelOptions
    return TimeloopModel(TimeloopModelOptions(**options))


@pytest.fixture(scope="module")
def cases():
    """{(arch, operation): (operation, mapping, architecture)}: the example's operations, mapped by the native
    mapper on each architecture."""
    from ntframe.host import PluginHost
    from ntframe.runner import map_operation, operations_of, resolve
    from ntframe.spec import load_spec
    host = PluginHost().load()
    out = {}
    for label, spec in ARCHS.items():
        resolved = resolve(load_spec(EXAMPLE, {"architecture.spec": spec,
                                               "mapper.budget": {"evaluations": 4000, "seconds": 20}}), host)
        _, ops = operations_of(resolved)
        for op in ops:
            if op.name in LAYERS:
                out[(label, op.name)] = (op, map_operation(resolved, op)[0], resolved.architecture)
    return out


@pytest.fixture
def hidden_pytimeloop(monkeypatch):
    """pytimeloop made unimportable, as on a machine without it."""
    monkeypatch.setitem(sys.modules, "pytimeloop", None)


def _figures(cost) -> dict[str, float]:
    out = {"cycles": cost.cycles, "on_die_cycles": cost.on_die_cycles, "compute_cycles": cost.compute_cycles,
           "energy_pJ": cost.energy_pJ, "compute_energy_pJ": cost.compute_energy_pJ}
    for level in cost.levels:
        out.update({f"{level.level}.{k}": getattr(level, k) for k in ("instances", "reads", "fills", "updates",
                                                                       "energy_pJ", "bandwidth_bound_cycles")})
        out.update({f"{level.level}.{t}.{k}": v for t, counts in level.tensors.items() for k, v in counts.items()})
    return out


# --- without pytimeloop -----------------------------------------------------------------------------------------

def test_asking_for_pytimeloop_without_it_says_how_to_get_it(hidden_pytimeloop):
    from ntframe.errors import ToolError
    for options in ({"engine": "pytimeloop"}, {"spec": "v0.4"}):
        with pytest.raises(ToolError) as err:
            _model(**options).check_available()
        text = str(err.value)
        assert "pytimeloop cannot be imported" in text and "fix:" in text and "timeloop-python" in text, text
        assert "engine: programs" in text


def test_auto_without_pytimeloop_runs_the_program_and_says_so(hidden_pytimeloop, tmp_path, monkeypatch):
    from ntframe.errors import ToolError
    from tests.test_compare import _golden_mapping
    model = _model()
    assert model.engine() == "programs"
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(tmp_path))                 # neither engine
    with pytest.raises(ToolError) as err:
        model.check_available()
    assert "NTFRAME_TIMELOOP_BIN" in str(err.value) and "nor can pytimeloop be imported" in str(err.value)
    assert "timeloop-python" in str(err.value)
    exe = _fake(tmp_path, f"cp '{GOLDEN / 'conv2-forward.stats.txt'}' out/timeloop-model.stats.txt\n")
    monkeypatch.setenv("NTFRAME_TIMELOOP_BIN", str(exe))
    model.check_available()
    assert model.cache_identity()["engine"] == "programs"
    from ntframe.host import PluginHost
    from ntframe.runner import operations_of, resolve
    from ntframe.spec import load_spec
    resolved = resolve(load_spec(EXAMPLE), PluginHost().load())
    op = next(o for o in operations_of(resolved)[1] if o.name == "conv2.forward")
    cost = model.evaluate(op, _golden_mapping()[0], resolved.architecture)
    assert cost.cycles == 36864 and any(n.startswith("Timeloop engine: the timeloop-model program") for n in cost.notes)


def test_v04_is_pytimeloops_alone():
    from pydantic import ValidationError
    with pytest.raises(ValidationError, match="spec v0.4 is read through pytimeloop"):
        _model(engine="programs", spec="v0.4")


# --- live: both engines -----------------------------------------------------------------------------------------

@live
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("layer", LAYERS)
def test_both_engines_give_the_same_figures(cases, arch, layer):
    """Every figure of the ComputeCost (cycles; every level's and tensor's counts and energies) alike, through
    the programs and through pytimeloop: forked or not, from the v0.3 tree or from the v0.4 nodes."""
    from ntframe_plugins.timeloop_tools import pytimeloop_version
    op, mapping, architecture = cases[(arch, layer)]
    program = _model(engine="programs").evaluate(op, mapping, architecture)
    expected = _figures(program)
    for spec, isolation in (("v0.3", "fork"), ("v0.4", "fork"), ("v0.3", "none")):
        cost = _model(engine="pytimeloop", spec=spec, isolation=isolation).evaluate(op, mapping, architecture)
        got = _figures(cost)
        assert got.keys() == expected.keys()
        wrong = {k: (got[k], expected[k]) for k in expected if got[k] != pytest.approx(expected[k], rel=1e-9, abs=0)}
        assert wrong == {}, (spec, isolation, wrong)
        assert cost.cycles == program.cycles
        assert [n for n in cost.notes if not n.startswith("Timeloop engine")] == \
            [n for n in program.notes if not n.startswith("Timeloop engine")]
        assert f"pytimeloop {pytimeloop_version()}, its bindings ({spec} input, " in cost.notes[-1]
    assert program.notes[-1].startswith("Timeloop engine: the timeloop-model program")


@live
def test_the_engines_are_told_apart_in_the_cache():
    program, inprocess, auto = (_model(engine="programs").cache_identity(),
                                _model(engine="pytimeloop").cache_identity(), _model().cache_identity())
    assert program["engine"] == "programs" and inprocess["engine"] == "pytimeloop" and auto == inprocess
    assert inprocess["bindings_sha256"] and inprocess["pytimeloop_version"]
    assert any(k.startswith("libtimeloop") and k.endswith("_sha256") for k in inprocess)
    assert _model(engine="pytimeloop", spec="v0.4").cache_identity() != inprocess


@live
def test_pytimeloop_prints_nothing_and_leaves_nothing(cases, tmp_path, monkeypatch, capfd):
    work = tmp_path / "work"
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(work))
    monkeypatch.chdir(tmp_path)
    op, mapping, architecture = cases[("tiny", "conv2.forward")]
    for spec, isolation in (("v0.3", "fork"), ("v0.4", "fork"), ("v0.3", "none")):
        _model(engine="pytimeloop", spec=spec, isolation=isolation).evaluate(op, mapping, architecture)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and list(work.iterdir()) == []
    print("after")                                            # the process's output is back where it was
    assert capfd.readouterr().out == "after\n"


@live
def test_what_timeloop_refuses_is_a_tool_error_with_the_files(cases, tmp_path, monkeypatch):
    """A mapping whose tiles overflow the register files: Timeloop's Engine fails the level (timeloop-model
    would exit 1); and one that does not factorise the operation is refused before Timeloop sees it."""
    import dataclasses

    from ntframe.errors import ToolError
    from ntframe.mapping.mapping import LevelMapping, Mapping, structural_problems
    monkeypatch.setenv("NTFRAME_WORK_DIR", str(tmp_path))
    op, mapping, architecture = cases[("tiny", "conv2.forward")]
    rows = mapping.spatial_rows()
    rest = {d: b // math.prod(f for row in rows for e, f in row if e == d) for d, b in op.dims}
    last = mapping.levels[-1]                     # every temporal loop in the register files, nothing bypassed
    overflowing = Mapping(tuple(dataclasses.replace(lvl, temporal=(), bypass=()) for lvl in mapping.levels[:-1])
                          + (LevelMapping(last.level, tuple((d, f) for d, f in rest.items() if f > 1), last.spatial),),
                          mapping.compute_spatial)
    assert structural_problems(op, overflowing, architecture) == []
    with pytest.raises(ToolError, match=r"pytimeloop couldn't map conv2.forward: level .*") as err:
        _model(engine="pytimeloop").evaluate(op, overflowing, architecture)
    assert "pytimeloop-input.yaml" in str(err.value) and "rerun: cd" in str(err.value)
    kept = next(tmp_path.glob("ntframe-pytimeloop-*"))
    assert (kept / "pytimeloop-input.yaml").exists()
    wrong = Mapping(tuple(dataclasses.replace(lvl, temporal=()) for lvl in mapping.levels), mapping.compute_spatial)
    with pytest.raises(ToolError, match="the mapping does not fit"):
        _model(engine="pytimeloop").evaluate(op, wrong, architecture)


@live
def test_timeloops_exit_ends_only_the_forked_copy(cases, tmp_path):
    """Timeloop's mapping parser exit()s on a spatial split below a level with one instance below it: with
    ``isolation: fork`` that ends the copy, and this process goes on with a RuntimeError (the operation's
    ToolError, through the model) and Timeloop's words in the output file."""
    from ntframe.interop.timeloop import arch_v03, ert, mapping_yaml, per_vault_bounds, problem_yaml
    from ntframe_plugins.timeloop_tools import _pytimeloop, run_pytimeloop
    op, mapping, architecture = cases[("tiny", "conv2.forward")]
    bounds, _ = per_vault_bounds(op, mapping)
    document = {**arch_v03(architecture, op), **problem_yaml(op, bounds),
                **mapping_yaml(op, architecture, mapping, bounds), **ert(architecture, op)}
    stats, failed = run_pytimeloop(_pytimeloop(), document, tmp_path / "out.txt", "fork", 60)
    assert "=== " + architecture.levels[0].name + " ===" in stats and failed == []
    document["mapping"].insert(0, {"target": architecture.levels[0].name, "type": "spatial", "factors": "N=2",
                                   "permutation": "N"})
    with pytest.raises(RuntimeError, match="ended with exit code 1 without a result"):
        run_pytimeloop(_pytimeloop(), document, tmp_path / "out.txt", "fork", 60)
    assert "ERROR: cannot find spatial tiling level" in (tmp_path / "out.txt").read_text()


# --- the fork, without Timeloop -------------------------------------------------------------------------------

def test_a_forked_evaluation_returns_its_result_and_keeps_its_output(tmp_path, capfd):
    from ntframe_plugins.timeloop_tools import _in_fork

    def work():
        os.write(1, b"from C++ (fd 1)\n")
        os.write(2, b"to stderr (fd 2)\n")
        print("from Python")
        return ["stats", [1, 2.5]]

    assert _in_fork(work, tmp_path / "out.txt", 30) == ["stats", [1, 2.5]]
    assert capfd.readouterr() == ("", "")
    assert (tmp_path / "out.txt").read_text().splitlines() == ["from C++ (fd 1)", "to stderr (fd 2)", "from Python"]


@pytest.mark.parametrize("work,message", [
    (lambda: 1 / 0, "ZeroDivisionError: division by zero"),
    (lambda: os._exit(3), "ended with exit code 3 without a result"),
    (lambda: os.kill(os.getpid(), 11), "was killed by SIGSEGV without a result"),
    (lambda: __import__("time").sleep(30), "did not finish within 0.5 s")])
def test_a_forked_evaluation_that_fails_is_an_error_here(tmp_path, work, message):
    from ntframe_plugins.timeloop_tools import _in_fork
    with pytest.raises(RuntimeError, match=message):
        _in_fork(work, tmp_path / "out.txt", 0.5)


@live
def test_a_pytimeloop_that_misreads_its_check_is_refused_and_auto_runs_the_program(monkeypatch):
    """pytimeloop first evaluates a known problem in a forked copy; where that fails (as a Timeloop library with its
    own libstdc++ does after numba was loaded, or as here an input it exits on), asking for pytimeloop is a
    ToolError that says so, and ``auto`` runs the program."""
    from ntframe.errors import ToolError
    from ntframe_plugins import timeloop_tools
    broken = dict(timeloop_tools.SELF_CHECK, mapping=timeloop_tools.SELF_CHECK["mapping"] + [
        {"target": "memory", "type": "spatial", "factors": "P=2", "permutation": "P"}])
    monkeypatch.setattr(timeloop_tools, "SELF_CHECK", broken)
    monkeypatch.setattr(timeloop_tools, "_CHECKED", {})
    with pytest.raises(ToolError, match="cannot evaluate a 12-MAC check problem in this process") as err:
        _model(engine="pytimeloop").check_available()
    assert "numba" in str(err.value) and "engine: programs" in str(err.value)
    assert _model().engine() == "programs"
