"""circle_quant::conv2d_prepack / quantized_conv2d against PyTorch's PT2E reference graph.

The reference is what PT2E lowers a quantized conv to: dequantize the activation and the weight
(torch.ops.quantized_decomposed), F.conv2d in float with the float bias, the activation, then
quantize the output. The int8 kernel computes exact integer sums with the bias quantized at
scale sa·sb, so results agree within one quantization step and are equal on nearly every
element. Bit-exactness against the integer definition is tested in C++
(tests/cpp/test_qconv_kernels.cpp).
"""

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import torch_circle
from conftest import SUPPORTED_ISAS, assert_bits_equal

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed

QRANGE = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767)}

# The two conventions: ONE's uint8 activations with per-channel asymmetric uint8 weights, and
# PyTorch / XNNPACK's int8 activations with symmetric int8 weights.
PRESETS = {
    "uint8": dict(act_dtype=torch.uint8, weight_dtype=torch.uint8, symmetric=False),
    "int8": dict(act_dtype=torch.int8, weight_dtype=torch.int8, symmetric=True),
}

ACTIVATIONS = {
    "none": (float("-inf"), float("inf"), lambda y: y),
    "relu": (0.0, float("inf"), F.relu),
    "relu6": (0.0, 6.0, lambda y: F.hardtanh(y, 0.0, 6.0)),
    "clamp": (-0.5, 0.75, lambda y: torch.clamp(y, -0.5, 0.75)),
}

# (C, OC, H, W, kernel, stride, padding, dilation, groups)
SHAPES = {
    "3x3": (16, 24, 9, 10, 3, 1, 1, 1, 1),
    "stem7x7s2": (3, 16, 17, 15, 7, 2, 3, 1, 1),
    "pointwise": (24, 40, 7, 9, 1, 1, 0, 1, 1),
    "pointwise_s2": (24, 40, 9, 9, 1, 2, 0, 1, 1),
    "grouped": (12, 18, 8, 8, 3, 1, 1, 1, 3),
    "depthwise": (32, 32, 12, 11, 3, 1, 1, 1, 32),
    "depthwise_s2": (24, 24, 11, 11, 3, 2, 1, 1, 24),
    "depthwise5x5": (17, 17, 9, 9, 5, 1, 2, 1, 17),
    "depthwise_x2": (8, 16, 7, 7, 3, 1, 1, 1, 8),
    "dilated": (8, 12, 11, 11, 3, 1, 2, 2, 1),
    "asymmetric": (6, 10, 9, 13, (3, 5), (2, 1), (1, 2), (1, 2), 1),
}


def pair(v):
    return list(v) if isinstance(v, tuple) else [v, v]


def asym_qparams(lo, hi, dtype):
    """Asymmetric min/max qparams the way the observers choose them (scale float32)."""
    qmin, qmax = QRANGE[dtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(torch.tensor(max((hi - lo) / (qmax - qmin), 1e-8), dtype=torch.float32))
    zero_point = int(min(max(qmin - round(lo / scale), qmin), qmax))
    return scale, zero_point


class Layer:
    """A float conv quantized with one preset, its prepacked plan and its reference."""

    def __init__(self, preset, shape, activation="none", bias=True, out_dtype=None, batch=2, requant="float"):
        c, oc, h, w, k, stride, padding, dilation, groups = shape
        p = PRESETS[preset]
        self.act_dtype = p["act_dtype"]
        self.out_dtype = out_dtype or self.act_dtype
        self.kernel, self.stride = pair(k), pair(stride)
        self.padding, self.dilation, self.groups = pair(padding), pair(dilation), groups
        self.amin, self.amax, self.act_fn = ACTIVATIONS[activation]

        x = torch.randn(batch, c, h, w) * 1.3 + 0.4
        self.sa, self.za = asym_qparams(x.min().item(), x.max().item(), self.act_dtype)
        qmin, qmax = QRANGE[self.act_dtype]
        self.xq = qd.quantize_per_tensor(x, self.sa, self.za, qmin, qmax, self.act_dtype)
        self.xq = self.xq.contiguous(memory_format=torch.channels_last)

        wf = torch.randn(oc, c // groups, *self.kernel) * 0.3 + torch.randn(oc, 1, 1, 1) * 0.1
        flat = wf.reshape(oc, -1)
        wd = p["weight_dtype"]
        if p["symmetric"]:
            self.ws = (flat.abs().amax(1) / 127).clamp_min(1e-6)
            self.wz = torch.zeros(oc, dtype=torch.int64)
            self.wrange = (-127, 127)
        else:
            lo, hi = flat.amin(1).clamp_max(0), flat.amax(1).clamp_min(0)
            self.ws = ((hi - lo) / 255).clamp_min(1e-6)
            self.wz = (-torch.round(lo / self.ws)).clamp(0, 255).to(torch.int64)
            self.wrange = (0, 255)
        self.wq = qd.quantize_per_channel(wf, self.ws, self.wz, 0, *self.wrange, wd)
        self.wdtype = wd
        self.bias = torch.randn(oc) * 0.5 if bias else None

        y = self.reference_float()
        if self.out_dtype == torch.float32:
            self.sy, self.zy = 1.0, 0
        else:
            self.sy, self.zy = asym_qparams(y.min().item(), y.max().item(), self.out_dtype)
        self.plan = self.prepack(requant)

    def prepack_args(self):
        """conv2d_prepack's arguments up to output_dtype."""
        return (
            self.wq,
            self.ws,
            self.wz,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.sa,
            self.za,
            self.act_dtype,
            self.sy,
            self.zy,
            self.out_dtype,
        )

    def prepack(self, requant="float"):
        return cq.conv2d_prepack(*self.prepack_args(), self.amin, self.amax, requant)

    def args(self):
        return (*self.plan, self.kernel, self.stride, self.padding, self.dilation, self.groups, self.out_dtype)

    def run(self, x=None):
        return cq.quantized_conv2d(self.xq if x is None else x, *self.args())

    def reference_float(self):
        qmin, qmax = QRANGE[self.act_dtype]
        xf = qd.dequantize_per_tensor(self.xq, self.sa, self.za, qmin, qmax, self.act_dtype)
        wf = qd.dequantize_per_channel(self.wq, self.ws, self.wz, 0, *self.wrange, self.wdtype)
        y = F.conv2d(xf, wf, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return self.act_fn(y)

    def reference(self):
        y = self.reference_float()
        if self.out_dtype == torch.float32:
            return y
        return qd.quantize_per_tensor(y, self.sy, self.zy, *QRANGE[self.out_dtype], self.out_dtype)


def assert_within_one_quantum(out, ref, min_exact=0.99, max_diff=1):
    assert out.dtype == ref.dtype and out.shape == ref.shape, (out.dtype, ref.dtype, out.shape, ref.shape)
    diff = (out.to(torch.int32) - ref.to(torch.int32)).abs()
    assert diff.max().item() <= max_diff, f"max difference {diff.max().item()} quantization steps"
    if out.numel():
        exact = (diff == 0).double().mean().item()
        assert exact >= min_exact, f"only {exact:.4f} of the elements are exact"


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
@pytest.mark.parametrize("preset", PRESETS)
def test_matches_reference_graph(isa, preset, shape):
    layer = Layer(preset, SHAPES[shape])
    out = layer.run()
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_within_one_quantum(out, layer.reference())


@pytest.mark.parametrize("activation", ["relu", "relu6", "clamp"])
@pytest.mark.parametrize("shape", ["3x3", "pointwise", "depthwise", "grouped"])
@pytest.mark.parametrize("preset", PRESETS)
def test_fused_activations(isa, preset, shape, activation):
    layer = Layer(preset, SHAPES[shape], activation=activation)
    assert_within_one_quantum(layer.run(), layer.reference())


@pytest.mark.parametrize("shape", ["3x3", "depthwise", "grouped"])
@pytest.mark.parametrize("preset", PRESETS)
def test_without_bias(preset, shape):
    layer = Layer(preset, SHAPES[shape], bias=False)
    assert_within_one_quantum(layer.run(), layer.reference())


@pytest.mark.parametrize("out_dtype", [torch.uint8, torch.int8, torch.int16])
@pytest.mark.parametrize("shape", ["3x3", "depthwise"])
@pytest.mark.parametrize("preset", PRESETS)
def test_output_dtypes(isa, preset, shape, out_dtype):
    layer = Layer(preset, SHAPES[shape], activation="relu", out_dtype=out_dtype)
    out = layer.run()
    assert out.dtype == out_dtype
    if out_dtype != torch.int16:
        assert_within_one_quantum(out, layer.reference())
        return
    # int16 steps are finer than the bias's (sa·sb, the bias being int32 at that scale): the
    # bias rounding alone moves a result by up to half of sa·sb / sy steps.
    bias_steps = (layer.sa * layer.ws / layer.sy).max().item()
    assert_within_one_quantum(out, layer.reference(), min_exact=0.5, max_diff=1 + int(0.5 * bias_steps + 0.5))


@pytest.mark.parametrize("shape", ["3x3", "depthwise", "pointwise", "grouped"])
@pytest.mark.parametrize("preset", PRESETS)
def test_float_output(isa, preset, shape):
    layer = Layer(preset, SHAPES[shape], activation="relu6", out_dtype=torch.float32)
    out = layer.run()
    ref = layer.reference()
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    # The kernel's result is exact but for its bias, quantized to half a step of sa·sb.
    bias_step = (layer.sa * layer.ws.max()).item()
    torch.testing.assert_close(out, ref, atol=bias_step + 1e-5 * ref.abs().max().item(), rtol=1e-5)


@pytest.mark.parametrize("shape", ["3x3", "depthwise"])
def test_fixed_point_requantization(isa, shape):
    """The TFLite / ONE family rounds differently at near-ties: still within one step."""
    layer = Layer("uint8", SHAPES[shape], activation="relu", requant="fixed_point")
    assert_within_one_quantum(layer.run(), layer.reference(), min_exact=0.9)


@pytest.mark.parametrize("preset", ["uint8", "int8"])
@pytest.mark.parametrize("shape", ["3x3", "depthwise", "pointwise", "stem7x7s2"])
def test_contiguous_nchw_input(shape, preset):
    # The stem's 3 channels take the op's own channels-last copy; the others ATen's.
    layer = Layer(preset, SHAPES[shape])
    assert_bits_equal(layer.run(layer.xq.contiguous()), layer.run())


@pytest.mark.parametrize("shape", ["3x3", "depthwise", "pointwise"])
def test_empty_batch(shape):
    layer = Layer("int8", SHAPES[shape], batch=1)
    out = layer.run(layer.xq[:0])
    assert out.shape == (0, *layer.run().shape[1:])


def test_padding_with_extreme_zero_point():
    """An all-positive input gives za = 0 (uint8) or -128 (int8): padded taps must act as za."""
    for preset in PRESETS:
        layer = Layer(preset, SHAPES["3x3"])
        x = torch.rand(2, 16, 9, 10) + 0.5
        qmin, qmax = QRANGE[layer.act_dtype]
        layer.sa, layer.za = asym_qparams(0.0, x.max().item(), layer.act_dtype)
        assert layer.za == qmin
        layer.xq = qd.quantize_per_tensor(x, layer.sa, layer.za, qmin, qmax, layer.act_dtype)
        layer.plan = cq.conv2d_prepack(
            layer.wq,
            layer.ws,
            layer.wz,
            layer.bias,
            layer.stride,
            layer.padding,
            layer.dilation,
            1,
            layer.sa,
            layer.za,
            layer.act_dtype,
            layer.sy,
            layer.zy,
            layer.out_dtype,
        )
        assert_within_one_quantum(layer.run(), layer.reference())


# Wide layers (17 blocks of 16 channels) whose threads split the channels, alone or with the
# pixels (4 threads on the 3x3: 2 x 2), with a ragged last block.
WIDE_SHAPES = {"wide3x3": (32, 272, 9, 7, 3, 1, 1, 1, 1), "wide_pointwise": (40, 280, 9, 7, 1, 1, 0, 1, 1)}


@pytest.mark.parametrize("shape", ["3x3", "depthwise", "pointwise", "grouped", "stem7x7s2", *WIDE_SHAPES])
def test_thread_count_does_not_change_results(shape, isa):
    if shape in WIDE_SHAPES:
        layer = Layer("uint8", WIDE_SHAPES[shape], batch=3)
    else:
        c, oc, _, _, k, s, p, d, g = SHAPES[shape]
        layer = Layer("uint8", (c, oc, 33, 31, k, s, p, d, g), batch=3)
    threads = torch.get_num_threads()
    try:
        results = {}
        for t in (1, 2, 3, 4):
            torch.set_num_threads(t)
            results[t] = layer.run()
    finally:
        torch.set_num_threads(threads)
    for t in (2, 3, 4):
        assert_bits_equal(results[t], results[1])


def test_every_isa_gives_the_same_bits():
    import torch_circle

    from conftest import SUPPORTED_ISAS

    for shape in ["3x3", "depthwise", "grouped", "depthwise5x5"]:
        for preset in PRESETS:
            layer = Layer(preset, SHAPES[shape], activation="relu")
            results = {}
            for name in SUPPORTED_ISAS:
                with torch_circle.use_kernel_isa(name):
                    results[name] = layer.run()
            for out in results.values():
                assert_bits_equal(out, results["scalar"])


class QConvModule(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        for name, t in zip(("packed", "params", "multiplier"), layer.plan):
            self.register_buffer(name, t)

    def forward(self, x):
        conv = self.layer
        y = cq.quantized_conv2d(
            x,
            self.packed,
            self.params,
            self.multiplier,
            conv.kernel,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.out_dtype,
        )
        return y


@pytest.mark.parametrize("shape", ["3x3", "depthwise"])
def test_compile_and_export_trace_through_meta_kernels(shape):
    layer = Layer("uint8", SHAPES[shape])
    module = QConvModule(layer)
    eager = module(layer.xq)
    compiled = torch.compile(module, backend="aot_eager", fullgraph=True)
    assert_bits_equal(compiled(layer.xq), eager)
    ep = torch.export.export(module, (layer.xq,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "circle_quant.quantized_conv2d.default" in targets
    assert_bits_equal(ep.module()(layer.xq), eager)
    batch = torch.export.Dim("batch", min=1, max=64)
    ep_dynamic = torch.export.export(module, (layer.xq,), dynamic_shapes={"x": {0: batch}})
    x3 = torch.cat([layer.xq, layer.xq[:1]]).contiguous(memory_format=torch.channels_last)
    assert_bits_equal(ep_dynamic.module()(x3), module(x3))


@pytest.mark.parametrize("shape", ["asymmetric", "depthwise", "depthwise5x5", "grouped"])
def test_meta_kernels_give_shapes_dtypes_and_layout(shape):
    layer = Layer("int8", SHAPES[shape], out_dtype=torch.int16)
    real = layer.run()
    meta_plan = [t.to("meta") for t in layer.plan]
    out = cq.quantized_conv2d(layer.xq.to("meta"), *meta_plan, *layer.args()[3:])
    assert out.shape == real.shape and out.dtype == torch.int16 and out.device.type == "meta"
    assert out.stride() == real.stride()
    packed = cq.conv2d_prepack(
        layer.wq.to("meta"),
        layer.ws.to("meta"),
        layer.wz.to("meta"),
        layer.bias.to("meta"),
        layer.stride,
        layer.padding,
        layer.dilation,
        layer.groups,
        layer.sa,
        layer.za,
        layer.act_dtype,
        layer.sy,
        layer.zy,
        layer.out_dtype,
    )
    assert [t.shape for t in packed] == [t.shape for t in layer.plan]
    assert [t.dtype for t in packed] == [t.dtype for t in layer.plan]


# --- errors ------------------------------------------------------------------------------------


def conv_call(layer, **overrides):
    args = dict(
        input=layer.xq,
        packed_weight=layer.plan[0],
        params=layer.plan[1],
        multiplier=layer.plan[2],
        kernel_size=layer.kernel,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        output_dtype=layer.out_dtype,
    )
    args.update(overrides)
    return cq.quantized_conv2d(*args.values())


def test_errors_name_the_op_and_argument():
    layer = Layer("uint8", SHAPES["3x3"])
    op = "circle_quant::quantized_conv2d"
    with pytest.raises(TypeError, match=f"{op}: input must be torch.uint8 like the prepacked .*got torch.int8"):
        conv_call(layer, input=layer.xq.to(torch.int8))
    with pytest.raises(TypeError, match=f"{op}: input must be a uint8 or int8 tensor, got torch.float32"):
        conv_call(layer, input=layer.xq.float())
    with pytest.raises(ValueError, match=f"{op}: input has 15 channels but the prepacked weight expects 16"):
        conv_call(layer, input=layer.xq[:, :15])
    with pytest.raises(
        ValueError, match=f"{op}: kernel_size \\[5, 5\\] differs from the prepacked weight's \\[3, 3\\]"
    ):
        conv_call(layer, kernel_size=[5, 5])
    with pytest.raises(ValueError, match=f"{op}: kernel_size must have 2 entries"):
        conv_call(layer, kernel_size=[3])
    with pytest.raises(ValueError, match=f"{op}: stride must be >= 1"):
        conv_call(layer, stride=[0, 1])
    with pytest.raises(ValueError, match=f"{op}: padding \\[0, 0\\] differs"):
        conv_call(layer, padding=[0, 0])
    with pytest.raises(ValueError, match=f"{op}: groups 2 differs"):
        conv_call(layer, groups=2)
    with pytest.raises(
        TypeError, match=f"{op}: output_dtype torch.int8 differs from the prepacked output_dtype torch.uint8"
    ):
        conv_call(layer, output_dtype=torch.int8)
    with pytest.raises(ValueError, match=f"{op}: input must be 4-D"):
        conv_call(layer, input=layer.xq[0])
    with pytest.raises(ValueError, match=f"{op}: the height 2 plus padding 2 is smaller than the dilated kernel"):
        conv_call(layer, input=layer.xq[:, :, :2].contiguous(), dilation=[3, 1])
    with pytest.raises(ValueError, match=f"{op}: params is not a conv2d plan"):
        bad = layer.plan[1].clone()
        bad[0] = 0
        conv_call(layer, params=bad)
    with pytest.raises(ValueError, match=f"{op}: params .* and multiplier .* do not belong"):
        conv_call(layer, multiplier=layer.plan[2][:-1])


def test_prepack_errors():
    layer = Layer("uint8", SHAPES["grouped"])
    op = "circle_quant::conv2d_prepack"

    def prepack(**overrides):
        args = dict(
            weight=layer.wq,
            weight_scale=layer.ws,
            weight_zero_point=layer.wz,
            bias=layer.bias,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            input_scale=layer.sa,
            input_zero_point=layer.za,
            input_dtype=layer.act_dtype,
            output_scale=layer.sy,
            output_zero_point=layer.zy,
            output_dtype=layer.out_dtype,
        )
        args.update(overrides)
        return cq.conv2d_prepack(*args.values())

    with pytest.raises(ValueError, match=f"{op}: weight must be 4-D"):
        prepack(weight=layer.wq[0])
    with pytest.raises(TypeError, match=f"{op}: weight must be an int8 or uint8 tensor"):
        prepack(weight=layer.wq.float())
    with pytest.raises(ValueError, match=f"{op}: out_channels \\(18\\) must be divisible by groups \\(4\\)"):
        prepack(groups=4)
    with pytest.raises(ValueError, match=f"{op}: dilation must be >= 1"):
        prepack(dilation=[1, 0])
    with pytest.raises(ValueError, match=f"{op}: padding must be >= 0"):
        prepack(padding=[-1, 0])
    with pytest.raises(ValueError, match=f"{op}: weight_scale has 3 entries"):
        prepack(weight_scale=layer.ws[:3])
    with pytest.raises(ValueError, match=f"{op}: input_zero_point 300"):
        prepack(input_zero_point=300)
    with pytest.raises(ValueError, match=f"{op}: bias must have shape \\[18\\]"):
        prepack(bias=layer.bias[:4])
    with pytest.raises(ValueError, match=f"{op}: weight zero point 300"):
        prepack(weight_zero_point=torch.full((18,), 300))


# --- opcheck (test_registry.py collects OPCHECK_CASES) ---------------------------------------------


def _opcheck_cases():
    torch.manual_seed(0)
    cases = []
    for preset, shape in [("uint8", "3x3"), ("int8", "depthwise"), ("uint8", "grouped")]:
        layer = Layer(preset, SHAPES[shape], batch=1)
        cases.append((cq.quantized_conv2d, (layer.xq, *layer.args()), {}))
        cases.append(
            (
                cq.conv2d_prepack,
                layer.prepack_args(),
                {"activation_min": 0.0},
            )
        )
    return cases


OPCHECK_CASES = _opcheck_cases()


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args, kwargs):
    opcheck(op, args, kwargs)


# --- the AVX2 tier's prepacked B (plans built under avx2) ---------------------------------------

CONV_LAYOUT_ENTRY = 26  # params header: the prepacked B's layout number (docs/kernels.md)


def _prepack_avx2(layer, wq):
    """layer's plan for other int8 / uint8 weights, prepacked under avx2."""
    layer.wq = wq
    with torch_circle.use_kernel_isa("avx2"):
        layer.plan = layer.prepack()


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
@pytest.mark.parametrize("shape", ["3x3", "stem7x7s2", "pointwise", "grouped", "depthwise_x2", "asymmetric"])
@pytest.mark.parametrize("weights", ["trained", "all127"])
def test_avx2_prepacked_b_matches_scalar(shape, weights):
    """Conv plans prepacked under avx2 carry every group's sorted B; the AVX2 kernels reading it
    give the scalar kernels' bits (all ±127: every pair would saturate vpmaddubsw)."""
    layer = Layer("int8", SHAPES[shape], batch=3)
    wq = layer.wq
    if weights == "all127":
        wq = (torch.randint(0, 2, wq.shape) * 254 - 127).to(torch.int8)
    _prepack_avx2(layer, wq)
    packed, params, _ = layer.plan
    c, oc, _, _, k, _, _, _, groups = SHAPES[shape]
    kernel = pair(k)
    kp = (kernel[0] * kernel[1] * c // groups + 3) // 4 * 4
    block_rows = groups * ((oc // groups + 15) // 16 * 16)
    assert params[CONV_LAYOUT_ENTRY] != 0 and packed.shape[0] > block_rows and packed.shape[1] == kp
    with torch_circle.use_kernel_isa("scalar"):
        want = layer.run()
    with torch_circle.use_kernel_isa("avx2"):
        assert_bits_equal(layer.run(), want)


# 3x3, stride 1 convs that plans prepacked under avx2 run as Winograd tiles: odd and even sizes,
# paddings 0-2, channel counts off the kernels' steps, both presets (docs/kernels.md).
WINOGRAD_SHAPES = {
    "resnet": (64, 64, 14, 14, 3, 1, 1, 1, 1),
    "odd": (37, 21, 9, 7, 3, 1, 1, 1, 1),
    "unpadded": (5, 17, 8, 11, 3, 1, 0, 1, 1),
    "pad2": (16, 40, 5, 6, 3, 1, 2, 1, 1),
    "one_channel": (1, 3, 6, 5, 3, 1, 1, 1, 1),
}


def _plan_rows(layer, isa):
    with torch_circle.use_kernel_isa(isa):
        return layer.prepack()[0].shape[0]


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
@pytest.mark.parametrize("shape", list(WINOGRAD_SHAPES))
@pytest.mark.parametrize("preset", list(PRESETS))
def test_avx2_winograd_matches_scalar(shape, preset):
    """Winograd plans (avx2) give the scalar direct convolution's bits, on one or two threads and
    with a fused residual add; the plan carries the transformed weights only for stride 1."""
    layer = Layer(preset, WINOGRAD_SHAPES[shape], batch=3, activation="relu")
    _prepack_avx2(layer, layer.wq)
    # 16 transform positions x channel pairs x 16-channel blocks of int16, after the prepacked B.
    c, oc = WINOGRAD_SHAPES[shape][:2]
    winograd_bytes = (oc + 15) // 16 * 16 * ((c + 1) // 2) * 32 * 2
    kp = layer.plan[0].shape[1]
    strided = Layer(preset, WINOGRAD_SHAPES[shape][:5] + (2,) + WINOGRAD_SHAPES[shape][6:], batch=1)
    extra_rows = layer.plan[0].shape[0] - _plan_rows(strided, "avx2")  # whole rows of kp bytes
    assert winograd_bytes - kp < extra_rows * kp < winograd_bytes + kp
    with torch_circle.use_kernel_isa("scalar"):
        want = layer.run()
        other = torch.randint(*QRANGE[layer.out_dtype], want.shape, dtype=layer.out_dtype)
        other = other.contiguous(memory_format=torch.channels_last)
        add_args = (other, 0.7 * layer.sy, 3, 1.3 * layer.sy, layer.zy, None, None)
        want_add = cq.quantized_conv2d_add(layer.xq, *layer.args(), *add_args)
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            with torch_circle.use_kernel_isa("avx2"):
                assert_bits_equal(layer.run(), want)
                assert_bits_equal(cq.quantized_conv2d_add(layer.xq, *layer.args(), *add_args), want_add)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
def test_avx2_winograd_plan_shapes_match_their_meta_kernel():
    layer = Layer("uint8", WINOGRAD_SHAPES["odd"])
    with torch_circle.use_kernel_isa("avx2"):
        real = layer.prepack()
        meta_args = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in layer.prepack_args()]
        meta = cq.conv2d_prepack(*meta_args, layer.amin, layer.amax, "float")
    assert [t.shape for t in meta] == [t.shape for t in real]


@pytest.mark.skipif("avx2" not in SUPPORTED_ISAS, reason="the CPU lacks AVX2")
def test_avx2_prepacked_b_changed_or_mismatched_is_refused():
    layer = Layer("uint8", SHAPES["grouped"])
    _prepack_avx2(layer, layer.wq)
    packed, params, multiplier = layer.plan
    rest = layer.args()[3:]
    # grouped: 3 groups of 6 channels (one block each), K = 36 (9 groups of 4); group 2's first
    # A offset sits past its groups + 1 tiles of 128 bytes.
    group_bytes = (9 * 132 + 132 + 63) // 64 * 64
    bad = packed.clone()
    bad.view(-1)[3 * 16 * 36 + 2 * group_bytes + 10 * 128 + 3] = 0x40
    with torch_circle.use_kernel_isa("avx2"):
        with pytest.raises(ValueError, match="quantized_conv2d: packed_weight was modified after prepacking"):
            cq.quantized_conv2d(layer.xq, bad, params, multiplier, *rest)
        with pytest.raises(ValueError, match="does not match the params header"):
            cq.quantized_conv2d(layer.xq, packed[:-1].contiguous(), params, multiplier, *rest)
        unknown = params.clone()
        unknown[CONV_LAYOUT_ENTRY] = 99
        with pytest.raises(ValueError, match="prepacked weight layout 99 is not one this build"):
            cq.quantized_conv2d(layer.xq, packed, unknown, multiplier, *rest)
        old = params.clone()
        old[1] = 2
        with pytest.raises(ValueError, match="version 2 but this build reads version 4"):
            cq.quantized_conv2d(layer.xq, packed, old, multiplier, *rest)
