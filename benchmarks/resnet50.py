"""Benchmark models built in code (torchvision is not installable here).

    resnet50()       ResNet-50 v1.5: bottleneck blocks [3, 4, 6, 3], widths 64..2048, batch norm,
                     1000 classes (25.6 M parameters, the torchvision layout; the stride sits on
                     the 3x3 conv of a block)
    mobilenet_v2()   MobileNetV2 (width 1.0, 1000 classes, ReLU6, depthwise 3x3 convs, 3.5 M)
    tiny_resnet()    the same bottleneck code with one block per stage and widths 16..128, for
                     smoke tests that must finish in seconds

Every builder returns a model in eval mode with seeded random weights (independent of the global
RNG) and "sane" batch-norm statistics: gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), and running mean /
variance measured by a few train-mode forwards on seeded N(0, 1) inputs, so that every batch norm
sees activations of about unit scale. Without that, random weights with default statistics (mean
0, var 1) let activations grow block after block and the logits end up meaningless (and any
quantized comparison with them too).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), base_width: int = 64, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages: List[nn.Module] = []
        in_channels = base_width
        for i, blocks in enumerate(layers):
            width = base_width * 2**i
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(in_channels, width, stride=2 if (b == 0 and i > 0) else 1))
                in_channels = width * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn_relu6(cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.use_residual = stride == 1 and cin == cout
        layers: List[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(cin, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = (
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    )  # expand, channels, repeats, stride

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0):
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        features: List[nn.Module] = [_conv_bn_relu6(3, cin, 3, 2)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(_conv_bn_relu6(cin, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


@torch.no_grad()
def init_seeded(
    model: nn.Module, seed: int = 0, stats_input: Sequence[int] = (4, 3, 112, 112), stats_batches: int = 2
) -> nn.Module:
    """Seeded random weights (He-normal convs, small linear) and measured batch-norm statistics."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the statistics batches
        elif isinstance(m, nn.Linear):
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (1.0 / m.in_features) ** 0.5)
            m.bias.copy_(torch.randn(m.out_features, generator=gen) * 0.01)
    model.train()
    for _ in range(stats_batches):
        model(torch.randn(*stats_input, generator=gen))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.1
    return model.eval()


def resnet50(num_classes: int = 1000, seed: int = 0) -> ResNet:
    return init_seeded(ResNet((3, 4, 6, 3), 64, num_classes), seed)


def tiny_resnet(num_classes: int = 100, seed: int = 0) -> ResNet:
    return init_seeded(ResNet((1, 1, 1, 1), 16, num_classes), seed, stats_input=(4, 3, 64, 64))


def mobilenet_v2(num_classes: int = 1000, seed: int = 0) -> MobileNetV2:
    return init_seeded(MobileNetV2(num_classes), seed)


MODELS = {
    # name: (builder, example input shape, description)
    "resnet50": (resnet50, (1, 3, 224, 224), "ResNet-50 (bottleneck [3,4,6,3], widths 64..2048, 1000 classes)"),
    "mobilenet_v2": (mobilenet_v2, (1, 3, 224, 224), "MobileNetV2 (width 1.0, 1000 classes)"),
    "tiny_resnet": (tiny_resnet, (1, 3, 224, 224), "tiny bottleneck ResNet ([1,1,1,1], widths 16..128, 100 classes)"),
}


if __name__ == "__main__":
    for name, (build, shape, desc) in MODELS.items():
        model = build()
        params = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            y = model(torch.randn(*shape, generator=torch.Generator().manual_seed(1)))
        print(
            f"{name:13s} {params / 1e6:6.2f} M params  input {tuple(shape)}  "
            f"logits mean {y.mean():+.3f} std {y.std():.3f}  ({desc})"
        )
