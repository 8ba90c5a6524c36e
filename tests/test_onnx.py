"""The ONNX frontend on graphs built here with onnx.helper (no weights needed: initializers carry shapes)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx frontend needs the onnx package (pip install 'ntframe[onnx]')")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from ntframe.components import WorkloadRequest  # noqa: E402
from ntframe.errors import SpecError  # noqa: E402
from ntframe.workload.ir import PHASES, OpKind, Phase  # noqa: E402
from ntframe.workload.training import expand  # noqa: E402


def init(name, *shape):
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def save(tmp_path, nodes, inputs, outputs, inits, name="g.onnx"):
    graph = helper.make_graph(nodes, "test-graph", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def resnet_block(tmp_path, extra_nodes=(), batch="N"):
    """conv-bn-relu -> [conv-bn-relu-conv-bn] + shortcut -> add -> relu -> global pool -> flatten -> gemm."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], "stem", kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c0", "g0", "b0", "m0", "v0"], ["n0"], "stem_bn"),
        helper.make_node("Relu", ["n0"], ["r0"], "stem_relu"),
        helper.make_node("Conv", ["r0", "w1"], ["c1"], "conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "b1", "m1", "v1"], ["n1"], "bn1"),
        helper.make_node("Relu", ["n1"], ["r1"], "relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "g2", "b2", "m2", "v2"], ["n2"], "bn2"),
        helper.make_node("Add", ["n2", "r0"], ["s"], "residual"),
        helper.make_node("Relu", ["s"], ["r2"], "relu2"),
        *extra_nodes,
        helper.make_node("GlobalAveragePool", ["r2" if not extra_nodes else "e"], ["p"], "pool"),
        helper.make_node("Flatten", ["p"], ["f"], "flatten"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], "fc", transB=1),
    ]
    inits = [init("w0", 8, 3, 3, 3), init("w1", 8, 8, 3, 3), init("w2", 8, 8, 3, 3), init("wf", 10, 8),
             init("bf", 10)]
    for i in range(3):
        inits += [init(f"{p}{i}", 8) for p in "gbmv"]
    return save(tmp_path, nodes, [x], [y], inits)


def load(tmp_path, path, batch=4, **options):
    from ntframe_plugins.onnx_frontend import ONNXFrontend, ONNXOptions
    return ONNXFrontend(ONNXOptions(file=str(path), **options)).load(WorkloadRequest(batch, tmp_path))


def test_resnet_style_graph(tmp_path):
    net = load(tmp_path, resnet_block(tmp_path))
    kinds = [(layer.name, layer.kind) for layer in net.layers]
    assert kinds[:4] == [("stem", "conv"), ("stem_bn", "batchnorm"), ("stem_relu", "relu"), ("conv1", "conv")]
    assert ("residual", "add") in kinds and ("flatten", "reshape") in kinds
    assert net.batch == 4 and net.inputs[0].shape == (3, 16, 16)
    assert net.weights == (8 * 27 + 2 * 8 * 72) + 3 * 16 + (80 + 10)
    ops = {o.name: o for o in expand(net, PHASES, dict.fromkeys(Phase, 16))}
    assert ops["stem.forward"].macs == 4 * 8 * 3 * 8 * 8 * 9           # stride 2: 8x8 outputs
    assert ops["conv1.forward"].macs == 4 * 8 * 8 * 8 * 8 * 9
    assert ops["fc.forward"].macs == 4 * 10 * 8
    assert "stem_relu.backward_data.gradsum" in ops                     # the shortcut fork
    assert "stem.backward_data" not in ops                             # the image needs no gradient


def test_lstm_style_graph(tmp_path):
    """token ids -> Gather (embedding) -> Transpose to sequence-major -> LSTM -> Squeeze -> Transpose -> MatMul."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["N", 7])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 7, 50])
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], "embed"),
        helper.make_node("Transpose", ["emb"], ["seq"], "to_seq", perm=[1, 0, 2]),
        helper.make_node("LSTM", ["seq", "W", "R", "B"], ["Y"], "lstm", hidden_size=16),
        helper.make_node("Squeeze", ["Y", "axis1"], ["h"], "squeeze"),
        helper.make_node("Transpose", ["h"], ["hb"], "to_batch", perm=[1, 0, 2]),
        helper.make_node("MatMul", ["hb", "Wd"], ["logits"], "decoder"),
    ]
    inits = [init("table", 50, 12), init("W", 1, 64, 12), init("R", 1, 64, 16), init("B", 1, 128),
             init("Wd", 16, 50), numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1")]
    net = load(tmp_path, save(tmp_path, nodes, [ids], [out], inits), batch=3)
    layers = {layer.name: layer for layer in net.layers}
    assert layers["embed"].kind == "embedding" and layers["embed"].output_shape == (7, 12)
    assert layers["lstm"].kind == "lstm" and layers["lstm"].input_shape == (7, 12)
    assert layers["decoder"].output_shape == (7, 50)
    assert net.weights == 50 * 12 + (64 * 12 + 64 * 16 + 128) + 16 * 50
    ops = {o.name: o for o in expand(net, PHASES, dict.fromkeys(Phase, 16))}
    assert ops["lstm.forward.recurrent"].macs == 6 * 3 * 64 * 16
    assert ops["decoder.forward"].macs == 3 * 7 * 50 * 16
    assert ops["embed.forward"].kind == OpKind.gather


def test_unsupported_operators_are_listed_up_front(tmp_path):
    extra = [helper.make_node("Erf", ["r2"], ["e1"], "mystery1"), helper.make_node("Sin", ["e1"], ["e"], "mystery2")]
    path = resnet_block(tmp_path, extra)
    with pytest.raises(SpecError) as info:
        load(tmp_path, path)
    text = str(info.value)
    assert "2 operator(s) cannot be mapped" in text
    assert "node 'mystery1' (Erf): operator not supported" in text
    assert "node 'mystery2' (Sin)" in text and "workload.unsupported" in text
    skipped = load(tmp_path, path, unsupported="skip")
    assert "mystery1" not in {layer.name for layer in skipped.layers}
    approx = load(tmp_path, path, unsupported="approximate")
    assert approx.notes[0] == "node 'mystery1' (Erf): operator not supported — approximated as element-wise"
    layer = next(layer for layer in approx.layers if layer.name == "mystery1")
    assert layer.kind == "elementwise" and layer.params["label"] == "Erf"


def test_bad_files_and_dynamic_dims(tmp_path):
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_bytes(b"\x00\x01 this is not a protobuf of a model" * 10)
    with pytest.raises(SpecError, match="not a readable ONNX model") as info:
        load(tmp_path, not_onnx)
    assert info.value.file == str(not_onnx)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "seq", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", "seq", 4])
    path = save(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"], "proj")], [x], [y], [init("w", 8, 4)],
                "dyn.onnx")
    with pytest.raises(SpecError, match=r"tensor 'x' \(node 'graph input'\): dimension 1 is symbolic \('seq'\)"
                                        r".*workload.dims: \{seq: N\}"):
        load(tmp_path, path)
    net = load(tmp_path, path, dims={"seq": 5})
    assert net.layers[0].output_shape == (5, 4)


def test_onnx_from_a_spec_end_to_end(tmp_path):
    from tests.conftest import ntframe_cmd
    path = resnet_block(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"version: 1\nname: onnx-block\nworkload: {{frontend: onnx, file: {path.name}, batch: 2}}\n"
                    "architecture: {spec: neurotrainer/hmc2-32vault}\nmapper: {budget: {evaluations: 20}}\n")
    done = ntframe_cmd("run", str(spec), "-q", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx at all")
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace(path.name, junk.name))
    failed = ntframe_cmd("run", str(bad), "-q", "-o", str(tmp_path / "bad-out"))
    assert failed.returncode == 2 and "junk.onnx: not a readable ONNX model" in failed.stderr
    assert not (tmp_path / "bad-out").exists()                  # nothing half-written
    spec.write_text(spec.read_text().replace("batch: 2}", "batch: 2, unsuported: skip}"))
    done = ntframe_cmd("validate", str(spec))
    assert done.returncode == 2 and "did you mean 'unsupported'?" in done.stderr
