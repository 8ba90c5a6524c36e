"""Golden runs: the example spec and the seven zoo networks give the recorded results, byte for byte once the
file paths and file hashes of the provenance are set aside.

First recorded on commit 3bc6834 (before the package was reorganised, issue 11; every move kept them). Recorded
again for issue 12 (the native search's descent phase; the cost model's spatial-reduction adders; the DRAM's
bank-model energies and timings in the architecture file, which changed its identity and so the search seeds;
resolved specs list `mapper.constraints` and `workload.backward_data`), with
this test's own specs and normalisation (``ntframe run SPEC -o DIR``, then :func:`canonical`). A change that
moves code must keep them; a change meant to alter figures re-records them and says why in its commit.

:func:`test_architecture_identity` pins the architecture's identity (the hash of what the file means, which
seeds the search and keys the mapping cache), and checks that comments, key order, names and the file's name
leave it (and the figures) alone.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import pytest

import ntframe
from tests.conftest import EXAMPLE, ROOT

ZOO = ["alexnet", "vgg16", "resnet50", "lstm_lm", "mlp", "cnn_rnn", "transformer"]

RECORDED = {
    "example": "f4b4c14ec33a393af0ab9a4079bdb3c49e0a528dae143a9221b1cff45aa00c55",
    "alexnet": "6d797a337e1bbcab6144223f189c824b8e3794afe44c2ba0ec96a390193e02a9",
    "vgg16": "6e1fd9031378bed2c06aed1d7a377949104621468867a40544cd0c220ce2a8a2",
    "resnet50": "42dfca3b74f7d63d9b5c45ba4458f1249319a28d50a3cd068ffbbd364937c082",
    "lstm_lm": "249175dec46938a6129440c5bf3c228bc3bb05356543308c4d188706707e53e7",
    "mlp": "1426dd544184ab372ad5d09237afaff3a1965e0c9dd0f83e41ef3160caabd3b2",
    "cnn_rnn": "76eb45e58f9013ac9cfa4fed933d21cd70ca5836d84be989fe9e1d1a1fba8d52",
    "transformer": "5d9bb4d72a87b0e38cdcb371890ce228ecff01a87f7c600f61d2569c6fd2a46c",
}


ARCHITECTURE_SHA256 = "973cd0c224cf48db29a3cd94a1e0e5f81fbada667d0e0e294577ac79c9e572e8"
"""neurotrainer/hmc2-32vault (cubes 1) as ntframe identifies it now: SHA-256 of its meaning."""


def zoo_spec(folder: Path, network: str) -> Path:
    """Batch 2, 50 evaluations, a seconds cap no run reaches (so the search is the same on any machine)."""
    path = folder / f"{network}.yaml"
    path.write_text(f"""version: 1
name: zoo-{network}
workload: {{frontend: zoo, network: {network}, batch: 2}}
architecture: {{spec: neurotrainer/hmc2-32vault}}
mapper: {{name: native, budget: {{evaluations: 50, seconds: 600}}, seed: 0}}
cost_model: native
memory: {{backend: hmc-analytic}}
""")
    return path


def canonical(document: dict) -> str:
    """The results document without what names or hashes files on this machine."""
    doc = copy.deepcopy(document)
    doc.pop("schema_version", None)
    prov = doc["provenance"]
    for key in ("spec_file", "spec_file_sha256", "overrides"):
        prov.pop(key, None)
    prov["architecture"].pop("file", None)
    prov["architecture"].pop("file_sha256", None)
    for holder in (doc["network"], prov["workload"]):
        source = holder.get("source")
        if isinstance(source, str) and source.startswith("/"):
            holder["source"] = Path(source).name
    return json.dumps(doc, indent=1)


def run_to_document(spec: Path, folder: Path) -> dict:
    from ntframe.cli import main
    assert main(["run", "-q", str(spec), "-o", str(folder)]) == 0
    return json.loads((folder / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["example", *ZOO])
def test_results_match_the_recorded_run(name, tmp_path):
    spec = EXAMPLE if name == "example" else zoo_spec(tmp_path, name)
    text = canonical(run_to_document(spec, tmp_path / "out"))
    assert hashlib.sha256(text.encode()).hexdigest() == RECORDED[name]


def reworded(text: str) -> str:
    """The same architecture written differently: other comments and name, keys in another order."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    out = "\n".join(["# another comment", *lines]) + "\n"
    out = out.replace("name: neurotrainer-hmc2-32vault", "name: renamed-for-the-test")
    return out.replace("clock_GHz: 1.0\n  precision_bits: {forward: 16, backward_data: 32, backward_weight: 32, "
                       "update: 32}", "precision_bits: {update: 32, backward_weight: 32, backward_data: 32, "
                       "forward: 16}\n  clock_GHz: 1.0")


def test_architecture_identity(tmp_path):
    from ntframe.hardware import load_architecture
    shipped = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
    assert load_architecture(shipped).content_sha256 == ARCHITECTURE_SHA256
    text = reworded(shipped.read_text())
    assert "renamed-for-the-test" in text and "precision_bits: {update" in text and text != shipped.read_text()
    (tmp_path / "other-file-name.yaml").write_text(text)
    other = load_architecture(tmp_path / "other-file-name.yaml")
    assert other.content_sha256 == ARCHITECTURE_SHA256 and other.file_sha256 != load_architecture(shipped).file_sha256
    (tmp_path / "faster.yaml").write_text(text.replace("clock_GHz: 1.0", "clock_GHz: 1.25"))
    assert load_architecture(tmp_path / "faster.yaml").content_sha256 != ARCHITECTURE_SHA256
    assert load_architecture(shipped, cubes=2).content_sha256 != ARCHITECTURE_SHA256


def test_comments_and_names_change_no_result(tmp_path):
    """The example against its architecture file as shipped and as reworded: the same figures and mappings."""
    shipped = ROOT / "arch_specs" / "neurotrainer" / "hmc2-32vault.yaml"
    (tmp_path / "reworded.yaml").write_text(reworded(shipped.read_text()))
    base = {"mapper.budget.evaluations": 30}
    first = ntframe.run(EXAMPLE, base)
    second = ntframe.run(EXAMPLE, {**base, "architecture.spec": str(tmp_path / "reworded.yaml")})
    assert first.operations == second.operations and first.totals == second.totals
