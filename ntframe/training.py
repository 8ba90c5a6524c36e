"""Training expansion: one training step of a Network as a list of Operations.

Rules (one row per layer kind; ``N`` batch, ``C`` in-channels, ``M`` out-channels, ``P×Q`` output, ``R×S``
kernel, ``s`` stride; padding lives in the padded coordinate space ``p*s + r``):

| layer | forward | backward_data (not for the first layer) | backward_weight | update (SGD) |
|---|---|---|---|---|
| conv | ``Y[n,m,p,q] += X[n,c,p*s+r,q*s+t]·W[m,c,r,t]`` (+ bias add) | ``dX[n,c,p*s+r,q*s+t] += dY[n,m,p,q]·W[m,c,r,t]`` | ``dW[m,c,r,t] += dY[n,m,p,q]·X[n,c,p*s+r,q*s+t]``, ``db[m] += dY[n,m,p,q]`` | ``W -= lr·dW``, ``b -= lr·db`` |
| fc | ``Y[n,m] += X[n,c]·W[m,c]`` (+ bias add) | ``dX[n,c] += dY[n,m]·W[m,c]`` | ``dW[m,c] += dY[n,m]·X[n,c]``, ``db[m] += dY[n,m]`` | as conv |
| relu | ``Y = max(X, 0)`` | ``dX = dY·[Y > 0]`` | — | — |

All three conv/fc phases run the same loop nest (``N·M·C·P·Q·R·S`` MACs): backward_data is written in the
"scatter" form of the transposed convolution, so a strided layer does no multiplications by inserted zeros.
The MAC count of every phase equals the forward one, which is also what PyTorch's FlopCounterMode counts.
FLOPs: 2 per MAC; 1 per bias add, ReLU compare, gradient mask, reduction add; 2 per SGD weight (scale, subtract).
"""

from __future__ import annotations

from typing import Iterable

from ntframe.ir import Layer, Network, Operation, OpKind, Phase, TensorAccess


def _t(name: str, tensor: str, role: str, proj: list[list[tuple[str, int]]], shape: tuple[int, ...],
       bits: int, offsets: tuple[int, ...] = ()) -> TensorAccess:
    return TensorAccess(name, tensor, role, tuple(tuple(axis) for axis in proj), tuple(shape), bits,  # type: ignore[arg-type]
                        offsets)


def _identity(dims: list[str]) -> list[list[tuple[str, int]]]:
    return [[(d, 1)] for d in dims]


def _conv_ops(layer: Layer, n: int, phases: set[Phase], bits: dict[Phase, int]) -> Iterable[Operation]:
    p = layer.params
    c, h, w = layer.input_shape
    m, pp, qq = layer.output_shape
    r, s, stride = p["kernel"][0], p["kernel"][1], p["stride"]
    dims = (("N", n), ("M", m), ("C", c), ("P", pp), ("Q", qq), ("R", r), ("S", s))
    x_proj = [[("N", 1)], [("C", 1)], [("P", stride), ("R", 1)], [("Q", stride), ("S", 1)]]
    y_proj = _identity(["N", "M", "P", "Q"])
    w_proj = _identity(["M", "C", "R", "S"])
    x_shape, y_shape, w_shape = (n, c, h, w), (n, m, pp, qq), (m, c, r, s)
    pad = p["padding"]
    yield from _weighted_ops(layer, n, phases, bits, OpKind.conv, dims, x_proj, y_proj, w_proj,
                             x_shape, y_shape, w_shape, bias_dims=("N", "M", "P", "Q"), x_offsets=(0, 0, -pad, -pad))


def _fc_ops(layer: Layer, n: int, phases: set[Phase], bits: dict[Phase, int]) -> Iterable[Operation]:
    (c,), (m,) = layer.input_shape, layer.output_shape
    dims = (("N", n), ("M", m), ("C", c))
    yield from _weighted_ops(layer, n, phases, bits, OpKind.matmul, dims, _identity(["N", "C"]),
                             _identity(["N", "M"]), _identity(["M", "C"]), (n, c), (n, m), (m, c),
                             bias_dims=("N", "M"))


def _weighted_ops(layer: Layer, n: int, phases: set[Phase], bits: dict[Phase, int], kind: OpKind,
                  dims: tuple[tuple[str, int], ...], x_proj, y_proj, w_proj, x_shape, y_shape, w_shape,
                  bias_dims: tuple[str, ...], x_offsets: tuple[int, ...] = ()) -> Iterable[Operation]:
    L = layer.name
    bias = layer.params.get("bias", True)
    bounds = dict(dims)
    bdims = tuple((d, bounds[d]) for d in bias_dims)
    m = bounds["M"]
    if Phase.forward in phases:
        b = bits[Phase.forward]
        yield Operation(f"{L}.forward", L, Phase.forward, kind, dims, (
            _t("I", f"{L}.X", "read", x_proj, x_shape, b, x_offsets),
            _t("W", f"{L}.W", "read", w_proj, w_shape, b),
            _t("O", f"{L}.Y", "accumulate", y_proj, y_shape, b)), "mac", 2)
        if bias:
            yield Operation(f"{L}.forward.bias", L, Phase.forward, OpKind.elementwise, bdims, (
                _t("B", f"{L}.b", "read", [[("M", 1)]], (m,), b),
                _t("O", f"{L}.Y", "readwrite", _identity(list(bias_dims)), y_shape, b)), "add", 1,
                "Y += b (broadcast over batch and positions)")
    if Phase.backward_data in phases and not layer.is_first:
        b = bits[Phase.backward_data]
        yield Operation(f"{L}.backward_data", L, Phase.backward_data, kind, dims, (
            _t("dO", f"{L}.dY", "read", y_proj, y_shape, b),
            _t("W", f"{L}.W", "read", w_proj, w_shape, b),
            _t("dI", f"{L}.dX", "accumulate", x_proj, x_shape, b, x_offsets)), "mac", 2)
    if Phase.backward_weight in phases:
        b = bits[Phase.backward_weight]
        yield Operation(f"{L}.backward_weight", L, Phase.backward_weight, kind, dims, (
            _t("dO", f"{L}.dY", "read", y_proj, y_shape, b),
            _t("I", f"{L}.X", "read", x_proj, x_shape, b, x_offsets),
            _t("dW", f"{L}.dW", "accumulate", w_proj, w_shape, b)), "mac", 2)
        if bias:
            yield Operation(f"{L}.backward_weight.bias", L, Phase.backward_weight, OpKind.reduction, bdims, (
                _t("dO", f"{L}.dY", "read", _identity(list(bias_dims)), y_shape, b),
                _t("dB", f"{L}.db", "accumulate", [[("M", 1)]], (m,), b)), "add", 1,
                "db[m] = sum of dY over batch and positions")
    if Phase.update in phases:
        b = bits[Phase.update]
        wdims = tuple(axis[0][0] for axis in w_proj)
        yield Operation(f"{L}.update", L, Phase.update, OpKind.update, tuple((d, bounds[d]) for d in wdims), (
            _t("dW", f"{L}.dW", "read", w_proj, w_shape, b),
            _t("W", f"{L}.W", "readwrite", w_proj, w_shape, b)), "mac", 2, "SGD: W -= lr * dW")
        if bias:
            yield Operation(f"{L}.update.bias", L, Phase.update, OpKind.update, (("M", m),), (
                _t("dB", f"{L}.db", "read", [[("M", 1)]], (m,), b),
                _t("B", f"{L}.b", "readwrite", [[("M", 1)]], (m,), b)), "mac", 2, "SGD: b -= lr * db")


def _relu_ops(layer: Layer, n: int, phases: set[Phase], bits: dict[Phase, int]) -> Iterable[Operation]:
    L = layer.name
    names = ["N"] + (["C", "H", "W"] if len(layer.input_shape) == 3 else ["K"])
    shape = (n, *layer.input_shape)
    dims = tuple(zip(names, shape))
    proj = _identity(names)
    if Phase.forward in phases:
        b = bits[Phase.forward]
        yield Operation(f"{L}.forward", L, Phase.forward, OpKind.elementwise, dims, (
            _t("I", f"{L}.X", "read", proj, shape, b),
            _t("O", f"{L}.Y", "write", proj, shape, b)), "add", 1, "Y = max(X, 0)")
    if Phase.backward_data in phases and not layer.is_first:
        b = bits[Phase.backward_data]
        yield Operation(f"{L}.backward_data", L, Phase.backward_data, OpKind.elementwise, dims, (
            _t("dO", f"{L}.dY", "read", proj, shape, b),
            _t("O", f"{L}.Y", "read", proj, shape, b),
            _t("dI", f"{L}.dX", "write", proj, shape, b)), "add", 1, "dX = dY * (Y > 0)")


_EXPANDERS = {"conv": _conv_ops, "fc": _fc_ops, "relu": _relu_ops}
LAYER_KINDS = tuple(_EXPANDERS)


def expand(network: Network, phases: Iterable[Phase], precision_bits: dict[Phase, int]) -> list[Operation]:
    """All operations of one training step, in execution order: forward over the layers, then the backward
    phases from the last layer to the first (backward_data before backward_weight per layer), then updates."""
    wanted = set(phases)
    per_layer = {layer.name: list(_EXPANDERS[layer.kind](layer, network.batch, wanted, precision_bits))
                 for layer in network.layers}
    ops: list[Operation] = []
    ops += [o for layer in network.layers for o in per_layer[layer.name] if o.phase == Phase.forward]
    for layer in reversed(network.layers):
        ops += [o for o in per_layer[layer.name] if o.phase == Phase.backward_data]
        ops += [o for o in per_layer[layer.name] if o.phase == Phase.backward_weight]
    ops += [o for layer in network.layers for o in per_layer[layer.name] if o.phase == Phase.update]
    return ops
