"""``zoo`` workload frontend: reference networks built in code, with parameters.

CNN layer shapes follow torchvision's definitions (AlexNet, VGG-16 configuration D, ResNet-50 v1.5 with the
stride on the 3×3 convolution), so results line up with a PyTorch run; dropout is omitted (no arithmetic) and
every network ends in a softmax cross-entropy loss. Select with ``workload: {frontend: zoo, network: NAME,
params: {...}}``; ``ntframe workloads`` lists them.
"""

from __future__ import annotations

from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, ValidationInfo, field_validator

import ntframe
from ntframe.components import WorkloadFrontend, WorkloadRequest
from ntframe.workload import Network, NetworkBuilder, ShapeError
from ntframe.yamlio import did_you_mean


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageParams(_Params):
    classes: PositiveInt = 1000
    image: PositiveInt = 224
    """Input height and width."""


def _features_alexnet(b: NetworkBuilder, x: str) -> str:
    x = b.pool(b.relu(b.conv(x, 64, 11, 4, 2, name="conv1")), "max", 3, 2, name="pool1")
    x = b.pool(b.relu(b.conv(x, 192, 5, 1, 2, name="conv2")), "max", 3, 2, name="pool2")
    x = b.relu(b.conv(x, 384, 3, 1, 1, name="conv3"))
    x = b.relu(b.conv(x, 256, 3, 1, 1, name="conv4"))
    return b.pool(b.relu(b.conv(x, 256, 3, 1, 1, name="conv5")), "max", 3, 2, name="pool5")


def _adaptive_avgpool(b: NetworkBuilder, x: str, size: int) -> str:
    """torchvision's AdaptiveAvgPool2d: nothing to do when the map already has the size."""
    _, h, w = b.shape(x)
    if (h, w) == (size, size):
        return x
    if h % size or w % size:
        raise ShapeError(f"adaptive pooling of a {h}x{w} map to {size}x{size} needs a multiple; change 'image'")
    return b.pool(x, "avg", (h // size, w // size), h // size, name="avgpool")


def alexnet(p: ImageParams) -> NetworkBuilder:
    b = NetworkBuilder("alexnet")
    x = _adaptive_avgpool(b, _features_alexnet(b, b.input("image", (3, p.image, p.image))), 6)
    x = b.relu(b.linear(x, 4096, name="fc6"))
    x = b.relu(b.linear(x, 4096, name="fc7"))
    b.softmax_ce(b.linear(x, p.classes, name="fc8"), name="loss")
    return b


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16(p: ImageParams) -> NetworkBuilder:
    b = NetworkBuilder("vgg16")
    x = b.input("image", (3, p.image, p.image))
    block, i = 1, 1
    for v in VGG16:
        if v == "M":
            x = b.pool(x, "max", 2, 2, name=f"pool{block}")
            block, i = block + 1, 1
        else:
            x = b.relu(b.conv(x, int(v), 3, 1, 1, name=f"conv{block}_{i}"))
            i += 1
    x = _adaptive_avgpool(b, x, 7)
    x = b.relu(b.linear(x, 4096, name="fc6"))
    x = b.relu(b.linear(x, 4096, name="fc7"))
    b.softmax_ce(b.linear(x, p.classes, name="fc8"), name="loss")
    return b


def resnet50(p: ImageParams) -> NetworkBuilder:
    b = NetworkBuilder("resnet50")
    x = b.input("image", (3, p.image, p.image))
    x = b.relu(b.batchnorm(b.conv(x, 64, 7, 2, 3, bias=False, name="conv1"), name="bn1"))
    x = b.pool(x, "max", 3, 2, 1, name="maxpool")
    channels = 64
    for stage, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        for i in range(blocks):
            s = stride if i == 0 else 1
            n = f"layer{stage}.{i}"
            y = b.relu(b.batchnorm(b.conv(x, planes, 1, bias=False, name=f"{n}.conv1"), name=f"{n}.bn1"))
            y = b.relu(b.batchnorm(b.conv(y, planes, 3, s, 1, bias=False, name=f"{n}.conv2"), name=f"{n}.bn2"))
            y = b.batchnorm(b.conv(y, planes * 4, 1, bias=False, name=f"{n}.conv3"), name=f"{n}.bn3")
            if i == 0 and (s != 1 or channels != planes * 4):
                x = b.batchnorm(b.conv(x, planes * 4, 1, s, bias=False, name=f"{n}.downsample.conv"),
                                name=f"{n}.downsample.bn")
            x = b.relu(b.add([y, x], name=f"{n}.add"), name=f"{n}.relu")
            channels = planes * 4
    x = b.global_avgpool(x, name="avgpool")
    b.softmax_ce(b.linear(x, p.classes, name="fc"), name="loss")
    return b


class LSTMParams(_Params):
    vocab: PositiveInt = 10000
    hidden: PositiveInt = 1024
    layers: PositiveInt = 2
    seq: PositiveInt = 100
    """Time steps (tokens per sequence)."""
    embed: PositiveInt | None = None
    """Embedding width; default: the hidden size."""


def lstm_lm(p: LSTMParams) -> NetworkBuilder:
    b = NetworkBuilder("lstm_lm")
    x = b.embedding(b.input("tokens", (p.seq,), "index"), p.vocab, p.embed or p.hidden, name="embed")
    for i in range(p.layers):
        x = b.recurrent(x, "lstm", p.hidden, name=f"lstm{i + 1}")
    b.softmax_ce(b.linear(x, p.vocab, name="decoder"), name="loss")
    return b


class MLPParams(_Params):
    sizes: list[PositiveInt] = Field(default=[784, 4096, 4096, 4096, 10], min_length=2)
    """Input features, hidden widths, classes."""


def mlp(p: MLPParams) -> NetworkBuilder:
    b = NetworkBuilder("mlp")
    x = b.input("features", (p.sizes[0],))
    for i, width in enumerate(p.sizes[1:-1], 1):
        x = b.relu(b.linear(x, width, name=f"fc{i}"))
    b.softmax_ce(b.linear(x, p.sizes[-1], name=f"fc{len(p.sizes) - 1}"), name="loss")
    return b


class CaptionParams(_Params):
    vocab: PositiveInt = 10000
    embed: PositiveInt = 512
    hidden: PositiveInt = 512
    seq: PositiveInt = 20
    """Caption length in tokens, the image embedding counted as the first."""
    image: PositiveInt = 224


def cnn_rnn(p: CaptionParams) -> NetworkBuilder:
    """Image captioning (Show-and-Tell style): an AlexNet encoder whose pooled features, projected to the
    embedding width, are the LSTM decoder's first input; the caption's tokens follow."""
    if p.seq < 2:
        raise ShapeError("seq must be at least 2 (the image and one token)")
    b = NetworkBuilder("cnn_rnn")
    x = b.global_avgpool(_features_alexnet(b, b.input("image", (3, p.image, p.image))), name="avgpool")
    img = b.reshape(b.linear(x, p.embed, name="img_proj"), (1, p.embed), name="img_token")
    words = b.embedding(b.input("tokens", (p.seq - 1,), "index"), p.vocab, p.embed, name="embed")
    x = b.recurrent(b.concat([img, words], name="sequence"), "lstm", p.hidden, name="decoder_lstm")
    b.softmax_ce(b.linear(x, p.vocab, name="decoder"), name="loss")
    return b


class TransformerParams(_Params):
    layers: PositiveInt = 12
    width: PositiveInt = 768
    heads: PositiveInt = 12
    seq: PositiveInt = 128
    ffn: PositiveInt = 3072
    vocab: PositiveInt = 30522


def transformer(p: TransformerParams) -> NetworkBuilder:
    """BERT-base-like encoder (post-norm) with a masked-language-model head over every token. Position
    embeddings and dropout are left out."""
    b = NetworkBuilder("transformer")
    x = b.layernorm(b.embedding(b.input("tokens", (p.seq,), "index"), p.vocab, p.width, name="embed"),
                    name="embed_norm")
    for i in range(1, p.layers + 1):
        n = f"layer{i}"
        q, k, v = (b.linear(x, p.width, name=f"{n}.{w}") for w in ("query", "key", "value"))
        a = b.linear(b.attention(q, k, v, p.heads, name=f"{n}.attention"), p.width, name=f"{n}.out")
        x = b.layernorm(b.add([x, a], name=f"{n}.add1"), name=f"{n}.norm1")
        f = b.linear(b.activation(b.linear(x, p.ffn, name=f"{n}.ffn1"), "gelu", name=f"{n}.gelu"), p.width,
                     name=f"{n}.ffn2")
        x = b.layernorm(b.add([x, f], name=f"{n}.add2"), name=f"{n}.norm2")
    b.softmax_ce(b.linear(x, p.vocab, name="mlm_head"), name="loss")
    return b


ZOO: dict[str, tuple[type[_Params], Callable[[Any], NetworkBuilder], str]] = {
    "alexnet": (ImageParams, alexnet, "AlexNet (torchvision), 224x224 images"),
    "vgg16": (ImageParams, vgg16, "VGG-16 (torchvision configuration D), 224x224 images"),
    "resnet50": (ImageParams, resnet50, "ResNet-50 v1.5 (torchvision), 224x224 images"),
    "lstm_lm": (LSTMParams, lstm_lm, "LSTM language model: embedding, stacked LSTMs, vocabulary decoder"),
    "mlp": (MLPParams, mlp, "multi-layer perceptron 784-4096-4096-4096-10"),
    "cnn_rnn": (CaptionParams, cnn_rnn, "image captioning: AlexNet encoder feeding an LSTM decoder"),
    "transformer": (TransformerParams, transformer, "BERT-base-like encoder, 12 layers, width 768, seq 128"),
}


class ZooOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    network: str
    """One of the zoo's networks (``ntframe workloads``)."""
    params: dict[str, Any] = {}
    """The network's parameters (``ntframe workloads show NAME`` lists them with their defaults)."""

    @field_validator("network")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ZOO:
            raise ValueError(f"unknown network '{value}'; the zoo has: {', '.join(ZOO)}{did_you_mean(value, list(ZOO))}")
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        network = info.data.get("network")
        if network not in ZOO:
            return value
        model = ZOO[network][0]
        try:
            return model.model_validate(value).model_dump()
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            allowed = list(model.model_fields)
            if err["type"] == "extra_forbidden":
                raise ValueError(f"'{key}' is not a parameter of {network}; its parameters: {', '.join(allowed)}"
                                 f"{did_you_mean(key, allowed)}") from None
            raise ValueError(f"parameter '{key}' of {network}: {err['msg']} (got {err.get('input')!r})") from None


class ZooFrontend(WorkloadFrontend):
    name = "zoo"
    description = "reference networks: alexnet, vgg16, resnet50, lstm_lm, mlp, cnn_rnn, transformer"
    Options = ZooOptions

    def load(self, request: WorkloadRequest) -> Network:
        model, build, _ = ZOO[self.options.network]
        return build(model.model_validate(self.options.params)).build(request.batch,
                                                                       source=f"zoo:{self.options.network}")

    def catalog(self) -> dict[str, tuple[str, dict[str, Any]]]:
        return {name: (desc, {"network": name}) for name, (_, _, desc) in ZOO.items()}

    def parameters(self) -> dict[str, Any]:
        return ZOO[self.options.network][0].model_validate(self.options.params).model_dump()


@ntframe.hookimpl
def ntframe_register_workload_frontends(register):
    register(ZooFrontend)
