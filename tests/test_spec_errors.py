"""Bad input: every error names the file, the line, the dotted path, what is allowed, and exits 2."""

from __future__ import annotations

import textwrap

import pytest

from ntframe.errors import SpecError
from ntframe.runner import resolve
from ntframe.spec import load_spec
from tests.conftest import ntframe_cmd

GOOD = """\
version: 1
name: t
workload: {frontend: layers, file: small-cnn, batch: 4}
architecture:
  spec: neurotrainer/hmc2-32vault
mapper: {name: native, budget: {evaluations: 10}}
cost_model: native
memory: {backend: hmc-analytic}
"""


def error_for(tmp_path, text: str, host) -> SpecError:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as info:
        resolve(load_spec(path), host)
    return info.value


def test_the_good_spec_resolves(tmp_path, host):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD)
    resolved = resolve(load_spec(path), host)
    assert resolved.architecture.name == "neurotrainer-hmc2-32vault"
    assert resolved.resolved_spec["mapper"]["objective"] == "edp"   # plugin defaults are part of it


@pytest.mark.parametrize("old,new,line,path,words", [
    ("  spec: neurotrainer", "  cubse: 2\n  spec: neurotrainer", 5, "architecture.cubse",
     ["unknown key 'cubse'", "allowed keys: cubes, die_area_mm2, precision_bits, spec", "did you mean 'cubes'?"]),
    ("file: small-cnn", "fiel: small-cnn", 3, "workload.fiel",
     ["unknown key 'fiel'", "option of workload frontend 'layers' from plugin 'layers'", "did you mean 'file'?"]),
    ("cost_model: native", "cost_model: natve", 7, "cost_model.name",
     ["no cost model named 'natve'", "registered: native", "did you mean 'native'?"]),
    ("batch: 4", "batch: -4", 3, "workload.batch", ["greater than 0", "got -4"]),
    ("batch: 4}", "batch: 4, phases: [forward, backwards]}", 3, "workload.phases.1",
     ["'forward', 'backward_data', 'backward_weight' or 'update'", "did you mean 'backward_data'?"]),
    ("version: 1", "version: 2", 1, "version", ["Input should be 1", "got 2"]),
    ("budget: {evaluations: 10}", "budget: {evaluations: ten}", 6, "mapper.budget.evaluations",
     ["valid integer", "got 'ten'"]),
    ("{name: native, budget", "{name: native, objective: fast, budget", 6, "mapper.objective",
     ["'energy', 'delay' or 'edp'", "got 'fast'"]),
    ("  spec: neurotrainer/hmc2-32vault", "  spec: nowhere/none", 5, "architecture.spec",
     ["file 'nowhere/none' not found"]),
])
def test_spec_errors_name_line_path_and_fix(tmp_path, host, old, new, line, path, words):
    assert old in GOOD
    err = error_for(tmp_path, GOOD.replace(old, new, 1), host)
    assert err.line == line and err.path == path, str(err)
    assert str(err).startswith(f"{tmp_path / 'spec.yaml'}:{line}: at '{path}': ")
    for w in words:
        assert w in str(err)


def test_malformed_yaml_and_missing_file(tmp_path, host):
    err = error_for(tmp_path, GOOD.replace("batch: 4}", "batch: 4"), host)
    assert "malformed YAML" in str(err) and err.line == 4
    with pytest.raises(SpecError, match="nope.yaml: file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_errors_in_referenced_files_name_that_file(tmp_path, host):
    arch = (tmp_path / "arch.yaml")
    from ntframe.paths import shipped_root
    text = (shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml").read_text()
    arch.write_text(text.replace("        bandwidth_bytes_per_cycle: 16\n", "        bandwidth_bytes_per_cycle: 16\n"
                                 "        capacty: 3\n"))
    err = error_for(tmp_path, GOOD.replace("neurotrainer/hmc2-32vault", "arch.yaml"), host)
    assert err.file == str(arch) and err.path == "architecture.nodes.6.attributes.capacty"
    assert err.line == text.splitlines().index("        bandwidth_bytes_per_cycle: 16") + 2
    assert "did you mean 'capacity_bytes'?" in str(err)
    layers = tmp_path / "net.yaml"
    layers.write_text("network:\n  name: n\n  input: {features: 4}\n  layers:\n"
                      "    - {name: a, type: fc, out_features: 2}\n    - {name: b, type: conv3d}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("file: small-cnn", "file: net.yaml"))
    from ntframe.runner import run
    with pytest.raises(SpecError) as info:
        run(resolve(load_spec(path), host))
    assert info.value.file == str(layers) and info.value.line == 6 and info.value.path == "network.layers.1.type"
    assert "unknown type 'conv3d'; allowed: conv, linear, fc, pool" in str(info.value)
    assert "did you mean 'conv'?" in str(info.value)


def test_unsourced_architecture_numbers_are_rejected(tmp_path, host):
    from ntframe.paths import shipped_root
    text = (shipped_root() / "arch_specs/neurotrainer/hmc2-32vault.yaml").read_text()
    (tmp_path / "arch.yaml").write_text(text.replace('        capacity_bytes: "[A] 64 KiB per vault"\n', ""))
    err = error_for(tmp_path, GOOD.replace("neurotrainer/hmc2-32vault", "arch.yaml"), host)
    assert "attributes without a source: capacity_bytes" in str(err) and err.path == "architecture.nodes.4.sources"


def test_cli_exit_code_2_without_traceback(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD.replace("cost_model: native", "cost_model: natve"))
    for command in ("validate", "run"):
        done = ntframe_cmd(command, str(path))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert f"{path}:7: at 'cost_model.name': no cost model named 'natve'" in done.stderr
    debug = ntframe_cmd("--debug", "validate", str(path))
    assert "Traceback" in debug.stderr
