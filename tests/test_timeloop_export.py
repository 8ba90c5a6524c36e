"""The Timeloop exporter writes what timeloop-model reads, for exactly the mapping ntframe evaluated."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import EXAMPLE, ntframe_cmd


def export(tmp_path, layer="conv2", phase="forward", extra=()):
    out = tmp_path / "tl"
    done = ntframe_cmd("export", "timeloop", str(EXAMPLE), str(out), "--layer", layer, "--phase", phase, *extra)
    assert done.returncode == 0, done.stderr
    return out


def test_export_files_have_timeloops_shape(tmp_path):
    out = export(tmp_path)
    arch = yaml.safe_load((out / "arch.yaml").read_text())["architecture"]
    assert arch["version"] == 0.3 and arch["subtree"][0]["local"][0]["class"] == "DRAM"
    problem = yaml.safe_load((out / "problem.yaml").read_text())["problem"]
    dims = problem["shape"]["dimensions"]
    assert dims == ["N", "M", "C", "P", "Q", "R", "S"]
    spaces = {s["name"]: s for s in problem["shape"]["data_spaces"]}
    assert spaces["O"].get("read_write") is True and list(spaces)[-1] == "O"
    assert spaces["I"]["projection"][2] == [["P", "c2"], ["R"]]           # stride 2 as a named coefficient
    assert {"name": "c2", "default": 2} in problem["shape"]["coefficients"]
    mapping = yaml.safe_load((out / "mapping.yaml").read_text())["mapping"]
    meta = json.loads((out / "ntframe.json").read_text())
    per_vault = meta["per_vault_bounds"]
    product = dict.fromkeys(dims, 1)
    for directive in mapping:
        if directive["type"] in ("temporal", "spatial"):
            assert sorted(directive["permutation"]) == sorted(dims)
            for item in directive["factors"].split():
                d, f = item.split("=")
                product[d] *= int(f)
    assert product == per_vault == {d: v for d, v in problem["instance"].items() if d in dims}
    assert math.prod(per_vault.values()) * meta["vaults"] == 16 * 32 * 16 * 16 * 16 * 9    # conv2.forward, N=16
    ert = yaml.safe_load((out / "ERT.yaml").read_text())["ERT"]
    levels = [lvl["level"] for lvl in meta["mapping"]["levels"]]
    names = [t["name"].split(".")[-1] for t in ert["tables"]]
    assert names == levels + ["mac"]
    assert ert["tables"][0]["actions"][0] == {"name": "read", "energy": pytest.approx(10.48 * 16)}
    from ntframe.yamlio import parse_yaml          # v0.4 uses the !Container / !Component tags
    v04, _ = parse_yaml((out / "arch-v0.4.yaml").read_text(), "arch-v0.4.yaml")
    assert v04["architecture"]["version"] == 0.4
    assert [n["name"] for n in v04["architecture"]["nodes"] if n["_tag"] == "Component"] == levels + ["mac"]


def test_export_names_the_operations_of_a_layer(tmp_path):
    done = ntframe_cmd("export", "timeloop", str(EXAMPLE), str(tmp_path / "x"), "--layer", "conv2", "--phase",
                       "update", "--part", "nope")
    assert done.returncode == 2 and "conv2.update.b" in done.stderr


def _timeloop() -> str | None:
    folder = os.environ.get("NTFRAME_TIMELOOP_BIN")
    if folder and os.path.exists(os.path.join(folder, "timeloop-model")):
        return os.path.join(folder, "timeloop-model")
    return shutil.which("timeloop-model")


@pytest.mark.skipif(_timeloop() is None, reason="timeloop-model is not on PATH (set NTFRAME_TIMELOOP_BIN to its "
                                                 "folder to run this live check)")
def test_timeloop_model_runs_the_export(tmp_path):
    out = export(tmp_path)
    done = subprocess.run([_timeloop(), "arch.yaml", "problem.yaml", "mapping.yaml", "ERT.yaml", "-o", "out"],
                          cwd=out, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = (out / "out" / "timeloop-model.stats.txt").read_text()
    assert "ERT" in stats
