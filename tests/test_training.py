"""Training expansion: hand-computed MACs, FLOPs and bytes, and the loop nests checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

from ntframe.ir import Layer, Network, Phase, PHASES
from ntframe.testing import execute_macs
from ntframe.training import expand

BITS = {Phase.forward: 16, Phase.backward_data: 32, Phase.backward_weight: 32, Phase.update: 32}


def conv_layer(first=False, c=3, h=7, w=7, m=4, k=3, stride=2, pad=1, name="conv"):
    p = (h + 2 * pad - k) // stride + 1
    q = (w + 2 * pad - k) // stride + 1
    return Layer(name, "conv", (c, h, w), (m, p, q), {"kernel": (k, k), "stride": stride, "padding": pad,
                                                      "bias": True}, is_first=first)


def ops_by_name(layer, batch=2, phases=PHASES):
    return {o.name: o for o in expand(Network("t", batch, (layer,)), phases, BITS)}


def test_strided_padded_conv_all_phases_by_hand():
    # N=2, C=3, 7x7 input, M=4, 3x3 kernel, stride 2, padding 1 -> P=Q=(7+2-3)//2+1=4
    ops = ops_by_name(conv_layer())
    macs = 2 * 4 * 3 * 4 * 4 * 3 * 3
    assert macs == 3456
    for phase in ("forward", "backward_data", "backward_weight"):
        assert ops[f"conv.{phase}"].macs == macs
        assert ops[f"conv.{phase}"].flops == 2 * macs
    assert ops["conv.forward.bias"].flops == 2 * 4 * 4 * 4 and ops["conv.forward.bias"].macs == 0
    assert ops["conv.backward_weight.bias"].flops == 128
    assert ops["conv.update"].flops == 2 * (4 * 3 * 3 * 3)        # scale and subtract per weight
    assert ops["conv.update.bias"].flops == 2 * 4
    fwd = ops["conv.forward"]
    assert fwd.tensor("I").bytes == 2 * 3 * 7 * 7 * 2           # 16-bit forward
    assert fwd.tensor("O").bytes == 2 * 4 * 4 * 4 * 2
    assert fwd.tensor("W").bytes == 4 * 3 * 9 * 2
    assert ops["conv.backward_weight"].tensor("dW").bytes == 4 * 3 * 9 * 4   # 32-bit gradients
    assert fwd.tensor("I").extent(fwd.bounds) == 2 * 3 * 9 * 9             # padded working set


def test_first_layer_has_no_backward_data():
    assert "conv.backward_data" not in ops_by_name(conv_layer(first=True))
    assert "conv.backward_data" in ops_by_name(conv_layer(first=False))


def test_fc_all_phases_by_hand():
    fc = Layer("fc", "fc", (12,), (5,), {"bias": True})
    ops = ops_by_name(fc, batch=3)
    for phase in ("forward", "backward_data", "backward_weight"):
        assert ops[f"fc.{phase}"].macs == 3 * 5 * 12
        assert ops[f"fc.{phase}"].flops == 2 * 180
    assert ops["fc.forward.bias"].flops == 15
    assert ops["fc.update"].flops == 120 and ops["fc.update.bias"].flops == 10


def test_relu_phases():
    relu = Layer("r", "relu", (4, 2, 2), (4, 2, 2), {})
    ops = ops_by_name(relu, batch=2)
    assert set(ops) == {"r.forward", "r.backward_data"}
    assert ops["r.forward"].flops == 32 and ops["r.backward_data"].flops == 32
    assert ops["r.forward"].macs == 0


def test_phase_selection_and_order():
    net = Network("t", 2, (conv_layer(first=True, name="a"), Layer("r", "relu", (4, 4, 4), (4, 4, 4), {}),
                           conv_layer(c=4, h=4, w=4, name="b")))
    names = [o.name for o in expand(net, PHASES, BITS)]
    assert names.index("b.forward") < names.index("b.backward_data") < names.index("a.backward_weight")
    assert names[-1].startswith("b.update")
    only_fwd = expand(net, [Phase.forward], BITS)
    assert {o.phase for o in only_fwd} == {Phase.forward}


def _direct_conv(x, w, stride, pad):
    n, c, h, _ = x.shape
    m, _, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    p = (h + 2 * pad - k) // stride + 1
    y = np.zeros((n, m, p, p))
    for i in range(p):
        for j in range(p):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            y[:, :, i, j] = np.einsum("nchw,mchw->nm", patch, w)
    return y


@pytest.mark.parametrize("stride,pad", [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_loop_nests_compute_the_true_conv_and_its_gradients(stride, pad):
    rng = np.random.default_rng(0)
    layer = conv_layer(c=2, h=7, w=7, m=3, k=3, stride=stride, pad=pad)
    ops = ops_by_name(layer)
    x = rng.standard_normal((2, 2, 7, 7))
    w = rng.standard_normal((3, 2, 3, 3))
    y = execute_macs(ops["conv.forward"], {"I": x, "W": w})
    np.testing.assert_allclose(y, _direct_conv(x, w, stride, pad), atol=1e-12)
    dy = rng.standard_normal(y.shape)
    # conv is linear in x and in w: <dY, conv(x, w)> = <dX, x> = <dW, w>
    dx = execute_macs(ops["conv.backward_data"], {"dO": dy, "W": w})
    dw = execute_macs(ops["conv.backward_weight"], {"dO": dy, "I": x})
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(np.sum(dy * y), np.sum(dx * x), rtol=1e-10)
    np.testing.assert_allclose(np.sum(dy * y), np.sum(dw * w), rtol=1e-10)
    # and dX is the gradient element by element (finite difference on one input)
    e = np.zeros_like(x)
    e[1, 1, 3, 4] = 1.0
    assert np.sum(dy * _direct_conv(e, w, stride, pad)) == pytest.approx(dx[1, 1, 3, 4], rel=1e-10)


def test_fc_loop_nests_are_matrix_products():
    rng = np.random.default_rng(1)
    ops = ops_by_name(Layer("fc", "fc", (6,), (4,), {"bias": False}), batch=3)
    x, w, dy = rng.standard_normal((3, 6)), rng.standard_normal((4, 6)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(execute_macs(ops["fc.forward"], {"I": x, "W": w}), x @ w.T)
    np.testing.assert_allclose(execute_macs(ops["fc.backward_data"], {"dO": dy, "W": w}), dy @ w)
    np.testing.assert_allclose(execute_macs(ops["fc.backward_weight"], {"dO": dy, "I": x}), dy.T @ x)
    assert "fc.forward.bias" not in ops
