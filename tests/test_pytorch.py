"""The PyTorch frontend: torch.fx tracing of real modules, checked against the zoo and FlopCounterMode."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the pytorch frontend needs torch (pip install 'ntframe[pytorch]')")

from ntframe.components import WorkloadRequest  # noqa: E402
from ntframe.errors import SpecError  # noqa: E402
from ntframe.workload.ir import PHASES, OpKind, Phase  # noqa: E402
from ntframe.workload.training import expand  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

BITS = dict.fromkeys(Phase, 16)

MODULES = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class TinyLM(nn.Module):
    def __init__(self, vocab=40, hidden=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnn = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        y, _ = self.rnn(self.embed(tokens))
        return self.out(y)


class Odd(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        return torch.matmul(y, y.transpose(1, 2)).sum(-1) + torch.sin(y).sum(-1)
'''


@pytest.fixture(autouse=True)
def _trusted(monkeypatch):
    """These tests' modules are code in the spec's folder, which they trust."""
    monkeypatch.setenv("NTFRAME_ALLOW_SPEC_CODE", "1")


def test_code_in_the_spec_folder_needs_permission(tmp_path, monkeypatch):
    """Running someone else's spec must not run their code unless the user says so."""
    (tmp_path / "mods.py").write_text("raise SystemExit('this code ran')\n")
    monkeypatch.delenv("NTFRAME_ALLOW_SPEC_CODE")
    with pytest.raises(SpecError, match=r"module 'mods:TinyLM' is code in the spec's folder \(.*mods.py\); importing "
                                        r"it runs it. For a spec you trust, allow it: NTFRAME_ALLOW_SPEC_CODE=1"):
        load(tmp_path, "mods:TinyLM", [{"shape": [6], "dtype": "index", "vocab": 40}])
    net = load(tmp_path, "torch.nn:Linear", [{"shape": [8]}], kwargs={"in_features": 8, "out_features": 4},
               unsupported="approximate")                             # installed code needs no permission
    assert any("node 'linear'" in note for note in net.notes)


def load(tmp_path, module, inputs, **options):
    from ntframe_plugins.pytorch_frontend import PyTorchFrontend, PyTorchOptions
    opts = PyTorchOptions(module=module, inputs=inputs, **options)
    return PyTorchFrontend(opts).load(WorkloadRequest(3, tmp_path))


def matrix_flops(net):
    return sum(o.flops for o in expand(net, PHASES, BITS) if o.kind in (OpKind.conv, OpKind.matmul))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["AlexNet", "ResNet50"])
def test_traced_torchvision_shapes_equal_the_zoo(tmp_path, name):
    """The golden script's independent PyTorch definitions, traced, give the zoo's layers and FLOPs."""
    from ntframe_plugins.zoo import ZOO
    net = load(ROOT / "tools", f"golden_flops:{name}", [{"shape": [3, 224, 224]}])
    zoo_name = name.lower()
    zoo = ZOO[zoo_name][1](ZOO[zoo_name][0]()).build(3)
    assert net.weights == zoo.weights
    assert matrix_flops(net) == matrix_flops(zoo)
    assert [layer.kind for layer in net.layers if layer.kind in ("conv", "linear", "batchnorm")] == \
        [layer.kind for layer in zoo.layers if layer.kind in ("conv", "linear", "batchnorm")]


def test_lstm_module_and_live_flop_count(tmp_path):
    (tmp_path / "mods.py").write_text(MODULES)
    net = load(tmp_path, "mods:TinyLM", [{"shape": [6], "dtype": "index", "vocab": 40}])
    kinds = [(layer.name, layer.kind) for layer in net.layers]
    assert kinds == [("embed", "embedding"), ("rnn.l0", "lstm"), ("rnn.l1", "lstm"), ("out", "linear")]
    ops = {o.name: o for o in expand(net, PHASES, BITS)}
    assert ops["rnn.l1.forward.recurrent"].macs == 5 * 3 * 64 * 16
    import sys
    sys.path.insert(0, str(tmp_path))
    try:
        from mods import TinyLM
    finally:
        sys.path.remove(str(tmp_path))
    model = TinyLM()
    assert sum(p.numel() for p in model.parameters()) == net.weights


def test_unsupported_operations_are_listed(tmp_path):
    (tmp_path / "mods.py").write_text(MODULES)
    with pytest.raises(SpecError) as info:
        load(tmp_path, "mods:Odd", [{"shape": [4, 8]}])
    text = str(info.value)
    assert "cannot be mapped" in text and "node 'matmul'" in text and "node 'sin'" in text
    net = load(tmp_path, "mods:Odd", [{"shape": [4, 8]}], unsupported="approximate")
    assert any("node 'matmul'" in n for n in net.notes)
    with pytest.raises(SpecError, match="cannot import 'mods:Nope'"):
        load(tmp_path, "mods:Nope", [{"shape": [4, 8]}])
