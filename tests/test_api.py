"""The Python API as a notebook uses it, the tables analysts load, and ``--set`` overrides."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import ntframe
from ntframe.bundle import OPERATION_COLUMNS, PHASE_COLUMNS, Results, json_text
from ntframe.errors import SpecError
from tests.conftest import EXAMPLE, ntframe_cmd

DICT_SPEC = {
    "version": 1,
    "name": "notebook",
    "workload": {"frontend": "layers", "file": "small-cnn", "batch": 4},
    "architecture": {"spec": "neurotrainer/hmc2-32vault"},
    "mapper": {"name": "native", "budget": {"evaluations": 30, "seconds": 600}, "seed": 0},
    "cost_model": "native",
    "memory": {"backend": "hmc-analytic"},
}


@pytest.fixture(scope="module")
def notebook_run():
    return ntframe.run(DICT_SPEC, overrides={"workload.batch": 2})


def test_run_on_a_dict_spec_with_an_override(notebook_run):
    r = notebook_run
    assert isinstance(r, Results) and r.name == "notebook"
    assert r.provenance["resolved_spec"]["workload"]["batch"] == 2
    assert r.provenance["overrides"] == {"workload.batch": 2}
    assert r.provenance["spec_file"] is None and r.network["batch"] == 2
    assert r.totals["operations_failed"] == 0 and r.totals["macs"] == 129_368_064 // 8   # batch 16 -> 2
    assert set(r.phases) == {"forward", "backward_data", "backward_weight", "update"}
    assert r.document["schema_version"] == 1


def test_to_pandas_columns_and_dtypes(notebook_run):
    pytest.importorskip("pandas", reason="to_pandas needs the 'tables' extra")
    frame = notebook_run.to_pandas()
    assert list(frame.columns) == [c.name for c in OPERATION_COLUMNS]
    assert len(frame) == len(notebook_run.operations)
    for c in OPERATION_COLUMNS:
        assert str(frame[c.name].dtype) == {"str": "string", "int": "Int64", "float": "float64"}[c.kind], c.name
    assert frame["energy_pJ"].sum() == pytest.approx(notebook_run.totals["energy_pJ"])
    assert frame.loc[0, "name"] == notebook_run.operations[0]["name"]
    phases = notebook_run.to_pandas("phases")
    assert list(phases.columns) == [c.name for c in PHASE_COLUMNS]
    assert phases["energy_pJ"].sum() == pytest.approx(notebook_run.totals["energy_pJ"])
    assert phases["energy_share"].sum() == pytest.approx(1.0)
    assert phases["cycles"].sum() == pytest.approx(notebook_run.totals["cycles"])
    with pytest.raises(SpecError, match="no table 'layers'"):
        notebook_run.to_pandas("layers")


def test_parquet_read_back_equals_the_csv(notebook_run, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    written = notebook_run.write(tmp_path / "bundle")
    assert [p.name for p in written.paths] == ["results.json", "operations.csv", "operations.parquet",
                                               "phases.parquet"] and written.notes == []
    table = pq.read_table(tmp_path / "bundle" / "operations.parquet")
    rows = list(csv.DictReader((tmp_path / "bundle" / "operations.csv").open()))
    assert table.column_names == [c.name for c in OPERATION_COLUMNS] == list(rows[0])
    kinds = {c.name: c.kind for c in OPERATION_COLUMNS}
    parsed = [{k: (None if v == "" else int(v) if kinds[k] == "int" else float(v) if kinds[k] == "float" else v)
               for k, v in row.items()} for row in rows]
    assert table.to_pylist() == parsed
    assert table.schema.field("energy_pJ").metadata[b"description"]
    assert table.schema.metadata[b"ntframe.spec_sha256"] == notebook_run.provenance["spec_sha256"].encode()
    phases = pq.read_table(tmp_path / "bundle" / "phases.parquet").to_pylist()
    assert [p["phase"] for p in phases] == list(notebook_run.phases)
    assert Results.read(tmp_path / "bundle").document == notebook_run.document
    assert notebook_run.to_parquet(tmp_path / "alone.parquet").read_bytes() == \
        (tmp_path / "bundle" / "operations.parquet").read_bytes()


def test_parquet_holds_a_failed_operation_as_nulls_and_does_not_import_pandas(notebook_run, tmp_path):
    """A failed operation's missing figures are nulls in Parquet, as they are empty cells in the CSV; the columns
    are built from their buffers, so writing the bundle does not import pandas (0.3-0.45 s of a cached run)."""
    pytest.importorskip("pyarrow.parquet")
    doc = json.loads(json.dumps(notebook_run.document))
    first = doc["operations"][0]
    doc["operations"][0] = {k: first[k] for k in ("name", "layer", "phase", "kind", "macs", "flops")} | {
        "status": "error", "error": "ZeroDivisionError: ä ünïcode message"}
    (tmp_path / "doc.json").write_text(json.dumps(doc))
    script = (f"import sys, json; from pathlib import Path; from ntframe.bundle import write_bundle; "
              f"write_bundle(json.loads(Path({str(tmp_path / 'doc.json')!r}).read_text()), "
              f"Path({str(tmp_path / 'out')!r})); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    import pyarrow.parquet as pq
    table = pq.read_table(tmp_path / "out" / "operations.parquet").to_pylist()
    kinds = {c.name: c.kind for c in OPERATION_COLUMNS}
    rows = list(csv.DictReader((tmp_path / "out" / "operations.csv").open()))
    assert table == [{k: (None if v == "" else int(v) if kinds[k] == "int" else float(v) if kinds[k] == "float"
                          else v) for k, v in row.items()} for row in rows]
    assert table[0]["status"] == "error" and table[0]["energy_pJ"] is None and table[0]["macs"] == first["macs"]
    assert table[1]["energy_pJ"] == notebook_run.document["operations"][1]["energy_pJ"]


def test_without_pyarrow_the_bundle_says_how_to_get_the_tables(notebook_run, tmp_path, monkeypatch):
    import ntframe.bundle
    monkeypatch.setattr(ntframe.bundle, "parquet_available", lambda: False)
    written = notebook_run.write(tmp_path / "bundle")
    assert [p.name for p in written.paths] == ["results.json", "operations.csv"]
    assert written.notes == ["operations.parquet and phases.parquet not written (pyarrow is not installed): "
                             "pip install 'ntframe[tables]'"]
    assert sorted(p.name for p in (tmp_path / "bundle").iterdir()) == ["operations.csv", "results.json"]


def test_html_shows_the_per_phase_table(notebook_run):
    page = notebook_run._repr_html_()
    assert page.count("<tr>") == 1 + len(notebook_run.phases) + 1       # header, phases, total
    for phase in notebook_run.phases:
        assert f"<td>{phase}</td>" in page
    assert "GFLOPS/W" in page and "notebook" in repr(notebook_run)


def test_an_override_equals_the_same_value_in_the_file(tmp_path):
    """Overrides become part of the resolved spec and its hash: the same as writing the value in the file."""
    spec = dict(DICT_SPEC, mapper={"name": "native", "budget": {"evaluations": 20, "seconds": 600}})
    direct = ntframe.run({**spec, "workload": {**spec["workload"], "batch": 3}})
    overridden = ntframe.run(spec, overrides={"workload.batch": 3})
    for key in ("resolved_spec", "spec_sha256"):
        assert direct.provenance[key] == overridden.provenance[key]
    assert direct.operations == overridden.operations and direct.totals == overridden.totals
    assert ntframe.validate(spec, {"workload.batch": 4}).resolved_spec["workload"]["batch"] == 4


def test_dict_spec_errors_name_the_path_and_the_override():
    with pytest.raises(SpecError) as err:
        ntframe.validate({**DICT_SPEC, "workload": {**DICT_SPEC["workload"], "bach": 2}})
    assert "<spec dict>" in str(err.value) and err.value.path == "workload.bach" and "did you mean 'batch'" in str(err.value)
    with pytest.raises(SpecError) as err:
        ntframe.validate(DICT_SPEC, overrides={"mapper.budget.evaluations": "many"})
    assert str(err.value).startswith("override mapper.budget.evaluations='many': at 'mapper.budget.evaluations'")
    with pytest.raises(SpecError, match="not a section"):
        ntframe.validate(DICT_SPEC, overrides={"workload.batch.size": 1})


@pytest.mark.parametrize("argument, path, says", [
    ("workload.bach=64", "workload.bach", "did you mean 'batch'"),
    ("mapper.budget.evaluatons=4000", "mapper.budget.evaluatons", "did you mean 'evaluations'"),
    ("mapper.budget.evaluations=lots", "mapper.budget.evaluations", "valid integer"),
    ("workload.phases=[forward, sideways]", "workload.phases.1", "'forward', 'backward_data'"),
    ("cost_model.dram_line_bytes=-1", "cost_model.dram_line_bytes", "greater than or equal to 0"),
    ("memory.max_requests=[1", "memory.max_requests", "not valid YAML"),
])
def test_set_errors_exit_2_naming_the_argument_and_the_path(argument, path, says):
    for command in ("run", "validate"):
        done = ntframe_cmd(command, str(EXAMPLE), "--set", argument)
        assert done.returncode == 2, done.stderr
        line = done.stderr.strip().splitlines()[0]
        assert line.startswith(f"error: --set {argument}: at '{path}'") and says in line, line


def test_set_changes_the_run_and_is_in_the_provenance(tmp_path):
    out = tmp_path / "out"
    done = ntframe_cmd("run", str(EXAMPLE), "-q", "-o", str(out), "--set", "workload.batch=2",
                       "--set", "mapper.budget.evaluations=20", "--set", "workload.phases=[forward, update]")
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "results.json").read_text())
    prov = doc["provenance"]
    assert prov["overrides"] == {"workload.batch": 2, "mapper.budget.evaluations": 20,
                                 "workload.phases": ["forward", "update"]}
    assert prov["resolved_spec"]["mapper"]["budget"]["evaluations"] == 20
    assert set(doc["phases"]) == {"forward", "update"} and doc["network"]["batch"] == 2
    assert prov["spec_file_sha256"] != prov["spec_sha256"]


def test_output_resolves_relative_to_the_spec(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    text = EXAMPLE.read_text().replace("output: results/small-cnn", "output: out/here")
    (folder / "spec.yaml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = ntframe_cmd("run", str(folder / "spec.yaml"), "-q", "--set", "mapper.budget.evaluations=20",
                       cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert (folder / "out" / "here" / "results.json").is_file() and not any(elsewhere.iterdir())
    loaded = ntframe.load(folder / "spec.yaml")
    assert loaded.output_folder() == folder / "out" / "here"
    assert loaded.output_folder("x") == ntframe.api.Path("x")


def test_compare_api_gives_a_table(tmp_path):
    pytest.importorskip("pandas", reason="to_pandas needs the 'tables' extra")
    spec = dict(DICT_SPEC, mapper={"name": "native", "budget": {"evaluations": 20, "seconds": 600}})
    comparison = ntframe.compare(spec, cost_models=["native"], memories=["hmc-analytic"],
                                 operations=["conv1.forward", "relu1.forward"])
    frame = comparison.to_pandas()
    assert list(frame["operation"]) == ["conv1.forward", "relu1.forward"]
    assert list(frame["column"]) == ["native+hmc-analytic"] * 2
    assert frame["energy_pJ"].sum() == pytest.approx(comparison.totals["native+hmc-analytic"]["energy_pJ"])
    assert "native+hmc-analytic" in comparison._repr_html_()
    written, _ = comparison.write(tmp_path / "cmp", with_plots=False)
    assert [p.name for p in written] == ["compare.json", "compare.csv"]
    with pytest.raises(SpecError, match="exactly one of"):
        ntframe.compare(spec)
    with pytest.raises(SpecError, match="--baseline nope"):
        ntframe.compare(spec, cost_models=["native"], operations=["conv1.forward"], baseline="nope")


def test_importing_ntframe_loads_nothing_else():
    done = subprocess.run(
        [sys.executable, "-c", "import sys, ntframe; ntframe.hookimpl; "
         "print(sorted(m for m in sys.modules if m.startswith('ntframe')))"], capture_output=True, text=True)
    assert done.stdout.strip() == "['ntframe', 'ntframe.hookspecs']", done.stderr


DATA_KEYS = {                      # containers whose keys are data, and how docs/results.md writes them
    "network.activation_stash_bytes_by_tensor": "<tensor>", "operations[].dims": "<dimension>",
    "operations[].tensor_bytes": "<tensor>", "operations[].levels[].tensors": "<data space>",
    "operations[].search.invalid_reasons": "<reason>", "phases": "<phase>",
    "provenance.architecture.precision_bits": "<phase>", "provenance.overrides": "<path>",
    "provenance.plugins": "<section>", "provenance.architecture.components[].scale": "<quantity>",
    "totals.scopes": "<scope>"}
WHOLE = {"provenance.resolved_spec", "operations[].mapping", "provenance.architecture.components[].energies",
         "provenance.architecture.components[].sources"}      # documented as a whole


def documented_paths(document: dict) -> set[str]:
    found: set[str] = set()

    def walk(value, path: str) -> None:
        if path in WHOLE:
            found.add(path)
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{DATA_KEYS.get(path, key)}" if path else key)
        elif isinstance(value, list):
            found.add(path + "[]") if not value else None
            for item in value:
                walk(item, path + "[]")
        else:
            found.add(path)
    walk(document, "")
    return found


def test_docs_results_describes_every_field(notebook_run):
    doc = (EXAMPLE.parent.parent / "docs" / "results.md").read_text()
    documented = set(doc.split("`")[1::2])
    missing = sorted(p for p in documented_paths(notebook_run.document) | {"operations[].error"}
                     if p not in documented)
    assert missing == []
    for column in OPERATION_COLUMNS + PHASE_COLUMNS:
        assert f"`{column.name}`" in doc, column.name


def test_results_json_text_is_the_document_with_short_containers_on_one_line(notebook_run):
    """``results.json``'s layout: the same document, strict JSON, containers that fit in the width on one line."""
    text = json_text(notebook_run.document)
    assert json.loads(text) == notebook_run.document
    assert json_text({"a": [1, 2], "b": {"c": "d"}}) == '{"a": [1, 2], "b": {"c": "d"}}'
    assert json_text({"shape": [3, 224, 224], "long": list(range(40))}, width=40) == \
        '{\n "shape": [3, 224, 224],\n "long": [\n  ' + ",\n  ".join(map(str, range(40))) + "\n ]\n}"
    assert json_text({"a": [], "b": {}}, width=3) == '{\n "a": [],\n "b": {}\n}'
    with pytest.raises(ValueError):
        json_text({"energy_pJ": [1.0, float("nan")]})
