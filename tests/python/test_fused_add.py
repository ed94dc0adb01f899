"""circle_quant::quantized_linear_add / quantized_conv2d_add: a layer and the residual add after it
(ResNet / MobileNetV2 / transformer skip connections) in one op.

The float family must equal, bit for bit, the PT2E reference graph's dequantize → add →
[activation] → quantize applied to the layer's own quantized output; the fixed-point family must
equal TFLite's integer ADD (docs/numerics.md, "Fused residual add")."""

import numpy as np
import pytest
import torch

from conftest import assert_bits_equal
from test_quantized_conv2d import SHAPES as CONV_SHAPES
from test_quantized_conv2d import Layer as ConvLayer
from test_quantized_linear import Layer as LinearLayer
from test_quantized_linear import multiply_by_quantized_multiplier, quantize_multiplier

cq = torch.ops.circle_quant
qd = torch.ops.quantized_decomposed

QRANGE = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int16: (-32768, 32767)}
ACTIVATIONS = {"none": (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0), "clamp": (-0.4, 0.9)}


def residual_params(dtype, seed):
    """A random residual operand's (scale, zero point) and the add output's."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = QRANGE[dtype]
    if dtype == torch.int16:
        zr = zo = 0
    else:
        zr, zo = (int(torch.randint(lo, hi + 1, (), generator=g)) for _ in range(2))
    sr, so = (0.005 + 0.05 * torch.rand((), generator=g).item() for _ in range(2))
    return sr, zr, so, zo


def reference_add(y, sy, zy, other, sr, zr, so, zo, act):
    """The PT2E reference graph on the layer's quantized output y."""
    lo, hi = QRANGE[y.dtype]
    s = qd.dequantize_per_tensor(y, sy, zy, lo, hi, y.dtype) + qd.dequantize_per_tensor(
        other, sr, zr, lo, hi, other.dtype
    )
    amin, amax = ACTIVATIONS[act]
    if amin is not None:
        s = torch.clamp(s, amin, amax)
    return qd.quantize_per_tensor(s, so, zo, lo, hi, y.dtype)


def tflite_add(y, sy, zy, other, sr, zr, so, zo, act):
    """TFLite's quantized ADD (reference_ops::Add, 8-bit: left shift 20; 16-bit: 15), in int64
    numpy, with the activation range from CalculateActivationRangeQuantized."""
    f32 = np.float32
    left_shift = 15 if y.dtype == torch.int16 else 20
    twice_max = 2 * max(float(f32(sy)), float(f32(sr)))
    m_y, s_y = quantize_multiplier(float(f32(sy)) / twice_max)
    m_r, s_r = quantize_multiplier(float(f32(sr)) / twice_max)
    m_o, s_o = quantize_multiplier(twice_max / float(f32(1 << left_shift) * f32(so)))

    def scaled(q, z, m, s):
        return multiply_by_quantized_multiplier(
            (q.numpy().astype(np.int64) - z) << left_shift, np.int64(m), np.int64(s)
        )

    raw = (
        multiply_by_quantized_multiplier(
            scaled(y, zy, m_y, s_y) + scaled(other, zr, m_r, s_r), np.int64(m_o), np.int64(s_o)
        )
        + zo
    )
    lo, hi = QRANGE[y.dtype]
    amin, amax = ACTIVATIONS[act]

    def bound(v):  # std::round(float(v) / float(so)): ties away from zero
        r = f32(v) / f32(so)
        return int(np.sign(r) * np.floor(np.abs(r) + f32(0.5))) + zo

    qmin = lo if amin is None else max(lo, bound(amin))
    qmax = hi if amax is None else min(hi, bound(amax))
    return torch.from_numpy(np.clip(raw, min(qmin, qmax), qmax)).to(y.dtype)


# --- conv --------------------------------------------------------------------------------------


def conv_add(layer, other, sr, zr, so, zo, act):
    amin, amax = ACTIVATIONS[act]
    return cq.quantized_conv2d_add(layer.xq, *layer.args(), other, sr, zr, so, zo, amin, amax)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", ["3x3", "pointwise", "grouped", "depthwise", "stem7x7s2", "depthwise_s2"])
@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_conv2d_add_equals_the_reference_graph(isa, preset, shape, act):
    # The layer's own activation (relu) runs before its quantize, the add's after the add.
    layer = ConvLayer(preset, CONV_SHAPES[shape], activation="relu" if act == "none" else "none")
    y = layer.run()
    sr, zr, so, zo = residual_params(y.dtype, seed=len(shape))
    lo, hi = QRANGE[y.dtype]
    other = torch.randint(lo, hi + 1, y.shape, dtype=y.dtype).contiguous(memory_format=torch.channels_last)
    out = conv_add(layer, other, sr, zr, so, zo, act)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert_bits_equal(out, reference_add(y, layer.sy, layer.zy, other, sr, zr, so, zo, act))


@pytest.mark.parametrize("act", ["none", "relu"])
@pytest.mark.parametrize("shape", ["3x3", "depthwise", "grouped"])
def test_conv2d_add_fixed_point_equals_tflite_add(isa, shape, act):
    layer = ConvLayer("int8", CONV_SHAPES[shape], requant="fixed_point")
    y = layer.run()
    sr, zr, so, zo = residual_params(y.dtype, seed=7)
    other = torch.randint(-128, 128, y.shape, dtype=y.dtype)
    out = conv_add(layer, other, sr, zr, so, zo, act)
    assert_bits_equal(out.contiguous(), tflite_add(y, layer.sy, layer.zy, other, sr, zr, so, zo, act).contiguous())


def test_conv2d_add_takes_any_layout_of_other():
    layer = ConvLayer("uint8", CONV_SHAPES["3x3"])
    y = layer.run()
    other = torch.randint(0, 256, y.shape, dtype=torch.uint8)  # contiguous NCHW
    sr, zr, so, zo = residual_params(torch.uint8, seed=1)
    expected = reference_add(y, layer.sy, layer.zy, other, sr, zr, so, zo, "relu")
    assert_bits_equal(conv_add(layer, other, sr, zr, so, zo, "relu"), expected)
    strided = torch.randint(0, 256, (*y.shape[:3], 2 * y.shape[3]), dtype=torch.uint8)[..., ::2]
    expected = reference_add(y, layer.sy, layer.zy, strided, sr, zr, so, zo, "none")
    assert_bits_equal(conv_add(layer, strided, sr, zr, so, zo, "none"), expected)


def test_conv2d_add_with_an_empty_batch():
    layer = ConvLayer("uint8", CONV_SHAPES["3x3"])
    x = layer.xq[:0]
    other = torch.empty((0, *layer.run().shape[1:]), dtype=torch.uint8)
    out = cq.quantized_conv2d_add(x, *layer.args(), other, 0.1, 3, 0.2, 4)
    assert out.shape == other.shape


# --- linear ------------------------------------------------------------------------------------


def linear_case(in_dtype, out_dtype, act, requant="float", batch_shape=(2, 5), k=70, n=37, seed=0):
    layer = LinearLayer(None, n, k, in_dtype, "int8_channel", batch_shape=batch_shape, seed=seed)
    sy, zy = layer.output_qparams(out_dtype, "none")
    plan = layer.prepack(sy, zy, out_dtype, requant=requant)
    y = cq.quantized_linear(layer.x, *plan, out_dtype)
    sr, zr, so, zo = residual_params(out_dtype, seed=seed + 3)
    lo, hi = QRANGE[out_dtype]
    other = torch.randint(lo, hi + 1, y.shape, dtype=out_dtype)
    amin, amax = ACTIVATIONS[act]
    out = cq.quantized_linear_add(layer.x, *plan, out_dtype, other, sr, zr, so, zo, amin, amax)
    return out, (y, sy, zy, other, sr, zr, so, zo, act)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8])
def test_linear_add_equals_the_reference_graph(isa, dtype, act):
    out, args = linear_case(dtype, dtype, act)
    assert_bits_equal(out, reference_add(*args))


@pytest.mark.parametrize("n", [1, 15, 16, 17, 48, 50, 100])
def test_linear_add_every_width(isa, n):
    out, args = linear_case(torch.uint8, torch.uint8, "relu", batch_shape=(9,), n=n, k=33, seed=n)
    assert_bits_equal(out, reference_add(*args))


def test_linear_add_int16_output():
    out, args = linear_case(torch.int8, torch.int16, "none")
    assert_bits_equal(out, reference_add(*args))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int8, torch.int16])
def test_linear_add_fixed_point_equals_tflite_add(isa, dtype):
    in_dtype = torch.int8 if dtype == torch.int16 else dtype
    for act in ACTIVATIONS:
        out, args = linear_case(in_dtype, dtype, act, requant="fixed_point", seed=5)
        assert_bits_equal(out, tflite_add(*args))


def test_saturation_at_both_ends():
    # Residuals at both ends of the range, at a scale that makes them dominate the sum: the output
    # clamps at 0 and 255.
    layer = LinearLayer(None, 37, 70, torch.uint8, "int8_channel", batch_shape=(2, 5), seed=0)
    sy, zy = layer.output_qparams(torch.uint8, "none")
    plan = layer.prepack(sy, zy, torch.uint8)
    y = cq.quantized_linear(layer.x, *plan, torch.uint8)
    other = torch.where(torch.rand(y.shape) < 0.5, 0, 255).to(torch.uint8)
    fused = cq.quantized_linear_add(layer.x, *plan, torch.uint8, other, 1.0, 128, sy, zy)
    assert_bits_equal(fused, reference_add(y, sy, zy, other, 1.0, 128, sy, zy, "none"))
    assert fused.min().item() == 0 and fused.max().item() == 255


# 48 channels: threads split the pixels; 272 (17 blocks of 16): the channels, alone or with the
# pixels (4 threads), so each thread indexes the residual from its own channels.
@pytest.mark.parametrize("out_channels", [48, 272])
def test_results_do_not_depend_on_the_thread_count(out_channels):
    layer = ConvLayer("uint8", (32, out_channels, 20, 20, 3, 1, 1, 1, 1), batch=3)
    y = layer.run()
    other = torch.randint(0, 256, y.shape, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    try:
        results = []
        for t in (1, 2, 4):
            torch.set_num_threads(t)
            results.append(conv_add(layer, other, 0.03, 100, 0.05, 90, "relu"))
    finally:
        torch.set_num_threads(threads)
    for result in results[1:]:
        assert_bits_equal(result, results[0])


# --- errors, Meta, export ------------------------------------------------------------------------


def test_errors_name_the_op_and_the_problem():
    layer = ConvLayer("uint8", CONV_SHAPES["3x3"])
    y = layer.run()
    op = "circle_quant::quantized_conv2d_add"
    with pytest.raises(TypeError, match=f"{op}: other has dtype torch.int8 but the layer's output is torch.uint8"):
        conv_add(layer, y.to(torch.int8), 0.1, 0, 0.1, 0, "none")
    with pytest.raises(ValueError, match=f"{op}: other has shape .* does not broadcast"):
        conv_add(layer, y[:, :, :1], 0.1, 0, 0.1, 0, "none")
    with pytest.raises(ValueError, match=f"{op}: residual scale 0 is not a positive finite number"):
        conv_add(layer, y, 0.0, 0, 0.1, 0, "none")
    with pytest.raises(ValueError, match=f"{op}: add output zero point 300 is outside \\[0, 255\\]"):
        conv_add(layer, y, 0.1, 0, 0.1, 300, "none")
    with pytest.raises(ValueError, match=f"{op}: invalid activation range"):
        cq.quantized_conv2d_add(layer.xq, *layer.args(), y, 0.1, 0, 0.1, 0, 1.0, 0.0)
    float_layer = ConvLayer("uint8", CONV_SHAPES["3x3"], out_dtype=torch.float32)
    with pytest.raises(TypeError, match=f"{op}: a fused add needs a quantized layer output"):
        cq.quantized_conv2d_add(float_layer.xq, *float_layer.args(), y, 0.1, 0, 0.1, 0)
    out, (y, *_rest) = linear_case(torch.uint8, torch.uint8, "none")
    layer = LinearLayer(None, 37, 70, torch.uint8, "int8_channel", batch_shape=(2, 5), seed=0)
    plan = layer.prepack(0.1, 0, torch.uint8)
    with pytest.raises(ValueError, match="circle_quant::quantized_linear_add: other has shape"):
        cq.quantized_linear_add(layer.x, *plan, torch.uint8, y[:1], 0.1, 0, 0.1, 0)


def test_meta_kernels():
    layer = ConvLayer("int8", CONV_SHAPES["grouped"])
    real = layer.run()
    meta = cq.quantized_conv2d_add(
        layer.xq.to("meta"), *(t.to("meta") for t in layer.plan), *layer.args()[3:], real.to("meta"), 0.1, 0, 0.2, 1
    )
    assert meta.shape == real.shape and meta.dtype == real.dtype and meta.stride() == real.stride()
    with pytest.raises(ValueError, match="does not broadcast"):
        cq.quantized_conv2d_add(
            layer.xq.to("meta"),
            *(t.to("meta") for t in layer.plan),
            *layer.args()[3:],
            real[:1].to("meta"),
            0.1,
            0,
            0.2,
            1,
        )


class ResidualBlock(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        for name, t in zip(("packed", "params", "multiplier"), layer.plan):
            self.register_buffer(name, t)

    def forward(self, x, other):
        conv = self.layer
        return cq.quantized_conv2d_add(
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
            other,
            0.05,
            10,
            0.07,
            3,
            0.0,
            None,
        )


def test_torch_export_and_compile_trace_it():
    layer = ConvLayer("uint8", CONV_SHAPES["3x3"])
    other = torch.randint(0, 256, layer.run().shape, dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    block = ResidualBlock(layer)
    eager = block(layer.xq, other)
    ep = torch.export.export(block, (layer.xq, other))
    assert "circle_quant.quantized_conv2d_add.default" in {str(n.target) for n in ep.graph.nodes}
    assert_bits_equal(ep.module()(layer.xq, other), eager)
    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    assert_bits_equal(compiled(layer.xq, other), eager)


def _opcheck_cases():
    conv = ConvLayer("uint8", CONV_SHAPES["3x3"], batch=1)
    conv_other = conv.run()
    lin = LinearLayer(3, 20, 33, torch.int8, "int8_channel", seed=2)
    plan = lin.prepack(0.1, 2, torch.int8)
    lin_other = cq.quantized_linear(lin.x, *plan, torch.int8)
    return [
        (cq.quantized_conv2d_add, (conv.xq, *conv.args(), conv_other, 0.1, 7, 0.2, 9), {"activation_min": 0.0}),
        (cq.quantized_linear_add, (lin.x, *plan, torch.int8, lin_other, 0.1, -3, 0.2, 5), {}),
    ]


OPCHECK_CASES = _opcheck_cases()  # test_registry.py checks that every op has some


@pytest.mark.parametrize("op,args,kwargs", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args, kwargs):
    torch.library.opcheck(op, args, kwargs)


def test_scales_outside_float32_are_refused():
    # The kernels keep scales and reciprocals in float32: 1e-39 would become a subnormal with an
    # infinite reciprocal and silently drop the activation clamp.
    layer = LinearLayer(3, 20, 33, torch.uint8, "int8_channel", seed=2)
    with pytest.raises(ValueError, match="linear_prepack: output scale 1e-39 is outside float32's range"):
        layer.prepack(1e-39, 0, torch.uint8, act="relu")
    plan = layer.prepack(0.1, 0, torch.uint8)
    y = cq.quantized_linear(layer.x, *plan, torch.uint8)
    with pytest.raises(ValueError, match="quantized_linear_add: add output scale 1e-39 is outside float32's range"):
        cq.quantized_linear_add(layer.x, *plan, torch.uint8, y, 0.1, 0, 1e-39, 0, 0.0, None)
