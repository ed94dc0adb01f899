#!/usr/bin/env python3
"""Writes the TorchScript files tests/cpp/test_torchscript.cpp loads from plain C++.

    python make_torchscript_model.py --library build/libtorch_circle.so --out build/tests/cpp/torchscript

Run by CMake (target torchscript_models) against the freshly built operator library, so a fresh
clone needs no installed torch_circle. Writes:

  mlp.pt          float [4, 24] → quantize (uint8) → quantized_linear + ReLU (uint8) →
                  quantized_linear (int8 weights, float output); prepacked weights are buffers.
  cnn.pt          float NCHW → quantize (int8) → quantized_conv2d 3x3 + ReLU6 (int8) →
                  quantized_conv2d depthwise (int8) → dequantize.
  <name>_data.pt  a scripted module whose buffers are the input, the expected output of the same
                  ops run here in Python (compared bit for bit), the PT2E reference graph's output
                  (dequantize → float op → quantize, compared within one quantization step) and
                  that step.
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

U8, I8 = (0, 255, torch.uint8), (-128, 127, torch.int8)


def quantized_weight(g, shape, dtype):
    if dtype == torch.int8:
        w = torch.randint(-127, 128, shape, generator=g).to(torch.int8)
        zp = torch.zeros(shape[0], dtype=torch.int32)
    else:
        w = torch.randint(0, 256, shape, generator=g).to(torch.uint8)
        zp = torch.randint(110, 146, (shape[0],), generator=g).to(torch.int32)
    scale = 0.004 + 0.004 * torch.rand(shape[0], generator=g)
    return w, scale, zp


def dequantize_weight(w, scale, zp):
    lo, hi = (-128, 127) if w.dtype == torch.int8 else (0, 255)
    return torch.ops.quantized_decomposed.dequantize_per_channel(w, scale, zp, 0, lo, hi, w.dtype)


class MLP(torch.nn.Module):
    def __init__(self, g):
        super().__init__()
        cq = torch.ops.circle_quant
        self.x_q = (0.03, 120)  # input scale / zero point (uint8)
        self.h_q = (0.05, 0)  # hidden (uint8, after ReLU)
        self.w1 = quantized_weight(g, (40, 24), torch.uint8)  # ONE's uint8 asymmetric per channel
        self.b1 = torch.randn(40, generator=g) * 0.3
        self.w2 = quantized_weight(g, (10, 40), torch.int8)
        self.b2 = torch.randn(10, generator=g) * 0.3
        p1 = cq.linear_prepack(*self.w1, self.b1, *self.x_q, torch.uint8, *self.h_q, torch.uint8, 0.0, None)
        p2 = cq.linear_prepack(*self.w2, self.b2, *self.h_q, torch.uint8, 1.0, 0, torch.float32)
        for i, plan in enumerate((p1, p2), 1):
            for name, t in zip(("packed", "params", "multiplier"), plan):
                self.register_buffer(f"fc{i}_{name}", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.ops.circle_quant.quantize_per_tensor(x, 0.03, 120, 0, 255, torch.uint8)
        h = torch.ops.circle_quant.quantized_linear(
            q, self.fc1_packed, self.fc1_params, self.fc1_multiplier, torch.uint8
        )
        return torch.ops.circle_quant.quantized_linear(
            h, self.fc2_packed, self.fc2_params, self.fc2_multiplier, torch.float32
        )

    def reference(self, x):
        qd = torch.ops.quantized_decomposed
        xq = qd.quantize_per_tensor(x, *self.x_q, *U8)
        h = F.linear(qd.dequantize_per_tensor(xq, *self.x_q, *U8), dequantize_weight(*self.w1), self.b1)
        hq = qd.quantize_per_tensor(torch.relu(h), *self.h_q, *U8)
        y = F.linear(qd.dequantize_per_tensor(hq, *self.h_q, *U8), dequantize_weight(*self.w2), self.b2)
        return y, (0.5 * self.h_q[0] * self.w2[1].max()).item()  # output, half a bias step


class CNN(torch.nn.Module):
    def __init__(self, g):
        super().__init__()
        cq = torch.ops.circle_quant
        self.x_q, self.h_q, self.y_q = (0.04, -5), (6.0 / 255, -128), (0.03, 3)
        self.w1 = quantized_weight(g, (16, 3, 3, 3), torch.int8)
        self.b1 = torch.randn(16, generator=g) * 0.2
        self.w2 = quantized_weight(g, (16, 1, 3, 3), torch.int8)  # depthwise
        self.b2 = torch.randn(16, generator=g) * 0.2
        p1 = cq.conv2d_prepack(
            *self.w1, self.b1, [1, 1], [1, 1], [1, 1], 1, *self.x_q, torch.int8, *self.h_q, torch.int8, 0.0, 6.0
        )
        p2 = cq.conv2d_prepack(
            *self.w2, self.b2, [2, 2], [1, 1], [1, 1], 16, *self.h_q, torch.int8, *self.y_q, torch.int8
        )
        for i, plan in enumerate((p1, p2), 1):
            for name, t in zip(("packed", "params", "multiplier"), plan):
                self.register_buffer(f"conv{i}_{name}", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cq = torch.ops.circle_quant
        q = cq.quantize_per_tensor(x, 0.04, -5, -128, 127, torch.int8)
        h = cq.quantized_conv2d(
            q,
            self.conv1_packed,
            self.conv1_params,
            self.conv1_multiplier,
            [3, 3],
            [1, 1],
            [1, 1],
            [1, 1],
            1,
            torch.int8,
        )
        y = cq.quantized_conv2d(
            h,
            self.conv2_packed,
            self.conv2_params,
            self.conv2_multiplier,
            [3, 3],
            [2, 2],
            [1, 1],
            [1, 1],
            16,
            torch.int8,
        )
        return cq.dequantize_per_tensor(y, 0.03, 3, -128, 127, torch.int8)

    def reference(self, x):
        qd = torch.ops.quantized_decomposed
        xq = qd.quantize_per_tensor(x, *self.x_q, *I8)
        h = F.conv2d(qd.dequantize_per_tensor(xq, *self.x_q, *I8), dequantize_weight(*self.w1), self.b1, 1, 1)
        hq = qd.quantize_per_tensor(F.hardtanh(h, 0.0, 6.0), *self.h_q, *I8)
        y = F.conv2d(
            qd.dequantize_per_tensor(hq, *self.h_q, *I8), dequantize_weight(*self.w2), self.b2, 2, 1, groups=16
        )
        yq = qd.quantize_per_tensor(y, *self.y_q, *I8)
        return qd.dequantize_per_tensor(yq, *self.y_q, *I8), self.y_q[0]  # within one output step


class Data(torch.nn.Module):
    """Tensors for the C++ test, as buffers of a scripted module (torch::jit::load reads them)."""

    def __init__(self, **tensors):
        super().__init__()
        for name, t in tensors.items():
            self.register_buffer(name, t)

    def forward(self) -> torch.Tensor:
        return self.input


def write(name, model, x, out: Path):
    scripted = torch.jit.script(model)
    expected = scripted(x)
    reference, tolerance = model.reference(x)
    assert (expected - reference).abs().max().item() <= tolerance * 1.001 + 1e-6, name
    scripted.save(str(out / f"{name}.pt"))
    data = Data(input=x, expected=expected, reference=reference, tolerance=torch.tensor(tolerance * 1.001 + 1e-6))
    torch.jit.script(data).save(str(out / f"{name}_data.pt"))
    print(f"wrote {out / name}.pt and {name}_data.pt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", required=True, help="libtorch_circle.so to load")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # torch.jit: deprecated, supported
    import torch.ao.quantization.fx._decomposed  # noqa: F401  torch.ops.quantized_decomposed

    torch.ops.load_library(args.library)
    args.out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    write("mlp", MLP(g), torch.randn(4, 24, generator=g) * 1.5, args.out)
    write("cnn", CNN(g), torch.randn(2, 3, 12, 12, generator=g), args.out)


if __name__ == "__main__":
    main()
