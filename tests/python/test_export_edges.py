"""Edges of the exporter's quantization handling, checked in the real runtimes (onert for uint8
.circle, LiteRT for int8 / int16 .tflite) against PyTorch:

- ops whose integer kernels assume equal input and output parameters, given deliberately
  different ones (AVERAGE_POOL_2D, MAXIMUM, ... were silently tens of steps off);
- a layer the quantizer left in float stays float;
- torchao's X86InductorQuantizer graphs (uint8 activations, int8 weights).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed
import torch_circle
from torch_circle.quantizer import CircleQuantizer
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

QD = torch.ops.quantized_decomposed
RANGES = {"uint8": (torch.uint8, 0, 255), "int8": (torch.int8, -128, 127), "int16": (torch.int16, -32768, 32767)}
FORMATS = [("uint8", "circle"), ("int8", "tflite"), ("int16", "tflite")]


def qparams(lo, hi, dtype):
    """Min/max parameters for [lo, hi]: asymmetric for 8 bits, symmetric for int16."""
    _, qmin, qmax = RANGES[dtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if dtype == "int16":
        return max(-lo, hi) / qmax, 0
    scale = (hi - lo) / (qmax - qmin)
    return scale, int(qmin - round(lo / scale))


class QdqAround(nn.Module):
    """fn between quantize/dequantize pairs, as a PT2E converted graph has it: each input with
    its own parameters, the output with others."""

    def __init__(self, fn, in_params, out_params, dtype):
        super().__init__()
        self.fn, self.in_params, self.out_params, self.dtype = fn, in_params, out_params, dtype

    def qdq(self, x, params):
        torch_dtype, qmin, qmax = RANGES[self.dtype]
        scale, zero_point = params
        q = QD.quantize_per_tensor(x, scale, zero_point, qmin, qmax, torch_dtype)
        return QD.dequantize_per_tensor(q, scale, zero_point, qmin, qmax, torch_dtype)

    def forward(self, *xs):
        return self.qdq(self.fn(*[self.qdq(x, p) for x, p in zip(xs, self.in_params)]), self.out_params)


# name: (fn, number of inputs, Circle op that must run on integers in the file, averages?)
SAME_PARAMS_OPS = {
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), 1, "AVERAGE_POOL_2D", True),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, 2), 1, "AVERAGE_POOL_2D", True),
    "global_avg_pool": (lambda x: F.adaptive_avg_pool2d(x, 1), 1, "MEAN", True),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), 1, "MAX_POOL_2D", False),
    "reshape": (lambda x: x.reshape(2, 4, 64), 1, "RESHAPE", False),
    "permute": (lambda x: x.permute(0, 2, 3, 1), 1, "TRANSPOSE", False),
    "slice": (lambda x: x[:, 1:3], 1, "SLICE", False),
    "pad": (lambda x: F.pad(x, (1, 1, 1, 1)), 1, "PAD", False),
    "cat": (lambda a, b: torch.cat([a, b], 1), 2, "CONCATENATION", False),
    "maximum": (lambda a, b: torch.maximum(a, b), 2, "MAXIMUM", False),
    "minimum": (lambda a, b: torch.minimum(a, b), 2, None, False),  # float in onert
    "repeat": (lambda x: x.repeat(1, 2, 1, 1), 1, None, False),
    "amax": (lambda x: x.amax(dim=1, keepdim=True), 1, None, False),
    "sum": (lambda x: x.sum(dim=1, keepdim=True), 1, None, False),
    "relu": (lambda x: torch.relu(x), 1, None, False),
    "upsample_nearest": (lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), 1, None, False),
}


@pytest.mark.parametrize("name", list(SAME_PARAMS_OPS))
@pytest.mark.parametrize("dtype,fmt", FORMATS)
def test_op_with_different_input_and_output_params_matches_pytorch(name, dtype, fmt):
    fn, arity, integer_op, averages = SAME_PARAMS_OPS[name]
    gen = torch.Generator().manual_seed(0)
    xs = tuple(torch.randn(2, 4, 8, 8, generator=gen) * (1.5 + i) + 0.3 for i in range(arity))
    in_params = [qparams(x.min().item(), x.max().item(), dtype) for x in xs]
    y = fn(*xs)
    # A narrower, shifted output range: a finer step and another zero point than any input's.
    out_params = qparams(y.min().item() * 0.6 - 0.2, y.max().item() * 0.7, dtype)
    model = QdqAround(fn, in_params, out_params, dtype).eval()
    cm = torch_circle.export(model, xs, format=fmt)
    steps = np.abs(cm.run(*xs)[0] - model(*xs).numpy()) / out_params[0]
    # Copies and selections are exact up to PyTorch's float rounding at a tie. An 8-bit integer
    # average is rounded to its input's step (the runtimes' kernels need equal parameters), then
    # requantized: at most half an input step more.
    bound = 1.0 + (0.5 * max(p[0] for p in in_params) / out_params[0] if averages else 0.0)
    assert steps.max() <= bound + 1e-3, f"{name}: {steps.max():.1f} steps (bound {bound:.2f}), ops {cm.operators}"
    if integer_op:
        sg = cm.info["subgraphs"][0]
        ops = [op for op in sg["operators"] if op["op"] == integer_op]
        assert ops and all(sg["tensors"][op["outputs"][0]]["dtype"] != "FLOAT32" for op in ops), cm.operators


class ConvAvgPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2)


def convert(model, args, quantizer, calibration=()):
    prepared = prepare_pt2e(torch.export.export(model, args).module(), quantizer)
    for batch in calibration:
        prepared(batch)
    prepared(*args)
    return convert_pt2e(prepared)


@pytest.mark.parametrize("preset,fmt", FORMATS)
def test_quantized_average_pool_after_conv_matches_converted_model(preset, fmt):
    torch.manual_seed(0)
    model, x = ConvAvgPool().eval(), torch.randn(2, 4, 6, 6)
    converted = convert(model, (x,), CircleQuantizer(preset))
    cm = torch_circle.export(converted, (x,), format=fmt)
    sg = cm.info["subgraphs"][0]
    pool = next(op for op in sg["operators"] if op["op"] == "AVERAGE_POOL_2D")
    pool_in, pool_out = (sg["tensors"][pool[k][0]] for k in ("inputs", "outputs"))
    assert pool_in["dtype"] != "FLOAT32"
    assert (pool_in["scale"], pool_in["zero_point"]) == (pool_out["scale"], pool_out["zero_point"])
    steps = cm.output_steps(cm.run(x)[0], converted(x).detach().numpy())
    # CircleQuantizer observes the pool's output separately: its step is finer than the input's.
    bound = 1.0 + 0.5 * pool_in["scale"][0] / cm.output_step()
    assert steps.max() <= bound, f"{steps.max()} steps (bound {bound:.2f})"


class FloatMiddle(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


@pytest.mark.parametrize("preset,fmt", [("uint8", "circle"), ("int8", "tflite")])
def test_layer_left_in_float_stays_float_between_dequantize_and_quantize(preset, fmt):
    torch.manual_seed(0)
    model = FloatMiddle().eval()
    with torch.no_grad():  # channels of very different magnitude: per-tensor int8 would lose them
        model.b.weight[0] *= 100
    x = torch.randn(2, 3, 8, 8)
    calibration = [torch.randn(2, 3, 8, 8) for _ in range(4)]
    converted = convert(model, (x,), CircleQuantizer(preset).set_module_name("b", None), calibration)
    cm = torch_circle.export(converted, (x,), format=fmt)
    sg = cm.info["subgraphs"][0]
    convs = [op for op in sg["operators"] if op["op"] == "CONV_2D"]
    dtypes = [sg["tensors"][op["outputs"][0]]["dtype"] for op in convs]
    assert dtypes.count("FLOAT32") == 1 and len(convs) == 3, dtypes
    float_conv = next(op for op, d in zip(convs, dtypes) if d == "FLOAT32")
    assert all(sg["tensors"][i]["dtype"] == "FLOAT32" for i in float_conv["inputs"] if i >= 0)
    producers = {t: op["op"] for op in sg["operators"] for t in op["outputs"]}
    assert producers[float_conv["inputs"][0]] == "DEQUANTIZE"
    steps = cm.output_steps(cm.run(x)[0], converted(x).detach().numpy())
    assert steps.max() <= 1, f"{steps.max()} steps"


def x86_converted():
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()
    x = torch.randn(2, 3, 16, 16)
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    return model, x, convert(model, (x,), quantizer)


def test_x86_inductor_quantizer_graph_runs_exactly_in_onert():
    """uint8 activations with int8 symmetric per-channel weights: the weights become uint8 with
    zero point 128 (the same real values), which onert runs correctly."""
    model, x, converted = x86_converted()
    cm = torch_circle.export(converted, (x,))
    sg = cm.info["subgraphs"][0]
    convs = [op for op in sg["operators"] if op["op"] == "CONV_2D"]
    assert len(convs) == 2
    for op in convs:
        assert sg["tensors"][op["inputs"][0]]["dtype"] == "UINT8"
        weight = sg["tensors"][op["inputs"][1]]
        assert weight["dtype"] == "UINT8" and set(weight["zero_point"]) == {128}
    # X86InductorQuantizer leaves the linear's output in float: its input is the last integer
    # tensor, so one step there moves each output by at most one step times the row's L1 norm.
    fc = next(op for op in sg["operators"] if op["op"] == "FULLY_CONNECTED")
    step = next(op for op in sg["operators"] if op["outputs"][0] == fc["inputs"][0])
    step = sg["tensors"][step["inputs"][0]]["scale"][0]
    bound = step * model[-1].weight.abs().sum(1).max().item()
    diff = np.abs(cm.run(x)[0] - converted(x).detach().numpy()).max()
    assert diff <= bound * (1 + 1e-3), (diff, bound)


def test_x86_inductor_quantizer_graph_is_refused_for_tflite_with_the_way_out():
    _, x, converted = x86_converted()
    with pytest.raises(torch_circle.ExportError) as error:
        torch_circle.export(converted, (x,), format="tflite")
    message = str(error.value)
    assert "uint8 activations with int8 weights" in message
    assert "aten.conv2d" in message and 'CircleQuantizer("int8")' in message
