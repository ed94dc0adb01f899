"""Models for the end-to-end int8 benchmark, built in code (no downloads, no torchvision).

    resnet18()      ResNet-18: basic blocks [2, 2, 2, 2], widths 64..512, batch norm, 1000 classes
                    (11.7 M parameters, the torchvision layout)
    mobilenet_v2()  MobileNetV2, width 1.0, 1000 classes (from resnet50.py)
    bert_encoder()  BERT-base encoder layers written out (hidden 768, 12 heads, feed-forward 3072,
                    GELU, post-layer-norm, separate query / key / value linears as in BERT), on
                    hidden states [batch, seq, 768]; no embedding table

Each has a small "quick" form for smoke tests. The CNNs get seeded weights and measured batch-norm
statistics from resnet50.init_seeded; the encoder gets seeded linear weights.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence

import torch
from torch import nn

from resnet50 import MobileNetV2, init_seeded


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNetBasic(nn.Module):
    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), base_width: int = 64, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages: List[nn.Module] = []
        cin = base_width
        for i, blocks in enumerate(layers):
            cout = base_width * 2**i
            stages.append(
                nn.Sequential(
                    *[BasicBlock(cin if b == 0 else cout, cout, 2 if (b == 0 and i > 0) else 1) for b in range(blocks)]
                )
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class BertLayer(nn.Module):
    """One BERT encoder layer (post-LN), attention written out with matmul + softmax."""

    def __init__(self, hidden: int = 768, heads: int = 12, intermediate: int = 3072):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value = (nn.Linear(hidden, hidden) for _ in range(3))
        self.attn_out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
        self.intermediate = nn.Linear(hidden, intermediate)
        self.output = nn.Linear(intermediate, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        b, t, d = x.shape
        split = lambda y: y.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        context = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, t, d)
        x = self.norm1(x + self.attn_out(context))
        return self.norm2(x + self.output(nn.functional.gelu(self.intermediate(x))))


class BertEncoder(nn.Module):
    def __init__(self, layers: int = 4, hidden: int = 768, heads: int = 12, intermediate: int = 3072):
        super().__init__()
        self.layers = nn.Sequential(*[BertLayer(hidden, heads, intermediate) for _ in range(layers)])

    def forward(self, x):
        return self.layers(x)


@torch.no_grad()
def init_linear_seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * 0.02 * (768 / m.in_features) ** 0.5)
            m.bias.copy_(torch.randn(m.out_features, generator=gen) * 0.02)
    return model.eval()


def resnet18(quick: bool = False, seed: int = 0) -> ResNetBasic:
    if quick:
        return init_seeded(ResNetBasic((1, 1, 1, 1), 16, 100), seed, stats_input=(4, 3, 64, 64))
    return init_seeded(ResNetBasic((2, 2, 2, 2), 64, 1000), seed)


def mobilenet_v2(quick: bool = False, seed: int = 0) -> MobileNetV2:
    if quick:
        return init_seeded(MobileNetV2(100, width_mult=0.25), seed, stats_input=(4, 3, 64, 64))
    return init_seeded(MobileNetV2(1000), seed)


def bert_encoder(quick: bool = False, layers: int = 4, seed: int = 0) -> BertEncoder:
    if quick:
        return init_linear_seeded(BertEncoder(1, 128, 2, 512), seed)
    return init_linear_seeded(BertEncoder(layers), seed)
