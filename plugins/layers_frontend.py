"""``layers`` workload frontend: an explicit list of layers in a YAML file.

```yaml
network:
  name: small-cnn
  input: {channels: 3, height: 32, width: 32}     # or {features: 784}
  layers:
    - {name: conv1, type: conv, out_channels: 16, kernel: 3, stride: 1, padding: 1}
    - {name: relu1, type: relu}
    - {name: fc1, type: fc, out_features: 10}
```

Shapes are inferred layer by layer (``P = (H + 2·padding − kernel) // stride + 1``); an ``fc`` after a
feature map flattens it. The first layer consumes the network input and gets no ``backward_data``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

import ntframe
from ntframe.components import WorkloadFrontend, WorkloadRequest
from ntframe.ir import Layer, Network
from ntframe.yamlio import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageInput(_Strict):
    channels: PositiveInt
    height: PositiveInt
    width: PositiveInt


class VectorInput(_Strict):
    features: PositiveInt


class ConvSpec(_Strict):
    name: str
    type: Literal["conv"]
    out_channels: PositiveInt
    kernel: PositiveInt | tuple[PositiveInt, PositiveInt]
    stride: PositiveInt = 1
    padding: NonNegativeInt = 0
    bias: bool = True


class FCSpec(_Strict):
    name: str
    type: Literal["fc"]
    out_features: PositiveInt
    bias: bool = True


class ReLUSpec(_Strict):
    name: str
    type: Literal["relu"]


LayerSpec = Annotated[Union[ConvSpec, FCSpec, ReLUSpec], Field(discriminator="type")]


class NetworkSpec(_Strict):
    name: str
    input: ImageInput | VectorInput
    layers: list[LayerSpec] = Field(min_length=1)


class NetworkFile(_Strict):
    network: NetworkSpec


class LayersOptions(_Strict):
    file: str
    """Layer-list YAML: a path relative to the spec, or a shipped name under workloads/."""


class LayersFrontend(WorkloadFrontend):
    name = "layers"
    description = "explicit layer list (conv, fc, relu) in a YAML file"
    Options = LayersOptions

    def load(self, request: WorkloadRequest) -> Network:
        path = request.resolve(self.options.file, "workloads")
        data, pos = load_yaml(path)
        net = validate(NetworkFile, data, pos).network
        shape: tuple[int, ...] = ((net.input.channels, net.input.height, net.input.width)
                                  if isinstance(net.input, ImageInput) else (net.input.features,))
        layers, seen = [], set()
        for i, spec in enumerate(net.layers):
            loc = ("network", "layers", i)
            if spec.name in seen:
                raise pos.error(f"layer name '{spec.name}' is used twice", loc + ("name",))
            seen.add(spec.name)
            if isinstance(spec, ConvSpec):
                if len(shape) != 3:
                    raise pos.error(f"conv needs a (channels, height, width) input, got {shape}", loc)
                r, s = (spec.kernel, spec.kernel) if isinstance(spec.kernel, int) else spec.kernel
                c, h, w = shape
                p = (h + 2 * spec.padding - r) // spec.stride + 1
                q = (w + 2 * spec.padding - s) // spec.stride + 1
                if p < 1 or q < 1:
                    raise pos.error(f"kernel {r}x{s} does not fit the {h}x{w} input with padding {spec.padding}", loc)
                out = (spec.out_channels, p, q)
                params = {"kernel": (r, s), "stride": spec.stride, "padding": spec.padding, "bias": spec.bias}
                layers.append(Layer(spec.name, "conv", shape, out, params, is_first=i == 0))
            elif isinstance(spec, FCSpec):
                features = 1
                for n in shape:
                    features *= n
                out = (spec.out_features,)
                layers.append(Layer(spec.name, "fc", (features,), out, {"bias": spec.bias}, is_first=i == 0))
            else:
                out = shape
                layers.append(Layer(spec.name, "relu", shape, out, {}, is_first=i == 0))
            shape = out
        return Network(net.name, request.batch, tuple(layers), source=str(path))


@ntframe.hookimpl
def ntframe_register_workload_frontends(register):
    register(LayersFrontend)
