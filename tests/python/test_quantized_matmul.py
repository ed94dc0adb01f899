"""circle_quant.quantized_matmul (two quantized activations, attention's Q·Kᵀ and P·V) and the
backend pass that uses it.

References: the exact model of docs/numerics.md ("Integer GEMM": int64 products, the float or
fixed-point output stage), which every ISA must match bit for bit; and the PT2E reference graph
(dequantize → float matmul → quantize), which the float family matches within one step.
"""

import numpy as np
import pytest
import torch
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import torch_circle.backend as backend
from conftest import assert_bits_equal
from models import EncoderLayer, seeded
from test_quantized_linear import multiply_by_quantized_multiplier, quantize_multiplier
from torch_circle.quantizer import CircleQuantizer

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed
RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767)}


def random_ints(shape, dtype, gen):
    lo, hi = RANGES[dtype]
    return torch.randint(lo, hi + 1, shape, generator=gen, dtype=torch.int32).to(dtype)


def exact_model(a, sa, za, b, sb, zb, sy, zy, out_dtype, requant="float"):
    """docs/numerics.md with exact int64 products (b broadcast when 2-D)."""
    total = (a.long() - za) @ (b.long() - zb)
    assert total.abs().max().item() < 2**31 if total.numel() else True
    f32 = np.float32
    lo, hi = RANGES[out_dtype]
    m = np.float64(f32(sa) * f32(sb)) / sy
    t = total.numpy()
    if requant == "float":
        q = np.clip(np.rint(t.astype(f32) * f32(m)) + f32(zy), lo, hi)
    else:
        m0, shift = quantize_multiplier(m)
        q = np.clip(multiply_by_quantized_multiplier(t, np.int64(m0), np.int64(shift)) + zy, lo, hi)
    return torch.from_numpy(q.astype(np.int64)).to(out_dtype)


def pt2e_reference(a, sa, za, b, sb, zb, sy, zy, out_dtype):
    x = qd.dequantize_per_tensor(a, sa, za, *RANGES[a.dtype], a.dtype)
    w = qd.dequantize_per_tensor(b, sb, zb, *RANGES[b.dtype], b.dtype)
    return qd.quantize_per_tensor(torch.matmul(x, w), sy, zy, *RANGES[out_dtype], out_dtype)


def case(a_shape, b_shape, a_dtype, b_dtype, out_dtype, gen):
    """Random operands with zero points anywhere in their range, and an output scale that spreads
    the products over most of the output type (with some saturation at both ends)."""
    a, b = random_ints(a_shape, a_dtype, gen), random_ints(b_shape, b_dtype, gen)
    za = int(torch.randint(*RANGES[a_dtype], (), generator=gen))
    zb = int(torch.randint(*RANGES[b_dtype], (), generator=gen))
    sa, sb = 0.01 + 0.05 * torch.rand((), generator=gen).item(), 0.01 + 0.05 * torch.rand((), generator=gen).item()
    k = a_shape[-1]
    spread = sa * sb * 128 * 128 * max(k, 1) ** 0.5  # about the products' standard deviation
    lo, hi = RANGES[out_dtype]
    sy = 3 * spread / (hi - lo)
    zy = int(torch.randint(lo + (hi - lo) // 4, hi - (hi - lo) // 4, (), generator=gen))
    return a, sa, za, b, sb, zb, sy, zy, out_dtype


SHAPES = [  # (input, other): K and N tails, one row, batch dimensions, a shared 2-D other
    ((1, 1), (1, 1)),
    ((3, 5), (5, 17)),
    ((7, 64), (64, 33)),
    ((2, 3, 9, 66), (2, 3, 66, 48)),
    ((4, 40, 130), (4, 130, 31)),
    ((2, 6, 37, 16), (16, 80)),
    ((1, 129, 3), (1, 3, 129)),
]


@pytest.mark.parametrize("a_shape,b_shape", SHAPES)
@pytest.mark.parametrize(
    "a_dtype,b_dtype,out_dtype",
    [
        (torch.uint8, torch.uint8, torch.uint8),
        (torch.int8, torch.int8, torch.int8),
        (torch.uint8, torch.int8, torch.int16),
        (torch.int8, torch.uint8, torch.uint8),
    ],
)
@pytest.mark.parametrize("requant", ["float", "fixed_point"])
def test_every_isa_matches_the_exact_model(isa, a_shape, b_shape, a_dtype, b_dtype, out_dtype, requant):
    gen = torch.Generator().manual_seed(len(a_shape) * 1000 + a_shape[-1] * 7 + b_shape[-1])
    args = case(a_shape, b_shape, a_dtype, b_dtype, out_dtype, gen)
    assert_bits_equal(cq.quantized_matmul(*args, requant), exact_model(*args, requant))


def test_strided_operands_are_read_in_place_or_copied_correctly(isa):
    """The layouts attention produces: heads split out of [batch, seq, heads * dim] (Q, V: rows
    strided, the other dimension dense), Kᵀ as a transpose (K contiguous), and one with no dense
    dimension at all (the general packing path)."""
    gen = torch.Generator().manual_seed(3)
    batch, seq, heads, dim = 2, 23, 3, 20
    q = random_ints((batch, seq, heads * dim), torch.uint8, gen).view(batch, seq, heads, dim).transpose(1, 2)
    k = random_ints((batch, seq, heads * dim), torch.uint8, gen).view(batch, seq, heads, dim).transpose(1, 2)
    v = random_ints((batch, seq, heads * dim), torch.uint8, gen).view(batch, seq, heads, dim).transpose(1, 2)
    p = random_ints((batch, heads, seq, seq), torch.uint8, gen)
    wide = random_ints((batch, heads, 2 * dim, 2 * seq), torch.int8, gen)
    for a, b in ((q, k.transpose(-1, -2)), (p, v), (q, wide[..., ::2, ::2]), (p.transpose(-1, -2), v)):
        args = (a, 0.02, 131, b, 0.03, 5 if b.dtype == torch.int8 else 120, 0.5, 128, torch.uint8)
        assert_bits_equal(cq.quantized_matmul(*args), exact_model(*args))


def test_saturation_and_extreme_values(isa):
    # Largest products of both signs: every output clamps, to qmax and to qmin.
    a = torch.full((2, 4, 300), 255, dtype=torch.uint8)
    for b_value, expected in ((-128, -128), (127, 127)):
        b = torch.full((2, 300, 20), b_value, dtype=torch.int8)
        args = (a, 0.1, 0, b, 0.1, 0, 0.01, 0, torch.int8)
        y = cq.quantized_matmul(*args)
        assert_bits_equal(y, exact_model(*args))
        assert (y == expected).all()
    # Zero points at the range ends, K well past the vector widths.
    gen = torch.Generator().manual_seed(4)
    a, b = random_ints((3, 70, 1000), torch.uint8, gen), random_ints((3, 1000, 40), torch.uint8, gen)
    for za, zb in ((0, 255), (255, 0), (255, 255)):
        args = (a, 0.01, za, b, 0.01, zb, 2.0, 128, torch.uint8)
        assert_bits_equal(cq.quantized_matmul(*args), exact_model(*args))


def test_within_one_step_of_the_pt2e_reference():
    gen = torch.Generator().manual_seed(5)
    args = case((4, 12, 128, 64), (4, 12, 64, 128), torch.uint8, torch.uint8, torch.uint8, gen)
    diff = (cq.quantized_matmul(*args).int() - pt2e_reference(*args).int()).abs()
    assert diff.max().item() <= 1
    assert (diff > 0).float().mean().item() < 0.01  # float accumulation order, at near-ties only


def test_empty_operands():
    u8 = torch.uint8
    for a_shape, b_shape in (((0, 4, 8), (0, 8, 5)), ((2, 0, 8), (2, 8, 5)), ((2, 4, 8), (2, 8, 0))):
        y = cq.quantized_matmul(
            torch.zeros(a_shape, dtype=u8), 0.1, 0, torch.zeros(b_shape, dtype=u8), 0.1, 0, 1.0, 3, u8
        )
        assert y.shape == (*a_shape[:-1], b_shape[-1])
    # K = 0: every output is requantize(0) = the output zero point.
    y = cq.quantized_matmul(torch.zeros(2, 3, 0, dtype=u8), 0.1, 7, torch.zeros(2, 0, 4, dtype=u8), 0.1, 9, 1.0, 3, u8)
    assert torch.equal(y, torch.full((2, 3, 4), 3, dtype=u8))


@pytest.mark.parametrize("batch,m", [(1, 300), (6, 40)])
def test_results_do_not_depend_on_the_thread_count(batch, m):
    gen = torch.Generator().manual_seed(6)
    args = case((batch, m, 96), (batch, 96, 70), torch.uint8, torch.uint8, torch.uint8, gen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cq.quantized_matmul(*args)
        torch.set_num_threads(2)
        two = cq.quantized_matmul(*args)
    finally:
        torch.set_num_threads(threads)
    assert_bits_equal(two, one)
    assert_bits_equal(one, exact_model(*args))


def test_errors_name_the_op_and_argument():
    u8, f = torch.uint8, torch.zeros(2, 3)
    a, b = torch.zeros(2, 3, dtype=u8), torch.zeros(3, 4, dtype=u8)
    call = cq.quantized_matmul
    with pytest.raises(TypeError, match="quantized_matmul: input must be a uint8 or int8 tensor, got torch.float32"):
        call(f, 0.1, 0, b, 0.1, 0, 0.1, 0, u8)
    with pytest.raises(TypeError, match="quantized_matmul: other must be a uint8 or int8"):
        call(a, 0.1, 0, b.float(), 0.1, 0, 0.1, 0, u8)
    with pytest.raises(TypeError, match="output_dtype must be torch.uint8, torch.int8 or torch.int16"):
        call(a, 0.1, 0, b, 0.1, 0, 0.1, 0, torch.float32)
    with pytest.raises(RuntimeError, match="quantized_matmul: input .* and other .* do not chain"):
        call(a, 0.1, 0, torch.zeros(4, 3, dtype=u8), 0.1, 0, 0.1, 0, u8)
    with pytest.raises(RuntimeError, match="no broadcasting"):
        call(torch.zeros(2, 2, 3, dtype=u8), 0.1, 0, torch.zeros(1, 3, 4, dtype=u8), 0.1, 0, 0.1, 0, u8)
    with pytest.raises(ValueError, match="at least 2-D"):
        call(torch.zeros(3, dtype=u8), 0.1, 0, b, 0.1, 0, 0.1, 0, u8)
    with pytest.raises(ValueError, match="quantized_matmul: zero_point 300"):
        call(a, 0.1, 300, b, 0.1, 0, 0.1, 0, u8)
    with pytest.raises(ValueError, match="quantized_matmul: scale"):
        call(a, 0.1, 0, b, -1.0, 0, 0.1, 0, u8)
    with pytest.raises(ValueError, match='requant must be "float" or "fixed_point"'):
        call(a, 0.1, 0, b, 0.1, 0, 0.1, 0, u8, "nearest")


def _opcheck_cases():
    gen = torch.Generator().manual_seed(7)
    mixed = case((2, 5, 8), (2, 8, 6), torch.uint8, torch.int8, torch.uint8, gen)
    shared = case((3, 4, 16), (16, 20), torch.int8, torch.int8, torch.int16, gen)
    return [(cq.quantized_matmul, mixed, {}), (cq.quantized_matmul, shared, {"requant": "fixed_point"})]


OPCHECK_CASES = _opcheck_cases()  # test_registry.py checks that every op has some


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES)
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(op.default, args, kwargs)


def test_meta_kernel_shapes():
    gen = torch.Generator().manual_seed(8)
    args = case((2, 5, 8), (2, 8, 6), torch.uint8, torch.int8, torch.uint8, gen)
    meta = cq.quantized_matmul(args[0].to("meta"), *args[1:3], args[3].to("meta"), *args[4:])
    assert meta.shape == (2, 5, 6) and meta.dtype == torch.uint8


# --- the backend pass ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_backend_runs_attention_matmuls_on_integers(preset):
    model = seeded(EncoderLayer(32, 4), 0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, 8, 32), generator=gen)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset=preset))
    for _ in range(4):
        prepared(torch.randn(x.shape, generator=gen))
    gm = convert_pt2e(prepared)
    with torch.no_grad():
        expected = gm(x)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    assert compiled.report.matmuls == 2, compiled.report.summary()  # Q·Kᵀ and P·V
    ops = [n.target for n in compiled.gm.graph.nodes if n.op == "call_function"]
    assert cq.quantized_matmul.default in ops
    assert not any(t in (torch.ops.aten.matmul.default, torch.ops.aten.bmm.default) for t in ops)
    with torch.no_grad():
        actual = compiled(x)
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0][0]
    step = out.args[1]
    assert (actual - expected).abs().max().item() <= 2.001 * step  # two near-ties, compounded at most
    assert (actual - expected).abs().mean().item() <= 0.02 * step


def test_backend_leaves_broadcasting_and_float_matmuls():
    class Broadcast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            h = self.fc(x)  # [2, 3, 4, 8]
            return torch.matmul(h, h[:1].transpose(-1, -2))  # other's batch 1 broadcasts

    model = seeded(Broadcast(), 0)
    x = torch.randn(2, 3, 4, 8)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset="uint8"))
    prepared(x)
    gm = convert_pt2e(prepared)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    assert compiled.report.matmuls == 0
    with torch.no_grad():
        assert torch.equal(compiled(x), gm(x))
