"""Golden runs: the example spec and the seven zoo networks give the recorded results, byte for byte once the
file paths and file hashes of the provenance are set aside.

First recorded on commit 3bc6834 (before the package was reorganised, issue 11; every move kept them). Recorded
again when the native search gained its descent phase and specs their `mapper.constraints` (issue 12: better
mappings, so other figures; the resolved spec in the provenance lists the constraints), with
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
    "example": "307ff3c3ffa9666def0e7a9284cf5e5678f43864728033f019b7a63c09c22d91",
    "alexnet": "986d3f57c04ed08d2f947e6f1fcdc52b4c26a870ebb421d87cb351d280436280",
    "vgg16": "58ecd615e5fbe116fa9bb9ba08edbc9b28cd2f8920bddddea3589f757b804123",
    "resnet50": "aced140e99803f5e2816e33d5ccaf468f421cdabcbe3faabd49542e47b3360c7",
    "lstm_lm": "acd8b75f2dae28c39e4f1a5bc470e4583b6c06ec4803dfd65c0decd1cc6c9063",
    "mlp": "d7932599f4b3688716c59e6fe0d01b310e7072375bef089ba396b44380b51215",
    "cnn_rnn": "473f3437e529f3e12fb1cd867bb5909be7d7bb4d7ac27a382041195059b2e026",
    "transformer": "0feb102b6cbb7231635b2bd526e214735c5b7f86b2663202d8a34e82bd838ccd",
}


ARCHITECTURE_SHA256 = "4d03048bd125680cb31b593e489c3f69098958b9d0cd8a3a67d17699789e0779"
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
