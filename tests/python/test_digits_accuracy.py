"""Real data: a small CNN trained on scikit-learn's bundled digits keeps its accuracy when
quantized with each 8-bit preset (top-1 drop at most 0.5 points)."""

import pytest
import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import torch_circle
from torch_circle.quantizer import CircleQuantizer

from sklearn import datasets  # a test dependency (requirements/dev.txt)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 3, padding=1, groups=32),
            nn.ReLU6(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture(scope="module")
def trained():
    digits = datasets.load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=gen)
    train, test = order[:1400], order[1400:]
    torch.manual_seed(0)
    model = DigitsCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(12):
        for idx in torch.randperm(len(train), generator=gen).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[train[idx]]), y[train[idx]]).backward()
            optimizer.step()
    return model.eval(), x[train], x[test], y[test]


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item() * 100


@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_quantized_accuracy_drop_is_at_most_half_a_point(trained, preset):
    model, x_train, x_test, y_test = trained
    float_accuracy = accuracy(model, x_test, y_test)
    assert float_accuracy > 90
    batch = torch.export.Dim("batch")
    exported = torch.export.export(model, (x_test[:64],), dynamic_shapes=({0: batch},))
    m = prepare_pt2e(exported.module(), CircleQuantizer(preset))
    torch_circle.calibrate(m, x_train[:512].split(64), progress=False)
    quantized = convert_pt2e(m)
    quantized_accuracy = accuracy(quantized, x_test, y_test)
    print(f"{preset}: float {float_accuracy:.2f}%, quantized {quantized_accuracy:.2f}%")
    assert float_accuracy - quantized_accuracy <= 0.5, (float_accuracy, quantized_accuracy)


@pytest.mark.parametrize("preset,fmt", [("uint8", "circle"), ("int8", "tflite")])
def test_exported_model_predicts_like_the_converted_model(trained, preset, fmt):
    """The whole test set through the exported file in a real runtime: onert runs ONE's uint8
    convention, LiteRT TFLite's int8 one. Same argmax as PyTorch's converted graph."""
    import numpy as np

    model, x_train, x_test, y_test = trained
    batch = torch.export.Dim("batch")
    exported = torch.export.export(model, (x_test[:64],), dynamic_shapes=({0: batch},))
    m = prepare_pt2e(exported.module(), CircleQuantizer(preset))
    torch_circle.calibrate(m, x_train[:512].split(64), progress=False)
    quantized = convert_pt2e(m)
    cm = torch_circle.export(torch.export.export(quantized, (x_test[:64],), dynamic_shapes=({0: batch},)), format=fmt)
    runtime_logits = cm.run(x_test)[0]
    with torch.no_grad():
        reference = quantized(x_test).numpy()
    agree = np.mean(runtime_logits.argmax(1) == reference.argmax(1))
    runtime_accuracy = np.mean(runtime_logits.argmax(1) == y_test.numpy()) * 100
    # Every logit, in output quantization steps: argmax alone hid a pooling layer computing tens
    # of steps off. The runtimes requantize in fixed point, PyTorch in float (docs/numerics.md),
    # and the average pool rounds to its input's step before its requantize: a step or two.
    steps = cm.output_steps(runtime_logits, reference)
    print(
        f"{preset} in {fmt}: argmax agreement {agree:.2%}, accuracy {runtime_accuracy:.2f}%, "
        f"max {steps.max()} steps, {np.mean(steps <= 1):.2%} within one"
    )
    assert agree == 1.0
    assert steps.max() <= 2
    assert np.mean(steps <= 1) >= 0.99
