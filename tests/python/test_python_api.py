"""torch_circle.ops (direct bindings) against torch.ops.circle_quant, and under tracing."""

import warnings

import pytest
import torch

from torch_circle import ops
from conftest import assert_bits_equal
import test_fake_quantize
import test_observer_ops
import test_quantize_ops

# Every public op's opcheck cases (the _cachemask ops are internal: no Python binding).
ALL_CASES = [
    c[:2]
    for m in (test_quantize_ops, test_observer_ops, test_fake_quantize)
    for c in m.OPCHECK_CASES
    if not c[0]._qualified_op_name.split("::")[1].startswith("_")
]


def results(value):
    return value if isinstance(value, tuple) else (value,)


def run(fn, args):
    """fn on fresh copies of args: its results, or for in-place ops the mutated arguments."""
    args = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(*args)
    return results(out) if out is not None else tuple(a for a in args if isinstance(a, torch.Tensor))


@pytest.mark.parametrize("op,args", ALL_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_bindings_equal_dispatcher_ops(op, args):
    name = op._qualified_op_name.split("::")[1]
    for a, b in zip(run(getattr(ops, name), args), run(op, args)):
        assert_bits_equal(a, b)


def test_binding_errors_are_typed_python_exceptions():
    with pytest.raises(ValueError, match="circle_quant::quantize_per_tensor: scale must be finite"):
        ops.quantize_per_tensor(torch.ones(2), -1.0, 0, 0, 255, torch.uint8)
    with pytest.raises(TypeError, match="input must be a float32, float16 or bfloat16 tensor"):
        ops.minmax(torch.ones(2, dtype=torch.int64))
    with pytest.raises(IndexError, match="axis 5 is out of range"):
        ops.minmax_per_channel(torch.ones(2, 2), 5)


def test_binding_turns_torch_warnings_into_python_warnings():
    x = torch.randn(100)
    x[0] = float("inf")
    inf = torch.tensor(float("inf"))
    with pytest.warns(UserWarning, match="holds Inf values; they are left out"):
        ops.histogram_observe(x, torch.zeros(16), inf, -inf)


def test_binding_keyword_arguments_and_defaults():
    q = torch.randint(0, 255, (8,), dtype=torch.uint8)
    y = ops.dequantize_per_tensor(q, 0.5, 3, 0, 255, torch.uint8, out_dtype=torch.bfloat16)
    assert y.dtype == torch.bfloat16
    hist, _, _ = ops.histogram_observe(
        torch.randn(10), torch.zeros(8), torch.tensor(float("inf")), torch.tensor(float("-inf"))
    )  # default upsample_rate
    assert hist.sum().item() == 10


def test_binding_autograd():
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    ops.fake_quantize_per_tensor(x, 0.01, 0, -128, 127).sum().backward()
    assert x.grad.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]


class UsesBindings(torch.nn.Module):
    def forward(self, x):
        mn, mx = ops.minmax(x)
        q = ops.quantize_per_tensor(x, 0.05, 10, 0, 255, torch.uint8)
        return ops.dequantize_per_tensor(q, 0.05, 10, 0, 255, torch.uint8), mn, mx


@pytest.mark.parametrize("strict", [True, False])
def test_export_records_the_dispatcher_ops(strict):
    x = torch.randn(3, 5)
    ep = torch.export.export(UsesBindings(), (x,), strict=strict)
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert {
        "circle_quant.minmax.default",
        "circle_quant.quantize_per_tensor.default",
        "circle_quant.dequantize_per_tensor.default",
    } <= targets
    for a, b in zip(ep.module()(x), UsesBindings()(x)):
        assert_bits_equal(a, b)


def test_compile_fullgraph_through_bindings():
    compiled = torch.compile(UsesBindings(), backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 6)
    for a, b in zip(compiled(x), UsesBindings()(x)):
        assert_bits_equal(a, b)


def test_meta_tensors_through_bindings():
    out = ops.quantize_per_tensor(torch.empty(2, 3, device="meta"), 0.1, 0, 0, 255, torch.uint8)
    assert out.device.type == "meta" and out.dtype == torch.uint8 and out.shape == (2, 3)


def test_importing_the_quantizer_drops_only_torchao_cuda_library_noise():
    """torchao's import on a CPU torch logs that its CUDA kernel libraries cannot load, and torch
    logs a deprecation note about a torchao Enum: torch_circle drops exactly those, while the
    same loggers' other messages still reach the user."""
    import subprocess
    import sys

    script = (
        "import logging\n"
        "from torch_circle.quantizer import CircleQuantizer\n"
        "logging.getLogger('torchao').warning('Failed to load /x/_C_other.so: kept')\n"
        "logging.getLogger('torch.utils._pytree').warning('%s is an Enum subclass (kept)', int)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "_C_cutlass" not in result.stderr and "_C_mxfp8" not in result.stderr, result.stderr
    assert "KernelPreference" not in result.stderr, result.stderr
    assert "Failed to load /x/_C_other.so: kept" in result.stderr
    assert "is an Enum subclass (kept)" in result.stderr


def test_every_public_circle_quant_op_is_in_torch_circle_ops():
    """README: torch_circle.ops.<op> exists for every public torch.ops.circle_quant.<op>."""
    import torch

    from torch_circle import ops

    public = {
        s.name.split("::")[1]
        for s in torch._C._jit_get_all_schemas()
        if s.name.startswith("circle_quant::") and not s.name.split("::")[1].startswith("_")
    }
    assert "quantized_conv2d" in public and "quantized_softmax" in public
    assert sorted(name for name in public if not callable(getattr(ops, name, None))) == []
