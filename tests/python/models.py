"""Small models built in code (no downloads) that cover what real CNNs and transformers lower to."""

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """ResNet basic block: conv-bn-relu, conv-bn, residual add, relu."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class ResNetLike(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.blocks = nn.Sequential(ResidualBlock(16), ResidualBlock(16))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 project, residual add."""

    def __init__(self, channels: int, expand: int = 4):
        super().__init__()
        hidden = channels * expand
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return x + self.body(x)


class MobileNetV2Like(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU6())
        self.blocks = nn.Sequential(InvertedResidual(16), InvertedResidual(16))
        self.head = nn.Sequential(
            nn.Conv2d(16, 32, 1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes)
        )

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


class EncoderLayer(nn.Module):
    """BERT-style encoder layer written out: attention with softmax, GELU MLP, layer norms."""

    def __init__(self, dim: int = 32, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) * (d // self.heads) ** -0.5, dim=-1)
        y = torch.matmul(attn, v).transpose(1, 2).reshape(b, t, d)
        x = self.norm1(x + self.proj(y))
        return self.norm2(x + self.mlp(x))


def seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic weights and non-trivial batch-norm statistics; returns the model in eval."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) / max(1, p[0].numel()) ** 0.5)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            if isinstance(m, nn.LayerNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
    return model.eval()


class LlamaBlock(nn.Module):
    """Llama-style decoder block: RMSNorm, causal attention, SiLU-gated MLP, residuals."""

    def __init__(self, dim: int = 32, heads: int = 4, hidden: int = 64):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.RMSNorm(dim, eps=1e-6), nn.RMSNorm(dim, eps=1e-6)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        h = self.norm1(x)
        split = lambda y: y.reshape(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) * (d // self.heads) ** -0.5
        mask = torch.triu(torch.full((t, t), -1e4), diagonal=1)  # finite: observers reject Inf
        y = torch.matmul(torch.softmax(scores + mask, dim=-1), v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        h = self.norm2(x)
        return x + self.down(nn.functional.silu(self.gate(h)) * self.up(h))


class OpMix(nn.Module):
    """The rarer rules in one graph: embedding, conv1d, conv_transpose2d, pad, cat, sigmoid, tanh,
    mean, sub, div, hardtanh after add."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 2, stride=2)
        self.head = nn.Linear(8 + 16, 6)

    def forward(self, tokens, image):
        seq = self.embed(tokens).transpose(1, 2)  # [b, 8, t]
        seq = torch.sigmoid(self.conv1d(seq)) - torch.tanh(seq) / 2
        pooled_seq = seq.mean(dim=-1)  # [b, 8]
        img = nn.functional.pad(self.up(image), (1, 1, 1, 1))  # [b, 4, 2h+2, 2w+2]
        img = nn.functional.hardtanh(img + 0.5).mean(dim=(2, 3))  # [b, 4]
        features = torch.cat([pooled_seq, img.repeat(1, 4)], dim=1)
        return self.head(features)


class BertStyleAttention(nn.Module):
    """Scores plus HF BERT's extended mask, built in forward from a 0/1 token mask input."""

    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x, keep):
        scores = self.q(x) @ self.k(x).transpose(-1, -2) / 4
        mask = (1.0 - keep[:, None, :].float()) * -10000.0
        return torch.softmax(scores + mask, -1)


class PaddedEncoder(nn.Module):
    """nn.TransformerEncoderLayer with a boolean key padding mask input (-inf inside)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)

    def forward(self, x, keep):
        return self.layer(x, src_key_padding_mask=keep == 0)


class MaskedSdpa(nn.Module):
    """scaled_dot_product_attention with a boolean attention mask input (True = attend)."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16)

    def forward(self, x, attend):
        return nn.functional.scaled_dot_product_attention(self.q(x), self.k(x), self.v(x), attn_mask=attend[:, None, :])


class MoreOps(nn.Module):
    """MobileNetV3's squeeze-excitation gate (hardsigmoid), a scalar rsub, resizing, clamps, PReLU
    and a batch norm that follows no conv. ``exportable=True`` leaves out bilinear upsampling,
    which the Circle exporter has no importer for yet."""

    def __init__(self, exportable: bool = False):
        super().__init__()
        self.exportable = exportable
        self.conv = nn.Conv2d(4, 4, 1)
        self.prelu = nn.PReLU(4)
        self.norm = nn.BatchNorm2d(4)

    def forward(self, x):
        x = x * nn.functional.hardsigmoid(x.mean((2, 3), keepdim=True))
        y = self.norm(self.prelu(x) + (1.0 - x))
        fused = self.conv(y).clamp(0.0, 6.0)  # a RELU6 after the conv
        clipped = y.clamp(-0.5, 0.5)  # an op of its own
        up = nn.functional.interpolate(fused + clipped, scale_factor=2)
        if self.exportable:
            return up
        return up + nn.functional.interpolate(y, scale_factor=2, mode="bilinear")
