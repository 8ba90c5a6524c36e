"""``layers`` workload frontend: an explicit list of layers in a YAML file.

```yaml
network:
  name: small-cnn
  inputs: [{name: image, shape: [3, 32, 32]}]       # or the short form  input: {channels: 3, height: 32, width: 32}
  layers:
    - {name: conv1, type: conv, out_channels: 16, kernel: 3, stride: 1, padding: 1}
    - {name: relu1, type: relu}
    - {name: fc1, type: linear, out_features: 10}
    - {name: loss, type: softmax_ce}
```

Each layer takes the previous layer as its input unless it names ``inputs`` (a list of layer or input names:
that is how residual connections, concatenations and attention's query/key/value are written). Layer types:
conv, linear (alias fc), pool, batchnorm, layernorm, relu, gelu, sigmoid, tanh, add, concat, reshape,
embedding, lstm, gru, attention, softmax_ce. Shapes are inferred layer by layer (:mod:`ntframe.workload.builder`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

import ntframe
from ntframe.components import WorkloadFrontend, WorkloadRequest
from ntframe.workload import Network, NetworkBuilder, ShapeError
from ntframe.yamlio import load_yaml, validate

IntPair = PositiveInt | tuple[PositiveInt, PositiveInt]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Layer(_Strict):
    name: str
    inputs: list[str] | None = None
    """Names of the layers or network inputs this layer reads; default: the previous layer."""


class Conv(_Layer):
    type: Literal["conv"]
    out_channels: PositiveInt
    kernel: IntPair
    stride: PositiveInt = 1
    padding: NonNegativeInt = 0
    dilation: PositiveInt = 1
    groups: PositiveInt = 1
    bias: bool = True


class Linear(_Layer):
    type: Literal["linear", "fc"]
    out_features: PositiveInt
    bias: bool = True


class Pool(_Layer):
    type: Literal["pool"]
    mode: Literal["max", "avg"]
    kernel: IntPair | Literal["global"]
    stride: PositiveInt | None = None
    padding: NonNegativeInt = 0


class Simple(_Layer):
    type: Literal["batchnorm", "layernorm", "relu", "gelu", "sigmoid", "tanh", "add", "concat", "softmax_ce"]


class Reshape(_Layer):
    type: Literal["reshape"]
    shape: list[PositiveInt]


class Embedding(_Layer):
    type: Literal["embedding"]
    vocab: PositiveInt
    dim: PositiveInt


class Recurrent(_Layer):
    type: Literal["lstm", "gru"]
    hidden: PositiveInt


class Attention(_Layer):
    type: Literal["attention"]
    heads: PositiveInt


LayerSpec = Annotated[Union[Conv, Linear, Pool, Simple, Reshape, Embedding, Recurrent, Attention],
                      Field(discriminator="type")]


class ImageInput(_Strict):
    channels: PositiveInt
    height: PositiveInt
    width: PositiveInt


class VectorInput(_Strict):
    features: PositiveInt


class NamedInput(_Strict):
    name: str
    shape: list[PositiveInt] = Field(min_length=1, max_length=3)
    dtype: Literal["float", "index"] = "float"


class NetworkSpec(_Strict):
    name: str
    input: ImageInput | VectorInput | None = None
    inputs: list[NamedInput] | None = None
    layers: list[LayerSpec] = Field(min_length=1)


class NetworkFile(_Strict):
    network: NetworkSpec


class LayersOptions(_Strict):
    file: str
    """Layer-list YAML: a path relative to the spec, or a shipped name under workloads/."""


def add_layer(b: NetworkBuilder, spec, srcs: list[str]) -> str:
    """Add one validated layer spec to a builder (shared with other frontends)."""
    kind, name = spec.type, spec.name
    if kind == "conv":
        return b.conv(srcs[0], spec.out_channels, spec.kernel, spec.stride, spec.padding, spec.dilation,
                      spec.groups, spec.bias, name)
    if kind in ("linear", "fc"):
        return b.linear(srcs[0], spec.out_features, spec.bias, name)
    if kind == "pool":
        if spec.kernel == "global":
            return b.global_avgpool(srcs[0], name) if spec.mode == "avg" else b.pool(
                srcs[0], "max", b.shape(srcs[0])[1:], 1, 0, name)
        return b.pool(srcs[0], spec.mode, spec.kernel, spec.stride, spec.padding, name)
    if kind in ("batchnorm", "layernorm", "softmax_ce"):
        return getattr(b, kind)(srcs[0], name)
    if kind in ("relu", "gelu", "sigmoid", "tanh"):
        return b.activation(srcs[0], kind, name)
    if kind in ("add", "concat"):
        return getattr(b, kind)(srcs, name)
    if kind == "reshape":
        return b.reshape(srcs[0], tuple(spec.shape), name)
    if kind == "embedding":
        return b.embedding(srcs[0], spec.vocab, spec.dim, name)
    if kind in ("lstm", "gru"):
        return b.recurrent(srcs[0], kind, spec.hidden, name)
    if kind == "attention":
        if len(srcs) != 3:
            raise ShapeError(f"attention reads three inputs (query, key, value), got {len(srcs)}")
        return b.attention(*srcs, heads=spec.heads, name=name)
    raise ShapeError(f"unknown layer type '{kind}'")


class LayersFrontend(WorkloadFrontend):
    name = "layers"
    description = "explicit layer list in a YAML file (every layer kind ntframe knows, DAGs through 'inputs')"
    Options = LayersOptions

    def load(self, request: WorkloadRequest) -> Network:
        path = request.resolve(self.options.file, "workloads")
        data, pos = load_yaml(path)
        net = validate(NetworkFile, data, pos).network
        b = NetworkBuilder(net.name)
        try:
            if net.inputs:
                for inp in net.inputs:
                    b.input(inp.name, tuple(inp.shape), inp.dtype)
            elif isinstance(net.input, ImageInput):
                b.input("input", (net.input.channels, net.input.height, net.input.width))
            elif isinstance(net.input, VectorInput):
                b.input("input", (net.input.features,))
            else:
                raise ShapeError("give the network's 'input' or 'inputs'")
        except ShapeError as exc:
            raise pos.error(str(exc), ("network",)) from None
        for i, spec in enumerate(net.layers):
            loc = ("network", "layers", i)
            try:
                add_layer(b, spec, spec.inputs or [b.last])
            except ShapeError as exc:
                raise pos.error(f"layer '{spec.name}': {exc}", loc) from None
        return b.build(request.batch, source=str(path))

    def catalog(self) -> dict[str, tuple[str, dict]]:
        from ntframe.paths import shipped_root
        out = {}
        for path in sorted((shipped_root() / "workloads").glob("*.yaml")):
            first = next((line[1:].strip() for line in path.read_text().splitlines() if line.startswith("#")), "")
            out[path.stem] = (first or f"layer list {path.name}", {"file": path.stem})
        return out


@ntframe.hookimpl
def ntframe_register_workload_frontends(register):
    register(LayersFrontend)
