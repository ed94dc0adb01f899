"""torch.compile(converted, backend="circle_quant"): fusion, agreement with the converted graph,
what stays unfused, options, dynamic shapes, weight updates and the entry point."""

import logging
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import torch_circle.backend as backend
from models import EncoderLayer, LlamaBlock, MobileNetV2Like, ResNetLike, seeded
from torch_circle.quantizer import CircleQuantizer

qd = torch.ops.quantized_decomposed
LAYERS = {
    torch.ops.aten.linear.default: "linear",
    torch.ops.aten.conv2d.default: "conv2d",
    torch.ops.aten.conv1d.default: "conv2d",
}  # the report counts a conv1d (run as conv2d) there


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(24, 64), nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc3(nn.functional.relu6(self.fc2(torch.relu(self.fc1(x)))))


class InPlaceResidual(nn.Module):
    """torchvision's ResNet block as written there: `out += identity`, an aten.add_.Tensor."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x):
        out = self.conv2(torch.relu(self.conv1(x)))
        out += x
        return torch.relu(out)


class DropoutResidual(nn.Module):
    """BERT's / ViT's output sublayer: an eval-mode dropout between the layer and the add."""

    def __init__(self):
        super().__init__()
        self.fc, self.dropout = nn.Linear(16, 16), nn.Dropout(0.1)

    def forward(self, x):
        return self.dropout(self.fc(x)) + x


class Conv1dStack(nn.Module):
    """Wav2Vec2's / Whisper's feature encoder: strided and dilated conv1d layers with GELU."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(4, 16, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(16, 16, 3, padding=2, dilation=2, groups=4)

    def forward(self, x):
        return self.conv2(nn.functional.gelu(self.conv1(x)))


MODELS = {
    "mlp": (MLP, (4, 24)),
    "inplace_residual": (InPlaceResidual, (2, 8, 6, 6)),
    "dropout_residual": (DropoutResidual, (4, 16)),
    "conv1d": (Conv1dStack, (2, 4, 40)),
    "resnet": (ResNetLike, (2, 3, 32, 32)),
    "mobilenet": (MobileNetV2Like, (2, 3, 32, 32)),
    "encoder": (lambda: EncoderLayer(32, 4), (2, 8, 32)),
    "llama": (lambda: LlamaBlock(32, 4, 64), (2, 8, 32)),
}


def converted(name, preset="uint8", quantizer=None, seed=0, dynamic_batch=False):
    build, shape = MODELS[name]
    model = seeded(build(), seed)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    dynamic = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    exported = torch.export.export(model, (x,), dynamic_shapes=dynamic).module()
    prepared = prepare_pt2e(exported, quantizer or CircleQuantizer(preset=preset))
    for _ in range(4):
        prepared(torch.randn(shape, generator=gen))
    return convert_pt2e(prepared), x


def quantized_layers(gm):
    """(linear, conv2d) counts of layers whose input and weight are dequantized."""
    counts = {"linear": 0, "conv2d": 0}
    for n in gm.graph.nodes:
        if n.target in LAYERS and all(
            getattr(a, "target", None) in (qd.dequantize_per_tensor.default, qd.dequantize_per_channel.default)
            for a in n.args[:2]
        ):
            counts[LAYERS[n.target]] += 1
    return counts["linear"], counts["conv2d"]


def output_step(gm):
    """Scale of the dequantize producing the graph output (one quantization step)."""
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0][0]
    assert out.target == qd.dequantize_per_tensor.default
    return out.args[1]


def compile_and_run(gm, x, **options):
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend="circle_quant", options=options or None)
    with torch.no_grad():
        return compiled(x), compiled


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("preset", ["uint8", "int8"])
@pytest.mark.parametrize("delegate", ["eager", "inductor"])
def test_fused_model_agrees_with_the_converted_graph(name, preset, delegate):
    gm, x = converted(name, preset)
    with torch.no_grad():
        expected = gm(x)
    actual, _ = compile_and_run(gm, x, delegate=delegate)
    report = backend.last_report()
    assert (len(report.fused_linear), len(report.fused_conv2d)) == quantized_layers(gm), report.summary()
    assert report.fused > 0 and not report.unmatched and report.delegate == delegate
    # requant="float" rounds like the reference graph: outputs agree to a quantization step
    # (in practice bit for bit; a tie rounded differently inside may move the output by one).
    step = output_step(gm)
    assert (actual - expected).abs().max().item() <= step * 1.001
    assert (actual - expected).abs().mean().item() <= step * 0.01


@pytest.mark.parametrize(
    "name,adds",
    [("resnet", 2), ("mobilenet", 2), ("encoder", 2), ("llama", 2), ("inplace_residual", 1), ("dropout_residual", 1)],
)
def test_residual_adds_are_fused_into_the_layer_before_them(name, adds):
    gm, x = converted(name)
    with torch.no_grad():
        expected = gm(x)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    assert compiled.report.fused_adds == adds, compiled.report.summary()
    targets = [str(n.target) for n in compiled.gm.graph.nodes if n.op == "call_function"]
    assert sum("_add" in t for t in targets) == adds
    # The add's quantize, the layer's quantize / dequantize pair and the add itself are gone.
    assert (
        not any(t in ("aten.add.Tensor", "aten.add_.Tensor", "<built-in function add>") for t in targets)
        or name == "llama"
    )
    assert "aten.dropout.default" not in targets
    assert torch.equal(compiled(x), expected)


def test_residual_adds_fuse_with_a_dynamic_batch():
    gm, x = converted("resnet", dynamic_batch=True)
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend="circle_quant", dynamic=True, options={"delegate": "eager"})
    with torch.no_grad():
        for batch in (2, 3, 5):
            xb = torch.randn(batch, *x.shape[1:])
            assert torch.equal(compiled(xb), gm(xb))
    assert backend.last_report().fused_adds == 2


def test_adds_that_cannot_be_fused_stay():
    class Broadcast(nn.Module):  # the residual broadcasts: the fused add does not
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 16)
            self.bias = nn.Parameter(torch.randn(16))

        def forward(self, x):
            return self.fc(x) + self.bias

    model = seeded(Broadcast(), 0)
    x = torch.randn(4, 16)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset="uint8"))
    prepared(x)
    gm = convert_pt2e(prepared)
    with torch.no_grad():
        expected = gm(x)
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    assert compiled.report.fused_adds == 0 and len(compiled.report.fused_linear) == 1
    assert torch.equal(compiled(x), expected)


@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_fixed_point_requantization(preset):
    gm, x = converted("mlp", preset)
    with torch.no_grad():
        expected = gm(x)
    actual, _ = compile_and_run(gm, x, requant="fixed_point")
    assert backend.last_report().requant == "fixed_point"
    # The TFLite / ONE rounding differs from PyTorch's by ±1 at near-ties, per layer.
    assert (actual - expected).abs().max().item() <= 3 * output_step(gm) * 1.001


class _ConvThen(nn.Module):
    """Two convs of one input, then the op under test on their quantized outputs."""

    def __init__(self, op):
        super().__init__()
        self.conv, self.conv2, self.op = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 1), op

    def forward(self, x):
        return self.op(self.conv(x), self.conv2(x))


F = torch.nn.functional
# The ops whose integer results the backend reproduces exactly with requant="fixed_point" (the
# fused layers and adds, integer pooling and layout, lookup tables), and the two that PyTorch's
# float arithmetic still computes: they differ from onert's integer rounding at near-ties only.
FIXED_POINT_OPS = {
    "relu": (lambda y, z: F.relu(y), 0),
    "add": (lambda y, z: torch.relu(y) + torch.sigmoid(z), 0),
    "max_pool": (lambda y, z: F.max_pool2d(y, 2), 0),
    "mean": (lambda y, z: y.mean((2, 3)), 0),
    "cat": (lambda y, z: torch.cat([y, z * 3], 1), 0),
    "hardswish": (lambda y, z: F.hardswish(y), 0),
    "silu": (lambda y, z: F.silu(y), 0),
    "tanh": (lambda y, z: torch.tanh(y), 0),
    "gelu_then_layout": (lambda y, z: F.gelu(y).permute(0, 2, 3, 1).flatten(1), 0),
    "mul": (lambda y, z: y * z, 1),
    "avg_pool": (lambda y, z: F.avg_pool2d(y, 2), 1),
    # quantized_matmul's fixed-point output stage; onert's BATCH_MATMUL rounds otherwise at
    # near-ties (measured: 0.3% of outputs one step off)
    "matmul": (lambda y, z: torch.matmul(y, z.transpose(-1, -2)), 1),
}


@pytest.mark.parametrize("op", list(FIXED_POINT_OPS))
def test_fixed_point_against_onert(op):
    import numpy as np

    import torch_circle

    fn, max_steps = FIXED_POINT_OPS[op]
    model = seeded(_ConvThen(fn), 0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((4, 8, 12, 12), generator=gen)
    prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset="uint8"))
    for _ in range(4):
        prepared(torch.randn(x.shape, generator=gen))
    gm = convert_pt2e(prepared)
    cm = torch_circle.export(gm, (x,))
    (onert,) = cm.run(x, runtime="onert")
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager", "requant": "fixed_point"})
    with torch.no_grad():
        steps = cm.output_steps(compiled(x).numpy(), onert)
    assert steps.max() <= max_steps, f"{op}: {steps.max()} steps from onert"
    if max_steps == 0:
        assert np.array_equal(compiled(x).numpy(), onert)


def test_auto_delegate_runs_pure_quantized_chains_eagerly():
    gm, x = converted("mlp")
    compile_and_run(gm, x)
    assert backend.last_report().delegate == "eager"  # nothing but fused ops and q / dq left
    gm, x = converted("encoder")
    compile_and_run(gm, x)
    assert backend.last_report().delegate == "inductor"  # softmax, layer norm, GELU left


def test_consecutive_layers_pass_integers_directly():
    gm, x = converted("mlp")
    with torch.no_grad():
        expected = gm(x)
    # The backend called directly on the converted GraphModule (constants as get_attr).
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    nodes = [n for n in compiled.gm.graph.nodes if n.op == "call_function"]
    fused = [n for n in nodes if "quantized_linear" in str(n.target)]
    assert len(fused) == 3
    # fc1 → fc2 → fc3: each fused op reads the previous one's integer output, no q / dq between.
    assert fused[1].args[0] is fused[0] and fused[2].args[0] is fused[1]
    assert len(nodes) == 5  # quantize the input, 3 fused layers, dequantize the output
    assert torch.equal(compiled(x), expected)


def test_convs_stay_channels_last_between_layers():
    gm, x = converted("resnet")
    compiled = backend.compile_graph(gm, [x], options={"delegate": "eager"})
    layout_ops = [
        n
        for n in compiled.gm.graph.nodes
        if n.op in ("call_function", "call_method")
        and any(s in str(n.target) for s in ("contiguous", "to_dense", "clone", "copy"))
    ]
    assert not layout_ops
    seen = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            value = super().run_node(n)
            if "quantized_conv2d" in str(n.target):
                seen[n.name] = value.is_contiguous(memory_format=torch.channels_last)
            return value

    with torch.no_grad():
        Recorder(compiled.gm).run(x)
    assert len(seen) == 5 and all(seen.values())


def test_unmatched_patterns_still_run_and_are_reported():
    # int16 activations have no fused kernel: every layer stays as it was, and runs.
    gm, x = converted("mlp", "int16")
    with torch.no_grad():
        expected = gm(x)
    actual, _ = compile_and_run(gm, x)
    report = backend.last_report()
    assert report.fused == 0 and len(report.unmatched) == 3
    assert all("int16" in why for _, why in report.unmatched), report.unmatched
    assert report.unmatched[0][0] == "linear"
    assert "left unfused" in report.summary()
    # Inductor runs the unfused graph: its float sums may round a value to the next step.
    assert (actual - expected).abs().max().item() <= output_step(gm) * 1.001


def test_weights_that_are_graph_inputs_are_left_alone():
    class TakesWeight(nn.Module):
        def forward(self, x, w):
            xq = qd.quantize_per_tensor(x, 0.05, 128, 0, 255, torch.uint8)
            wq = qd.quantize_per_tensor(w, 0.01, 0, -127, 127, torch.int8)
            y = nn.functional.linear(
                qd.dequantize_per_tensor(xq, 0.05, 128, 0, 255, torch.uint8),
                qd.dequantize_per_tensor(wq, 0.01, 0, -127, 127, torch.int8),
            )
            return y

    m, x, w = TakesWeight(), torch.randn(3, 8), torch.randn(4, 8) * 0.3
    torch._dynamo.reset()
    out = torch.compile(m, backend="circle_quant")(x, w)
    torch.testing.assert_close(out, m(x, w))
    report = backend.last_report()
    assert report.fused == 0 and "is a graph input, not a module constant" in report.unmatched[0][1]


def test_float_model_runs_with_one_warning():
    model = seeded(MLP())
    x = torch.randn(4, 24)
    torch._dynamo.reset()
    backend.compiler._warned_nothing = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = torch.compile(model, backend="circle_quant")(x)
    assert sum("no quantized linear" in str(w.message) for w in caught) == 1
    torch.testing.assert_close(out, model(x))


def test_dynamic_batch_sizes():
    gm, x = converted("mlp", dynamic_batch=True)
    torch._dynamo.reset()
    compiled = torch.compile(gm, backend="circle_quant", dynamic=True)
    with torch.no_grad():
        for batch in (1, 5, 17):
            xb = torch.randn(batch, 24)
            assert torch.equal(compiled(xb), gm(xb))
    assert backend.last_report().fused == 3


def test_weight_updates_after_compiling_are_picked_up():
    gm, x = converted("mlp")
    compiled = torch.compile(gm, backend="circle_quant")
    torch._dynamo.reset()
    with torch.no_grad():
        before = compiled(x)
        weight = next(n for n in gm.graph.nodes if n.op == "get_attr" and "frozen_param" in n.target)
        w = getattr(gm, weight.target)
        w.copy_(torch.flip(w, [0]))  # in place, as load_state_dict does
        after = compiled(x)
        assert torch.equal(after, gm(x)) and not torch.equal(after, before)


def test_options_are_checked():
    gm, x = converted("mlp")
    with pytest.raises(ValueError, match="requant"):
        backend.circle_quant_backend(gm, [x], options={"requant": "nearest"})
    with pytest.raises(ValueError, match="delegate"):
        backend.circle_quant_backend(gm, [x], options={"delegate": "tvm"})
    with pytest.raises(ValueError, match="inductor config patches"):
        backend.circle_quant_backend(gm, [x], options={"delegate": "eager", "max_autotune": True})


def test_report_is_logged(caplog):
    gm, x = converted("mlp")
    with caplog.at_level(logging.INFO, logger="torch_circle.backend"):
        compile_and_run(gm, x)
    assert any("fused 3 linear" in r.getMessage() for r in caplog.records)
    assert backend.reports()[-1] is backend.last_report()


def test_x86_inductor_quantizer_graphs():
    xiq = pytest.importorskip("torchao.quantization.pt2e.quantizer.x86_inductor_quantizer")
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    gm, x = converted("resnet", quantizer=quantizer)
    with torch.no_grad():
        expected = gm(x)
    actual, _ = compile_and_run(gm, x)
    report = backend.last_report()
    assert len(report.fused_conv2d) == 5 and not report.unmatched
    # Its conv outputs stay float when the next op is not quantized: fused with float output.
    assert report.float_output
    torch.testing.assert_close(actual, expected, atol=0.05 * expected.abs().max().item(), rtol=0)
    assert torch.equal(actual.argmax(-1), expected.argmax(-1))


def test_entry_point_works_without_importing_torch_circle():
    code = textwrap.dedent("""
        import sys, torch
        assert "torch_circle" not in sys.modules
        assert "circle_quant" in torch._dynamo.list_backends(exclude_tags=())
        f = torch.compile(torch.nn.Linear(4, 3), backend="circle_quant")
        print(tuple(f(torch.randn(2, 4)).shape), "torch_circle" in sys.modules)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("(2, 3) True")


@pytest.mark.filterwarnings("ignore:XNNPACKQuantizer is deprecated")
@pytest.mark.parametrize("per_channel", [True, False])
def test_xnnpack_style_quantizer_graphs(per_channel):
    xnnpack = pytest.importorskip("torchao.testing.pt2e._xnnpack_quantizer")
    quantizer = xnnpack.XNNPACKQuantizer().set_global(
        xnnpack.get_symmetric_quantization_config(is_per_channel=per_channel)
    )
    gm, x = converted("resnet", quantizer=quantizer)
    with torch.no_grad():
        expected = gm(x)
    actual, _ = compile_and_run(gm, x)
    report = backend.last_report()
    assert (len(report.fused_linear), len(report.fused_conv2d)) == (1, 5) and not report.unmatched
    assert (actual - expected).abs().max().item() <= output_step(gm) * 1.001
