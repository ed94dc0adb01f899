"""Fake quantization for QAT: forward equals dequantize(quantize(x)), straight-through backward."""

import pytest
import torch
from torch.library import opcheck

from conftest import assert_bits_equal

cq = torch.ops.circle_quant


@pytest.mark.parametrize("qmin,qmax,zero_point", [(0, 255, 37), (-128, 127, 0), (-127, 127, 0), (-32768, 32767, 5)])
def test_per_tensor_forward_matches_torch_and_quant_dequant(isa, qmin, qmax, zero_point):
    scale = torch.tensor(0.0123).item()  # a float32 value, as observers produce
    x = torch.randn(4, 33) * (qmax - qmin) * scale / 3
    y = cq.fake_quantize_per_tensor(x, scale, zero_point, qmin, qmax)
    assert_bits_equal(y, torch.fake_quantize_per_tensor_affine(x, scale, zero_point, qmin, qmax))
    dtype = torch.int16 if qmax > 255 else (torch.uint8 if qmin == 0 else torch.int8)
    q = cq.quantize_per_tensor(x, scale, zero_point, qmin, qmax, dtype)
    assert_bits_equal(y, cq.dequantize_per_tensor(q, scale, zero_point, qmin, qmax, dtype))


@pytest.mark.parametrize("axis", [0, 1, 3])
def test_per_channel_forward_matches_torch(isa, axis):
    x = torch.randn(6, 5, 4, 7)
    c = x.shape[axis]
    scales = torch.rand(c) * 0.05 + 0.005
    zps = torch.randint(-20, 20, (c,), dtype=torch.int32)
    y = cq.fake_quantize_per_channel(x, scales, zps, axis, -128, 127)
    ref = torch.fake_quantize_per_channel_affine(x, scales, zps, axis, -128, 127)
    assert_bits_equal(y, ref)
    y_cl = cq.fake_quantize_per_channel(x.contiguous(memory_format=torch.channels_last), scales, zps, axis, -128, 127)
    assert_bits_equal(y_cl.contiguous(), ref)


def test_straight_through_gradient_is_masked_outside_the_range(isa):
    x = torch.linspace(-3, 3, 601, requires_grad=True)
    y = cq.fake_quantize_per_tensor(x, 0.01, 0, -128, 127)  # representable range [-1.28, 1.27]
    y.backward(torch.full_like(x, 2.0))
    inside = (x.detach() >= -1.285) & (x.detach() <= 1.275)
    assert torch.equal(x.grad, torch.where(inside, 2.0, 0.0))


def test_per_channel_gradient_matches_torch():
    x = torch.randn(4, 9) * 3
    scales, zps = torch.tensor([0.01, 0.02, 0.03, 0.1]), torch.zeros(4, dtype=torch.int32)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    cq.fake_quantize_per_channel(x1, scales, zps, 0, -128, 127).sum().backward()
    torch.fake_quantize_per_channel_affine(x2, scales, zps, 0, -128, 127).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def test_qat_loop_learns_through_fake_quantize():
    torch.manual_seed(0)
    w = torch.zeros(8, requires_grad=True)
    target = torch.linspace(-1, 1, 8)
    opt = torch.optim.SGD([w], lr=0.5)
    for _ in range(50):
        loss = ((cq.fake_quantize_per_tensor(w, 1 / 64, 0, -128, 127) - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3


def test_errors():
    with pytest.raises(TypeError, match="fake_quantize_per_tensor: input must be float32"):
        cq.fake_quantize_per_tensor(torch.ones(3, dtype=torch.float64), 0.1, 0, 0, 255)
    with pytest.raises(ValueError, match="scale must be finite and > 0"):
        cq.fake_quantize_per_tensor(torch.ones(3), -0.1, 0, 0, 255)
    x = torch.ones(3)
    x[1] = float("nan")
    with pytest.raises(ValueError, match=r"NaN value\(s\), the first at index \[1\]"):
        cq.fake_quantize_per_tensor(x, 0.1, 0, 0, 255)


OPCHECK_CASES = [
    (cq.fake_quantize_per_tensor, (torch.randn(3, 5, requires_grad=True), 0.1, 2, 0, 255)),
    (
        cq.fake_quantize_per_channel,
        (torch.randn(3, 5, requires_grad=True), torch.rand(3) + 0.05, torch.zeros(3, dtype=torch.int32), 0, -128, 127),
    ),
    (cq._fake_quantize_per_tensor_cachemask, (torch.randn(3, 5), 0.1, 2, 0, 255)),
    (
        cq._fake_quantize_per_channel_cachemask,
        (torch.randn(3, 5), torch.rand(5) + 0.05, torch.zeros(5, dtype=torch.int32), 1, -128, 127),
    ),
]


@pytest.mark.parametrize("op,args", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args):
    opcheck(op, args)
