"""circle_quant.quantized_softmax against the PT2E reference dequantize → softmax → quantize, and
the backend pass that uses it."""

import pytest
import torch
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import torch_circle.backend as backend
from torch_circle.quantizer import CircleQuantizer

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed
RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127)}


def reference(x, scale, zero_point, out_scale, out_zero_point, out_dtype):
    lo, hi = RANGES[x.dtype]
    olo, ohi = RANGES[out_dtype]
    probabilities = torch.softmax(qd.dequantize_per_tensor(x, scale, zero_point, lo, hi, x.dtype), -1)
    return qd.quantize_per_tensor(probabilities, out_scale, out_zero_point, olo, ohi, out_dtype)


def random_bytes(shape, dtype, gen):
    lo, hi = RANGES[dtype]
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int32).to(dtype)


@pytest.mark.parametrize("in_dtype", [torch.uint8, torch.int8])
@pytest.mark.parametrize("out_dtype", [torch.uint8, torch.int8])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 4, 16, 33), (5, 128), (2, 1000)])
def test_matches_the_reference_graph(isa, in_dtype, out_dtype, shape):
    gen = torch.Generator().manual_seed(sum(shape))
    for scale in (0.002, 0.07, 0.5, 4.0):  # from nearly flat rows to one-hot ones
        x = random_bytes(shape, in_dtype, gen)
        zero_point = int(torch.randint(*RANGES[in_dtype], (1,), generator=gen))
        out_zero_point = RANGES[out_dtype][0]  # softmax's output range [0, 1]
        y = cq.quantized_softmax(x, scale, zero_point, 1 / 256, out_zero_point, *RANGES[out_dtype], out_dtype)
        expected = reference(x, scale, zero_point, 1 / 256, out_zero_point, out_dtype)
        # exp from a table built with std::exp vs ATen's vectorized exp, and another summation
        # order: an ulp apart at most, one output step where it crosses a rounding boundary.
        diff = (y.int() - expected.int()).abs()
        assert diff.max().item() <= 1, (scale, zero_point)
        assert (diff > 0).float().mean().item() < 0.01


def test_extreme_rows():
    # Constant rows, a single dominant value, and the type's extremes.
    x = torch.tensor([[0] * 8, [255] * 8, [0] * 7 + [255], [255] + [0] * 7], dtype=torch.uint8)
    y = cq.quantized_softmax(x, 1.0, 0, 1 / 256, 0, 0, 255, torch.uint8)
    assert torch.equal(y, reference(x, 1.0, 0, 1 / 256, 0, torch.uint8))
    assert y[0].tolist() == [32] * 8 and y[2, 7] == 255 and y[2, :7].max() == 0


def test_empty_and_bad_arguments():
    empty = torch.zeros(0, 5, dtype=torch.uint8)
    assert cq.quantized_softmax(empty, 0.1, 0, 1 / 256, 0, 0, 255, torch.uint8).shape == (0, 5)
    x = torch.zeros(2, 3, dtype=torch.uint8)
    with pytest.raises(TypeError, match="quantized_softmax: input must be uint8 or int8"):
        cq.quantized_softmax(x.float(), 0.1, 0, 1 / 256, 0, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match="quantized_softmax"):
        cq.quantized_softmax(x, -0.1, 0, 1 / 256, 0, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match="quantized_softmax"):
        cq.quantized_softmax(x, 0.1, 300, 1 / 256, 0, 0, 255, torch.uint8)


OPCHECK_CASES = [
    (
        cq.quantized_softmax,
        (torch.randint(0, 256, (2, 3, 9), dtype=torch.uint8), 0.05, 120, 1 / 256, 0, 0, 255, torch.uint8),
        {},
    ),
    (
        cq.quantized_softmax,
        (torch.randint(-128, 128, (4, 17), dtype=torch.int8), 0.1, -3, 1 / 256, -128, -128, 127, torch.int8),
        {},
    ),
]  # test_registry.py checks that every op has some


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES)
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(op, args, kwargs)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k = torch.nn.Linear(16, 16), torch.nn.Linear(16, 16)

    def forward(self, x):
        return torch.softmax(self.q(x) @ self.k(x).transpose(-1, -2), dim=-1)


@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_the_backend_runs_quantized_softmax_on_integers(preset):
    torch.manual_seed(0)
    model = Attention().eval()
    x = torch.randn(2, 12, 16)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset))
    for _ in range(3):
        prepared(torch.randn(2, 12, 16))
    gm = convert_pt2e(prepared)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    assert compiled.report.softmaxes == 1, compiled.report.summary()
    targets = {n.target for n in compiled.gm.graph.nodes if n.op == "call_function"}
    assert cq.quantized_softmax.default in targets
    assert not targets & {torch.ops.aten._softmax.default, torch.ops.aten.softmax.int}
    with torch.no_grad():
        expected, actual = gm(x), compiled(x)
    step = next(n for n in gm.graph.nodes if n.op == "output").args[0][0].args[1]
    assert (actual - expected).abs().max().item() <= step * 1.001
