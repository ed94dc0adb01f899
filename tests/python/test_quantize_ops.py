"""circle_quant quantize / dequantize against torch.ops.quantized_decomposed, bit for bit."""

import random

import pytest
import torch
from torch.library import opcheck

from conftest import assert_bits_equal

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed

DTYPE_RANGES = {
    torch.uint8: [(0, 255), (0, 127), (3, 200)],
    torch.int8: [(-128, 127), (-127, 127), (-64, 63)],
    torch.uint16: [(0, 65535)],
    torch.int16: [(-32768, 32767), (-32767, 32767)],
    torch.int32: [(-(2**31), 2**31 - 1), (-1000, 1000)],
}
CASES = [(dt, lo, hi) for dt, ranges in DTYPE_RANGES.items() for lo, hi in ranges]


def random_shapes(rng, count):
    fixed = [(), (0,), (1,), (7,), (16,), (17,), (33,), (65,), (3, 0, 4), (2, 3, 4, 5), (1000,), (4097,)]
    extra = [tuple(rng.randint(1, 9) for _ in range(rng.randint(1, 4))) for _ in range(count)]
    return fixed + extra


def edge_values(scale, zero_point, qmin, qmax, n):
    """Ties at .5 quantization steps, saturating magnitudes, infinities, zeros and denormals."""
    k = torch.arange(-n // 2, n // 2, dtype=torch.float32)
    ties = (k + 0.5) * scale
    far = torch.tensor(
        [
            1e30,
            -1e30,
            float("inf"),
            float("-inf"),
            0.0,
            -0.0,
            1e-42,
            -1e-42,
            (qmax - zero_point + 0.5) * scale,
            (qmin - zero_point - 0.5) * scale,
        ]
    )
    return torch.cat([ties, far])


def random_qparams(rng, qmin, qmax):
    """A scale over five decades and a zero point inside the range (kept float-exact)."""
    return 10 ** rng.uniform(-4, 1), rng.randint(max(qmin, -1000), min(qmax, 1000))


def random_input(shape, scale, qmin, qmax, zero_point):
    span = (qmax - qmin) * scale
    # Cover the representable range and a margin that saturates on both sides.
    return (torch.rand(shape) * 1.4 - 0.7) * span + (qmin + qmax - 2 * zero_point) / 2 * scale


def compare_quantize(x, scale, zero_point, qmin, qmax, dtype):
    args = (scale, zero_point, qmin, qmax, dtype)
    actual, expected = cq.quantize_per_tensor(x, *args), qd.quantize_per_tensor(x, *args)
    if dtype == torch.int32:
        # quantized_decomposed casts 2^31 (the float nearest qmax) to int32, which overflows;
        # circle_quant saturates (docs/numerics.md). Compare only where torch is defined.
        defined = (x * (1.0 / scale)).abs() < 2.0**30
        actual, expected = actual[defined], expected[defined]
    assert_bits_equal(actual, expected)


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
def test_quantize_per_tensor_matches_decomposed(isa, dtype, qmin, qmax):
    rng = random.Random(f"{dtype}{qmin}{qmax}")
    for shape in random_shapes(rng, 10):
        scale, zero_point = random_qparams(rng, qmin, qmax)
        x = random_input(shape, scale, qmin, qmax, zero_point)
        compare_quantize(x, scale, zero_point, qmin, qmax, dtype)


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
def test_quantize_per_tensor_edge_values(isa, dtype, qmin, qmax):
    for scale in (2.0**-7, 0.25, 1.0, 3.0):  # powers of two make exact .5 ties
        zero_point = (qmin + qmax) // 2 if dtype != torch.int32 else 0
        x = edge_values(scale, zero_point, qmin, qmax, 300)
        compare_quantize(x, scale, zero_point, qmin, qmax, dtype)


def test_ties_round_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5])
    q = cq.quantize_per_tensor(x, 1.0, 0, -128, 127, torch.int8)
    assert q.tolist() == [0, 2, 2, 0, -2, -2]


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
def test_dequantize_per_tensor_matches_decomposed(isa, dtype, qmin, qmax):
    rng = random.Random(f"dq{dtype}{qmin}")
    for shape in random_shapes(rng, 10):
        scale, zero_point = random_qparams(rng, qmin, qmax)
        q = torch.randint(qmin, qmax, shape, dtype=torch.int64).to(dtype)
        args = (scale, zero_point, qmin, qmax, dtype)
        assert_bits_equal(cq.dequantize_per_tensor(q, *args), qd.dequantize_per_tensor(q, *args))


@pytest.mark.parametrize("out_dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dequantize_out_dtype(out_dtype):
    q = torch.randint(0, 256, (100,), dtype=torch.uint8)
    args = (0.0173, 17, 0, 255, torch.uint8)
    assert_bits_equal(
        cq.dequantize_per_tensor(q, *args, out_dtype=out_dtype), qd.dequantize_per_tensor(q, *args, out_dtype=out_dtype)
    )


@pytest.mark.parametrize("in_dtype", [torch.float16, torch.bfloat16])
def test_quantize_accepts_half_precision_input(in_dtype):
    x = torch.randn(257).to(in_dtype)
    args = (0.02, 5, -128, 127, torch.int8)
    assert_bits_equal(cq.quantize_per_tensor(x, *args), qd.quantize_per_tensor(x, *args))


def reference_dequantize_per_channel(q, scales, zps, axis, qmin, qmax, dtype):
    if dtype == torch.uint16:
        # quantized_decomposed cannot promote uint16 with int64 zero points; the same formula on
        # the values widened to int32 is the reference.
        return qd.dequantize_per_channel(q.to(torch.int32), scales, zps, axis, qmin, qmax, torch.int32)
    return qd.dequantize_per_channel(q, scales, zps, axis, qmin, qmax, dtype)


def layouts(x):
    """The same values as contiguous, channels_last (4-D), transposed and strided views."""
    yield "contiguous", x
    if x.dim() == 4:
        yield "channels_last", x.contiguous(memory_format=torch.channels_last)
    if x.dim() >= 2:
        yield "transposed", x.transpose(0, -1).contiguous().transpose(0, -1)
    yield "sliced", torch.cat([x, x], dim=-1)[..., : x.shape[-1]] if x.dim() else x


@pytest.mark.parametrize("dtype,qmin,qmax", [c for c in CASES if c[0] != torch.int32])
def test_per_tensor_non_contiguous(isa, dtype, qmin, qmax):
    x = torch.randn(3, 5, 7, 9)
    for name, view in layouts(x):
        args = (0.01, (qmin + qmax) // 2, qmin, qmax, dtype)
        q = cq.quantize_per_tensor(view, *args)
        assert_bits_equal(q, qd.quantize_per_tensor(view, *args))
        assert_bits_equal(cq.dequantize_per_tensor(q, *args), qd.dequantize_per_tensor(q, *args))
        if name != "sliced":  # dense layouts keep their strides, as in quantized_decomposed
            assert q.stride() == view.stride(), name


def channel_params(rng, channels, qmin, qmax, zp_dtype=torch.int64, scale_dtype=torch.float32):
    scales = torch.tensor([10 ** rng.uniform(-4, 0) for _ in range(channels)], dtype=scale_dtype)
    zps = torch.tensor([rng.randint(max(qmin, -500), min(qmax, 500)) for _ in range(channels)])
    return scales, zps.to(zp_dtype)


@pytest.mark.parametrize("dtype,qmin,qmax", CASES)
def test_per_channel_matches_decomposed(isa, dtype, qmin, qmax):
    rng = random.Random(f"pc{dtype}{qmin}")
    for _ in range(12):
        shape = tuple(rng.randint(1, 9) for _ in range(rng.randint(1, 4)))
        axis = rng.randrange(len(shape))
        scales, zps = channel_params(rng, shape[axis], qmin, qmax)
        x = torch.randn(shape) * scales.max() * 50
        for _name, view in layouts(x):
            args = (scales, zps, axis, qmin, qmax, dtype)
            q = cq.quantize_per_channel(view, *args)
            assert_bits_equal(q, qd.quantize_per_channel(view, *args))
            assert_bits_equal(cq.dequantize_per_channel(q, *args), reference_dequantize_per_channel(q, *args))


@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_per_channel_innermost_and_wide(isa, axis):
    # Wide channel counts exercise the channel-wise (innermost axis) kernels' vector body and tail.
    rng = random.Random(axis)
    x = torch.randn(5, 37, 3, 70)
    scales, zps = channel_params(rng, x.shape[axis], -128, 127)
    args = (scales, zps, axis, -128, 127, torch.int8)
    for _name, view in layouts(x):
        q = cq.quantize_per_channel(view, *args)
        assert_bits_equal(q, qd.quantize_per_channel(view, *args))
        assert_bits_equal(cq.dequantize_per_channel(q, *args), qd.dequantize_per_channel(q, *args))


@pytest.mark.parametrize(
    "scale_dtype,zp_dtype",
    [
        (torch.float64, torch.int64),
        (torch.float32, torch.float32),
        (torch.float32, torch.int32),
        (torch.float32, torch.float64),
    ],
)
def test_per_channel_parameter_dtypes(scale_dtype, zp_dtype):
    rng = random.Random(7)
    x = torch.randn(6, 11)
    scales, zps = channel_params(rng, 6, 0, 255, zp_dtype, scale_dtype)
    args = (scales, zps, 0, 0, 255, torch.uint8)
    q = cq.quantize_per_channel(x, *args)
    assert_bits_equal(q, qd.quantize_per_channel(x, *args))
    assert_bits_equal(cq.dequantize_per_channel(q, *args), qd.dequantize_per_channel(q, *args))


def test_dequantize_per_channel_without_zero_points():
    q = torch.randint(-127, 128, (8, 4), dtype=torch.int8)
    scales = torch.rand(8) + 0.01
    args = (scales, None, 0, -127, 127, torch.int8)
    assert_bits_equal(cq.dequantize_per_channel(q, *args), qd.dequantize_per_channel(q, *args))


def test_int32_bias_per_channel():
    q = torch.randint(-(2**30), 2**30, (16,), dtype=torch.int32)
    scales, zps = torch.rand(16) * 1e-4 + 1e-6, torch.zeros(16, dtype=torch.int64)
    args = (scales, zps, 0, -(2**31), 2**31 - 1, torch.int32)
    assert_bits_equal(cq.dequantize_per_channel(q, *args), qd.dequantize_per_channel(q, *args))


def test_multithreaded_results_do_not_depend_on_thread_count():
    x = torch.randn(3_000_000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cq.quantize_per_tensor(x, 0.01, 0, -128, 127, torch.int8)
        torch.set_num_threads(max(2, threads))
        many = cq.quantize_per_tensor(x, 0.01, 0, -128, 127, torch.int8)
    finally:
        torch.set_num_threads(threads)
    assert_bits_equal(one, many)


# --- bad input: clear errors naming the op and the argument -------------------------------------

BAD_PER_TENSOR = [
    (dict(scale=0.0), ValueError, "scale must be finite and > 0"),
    (dict(scale=-1.0), ValueError, "scale must be finite and > 0"),
    (dict(scale=float("nan")), ValueError, "scale must be finite"),
    (dict(scale=float("inf")), ValueError, "scale must be finite"),
    (dict(zero_point=300), ValueError, "zero_point 300 is outside"),
    (dict(qmin=-1), ValueError, "does not fit in"),
    (dict(qmax=256), ValueError, "does not fit in"),
    (dict(qmin=10, qmax=5, zero_point=7), ValueError, "greater than quant_max"),
    (dict(dtype=torch.float32), TypeError, "dtype must be one of"),
]


@pytest.mark.parametrize("override,error,message", BAD_PER_TENSOR)
@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_per_tensor_argument_errors(override, error, message, device):
    a = dict(scale=0.1, zero_point=0, qmin=0, qmax=255, dtype=torch.uint8)
    a.update(override)
    x = torch.randn(4, device=device)
    with pytest.raises(error, match=message) as info:
        cq.quantize_per_tensor(x, a["scale"], a["zero_point"], a["qmin"], a["qmax"], a["dtype"])
    assert "circle_quant::quantize_per_tensor" in str(info.value)


def test_wrong_input_dtypes():
    with pytest.raises(TypeError, match="input must be a float32, float16 or bfloat16 tensor"):
        cq.quantize_per_tensor(torch.ones(3, dtype=torch.int32), 0.1, 0, 0, 255, torch.uint8)
    with pytest.raises(TypeError, match="input has dtype torch.int8 but the dtype argument says"):
        cq.dequantize_per_tensor(torch.ones(3, dtype=torch.int8), 0.1, 0, 0, 255, torch.uint8)


def test_per_channel_argument_errors():
    x = torch.randn(4, 3)
    s, z = torch.ones(4), torch.zeros(4, dtype=torch.int64)
    with pytest.raises(IndexError, match="axis 2 is out of range"):
        cq.quantize_per_channel(x, s, z, 2, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match=r"scales has shape \[3\] but input has 4 channels"):
        cq.quantize_per_channel(x, torch.ones(3), z, 0, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match=r"zero_points has shape \[5\]"):
        cq.quantize_per_channel(x, s, torch.zeros(5), 0, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match=r"scales\[2\] = 0"):
        cq.quantize_per_channel(x, torch.tensor([1.0, 1.0, 0.0, 1.0]), z, 0, 0, 255, torch.uint8)
    with pytest.raises(ValueError, match=r"zero_points\[1\] = 999"):
        cq.quantize_per_channel(x, s, torch.tensor([0, 999, 0, 0]), 0, 0, 255, torch.uint8)
    with pytest.raises(TypeError, match="scales must be a floating-point tensor"):
        cq.quantize_per_channel(x, torch.ones(4, dtype=torch.int64), z, 0, 0, 255, torch.uint8)


@pytest.mark.parametrize("shape,position", [((100,), (0,)), ((100,), (99,)), ((3, 40), (2, 17))])
def test_nan_input_is_an_error_naming_its_index(isa, shape, position):
    x = torch.randn(shape)
    x[position] = float("nan")
    with pytest.raises(
        ValueError, match=rf"contains 1 NaN value\(s\), the first at index \[{', '.join(map(str, position))}\]"
    ):
        cq.quantize_per_tensor(x, 0.1, 0, -128, 127, torch.int8)
    with pytest.raises(ValueError, match="NaN"):
        cq.quantize_per_channel(x, torch.ones(shape[0]), torch.zeros(shape[0]), 0, -128, 127, torch.int8)


# --- tracing: Meta kernels, opcheck, export, compile ---------------------------------------------

OPCHECK_CASES = [
    (cq.quantize_per_tensor, (torch.randn(3, 4), 0.1, 3, 0, 255, torch.uint8), {}),
    (
        cq.quantize_per_tensor,
        (torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last), 0.1, 0, -128, 127, torch.int8),
        {},
    ),
    (cq.dequantize_per_tensor, (torch.randint(0, 255, (3, 4), dtype=torch.uint8), 0.1, 3, 0, 255, torch.uint8), {}),
    (
        cq.dequantize_per_tensor,
        (torch.randint(0, 255, (5,), dtype=torch.uint8), 0.1, 3, 0, 255, torch.uint8),
        {"out_dtype": torch.bfloat16},
    ),
    (
        cq.quantize_per_channel,
        (torch.randn(4, 6), torch.rand(4) + 0.1, torch.zeros(4, dtype=torch.int64), 0, -128, 127, torch.int8),
        {},
    ),
    (
        cq.dequantize_per_channel,
        (
            torch.randint(-128, 127, (4, 6), dtype=torch.int8),
            torch.rand(6) + 0.1,
            torch.zeros(6, dtype=torch.int64),
            1,
            -128,
            127,
            torch.int8,
        ),
        {},
    ),
    (
        cq.dequantize_per_channel,
        (torch.randint(-128, 127, (4, 6), dtype=torch.int8), torch.rand(4) + 0.1, None, 0, -128, 127, torch.int8),
        {},
    ),
]


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args, kwargs):
    opcheck(op, args, kwargs)


class QuantDequant(torch.nn.Module):
    def forward(self, x):
        q = cq.quantize_per_tensor(x, 0.05, 10, 0, 255, torch.uint8)
        return cq.dequantize_per_tensor(q, 0.05, 10, 0, 255, torch.uint8)


def test_export_and_compile_trace_the_ops():
    x = torch.randn(2, 8)
    ep = torch.export.export(QuantDequant(), (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {"circle_quant.quantize_per_tensor.default", "circle_quant.dequantize_per_tensor.default"} <= targets
    assert_bits_equal(ep.module()(x), QuantDequant()(x))
    compiled = torch.compile(QuantDequant(), backend="aot_eager", fullgraph=True)
    assert_bits_equal(compiled(x), QuantDequant()(x))
