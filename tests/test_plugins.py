"""Plugin host: discovery through entry points, attribution, clashes, blocking and failure isolation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest

import ntframe.hookspecs
from ntframe.errors import SpecError
from ntframe.host import PluginHost
from tests.conftest import EXAMPLE, ROOT, ntframe_cmd

REFERENCE = {("workload_frontend", "layers"), ("mapper", "native"), ("cost_model", "native"),
             ("memory_backend", "hmc-analytic")}


def test_reference_plugins_come_from_the_entry_point_group(host):
    found = {(r.family, r.name): r for r in host.components.values()}
    assert REFERENCE <= set(found)
    for key in REFERENCE:
        assert found[key].version == metadata.version("ntframe")
        assert host.plugins[found[key].plugin].module.startswith("ntframe_plugins.")
    assert host.failures() == []


def test_core_never_imports_a_plugin_by_name():
    for path in (ROOT / "ntframe").glob("*.py"):
        assert "ntframe_plugins" not in path.read_text(), path


def test_every_hook_is_documented():
    hooks = [name for name in dir(ntframe.hookspecs) if name.startswith("ntframe_register_")]
    assert len(hooks) == 6
    for name in hooks:
        assert getattr(ntframe.hookspecs, name).__doc__.strip()
    assert set(hooks) == set(ntframe.hookspecs.HOOK_FAMILIES)


def _module(tmp_path: Path, name: str, body: str, monkeypatch) -> metadata.EntryPoint:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    return metadata.EntryPoint(name=name, value=name, group="ntframe")


GOOD = """
    import ntframe
    from ntframe.components import CostModel
    class Echo(CostModel):
        name = "echo"
        def evaluate(self, operation, mapping, architecture):
            raise NotImplementedError
    @ntframe.hookimpl
    def ntframe_register_cost_models(register):
        register(Echo)
"""


def test_failures_are_isolated_and_reported(tmp_path, monkeypatch):
    eps = [
        _module(tmp_path, "p_good", GOOD, monkeypatch),
        _module(tmp_path, "p_import", "raise ImportError('missing dependency foo')", monkeypatch),
        _module(tmp_path, "p_typo", """
            import ntframe
            @ntframe.hookimpl
            def ntframe_register_cost_modles(register):
                pass
        """, monkeypatch),
        _module(tmp_path, "p_raises", """
            import ntframe
            @ntframe.hookimpl
            def ntframe_register_mappers(register):
                raise RuntimeError('boom')
        """, monkeypatch),
        _module(tmp_path, "p_notacomponent", """
            import ntframe
            @ntframe.hookimpl
            def ntframe_register_mappers(register):
                register(object)
        """, monkeypatch),
        _module(tmp_path, "p_zclash", GOOD, monkeypatch),
    ]
    host = PluginHost().load(eps)
    errors = {p.name: p.error for p in host.plugins.values()}
    assert errors["p_good"] is None
    assert "import failed: ImportError: missing dependency foo" in errors["p_import"]
    assert "ntframe_register_cost_modles" in errors["p_typo"]
    assert "RuntimeError: boom" in errors["p_raises"]
    assert "not a subclass of ntframe.components.MappingSearcher" in errors["p_notacomponent"]
    assert "cost_model 'echo' is already registered by plugin 'p_good'; plugin 'p_zclash'" in errors["p_zclash"]
    assert host.plugins["p_good"].components == [("cost_model", "echo")]
    with pytest.raises(SpecError, match="cost model 'echo' is registered by plugins 'p_good' and 'p_zclash'; "
                                        "choose one by blocking the others: NTFRAME_DISABLE_PLUGINS=p_zclash"):
        host.get("cost_model", "echo")       # which one would win is the order of their names: not a choice
    with pytest.raises(SpecError, match="no cost model named 'ech'; registered: echo; did you mean 'echo'"):
        host.get("cost_model", "ech")
    monkeypatch.setenv("NTFRAME_DISABLE_PLUGINS", "p_zclash")
    assert PluginHost().load(eps).get("cost_model", "echo").plugin == "p_good"


SHADOW = GOOD.replace('name = "echo"', 'name = "native"')


def test_a_shipped_component_cannot_be_taken_over(tmp_path, monkeypatch):
    """A third-party plugin whose entry point sorts first ('aa-dup') registering cost model 'native': the shipped
    one stays, the newcomer is rejected naming both; blocking the shipped plugin is the deliberate way."""
    shipped = list(metadata.entry_points(group="ntframe"))
    module = _module(tmp_path, "aa_dup", SHADOW, monkeypatch)
    eps = [metadata.EntryPoint(name="aa-dup", value=module.value, group="ntframe"), *shipped]
    host = PluginHost().load(eps)
    assert host.get("cost_model", "native").plugin == "native-cost"
    error = host.plugins["aa-dup"].error
    assert "cost_model 'native' is already registered by plugin 'native-cost', shipped with ntframe" in error
    assert "NTFRAME_DISABLE_PLUGINS=native-cost" in error
    monkeypatch.setenv("NTFRAME_DISABLE_PLUGINS", "native-cost")
    assert PluginHost().load(eps).get("cost_model", "native").plugin == "aa-dup"


def test_sys_exit_in_a_plugin_import_is_a_plugin_failure(tmp_path):
    """BaseException (sys.exit) at import: the plugin is reported, every command still works."""
    site = tmp_path / "site"
    _broken_distribution(site)
    (site / "ntframe_broken.py").write_text("import sys\nsys.exit(7)\n")
    listed = ntframe_cmd("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert listed.returncode == 0, listed.stderr
    assert {p["name"]: p for p in json.loads(listed.stdout)}["broken"]["error"] == "import failed: SystemExit: 7"
    checked = ntframe_cmd("validate", str(EXAMPLE), env={"PYTHONPATH": str(site)})
    assert checked.returncode == 0, checked.stderr


def test_disable_and_allow_lists(tmp_path, monkeypatch):
    ep = _module(tmp_path, "p_good2", GOOD, monkeypatch)
    monkeypatch.setenv("NTFRAME_DISABLE_PLUGINS", "p_good2, other")
    host = PluginHost().load([ep])
    assert host.plugins["p_good2"].blocked and host.components == {}
    monkeypatch.delenv("NTFRAME_DISABLE_PLUGINS")
    monkeypatch.setenv("NTFRAME_LOAD_PLUGINS", "someone-else")
    assert PluginHost().load([ep]).components == {}


def _broken_distribution(site: Path) -> None:
    """A real installed distribution (dist-info with an entry point) whose module raises at import."""
    dist = site / "ntframe_broken-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ntframe-broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[ntframe]\nbroken = ntframe_broken\n")
    (site / "ntframe_broken.py").write_text("raise RuntimeError('this plugin is broken at import')\n")


def test_broken_plugin_leaves_the_cli_working(tmp_path):
    site = tmp_path / "site"
    _broken_distribution(site)
    env = {"PYTHONPATH": str(site)}
    listed = ntframe_cmd("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert "this plugin is broken at import" in plugins["broken"]["error"]
    assert plugins["native-cost"]["error"] is None
    text = ntframe_cmd("plugins", env=env)
    assert "broken  ntframe-broken 1.0  [FAILED]" in text.stdout
    ran = ntframe_cmd("run", str(EXAMPLE), "-q", "-o", str(tmp_path / "out"), env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    assert "plugin 'broken' (ntframe-broken 1.0) not loaded" in ran.stderr
    assert (tmp_path / "out" / "results.json").is_file()
    blocked = ntframe_cmd("plugins", "--json", env={**env, "NTFRAME_DISABLE_PLUGINS": "broken"})
    assert {p["name"]: p for p in json.loads(blocked.stdout)}["broken"]["blocked"] is True


@pytest.mark.slow
def test_example_third_party_plugin_installed_for_real(tmp_path):
    """pip-installs examples/ntframe-roofline into a target folder and selects its cost model from a spec."""
    target, source = tmp_path / "site", tmp_path / "src"
    shutil.copytree(ROOT / "examples" / "ntframe-roofline", source)   # builds write next to the sources
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                          str(source)], capture_output=True, text=True, timeout=300)
    assert pip.returncode == 0, pip.stderr
    env = {"PYTHONPATH": str(target)}
    plugins = {p["name"]: p for p in json.loads(ntframe_cmd("plugins", "--json", env=env).stdout)}
    assert plugins["roofline"]["distribution"] == "ntframe-roofline"
    assert plugins["roofline"]["version"] == "0.2.0"
    assert plugins["roofline"]["components"] == [{"family": "cost_model", "name": "roofline"}]
    spec = tmp_path / "spec.yaml"
    spec.write_text(EXAMPLE.read_text().replace("cost_model: native", "cost_model: roofline")
                    .replace("evaluations: 20000", "evaluations: 20"))
    ran = ntframe_cmd("run", str(spec), "-q", "-o", str(tmp_path / "out"), env=env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["provenance"]["plugins"]["cost_model"] == {"component": "roofline", "family": "cost_model",
                                                         "plugin": "roofline", "version": "0.2.0"}
    conv1 = next(o for o in doc["operations"] if o["name"] == "conv1.forward")
    # the roofline bound of conv1.forward: 7,077,888 MACs on 512 MACs/cycle
    assert conv1["on_die_cycles"] == pytest.approx(7077888 / 512)
