"""Training expansion: hand-computed MACs, FLOPs and bytes, and the loop nests checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

from ntframe.testing import execute_macs
from ntframe.workload.builder import NetworkBuilder
from ntframe.workload.ir import PHASES, Phase
from ntframe.workload.training import expand

BITS = {Phase.forward: 16, Phase.backward_data: 32, Phase.backward_weight: 32, Phase.update: 32}


def expand_one(build, batch=2, phases=PHASES, optimizer="sgd"):
    """``build(builder, x)`` adds layers after an input 'x' that needs a gradient (a bias-free 1x1 conv
    or linear 'pre' is placed first, so the layer under test is not the first one)."""
    b = NetworkBuilder("t")
    build(b)
    return {o.name: o for o in expand(b.build(batch), phases, BITS, optimizer)}


def conv_net(first=False, c=3, h=7, w=7, m=4, k=3, stride=2, pad=1, dilation=1, groups=1, bias=True):
    def build(b):
        x = b.input("x", (c, h, w))
        if not first:
            x = b.conv(x, c, 1, bias=False, name="pre")
        b.conv(x, m, k, stride, pad, dilation, groups, bias, name="conv")
    return build


def test_strided_padded_conv_all_phases_by_hand():
    # N=2, C=3, 7x7 input, M=4, 3x3 kernel, stride 2, padding 1 -> P=Q=(7+2-3)//2+1=4
    ops = expand_one(conv_net())
    macs = 2 * 4 * 3 * 4 * 4 * 3 * 3
    assert macs == 3456
    for phase in ("forward", "backward_data", "backward_weight"):
        assert ops[f"conv.{phase}"].macs == macs
        assert ops[f"conv.{phase}"].flops == 2 * macs
    assert ops["conv.forward.bias"].flops == 2 * 4 * 4 * 4 and ops["conv.forward.bias"].macs == 0
    assert ops["conv.backward_weight.bias"].flops == 128
    assert ops["conv.update"].flops == 2 * (4 * 3 * 3 * 3)        # scale and subtract per weight
    assert ops["conv.update.b"].flops == 2 * 4
    fwd = ops["conv.forward"]
    assert fwd.tensor("I").bytes == 2 * 3 * 7 * 7 * 2           # 16-bit forward
    assert fwd.tensor("O").bytes == 2 * 4 * 4 * 4 * 2
    assert fwd.tensor("W").bytes == 4 * 3 * 9 * 2
    assert ops["conv.backward_weight"].tensor("dW").bytes == 4 * 3 * 9 * 4   # 32-bit gradients
    assert fwd.tensor("I").extent(fwd.bounds) == 2 * 3 * 9 * 9             # padded working set


def test_first_layer_has_no_backward_data():
    assert "conv.backward_data" not in expand_one(conv_net(first=True))
    assert "conv.backward_data" in expand_one(conv_net(first=False))
    assert "pre.backward_data" not in expand_one(conv_net(first=False))


def test_fc_all_phases_by_hand():
    def build(b):
        b.linear(b.linear(b.input("x", (12,)), 12, bias=False, name="pre"), 5, name="fc")
    ops = expand_one(build, batch=3)
    for phase in ("forward", "backward_data", "backward_weight"):
        assert ops[f"fc.{phase}"].macs == 3 * 5 * 12
        assert ops[f"fc.{phase}"].flops == 2 * 180
    assert ops["fc.forward.bias"].flops == 15
    assert ops["fc.update"].flops == 120 and ops["fc.update.b"].flops == 10


def test_relu_phases():
    def build(b):
        b.relu(b.conv(b.input("x", (4, 2, 2)), 4, 1, bias=False, name="pre"), name="r")
    ops = expand_one(build)
    assert {n for n in ops if n.startswith("r.")} == {"r.forward", "r.backward_data"}
    assert ops["r.forward"].flops == 32 and ops["r.backward_data"].flops == 32
    assert ops["r.forward"].macs == 0


def test_phase_selection_and_order():
    b = NetworkBuilder("t")
    y = b.conv(b.input("x", (3, 7, 7)), 4, 3, 2, 1, name="a")
    b.conv(b.relu(y, name="r"), 4, 3, 1, 1, name="b")
    net = b.build(2)
    names = [o.name for o in expand(net, PHASES, BITS)]
    assert names.index("b.forward") < names.index("b.backward_data") < names.index("a.backward_weight")
    assert names[-1].startswith("b.update")
    only_fwd = expand(net, [Phase.forward], BITS)
    assert {o.phase for o in only_fwd} == {Phase.forward}


def _direct_conv(x, w, stride, pad, dilation=1, groups=1):
    n, c, h, _ = x.shape
    m, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    span = dilation * (k - 1) + 1
    p = (h + 2 * pad - span) // stride + 1
    y = np.zeros((n, m, p, p))
    mg = m // groups
    for i in range(p):
        for j in range(p):
            patch = xp[:, :, i * stride:i * stride + span:dilation, j * stride:j * stride + span:dilation]
            for g in range(groups):
                y[:, g * mg:(g + 1) * mg, i, j] = np.einsum(
                    "nchw,mchw->nm", patch[:, g * cg:(g + 1) * cg], w[g * mg:(g + 1) * mg])
    return y


@pytest.mark.parametrize("stride,pad,dilation,groups", [(1, 0, 1, 1), (1, 1, 1, 1), (2, 1, 1, 1), (3, 2, 1, 1),
                                                        (1, 2, 2, 1), (2, 1, 1, 2), (1, 1, 1, 4)])
def test_loop_nests_compute_the_true_conv_and_its_gradients(stride, pad, dilation, groups):
    rng = np.random.default_rng(0)
    ops = expand_one(conv_net(c=4, h=7, w=7, m=4, k=3, stride=stride, pad=pad, dilation=dilation, groups=groups))
    x = rng.standard_normal((2, 4, 7, 7))
    w = rng.standard_normal((4, 4 // groups, 3, 3))
    y = execute_macs(ops["conv.forward"], {"I": x, "W": w})
    np.testing.assert_allclose(y, _direct_conv(x, w, stride, pad, dilation, groups), atol=1e-12)
    assert ops["conv.forward"].macs == y.size * (4 // groups) * 9
    dy = rng.standard_normal(y.shape)
    # conv is linear in x and in w: <dY, conv(x, w)> = <dX, x> = <dW, w>
    dx = execute_macs(ops["conv.backward_data"], {"dO": dy, "W": w})
    dw = execute_macs(ops["conv.backward_weight"], {"dO": dy, "I": x})
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(np.sum(dy * y), np.sum(dx * x), rtol=1e-10)
    np.testing.assert_allclose(np.sum(dy * y), np.sum(dw * w), rtol=1e-10)
    # and dX is the gradient element by element (a unit perturbation of one input)
    e = np.zeros_like(x)
    e[1, 1, 3, 4] = 1.0
    assert np.sum(dy * _direct_conv(e, w, stride, pad, dilation, groups)) == pytest.approx(dx[1, 1, 3, 4], rel=1e-10)


def test_fc_loop_nests_are_matrix_products():
    rng = np.random.default_rng(1)

    def build(b):
        b.linear(b.linear(b.input("x", (6,)), 6, bias=False, name="pre"), 4, bias=False, name="fc")
    ops = expand_one(build, batch=3)
    x, w, dy = rng.standard_normal((3, 6)), rng.standard_normal((4, 6)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(execute_macs(ops["fc.forward"], {"I": x, "W": w}), x @ w.T)
    np.testing.assert_allclose(execute_macs(ops["fc.backward_data"], {"dO": dy, "W": w}), dy @ w)
    np.testing.assert_allclose(execute_macs(ops["fc.backward_weight"], {"dO": dy, "I": x}), dy.T @ x)
    assert "fc.forward.bias" not in ops


def test_attention_loop_nests_are_the_attention_products():
    rng = np.random.default_rng(2)
    n, t, d, heads = 2, 5, 6, 3
    dk = d // heads

    def build(b):
        x = b.input("x", (t, d))
        q, k, v = (b.linear(x, d, bias=False, name=w) for w in "qkv")
        b.attention(q, k, v, heads, name="att")
    ops = expand_one(build, batch=n)
    q, k, v = (rng.standard_normal((n, t, d)) for _ in range(3))
    split = lambda a: a.reshape(n, t, heads, dk).transpose(0, 2, 1, 3)       # noqa: E731
    merge = lambda a: a.transpose(0, 2, 1, 3).reshape(n, t, d)                # noqa: E731
    s = execute_macs(ops["att.forward.scores"], {"Q": q, "K": k})
    np.testing.assert_allclose(s, split(q) @ split(k).transpose(0, 1, 3, 2))
    p = rng.standard_normal(s.shape)
    np.testing.assert_allclose(execute_macs(ops["att.forward.context"], {"P": p, "V": v}), merge(p @ split(v)))
    do = rng.standard_normal((n, t, d))
    np.testing.assert_allclose(execute_macs(ops["att.backward_data.dprobs"], {"dO": do, "V": v}),
                               split(do) @ split(v).transpose(0, 1, 3, 2))
    np.testing.assert_allclose(execute_macs(ops["att.backward_data.dvalue"], {"P": p, "dO": do}),
                               merge(p.transpose(0, 1, 3, 2) @ split(do)))
    ds = rng.standard_normal(s.shape)
    np.testing.assert_allclose(execute_macs(ops["att.backward_data.dquery"], {"dS": ds, "K": k}),
                               merge(ds @ split(k)))
    np.testing.assert_allclose(execute_macs(ops["att.backward_data.dkey"], {"dS": ds, "Q": q}),
                               merge(ds.transpose(0, 1, 3, 2) @ split(q)))
    assert ops["att.forward.scores"].macs == n * heads * t * t * dk


def test_recurrent_product_uses_the_previous_step():
    rng = np.random.default_rng(3)
    n, t, f, h = 2, 4, 3, 5

    def build(b):
        b.recurrent(b.linear(b.input("x", (t, f)), f, name="pre"), "lstm", h, name="rnn")
    ops = expand_one(build, batch=n)
    hs, u = rng.standard_normal((n, t, h)), rng.standard_normal((4 * h, h))
    gh = execute_macs(ops["rnn.forward.recurrent"], {"I": hs, "W": u})
    assert np.all(gh[:, 0] == 0)                                    # h0 = 0
    np.testing.assert_allclose(gh[:, 1:], hs[:, :-1] @ u.T)
    dg = rng.standard_normal((n, t, 4 * h))
    dh = execute_macs(ops["rnn.backward_data.recurrent"], {"dO": dg, "W": u})
    np.testing.assert_allclose(dh[:, :-1], dg[:, 1:] @ u)
    assert np.all(dh[:, -1] == 0)
    du = execute_macs(ops["rnn.backward_weight.recurrent"], {"dO": dg, "I": hs})
    np.testing.assert_allclose(du, np.einsum("ntg,ntk->gk", dg[:, 1:], hs[:, :-1]))


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_and_norm_counts(mode):
    def build(b):
        x = b.conv(b.input("x", (2, 6, 6)), 4, 1, bias=False, name="pre")
        b.batchnorm(b.pool(x, mode, 3, 2, 1, name="pool"), name="bn")
    ops = expand_one(build, batch=2)
    # 6x6, kernel 3, stride 2, padding 1 -> 3x3 outputs; 9 window positions each
    assert ops["pool.forward"].flops == 2 * 4 * 3 * 3 * 9
    assert ops["pool.backward_data"].flops == (2 * 4 * 3 * 3) * (1 if mode == "max" else 9)
    elements = 2 * 4 * 3 * 3
    assert ops["bn.forward.stats"].flops == 3 * elements and ops["bn.forward"].flops == 2 * elements
    assert ops["bn.backward_weight"].flops == 5 * elements and ops["bn.backward_data"].flops == 6 * elements
    assert ops["bn.update.gamma"].flops == 2 * 4 and ops["bn.update.beta"].flops == 2 * 4


def _dilate_and_pad(dy: np.ndarray, stride: int, left: int, size: tuple[int, int]) -> np.ndarray:
    """dY with stride - 1 zeros between its elements, ``left`` zeros before them, zeros after up to ``size``."""
    n, m, p, q = dy.shape
    out = np.zeros((n, m, *size))
    for i in range(p):
        for j in range(q):
            hi, wj = left + i * stride, left + j * stride
            if 0 <= hi < size[0] and 0 <= wj < size[1]:
                out[:, :, hi, wj] = dy[:, :, i, j]
    return out


@pytest.mark.parametrize("stride,pad,dilation,groups", [(1, 1, 1, 1), (2, 1, 1, 1), (3, 2, 1, 1), (1, 2, 2, 1),
                                                        (2, 1, 1, 2)])
def test_transposed_backward_data_counts_the_zero_padded_convolution(stride, pad, dilation, groups):
    """workload.backward_data: transposed — the stride-1 convolution over dY with stride - 1 zeros inserted and
    dilation·(k - 1) - padding around it (the flipped kernel), as ZigZag and nn-dataflow count it: the same dX as
    the scatter form, N·C·M·H·W·R·S/groups MACs (×stride² the scatter form's, about), the padded dY its operand."""
    rng = np.random.default_rng(1)
    build = conv_net(c=4, h=7, w=7, m=4, k=3, stride=stride, pad=pad, dilation=dilation, groups=groups)
    b = NetworkBuilder("t")
    build(b)
    net = b.build(2)
    scatter = {o.name: o for o in expand(net, PHASES, BITS)}["conv.backward_data"]
    ops = {o.name: o for o in expand(net, PHASES, BITS, backward_data="transposed")}
    transposed = ops["conv.backward_data"]
    assert ops["conv.forward"] == {o.name: o for o in expand(net, PHASES, BITS)}["conv.forward"]
    assert transposed.macs == 2 * 4 * (4 // groups) * 7 * 7 * 9
    p = (7 + 2 * pad - dilation * 2 - 1) // stride + 1
    assert scatter.macs == 2 * 4 * (4 // groups) * p * p * 9
    size = (7 + dilation * 2, 7 + dilation * 2)
    assert transposed.tensor("dO").shape == (2, 4, *size) and transposed.tensor("dO").tensor == "conv.dY.transposed"
    w = rng.standard_normal((4, 4 // groups, 3, 3))
    dy = rng.standard_normal((2, 4, p, p))
    dx = execute_macs(scatter, {"dO": dy, "W": w})
    padded = _dilate_and_pad(dy, stride, dilation * 2 - pad, size)
    np.testing.assert_allclose(execute_macs(transposed, {"dO": padded, "W": w[:, :, ::-1, ::-1]}), dx, atol=1e-12)
    with pytest.raises(ValueError, match="unknown backward_data form 'dense'"):
        expand(net, PHASES, BITS, backward_data="dense")
