"""Record PyTorch's FLOP counts of one training step of each zoo network (the golden-FLOP test fixture).

    pip install torch==2.13.0          # the CPU build; any recent torch counts the same
    python tools/golden_flops.py > tests/golden/pytorch_flops.json

The networks are written here in plain PyTorch, independently of ntframe, after torchvision's definitions
(AlexNet, VGG-16 configuration D, ResNet-50 v1.5) and ntframe's documented zoo parameters. One training step
= forward, loss.backward() and an SGD step, all inside ``torch.utils.flop_counter.FlopCounterMode``, which counts
convolutions and matrix products (2 FLOPs per multiply-accumulate) and nothing element-wise. nn.LSTM's fused
kernel is invisible to that counter, so the LSTMs are unrolled here step by step (the initial state is zero:
step 0 has no recurrent product, as in ntframe).
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def alexnet_features():
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))


class AlexNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = alexnet_features()
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(nn.Linear(9216, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class VGG16(nn.Module):
    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(nn.Linear(25088, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                                        nn.Linear(4096, 1000))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Bottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(inplanes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, planes * 4, 1, bias=False), nn.BatchNorm2d(planes * 4)
        self.down = None
        if stride != 1 or inplanes != planes * 4:
            self.down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                                      nn.BatchNorm2d(planes * 4))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.down(x) if self.down is not None else x))


class ResNet50(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, c = [], 64
        for planes, n, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
            for i in range(n):
                blocks.append(Bottleneck(c, planes, stride if i == 0 else 1))
                c = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x):
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class UnrolledLSTM(nn.Module):
    def __init__(self, inputs, hidden):
        super().__init__()
        self.w_ih = nn.Linear(inputs, 4 * hidden)
        self.w_hh = nn.Linear(hidden, 4 * hidden, bias=True)
        self.hidden = hidden

    def forward(self, x):                       # x: (N, T, F)
        gx = self.w_ih(x)                       # the input projection of all steps at once
        n, t, _ = x.shape
        h = c = None
        outs = []
        for step in range(t):
            g = gx[:, step] if h is None else gx[:, step] + self.w_hh(h)
            i, f, gg, o = g.chunk(4, dim=1)
            i, f, gg, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(gg), torch.sigmoid(o)
            c = i * gg if c is None else f * c + i * gg
            h = o * torch.tanh(c)
            outs.append(h)
        return torch.stack(outs, 1)


class LSTMLM(nn.Module):
    def __init__(self, vocab=10000, hidden=1024, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.rnns = nn.ModuleList(UnrolledLSTM(hidden, hidden) for _ in range(layers))
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        for rnn in self.rnns:
            x = rnn(x)
        return self.decoder(x)


class MLP(nn.Module):
    def __init__(self, sizes=(784, 4096, 4096, 4096, 10)):
        super().__init__()
        layers = []
        for a, b in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-2], sizes[-1]))

    def forward(self, x):
        return self.net(x)


class Captioner(nn.Module):
    def __init__(self, vocab=10000, embed=512, hidden=512):
        super().__init__()
        self.features = alexnet_features()
        self.img_proj = nn.Linear(256, embed)
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = UnrolledLSTM(embed, hidden)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, image, tokens):
        img = self.img_proj(torch.flatten(F.adaptive_avg_pool2d(self.features(image), 1), 1)).unsqueeze(1)
        x = torch.cat([img, self.embed(tokens)], 1)
        return self.decoder(self.lstm(x))


class EncoderLayer(nn.Module):
    def __init__(self, width=768, heads=12, ffn=3072):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(width, width) for _ in range(4))
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ffn1, self.ffn2 = nn.Linear(width, ffn), nn.Linear(ffn, width)
        self.heads = heads

    def forward(self, x):
        n, t, d = x.shape
        dk = d // self.heads

        def split(y):
            return y.view(n, t, self.heads, dk).transpose(1, 2)
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        p = torch.softmax(q @ k.transpose(-1, -2) / dk ** 0.5, dim=-1)
        a = (p @ v).transpose(1, 2).reshape(n, t, d)
        x = self.norm1(x + self.o(a))
        return self.norm2(x + self.ffn2(F.gelu(self.ffn1(x), approximate="tanh")))


class Encoder(nn.Module):
    def __init__(self, layers=12, width=768, vocab=30522):
        super().__init__()
        self.embed, self.norm = nn.Embedding(vocab, width), nn.LayerNorm(width)
        self.layers = nn.Sequential(*(EncoderLayer(width) for _ in range(layers)))
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens):
        return self.head(self.layers(self.norm(self.embed(tokens))))


def image(batch):
    return (torch.randn(batch, 3, 224, 224),)


def tokens(batch, seq, vocab):
    return (torch.randint(0, vocab, (batch, seq)),)


CASES = {
    # name: (model, inputs, batch, zoo params)
    "alexnet": (AlexNet, lambda b: image(b), 2, {}),
    "vgg16": (VGG16, lambda b: image(b), 1, {}),
    "resnet50": (ResNet50, lambda b: image(b), 2, {}),
    "lstm_lm": (LSTMLM, lambda b: tokens(b, 100, 10000), 2, {}),
    "mlp": (MLP, lambda b: (torch.randn(b, 784),), 16, {}),
    "cnn_rnn": (Captioner, lambda b: (*image(b), *tokens(b, 19, 10000)), 2, {}),
    "transformer": (Encoder, lambda b: tokens(b, 128, 30522), 1, {}),
}


def step_flops(model: nn.Module, inputs: tuple) -> int:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with FlopCounterMode(display=False) as counter:
        logits = model(*inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               torch.zeros(logits.shape[:-1].numel(), dtype=torch.long))
        loss.backward()
        optimizer.step()
    return counter.get_total_flops()


def main() -> None:
    torch.manual_seed(0)
    out = {"recorded_with": f"torch {torch.__version__}, tools/golden_flops.py", "networks": {}}
    for name, (cls, make_inputs, batch, params) in CASES.items():
        model = cls()
        flops = step_flops(model, make_inputs(batch))
        out["networks"][name] = {"batch": batch, "params": params, "training_step_flops": flops,
                                 "parameters": sum(p.numel() for p in model.parameters())}
        print(f"{name}: {flops:,} FLOPs at batch {batch}", file=sys.stderr)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
