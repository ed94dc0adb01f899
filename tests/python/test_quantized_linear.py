"""circle_quant.linear_prepack / quantized_linear.

Two references: a numpy model of docs/numerics.md ("Integer GEMM": exact int64 accumulation, the
bias and output stage written out) that every ISA must match bit for bit, in both requantization
families; and the PT2E reference graph (dequantize → float linear → activation → quantize), which
the float family matches within one quantization step.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import torch_circle
from conftest import SUPPORTED_ISAS, assert_bits_equal

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed
RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767)}
ACTIVATIONS = {"none": (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0), "clamp": (-0.5, 0.7)}


# --- a layer and its references ------------------------------------------------------------------


class Layer:
    """Random int8 layer data with per-channel or per-tensor weights of either convention."""

    def __init__(self, m, n, k, in_dtype=torch.uint8, weights="int8_channel", bias=True, seed=0, batch_shape=None):
        g = torch.Generator().manual_seed(seed)
        lo, hi = RANGES[in_dtype]
        self.in_dtype = in_dtype
        self.sa = 0.02 + 0.01 * torch.rand((), generator=g).item()
        self.za = int(torch.randint(lo + 20, hi - 20, (), generator=g)) if k else 0
        shape = batch_shape or (m,)
        self.x = torch.randint(lo, hi + 1, (*shape, k), generator=g).to(in_dtype)
        per_channel = weights.endswith("channel")
        count = n if per_channel else 1
        self.ws = (0.005 + 0.01 * torch.rand(count, generator=g)).float()
        if weights.startswith("int8"):
            self.w = torch.randint(-127, 128, (n, k), generator=g).to(torch.int8)
            self.wzp = torch.zeros(count, dtype=torch.int32)
        else:  # uint8 asymmetric (ONE's per-channel convention)
            self.w = torch.randint(0, 256, (n, k), generator=g).to(torch.uint8)
            self.wzp = torch.randint(100, 156, (count,), generator=g).to(torch.int32)
        self.per_channel = per_channel
        self.bias = (torch.randn(n, generator=g) * 0.5) if bias else None

    def dequantized(self):
        lo, hi = RANGES[self.in_dtype]
        x = qd.dequantize_per_tensor(self.x, self.sa, self.za, lo, hi, self.in_dtype)
        wlo, whi = (-128, 127) if self.w.dtype == torch.int8 else (0, 255)
        if self.per_channel:
            w = qd.dequantize_per_channel(self.w, self.ws, self.wzp, 0, wlo, whi, self.w.dtype)
        else:
            w = qd.dequantize_per_tensor(self.w, self.ws.item(), int(self.wzp.item()), wlo, whi, self.w.dtype)
        return x, w

    def float_output(self):
        x, w = self.dequantized()
        return F.linear(x, w, self.bias)

    def output_qparams(self, out_dtype, act):
        """(scale, zero point) spreading the float output over out_dtype's range."""
        y = self.float_output()
        amin, amax = ACTIVATIONS[act]
        if amin is not None or amax is not None:
            y = y.clamp(min=amin, max=amax)
        lo, hi = RANGES[out_dtype]
        ymin, ymax = min(y.min().item(), 0.0), max(y.max().item(), 0.0)
        if out_dtype == torch.int16:  # symmetric, as the int16 preset
            return max(-ymin, ymax) / 32767 or 1.0, 0
        scale = (ymax - ymin) / (hi - lo) or 1.0
        return scale, int(min(hi, max(lo, round(lo - ymin / scale))))

    def prepack(self, sy, zy, out_dtype, act="none", requant="float"):
        amin, amax = ACTIVATIONS[act]
        return torch_circle.ops.linear_prepack(
            self.w,
            self.ws,
            self.wzp,
            self.bias,
            self.sa,
            self.za,
            self.in_dtype,
            sy,
            zy,
            out_dtype,
            amin,
            amax,
            requant,
        )

    def run(self, sy, zy, out_dtype, act="none", requant="float", x=None):
        plan = self.prepack(sy, zy, out_dtype, act, requant)
        return torch_circle.ops.quantized_linear(self.x if x is None else x, *plan, out_dtype)

    def pt2e_reference(self, sy, zy, out_dtype, act):
        y = self.float_output()
        amin, amax = ACTIVATIONS[act]
        if amin is not None or amax is not None:
            y = y.clamp(min=amin, max=amax)
        if out_dtype == torch.float32:
            return y
        return qd.quantize_per_tensor(y, sy, zy, *RANGES[out_dtype], out_dtype)

    # numpy model of docs/numerics.md, "Integer GEMM"
    def numpy_model(self, sy, zy, out_dtype, act="none", requant="float"):
        f32 = np.float32
        n = self.w.shape[0]
        x = self.x.numpy().astype(np.int64).reshape(-1, self.x.shape[-1]) - self.za
        wzp = np.broadcast_to(self.wzp.numpy().astype(np.int64), (n,))
        w = self.w.numpy().astype(np.int64) - wzp[:, None]
        total = x @ w.T
        acc_scale = f32(self.sa) * np.broadcast_to(self.ws.numpy().astype(f32), (n,))  # float product
        if self.bias is not None:
            bq = np.rint(self.bias.numpy().astype(f32) * (f32(1) / acc_scale))
            total = total + np.clip(bq, -(2**31), 2**31 - 1).astype(np.int64)
        assert np.abs(total).max(initial=0) < 2**31
        amin, amax = ACTIVATIONS[act]
        out_shape = (*self.x.shape[:-1], n)
        if out_dtype == torch.float32:
            y = total.astype(f32) * acc_scale
            y = np.fmin(np.fmax(y, f32(-np.inf if amin is None else amin)), f32(np.inf if amax is None else amax))
            return torch.from_numpy(y.astype(f32)).reshape(out_shape)
        lo, hi = RANGES[out_dtype]

        def bound(v):
            if requant == "float":
                q = np.rint(f32(v) * f32(1.0 / sy))
            else:
                r = f32(v) / f32(sy)
                q = np.sign(r) * np.floor(np.abs(r) + f32(0.5))  # std::round: ties away from zero
            return int(np.clip(q, -1e9, 1e9)) + zy

        qmin = lo if amin is None else max(lo, bound(amin))
        qmax = hi if amax is None else min(hi, bound(amax))
        qmin = min(qmin, qmax)
        m = acc_scale.astype(np.float64) / sy
        if requant == "float":
            q = np.rint(total.astype(f32) * m.astype(f32)) + f32(zy)
            q = np.clip(q, qmin, qmax)
        else:
            m0, shift = np.array([quantize_multiplier(v) for v in m], dtype=np.int64).T
            q = np.clip(multiply_by_quantized_multiplier(total, m0, shift) + zy, qmin, qmax)
        return torch.from_numpy(q.astype(np.int64)).to(out_dtype).reshape(out_shape)


def quantize_multiplier(m: float):
    """TFLite's QuantizeMultiplier: m = M0 · 2^shift, M0 in [2^30, 2^31)."""
    mantissa, shift = math.frexp(m)
    q = math.floor(mantissa * 2**31 + 0.5)
    if q == 2**31:
        q, shift = q // 2, shift + 1
    if shift < -31:
        q, shift = 0, 0
    return q, shift


def multiply_by_quantized_multiplier(x, m0, shift):
    """TFLite's MultiplyByQuantizedMultiplier (gemmlowp SRDHM + RoundingDivideByPOT), int64 numpy."""
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    xs = np.clip(x * (np.int64(1) << left), -(2**31), 2**31 - 1)
    ab = xs * m0
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(t >= 0, t // 2**31, -((-t) // 2**31))  # C's truncating division
    mask = (np.int64(1) << right) - 1
    remainder, threshold = high & mask, (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def steps_apart(actual, expected):
    return (actual.to(torch.int32) - expected.to(torch.int32)).abs().max().item() if actual.numel() else 0


# --- numerics --------------------------------------------------------------------------------

CONVENTIONS = [  # (activations, weights)
    (torch.uint8, "uint8_channel"),  # ONE's uint8 preset
    (torch.int8, "int8_channel"),  # TFLite's int8 preset
    (torch.uint8, "int8_channel"),  # x86 inductor quantizer's
    (torch.int8, "int8_tensor"),
    (torch.uint8, "uint8_tensor"),
]


@pytest.mark.parametrize("in_dtype,weights", CONVENTIONS)
@pytest.mark.parametrize("out_dtype", [torch.uint8, torch.int8, torch.int16, torch.float32])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("requant", ["float", "fixed_point"])
def test_matches_numpy_model_and_pt2e_reference(in_dtype, weights, out_dtype, act, requant):
    layer = Layer(13, 37, 70, in_dtype, weights)
    sy, zy = layer.output_qparams(out_dtype, act) if out_dtype != torch.float32 else (1.0, 0)
    actual = layer.run(sy, zy, out_dtype, act, requant)
    assert_bits_equal(actual, layer.numpy_model(sy, zy, out_dtype, act, requant))
    reference = layer.pt2e_reference(sy, zy, out_dtype, act)
    if out_dtype == torch.float32:
        # Only the bias rounding (half a step of the accumulator, sa·sb) and float sums differ.
        bound = 0.5 * layer.sa * layer.ws.max().item() + 1e-5 * reference.abs().max().item()
        assert (actual - reference).abs().max().item() <= bound
        return
    # One quantization step; for int16, whose step can be finer than the accumulator's (sa·sb),
    # the bias rounding adds up to half an accumulator step.
    allowed = 1 + math.ceil(0.5 * layer.sa * layer.ws.max().item() / sy) if out_dtype == torch.int16 else 1
    assert steps_apart(actual, reference) <= allowed


SHAPES = [(1, 1, 1), (1, 16, 64), (1, 100, 33), (3, 17, 5), (7, 48, 300), (64, 130, 67), (129, 33, 16)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("in_dtype,weights", CONVENTIONS[:3])
def test_every_isa_gives_the_same_bits(isa, m, n, k, in_dtype, weights):
    layer = Layer(m, n, k, in_dtype, weights, seed=m + n + k)
    for out_dtype, requant in [(torch.uint8, "float"), (torch.int8, "fixed_point"), (torch.float32, "float")]:
        sy, zy = layer.output_qparams(out_dtype, "relu") if out_dtype != torch.float32 else (1.0, 0)
        actual = layer.run(sy, zy, out_dtype, "relu", requant)
        assert_bits_equal(actual, layer.numpy_model(sy, zy, out_dtype, "relu", requant))


def test_extreme_zero_points_and_saturation():
    layer = Layer(9, 20, 40, torch.uint8, "uint8_channel")
    layer.za, layer.wzp = 255, torch.full((20,), 255, dtype=torch.int32)
    for sy in (1e-4, 1e4):  # saturates everything / rounds everything to the zero point
        for requant in ("float", "fixed_point"):
            actual = layer.run(sy, 3, torch.uint8, "none", requant)
            assert_bits_equal(actual, layer.numpy_model(sy, 3, torch.uint8, "none", requant))


def test_without_bias_and_with_k_not_a_multiple_of_four():
    layer = Layer(5, 19, 7, torch.int8, "int8_channel", bias=False)
    sy, zy = layer.output_qparams(torch.int8, "none")
    assert_bits_equal(layer.run(sy, zy, torch.int8), layer.numpy_model(sy, zy, torch.int8))
    assert steps_apart(layer.run(sy, zy, torch.int8), layer.pt2e_reference(sy, zy, torch.int8, "none")) <= 1


# --- shapes and layouts -----------------------------------------------------------------------


def test_batched_input_and_strided_rows():
    layer = Layer(0, 24, 32, batch_shape=(2, 3, 5))
    sy, zy = layer.output_qparams(torch.uint8, "none")
    plan = layer.prepack(sy, zy, torch.uint8)
    out = torch_circle.ops.quantized_linear(layer.x, *plan, torch.uint8)
    assert out.shape == (2, 3, 5, 24)
    assert_bits_equal(out, layer.numpy_model(sy, zy, torch.uint8))
    flat = layer.x.reshape(30, 32)
    wide = torch.cat([flat, flat], dim=1)[:, 32:]  # rows 64 bytes apart
    transposed = flat.t().contiguous().t()  # column major
    for x in (wide, transposed):
        assert_bits_equal(torch_circle.ops.quantized_linear(x, *plan, torch.uint8), out.reshape(30, 24))


def test_empty_batch():
    layer = Layer(1, 8, 8)
    plan = layer.prepack(0.1, 0, torch.uint8)
    out = torch_circle.ops.quantized_linear(torch.zeros(0, 8, dtype=torch.uint8), *plan, torch.uint8)
    assert out.shape == (0, 8) and out.dtype == torch.uint8


def test_plan_tensors():
    layer = Layer(1, 20, 33)
    packed, params, multiplier = layer.prepack(0.1, 5, torch.uint8)
    # 16-channel blocks, K padded to 4, then the active ISA's prepacked B (none but on AVX2)
    assert packed.dtype == torch.int8 and packed.shape[1] == 36
    assert params.dtype == torch.int32 and params.shape == (17 + 5 * 20,)
    assert multiplier.dtype == torch.float32 and multiplier.shape == (20,)
    header = params[:17].tolist()
    assert header[2:5] == [20, 33, layer.za]  # N, K, input zero point (docs/kernels.md)
    layout = header[16]  # the prepacked B's layout: rows past the blocks
    assert (layout != 0) == (packed.shape[0] > 32) and packed.shape[0] >= 32


# --- threads ----------------------------------------------------------------------------------


# (67, 300, 256): 19 blocks of channels and 17 row tiles, cut 2 x 2 at 4 threads (uneven parts)
# and into 3 row parts at 3 (split_work in quantized_linear_kernel.cpp).
@pytest.mark.parametrize("m,n,k", [(1, 2048, 1024), (256, 200, 300), (5, 1000, 512), (67, 300, 256), (4096, 40, 64)])
def test_results_do_not_depend_on_the_thread_count(m, n, k):
    layer = Layer(m, n, k, torch.uint8, "uint8_channel")
    sy, zy = layer.output_qparams(torch.uint8, "none")
    plan = layer.prepack(sy, zy, torch.uint8)
    previous = torch.get_num_threads()
    try:
        outputs = []
        for threads in (1, 2, 3, 4):
            torch.set_num_threads(threads)
            outputs.append(torch_circle.ops.quantized_linear(layer.x, *plan, torch.uint8))
    finally:
        torch.set_num_threads(previous)
    for out in outputs[1:]:
        assert_bits_equal(out, outputs[0])
    assert_bits_equal(outputs[0], layer.numpy_model(sy, zy, torch.uint8))


# --- tracing ----------------------------------------------------------------------------------


class FusedLinear(torch.nn.Module):
    """A module holding a prepacked plan as buffers (how the backend and TorchScript use it)."""

    def __init__(self, layer: Layer, sy: float, zy: int, out_dtype=torch.uint8):
        super().__init__()
        packed, params, multiplier = layer.prepack(sy, zy, out_dtype)
        self.register_buffer("packed", packed)
        self.register_buffer("params", params)
        self.register_buffer("multiplier", multiplier)
        self.out_dtype = out_dtype

    def forward(self, x):
        return torch.ops.circle_quant.quantized_linear(x, self.packed, self.params, self.multiplier, self.out_dtype)


def test_meta_kernels():
    layer = Layer(4, 20, 33)
    plan = layer.prepack(0.1, 3, torch.uint8)
    meta = cq.quantized_linear(layer.x.to("meta"), *(t.to("meta") for t in plan), torch.uint8)
    assert meta.shape == (4, 20) and meta.dtype == torch.uint8
    packed_meta = cq.linear_prepack(
        layer.w.to("meta"),
        layer.ws.to("meta"),
        layer.wzp.to("meta"),
        layer.bias.to("meta"),
        layer.sa,
        layer.za,
        torch.uint8,
        0.1,
        3,
        torch.uint8,
    )
    assert [t.shape for t in packed_meta] == [t.shape for t in plan]


def _opcheck_cases():
    cases = []
    for m, n, k, in_dtype, weights, out_dtype in [
        (4, 20, 33, torch.uint8, "uint8_channel", torch.uint8),
        (1, 16, 64, torch.int8, "int8_channel", torch.float32),
        (3, 5, 7, torch.uint8, "int8_tensor", torch.int16),
    ]:
        layer = Layer(m, n, k, in_dtype, weights, seed=n)
        args = (layer.w, layer.ws, layer.wzp, layer.bias, layer.sa, layer.za, in_dtype, 0.1, 0, out_dtype)
        cases.append((cq.linear_prepack, args, {"activation_min": 0.0}))
        cases.append((cq.quantized_linear, (layer.x, *cq.linear_prepack(*args), out_dtype), {}))
    return cases


OPCHECK_CASES = _opcheck_cases()  # test_registry.py checks that every op has some


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(op, args, kwargs)


def test_torch_export_with_dynamic_batch():
    layer = Layer(4, 20, 33)
    module = FusedLinear(layer, 0.1, 3)
    batch = torch.export.Dim("batch")
    ep = torch.export.export(module, (layer.x,), dynamic_shapes=({0: batch},))
    assert any(n.target is cq.quantized_linear.default for n in ep.graph.nodes)
    x = torch.randint(0, 256, (9, 33), dtype=torch.uint8)
    assert_bits_equal(ep.module()(x), module(x))


def test_torch_compile_fullgraph_inductor():
    layer = Layer(6, 40, 50)
    module = FusedLinear(layer, 0.1, 3)

    def f(x):
        return module(x).float() * 2

    compiled = torch.compile(f, fullgraph=True)
    assert_bits_equal(compiled(layer.x), f(layer.x))
    x = torch.randint(0, 256, (11, 50), dtype=torch.uint8)  # another batch size
    assert_bits_equal(compiled(x), f(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated, still supported
def test_torchscript_script_save_and_load(tmp_path):
    layer = Layer(6, 40, 50)
    module = FusedLinear(layer, 0.1, 3)
    scripted = torch.jit.script(module)
    assert_bits_equal(scripted(layer.x), module(layer.x))
    path = tmp_path / "fused_linear.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    assert_bits_equal(loaded(layer.x), module(layer.x))
    traced = torch.jit.trace(module, (layer.x,))
    assert "circle_quant::quantized_linear" in str(traced.graph)
    assert_bits_equal(traced(layer.x), module(layer.x))


def test_python_wrapper_and_torch_ops_agree():
    layer = Layer(3, 20, 33)
    plan = layer.prepack(0.1, 3, torch.uint8)
    assert_bits_equal(
        torch_circle.ops.quantized_linear(layer.x, *plan, torch.uint8), cq.quantized_linear(layer.x, *plan, torch.uint8)
    )
    assert "avx512vnni" in torch_circle.ops.KERNEL_ISAS and "neondot" in torch_circle.ops.KERNEL_ISAS
    assert "scalar" in SUPPORTED_ISAS


# --- errors -----------------------------------------------------------------------------------


def _prepack_args(layer, **changes):
    args = dict(
        weight=layer.w,
        weight_scale=layer.ws,
        weight_zero_point=layer.wzp,
        bias=layer.bias,
        input_scale=layer.sa,
        input_zero_point=layer.za,
        input_dtype=layer.in_dtype,
        output_scale=0.1,
        output_zero_point=3,
        output_dtype=torch.uint8,
    )
    args.update(changes)
    return args


@pytest.mark.parametrize(
    "changes,error,match",
    [
        (dict(weight=torch.zeros(4, 8)), TypeError, "weight must be an int8 or uint8"),
        (dict(weight=torch.zeros(4, 8, 2, dtype=torch.int8)), ValueError, "weight must be 2-D"),
        (dict(weight_scale=torch.ones(3)), ValueError, "weight_scale has 3 entries"),
        (dict(weight_scale=torch.full((20,), -1.0)), ValueError, r"weight_scale\[0\]"),
        (dict(weight_zero_point=torch.zeros(20)), TypeError, "weight_zero_point must be an integer"),
        (dict(weight_zero_point=torch.full((20,), 300, dtype=torch.int32)), ValueError, "weight zero point 300"),
        (dict(bias=torch.ones(19)), ValueError, r"bias must have shape \[20\]"),
        (dict(bias=torch.tensor([float("nan")] + [0.0] * 19)), ValueError, r"bias\[0\] = nan"),
        (dict(bias=torch.ones(20, dtype=torch.int32)), TypeError, "bias must be a float"),
        (dict(input_dtype=torch.int16), TypeError, "input_dtype must be torch.uint8 or torch.int8"),
        (dict(input_zero_point=300), ValueError, "input_zero_point 300"),
        (dict(input_scale=0.0), ValueError, "input_scale must be finite and > 0"),
        (dict(output_scale=float("inf")), ValueError, "output_scale must be finite and > 0"),
        (dict(output_dtype=torch.int32), TypeError, "output_dtype must be"),
        (dict(output_zero_point=256), ValueError, "output zero point 256"),
        (dict(activation_min=1.0, activation_max=0.0), ValueError, "activation_min"),
        (dict(requant="round"), ValueError, "requant must be"),
    ],
)
def test_prepack_errors_name_the_op_and_argument(changes, error, match):
    layer = Layer(1, 20, 33)
    with pytest.raises(error, match=match) as info:
        torch_circle.ops.linear_prepack(**_prepack_args(layer, **changes))
    assert "circle_quant::linear_prepack" in str(info.value)


def test_call_errors_name_the_op_and_argument():
    layer = Layer(2, 20, 33)
    packed, params, multiplier = layer.prepack(0.1, 3, torch.uint8)
    run = torch_circle.ops.quantized_linear
    cases = [
        ((layer.x.to(torch.int8), packed, params, multiplier, torch.uint8), TypeError, "prepacked for torch.uint8"),
        ((layer.x.float(), packed, params, multiplier, torch.uint8), TypeError, "input must be a uint8 or int8"),
        ((layer.x[:, :32], packed, params, multiplier, torch.uint8), ValueError, "in_features = 33"),
        ((layer.x, packed, params, multiplier, torch.int8), TypeError, "prepacked for torch.uint8 output"),
        ((layer.x, packed, params.float(), multiplier, torch.uint8), TypeError, "params must be int32"),
        ((layer.x, packed, params[:-1], multiplier, torch.uint8), ValueError, "do not belong to one prepacked"),
        ((layer.x, packed, torch.zeros_like(params), multiplier, torch.uint8), ValueError, "bad magic"),
    ]
    for args, error, match in cases:
        with pytest.raises(error, match=match) as info:
            run(*args)
        assert "circle_quant::quantized_linear" in str(info.value)


def test_gemm_kernel_name_follows_the_isa_and_the_row_count():
    """AVX2 runs the kernel that reads the packed bytes for few rows and the pair-split one from 3 rows;
    every ISA's name says its tier; a row count below 1 is a clear error."""
    if "avx2" in SUPPORTED_ISAS:
        with torch_circle.use_kernel_isa("avx2"):
            assert torch_circle.ops.gemm_kernel_name(1) == "qu8-gemm-3x16c4-avx2"
            assert torch_circle.ops.gemm_kernel_name(2) == "qu8-gemm-3x16c4-avx2"
            assert torch_circle.ops.gemm_kernel_name(3) == "qu8-gemm-5x16c4split-avx2"
            assert torch_circle.ops.gemm_kernel_name(512) == "qu8-gemm-5x16c4split-avx2"
    for isa in SUPPORTED_ISAS:
        with torch_circle.use_kernel_isa(isa):
            name = torch_circle.ops.gemm_kernel_name()
            # x86 kernels read A as uint8 (qu8), ARM ones as int8 (qs8).
            prefix = "qs8-gemm-" if isa.startswith("neon") else "qu8-gemm-"
            assert name.startswith(prefix) and name.endswith(isa if isa != "avx512" else "avx2"), (isa, name)
    if "amx" in SUPPORTED_ISAS:  # tiles from 4 rows; fewer run the avx512vnni kernels
        with torch_circle.use_kernel_isa("amx"):
            assert torch_circle.ops.gemm_kernel_name(3).endswith("-avx512vnni")
            assert torch_circle.ops.gemm_kernel_name(4) == "qu8-gemm-32x32c4-amx"
    with pytest.raises(ValueError, match="_gemm_kernel: rows"):
        torch_circle.ops.gemm_kernel_name(0)


def test_same_bits_when_onednn_int8_calls_run_in_between():
    """oneDNN's int8 kernels (AMX on CPUs that have it) load their own tile configuration in the
    same thread between our calls: our AMX kernel must notice and still give the scalar bits. Row
    counts 16..100 take the tile kernel with full and partial row tiles; K = 40 (one narrow step),
    300 (a copied tail) and 256 (full steps only)."""
    g = torch.Generator().manual_seed(5)
    cases = [Layer(m, n, k, seed=m + k) for m, n, k in ((16, 48, 40), (100, 70, 300), (33, 64, 256))]
    want = []
    with torch_circle.use_kernel_isa("scalar"):
        for layer in cases:
            sy, zy = layer.output_qparams(torch.uint8, "none")
            want.append(layer.run(sy, zy, torch.uint8))
    x = torch.randint(0, 256, (64, 512), dtype=torch.uint8, generator=g)
    w = torch.randint(-127, 128, (256, 512), dtype=torch.int8, generator=g)
    packed = torch.ops.onednn.qlinear_prepack(w, [64, 512])
    w_scale, w_zp = torch.full((256,), 0.01), torch.zeros(256, dtype=torch.int64)
    for _ in range(3):
        for layer, expected in zip(cases, want):
            torch.ops.onednn.qlinear_pointwise(
                x, 0.02, 128, packed, w_scale, w_zp, None, 0.5, 10, torch.uint8, "none", [], ""
            )
            sy, zy = layer.output_qparams(torch.uint8, "none")
            assert_bits_equal(layer.run(sy, zy, torch.uint8), expected)


# --- the AVX2 tier's prepacked B (plans built under avx2) ---------------------------------------

GEMM_LAYOUT_ENTRY = 16  # params header: the prepacked B's layout number (docs/kernels.md)


def _adversarial_weights(kind, n, k, g):
    """int8 weights on which vpmaddubsw would saturate without the safe / int16 split."""
    if kind == "gaussian":  # trained-like: most tiles safe
        w = torch.randn(n, k, generator=g)
        return (w / w.abs().amax(1, keepdim=True) * 127).round().to(torch.int8)
    if kind == "all127":  # every pair unsafe, both signs
        return (torch.randint(0, 2, (n, k), generator=g) * 254 - 127).to(torch.int8)
    # same-sign pairs just past 128 in some tiles, safe elsewhere
    w = torch.randint(-60, 61, (n, k), generator=g).to(torch.int8)
    w[:, ::8] = 65
    w[:, 1::8] = 64
    w[n // 2 :, 4::8] = -128
    w[n // 2 :, 5::8] = -1
    return w


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
@pytest.mark.parametrize("kind", ["gaussian", "all127", "same_sign_pairs"])
@pytest.mark.parametrize("k", [1, 7, 64, 257])
def test_avx2_prepacked_b_matches_scalar(kind, k):
    """A plan prepacked under avx2 carries the sorted B; the split kernel reading it (3 rows and
    more) and the 3x16 kernel (fewer) give the scalar kernel's bits, as does a plan without it."""
    g = torch.Generator().manual_seed(k)
    n = 40
    layer = Layer(1, n, k)
    layer.w = _adversarial_weights(kind, n, k, g)
    sy, zy = layer.output_qparams(torch.uint8, "none")
    with torch_circle.use_kernel_isa("avx2"):
        plan = layer.prepack(sy, zy, torch.uint8)
    with torch_circle.use_kernel_isa("scalar"):
        scalar_plan = layer.prepack(sy, zy, torch.uint8)
    assert plan[1][GEMM_LAYOUT_ENTRY] != 0 and plan[0].shape[0] > 48  # 3 blocks, then the sorted B
    assert scalar_plan[1][GEMM_LAYOUT_ENTRY] == 0 and scalar_plan[0].shape == (48, (k + 3) // 4 * 4)
    for m in (1, 2, 3, 16, 37):
        x = torch.randint(0, 256, (m, k), generator=g).to(torch.uint8)
        with torch_circle.use_kernel_isa("scalar"):
            want = torch_circle.ops.quantized_linear(x, *plan, torch.uint8)
        with torch_circle.use_kernel_isa("avx2"):
            assert_bits_equal(torch_circle.ops.quantized_linear(x, *plan, torch.uint8), want)
            assert_bits_equal(torch_circle.ops.quantized_linear(x, *scalar_plan, torch.uint8), want)


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
def test_avx2_prepacked_b_changed_or_mismatched_is_refused():
    layer = Layer(4, 40, 65)
    with torch_circle.use_kernel_isa("avx2"):
        packed, params, multiplier = layer.prepack(0.1, 5, torch.uint8)
        run = torch_circle.ops.quantized_linear
        groups, blocks_rows, kp = 17, 48, 68
        # Block 0's first A offset (after its groups + 1 tiles of 128 bytes) past the row.
        bad = packed.clone()
        bad.view(-1)[blocks_rows * kp + (groups + 1) * 128 + 3] = 0x40
        with pytest.raises(ValueError, match="quantized_linear: packed_weight was modified after prepacking"):
            run(layer.x, bad, params, multiplier, torch.uint8)
        with pytest.raises(ValueError, match="does not hold the 48 rows of blocks"):
            run(layer.x, packed[:-1].contiguous(), params, multiplier, torch.uint8)
        unknown = params.clone()
        unknown[GEMM_LAYOUT_ENTRY] = 99
        with pytest.raises(ValueError, match="prepacked weight layout 99 is not one this build"):
            run(layer.x, packed, unknown, multiplier, torch.uint8)
        old = params.clone()
        old[1] = 2  # a version-2 plan (no layout entry) is not read as version 3
        with pytest.raises(ValueError, match="plan version 2 but this build reads version 3"):
            run(layer.x, packed, old, multiplier, torch.uint8)
    # Another tier leaves the sorted B unread (and unchecked): the packed blocks give the same bits.
    with torch_circle.use_kernel_isa("scalar"):
        assert_bits_equal(
            run(layer.x, bad, params, multiplier, torch.uint8), run(layer.x, packed, params, multiplier, torch.uint8)
        )
