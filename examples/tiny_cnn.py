"""TinyCNN: the small model that ships with torch-circle for demos and smoke tests.

A 13k-parameter convolutional classifier for 1x16x16 inputs. Its weights come from a fixed seed,
so every run builds the same model without downloading anything.
"""

import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16),
            nn.ReLU6(),  # depthwise
            nn.Conv2d(16, 32, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build_tiny_cnn(seed: int = 0) -> TinyCNN:
    """The shipped model, in eval mode, with batch-norm statistics that are not the identity."""
    gen = torch.Generator().manual_seed(seed)
    model = TinyCNN()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p[0].numel()) ** 0.5))
        bn = model.features[1]
        bn.running_mean.copy_(torch.randn(16, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(16, generator=gen) + 0.5)
    return model.eval()


def example_inputs(batch: int = 8, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, 16, 16, generator=gen)
