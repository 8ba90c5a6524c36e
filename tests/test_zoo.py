"""The zoo: torchvision's shapes, PyTorch's FLOP counts, every network run end to end."""

from __future__ import annotations

import json

import pytest

from ntframe.workload.ir import PHASES, OpKind, Phase
from ntframe.workload.training import expand
from tests.conftest import ROOT

GOLDEN = json.loads((ROOT / "tests" / "golden" / "pytorch_flops.json").read_text())["networks"]
BITS = dict.fromkeys(Phase, 16)


def zoo_network(name, batch, params=None):
    from ntframe_plugins.zoo import ZOO
    model, build, _ = ZOO[name]
    return build(model.model_validate(params or {})).build(batch)


def test_parameter_counts_match_torchvision():
    # torchvision's published parameter counts
    assert zoo_network("alexnet", 1).weights == 61_100_840
    assert zoo_network("vgg16", 1).weights == 138_357_544
    assert zoo_network("resnet50", 1).weights == 25_557_032


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_matrix_flops_match_pytorch_flop_counter(name):
    """conv + matrix-product FLOPs of forward, backward_data and backward_weight within 0.5 % of what
    FlopCounterMode counted for one training step (tests/golden/pytorch_flops.json, tools/golden_flops.py)."""
    golden = GOLDEN[name]
    net = zoo_network(name, golden["batch"], golden["params"])
    assert net.weights == golden["parameters"]
    ops = expand(net, PHASES, BITS)
    flops = sum(o.flops for o in ops if o.kind in (OpKind.conv, OpKind.matmul))
    assert flops == pytest.approx(golden["training_step_flops"], rel=0.005)


def test_resnet_forks_sum_their_gradients():
    ops = {o.name: o for o in expand(zoo_network("resnet50", 1), PHASES, BITS)}
    # the stem's output feeds block 0's conv1 and its downsample branch
    gradsum = ops["maxpool.backward_data.gradsum"]
    assert gradsum.flops == 64 * 56 * 56
    assert {t.tensor for t in gradsum.tensors if not t.written} == {"layer1.0.conv1.d[maxpool]",
                                                                    "layer1.0.downsample.conv.d[maxpool]"}
    # an identity shortcut: the add passes the gradient to the previous block's relu without computing
    assert "layer1.1.add.backward_data" not in ops
    assert "layer1.0.relu.backward_data.gradsum" in ops
    assert "conv1.backward_data" not in ops            # the image needs no gradient


def test_lstm_unrolling_by_hand():
    net = zoo_network("lstm_lm", 2, {"vocab": 50, "hidden": 8, "layers": 1, "seq": 5})
    ops = {o.name: o for o in expand(net, PHASES, BITS)}
    n, t, h, g = 2, 5, 8, 32
    assert ops["lstm1.forward.input"].macs == n * t * g * h
    assert ops["lstm1.forward.recurrent"].macs == (t - 1) * n * g * h      # h0 = 0: no product at step 0
    assert ops["lstm1.forward.recurrent"].sequential == ("T",)
    assert ops["lstm1.backward_data.recurrent"].macs == (t - 1) * n * h * g
    assert ops["lstm1.backward_weight.recurrent"].macs == (t - 1) * n * g * h
    assert ops["lstm1.forward.cell"].flops == 32 * n * t * h
    assert "embed.backward_data" not in ops and ops["embed.backward_weight"].kind == OpKind.scatter
    names = [o.name for o in expand(net, PHASES, BITS)]
    assert names.index("lstm1.backward_data.cell") < names.index("lstm1.backward_data.recurrent") \
        < names.index("lstm1.backward_data.input")


def test_optimizers_add_their_state():
    net = zoo_network("mlp", 4, {"sizes": [6, 5, 3]})
    for optimizer, flops, states in (("sgd", 2, 0), ("momentum", 4, 1), ("adam", 12, 2)):
        upd = {o.name: o for o in expand(net, [Phase.update], BITS, optimizer)}["fc1.update"]
        assert upd.flops == flops * 30 and len(upd.tensors) == 2 + states


def test_activation_stash():
    from ntframe.workload.training import activation_stash
    net = zoo_network("mlp", 4, {"sizes": [6, 5, 3]})
    stash = activation_stash(expand(net, PHASES, BITS), net)
    # fc1 needs its input for dW, relu1 its output for the mask, fc2 its input (= relu1's output),
    # the loss its probabilities; 16-bit values
    assert stash == {"features": 4 * 6 * 2, "relu1.Y": 4 * 5 * 2, "loss.P": 4 * 3 * 2}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["alexnet", "vgg16", "resnet50", "lstm_lm", "mlp", "cnn_rnn", "transformer"])
def test_every_zoo_network_runs_every_phase(tmp_path, name):
    from tests.conftest import ntframe_cmd
    spec = tmp_path / "spec.yaml"
    params = {"lstm_lm": "{seq: 10}", "transformer": "{layers: 2, seq: 32}", "cnn_rnn": "{seq: 6}"}.get(name, "{}")
    spec.write_text(f"version: 1\nname: {name}\n"
                    f"workload: {{frontend: zoo, network: {name}, params: {params}, batch: 2, optimizer: adam}}\n"
                    "architecture: {spec: neurotrainer/hmc2-32vault}\n"
                    "mapper: {name: native, budget: {evaluations: 3}}\n")
    done = ntframe_cmd("run", str(spec), "-q", "-o", str(tmp_path / "out"), timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {o["phase"] for o in doc["operations"]} == {p.value for p in PHASES}
    assert all(o["status"] == "ok" for o in doc["operations"])
    assert doc["totals"]["efficiency_GFLOPS_per_W"] > 0 and doc["network"]["activation_stash_bytes"] > 0


def test_workloads_cli_lists_and_shows(tmp_path):
    from tests.conftest import ntframe_cmd
    listed = ntframe_cmd("workloads", "--json")
    names = json.loads(listed.stdout)
    assert {"alexnet", "vgg16", "resnet50", "lstm_lm", "mlp", "cnn_rnn", "transformer", "small-cnn"} <= set(names)
    shown = json.loads(ntframe_cmd("workloads", "show", "mlp", "--batch", "4", "--param", "sizes=[8,4,2]",
                                   "--json").stdout)
    assert shown["parameters"] == {"sizes": [8, 4, 2]} and shown["weights"] == 8 * 4 + 4 + 4 * 2 + 2
    fwd = {r["name"]: r for r in shown["rows"]}
    assert fwd["fc1.forward"]["macs"] == 4 * 4 * 8
    bad = ntframe_cmd("workloads", "show", "mlp", "--param", "size=[8,2]")
    assert bad.returncode == 2 and "did you mean 'sizes'?" in bad.stderr
    unknown = ntframe_cmd("workloads", "show", "resnet05")
    assert unknown.returncode == 2 and "did you mean 'resnet50'?" in unknown.stderr
