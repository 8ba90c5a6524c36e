"""Build a Network layer by layer with shape inference: what every frontend (layer lists, the zoo, ONNX,
PyTorch) uses to make the IR.

Per-sample shapes: images ``(C, H, W)``, sequences ``(T, F)``, vectors ``(F,)``, token ids ``(T,)``. Each
method takes the name of its input (a layer or a network input), returns the new layer's name, and raises
:class:`ShapeError` (a ValueError) with the reason when the shapes do not fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from ntframe.workload.ir import Layer, Network, NetworkInput

ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh")
VIEWS = ("reshape",)            # no computation: the output is the input seen with another shape
LAYER_KINDS = ("conv", "linear", "pool", "batchnorm", "layernorm", *ACTIVATIONS, "add", "concat", "reshape",
               "embedding", "lstm", "gru", "attention", "softmax_ce", "elementwise")


class ShapeError(ValueError):
    pass


def _pair(v: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


@dataclass
class NetworkBuilder:
    name: str
    layers: list[Layer] = field(default_factory=list)
    inputs: dict[str, NetworkInput] = field(default_factory=dict)
    _shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _requires_grad: dict[str, bool] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    # --- plumbing ---------------------------------------------------------------------------------------
    def input(self, name: str, shape: tuple[int, ...], dtype: Literal["float", "index"] = "float") -> str:
        if name in self._shapes:
            raise ShapeError(f"name '{name}' is used twice")
        if any(d < 1 for d in shape):
            raise ShapeError(f"input '{name}' has a non-positive dimension: {shape}")
        self.inputs[name] = NetworkInput(name, tuple(shape), dtype)
        self._shapes[name] = tuple(shape)
        self._requires_grad[name] = False
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        try:
            return self._shapes[name]
        except KeyError:
            known = ", ".join(self._shapes) or "(none)"
            raise ShapeError(f"unknown input '{name}' (defined so far: {known})") from None

    @property
    def last(self) -> str:
        if not self.layers:
            if len(self.inputs) == 1:
                return next(iter(self.inputs))
            raise ShapeError("the first layer must name its input")
        return self.layers[-1].name

    def _add(self, kind: str, srcs: list[str], out: tuple[int, ...], params: dict, weights: int,
             name: str | None) -> str:
        if name is None:
            self._counts[kind] = self._counts.get(kind, 0) + 1
            name = f"{kind}{self._counts[kind]}"
        if name in self._shapes:
            raise ShapeError(f"name '{name}' is used twice")
        if any(d < 1 for d in out):
            raise ShapeError(f"{kind} '{name}' would produce the empty shape {out}")
        grads = tuple(self._requires_grad[s] for s in srcs)
        self.layers.append(Layer(name, kind, tuple(self._shapes[s] for s in srcs), tuple(out), params,
                                 tuple(srcs), grads, weights))
        self._shapes[name] = tuple(out)
        self._requires_grad[name] = weights > 0 or any(grads)
        return name

    def build(self, batch: int, source: str = "", notes: tuple[str, ...] = ()) -> Network:
        if not self.layers:
            raise ShapeError("a network needs at least one layer")
        return Network(self.name, batch, tuple(self.layers), tuple(self.inputs.values()), source, tuple(notes))

    # --- layers -----------------------------------------------------------------------------------------
    def conv(self, src: str, out_channels: int, kernel, stride=1, padding=0, dilation=1, groups=1,
             bias: bool = True, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) != 3:
            raise ShapeError(f"conv needs a (channels, height, width) input; '{src}' is {shape}")
        c, h, w = shape
        (r, s), (sh, sw), (ph, pw), (dh, dw) = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
        if sh != sw or ph != pw or dh != dw:
            raise ShapeError("conv supports equal height/width stride, padding and dilation")
        if c % groups or out_channels % groups:
            raise ShapeError(f"groups={groups} must divide in_channels={c} and out_channels={out_channels}")
        p = (h + 2 * ph - dh * (r - 1) - 1) // sh + 1
        q = (w + 2 * pw - dw * (s - 1) - 1) // sw + 1
        params = {"kernel": (r, s), "stride": sh, "padding": ph, "dilation": dh, "groups": groups, "bias": bias}
        weights = out_channels * (c // groups) * r * s + (out_channels if bias else 0)
        return self._add("conv", [src], (out_channels, p, q), params, weights, name)

    def linear(self, src: str, out_features: int, bias: bool = True, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) == 2:                         # (T, F): applied per token
            out: tuple[int, ...] = (shape[0], out_features)
            features = shape[1]
        else:                                       # (F,) or a feature map, flattened
            features = math.prod(shape)
            out = (out_features,)
        weights = out_features * features + (out_features if bias else 0)
        return self._add("linear", [src], out, {"bias": bias, "in_features": features}, weights, name)

    def pool(self, src: str, mode: Literal["max", "avg"], kernel, stride=None, padding=0,
             name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) != 3:
            raise ShapeError(f"pool needs a (channels, height, width) input; '{src}' is {shape}")
        c, h, w = shape
        (r, s) = _pair(kernel)
        st = _pair(stride if stride is not None else kernel)[0]
        pad = _pair(padding)[0]
        p, q = (h + 2 * pad - r) // st + 1, (w + 2 * pad - s) // st + 1
        return self._add("pool", [src], (c, p, q), {"mode": mode, "kernel": (r, s), "stride": st, "padding": pad},
                         0, name)

    def global_avgpool(self, src: str, name: str | None = None) -> str:
        _, h, w = self.shape(src)
        return self.pool(src, "avg", (h, w), 1, 0, name)

    def batchnorm(self, src: str, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) != 3:
            raise ShapeError(f"batchnorm needs a (channels, height, width) input; '{src}' is {shape}")
        return self._add("batchnorm", [src], shape, {}, 2 * shape[0], name)

    def layernorm(self, src: str, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) not in (1, 2):
            raise ShapeError(f"layernorm needs a (features,) or (tokens, features) input; '{src}' is {shape}")
        return self._add("layernorm", [src], shape, {}, 2 * shape[-1], name)

    def activation(self, src: str, kind: str, name: str | None = None) -> str:
        if kind not in ACTIVATIONS:
            raise ShapeError(f"unknown activation '{kind}' (known: {', '.join(ACTIVATIONS)})")
        return self._add(kind, [src], self.shape(src), {}, 0, name)

    def relu(self, src: str, name: str | None = None) -> str:
        return self.activation(src, "relu", name)

    def add(self, srcs: list[str], name: str | None = None) -> str:
        shapes = {self.shape(s) for s in srcs}
        if len(srcs) < 2 or len(shapes) != 1:
            raise ShapeError(f"add needs two or more inputs of one shape; got {[self.shape(s) for s in srcs]}")
        return self._add("add", list(srcs), shapes.pop(), {}, 0, name)

    def concat(self, srcs: list[str], name: str | None = None) -> str:
        shapes = [self.shape(s) for s in srcs]
        if len(srcs) < 2 or len({s[1:] for s in shapes}) != 1:
            raise ShapeError(f"concat joins inputs along their first axis; the other axes differ: {shapes}")
        return self._add("concat", list(srcs), (sum(s[0] for s in shapes), *shapes[0][1:]), {}, 0, name)

    def reshape(self, src: str, shape: tuple[int, ...], name: str | None = None) -> str:
        if math.prod(shape) != math.prod(self.shape(src)):
            raise ShapeError(f"cannot reshape {self.shape(src)} to {tuple(shape)}")
        return self._add("reshape", [src], tuple(shape), {}, 0, name)

    def embedding(self, src: str, vocab: int, dim: int, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) != 1 or self.inputs.get(src, NetworkInput("", ())).dtype != "index":
            raise ShapeError(f"embedding needs a (tokens,) input of token ids; '{src}' is {shape}")
        return self._add("embedding", [src], (shape[0], dim), {"vocab": vocab, "dim": dim}, vocab * dim, name)

    def recurrent(self, src: str, cell: Literal["lstm", "gru"], hidden: int, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) != 2:
            raise ShapeError(f"{cell} needs a (steps, features) input; '{src}' is {shape}")
        gates = 4 if cell == "lstm" else 3
        weights = gates * hidden * (shape[1] + hidden) + 2 * gates * hidden
        return self._add(cell, [src], (shape[0], hidden), {"hidden": hidden, "gates": gates}, weights, name)

    def attention(self, q: str, k: str, v: str, heads: int, name: str | None = None) -> str:
        sq, sk, sv = self.shape(q), self.shape(k), self.shape(v)
        if len(sq) != 2 or sk != sv or sq[1] != sk[1] or sq[1] % heads:
            raise ShapeError(f"attention needs q (T, D), k and v (S, D) with D divisible by heads={heads}; got "
                             f"{sq}, {sk}, {sv}")
        return self._add("attention", [q, k, v], sq, {"heads": heads}, 0, name)

    def elementwise(self, srcs: list[str], out_shape: tuple[int, ...] | None = None, flops_forward: int = 1,
                    flops_backward: int = 1, label: str = "", name: str | None = None) -> str:
        """A generic element-wise layer over its output (used for operators approximated as element-wise)."""
        out = tuple(out_shape) if out_shape is not None else self.shape(srcs[0])
        return self._add("elementwise", list(srcs), out, {"flops": (flops_forward, flops_backward),
                                                          "label": label}, 0, name)

    def softmax_ce(self, src: str, name: str | None = None) -> str:
        shape = self.shape(src)
        if len(shape) not in (1, 2):
            raise ShapeError(f"softmax_ce needs (classes,) or (tokens, classes) logits; '{src}' is {shape}")
        return self._add("softmax_ce", [src], (1,), {}, 0, name)
