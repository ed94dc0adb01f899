"""Issue 16: inputs that used to kill the process or return garbage. Each snippet of the issue is
a test here: it must raise a Python exception naming the op / argument / node / file, or give the
reference result."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import torch_circle
from torch_circle import runtime
from conftest import SUPPORTED_ISAS
from test_exporter import _crafted, convert

Q = torch.ops.circle_quant
META = "meta"


def _conv_plan(groups=1, **overrides):
    w = torch.randint(-127, 128, (16, 8 // groups, 3, 3), dtype=torch.int8)
    args = dict(stride=[1, 1], padding=[1, 1], dilation=[1, 1])
    args.update(overrides)
    return Q.conv2d_prepack(
        w,
        torch.full((16,), 0.01),
        torch.zeros(16, dtype=torch.int32),
        None,
        args["stride"],
        args["padding"],
        args["dilation"],
        groups,
        0.02,
        128,
        torch.uint8,
        0.05,
        100,
        torch.uint8,
    )


def _linear_plan(n=4, k=8, requant="float", **kw):
    w = torch.randint(-127, 128, (n, k), dtype=torch.int8)
    return Q.linear_prepack(
        w,
        torch.full((n,), 0.01),
        torch.zeros(n, dtype=torch.int32),
        kw.get("bias"),
        0.02,
        128,
        torch.uint8,
        0.05,
        100,
        torch.uint8,
        None,
        None,
        requant,
    )


# --- crashes -------------------------------------------------------------------------------------


def test_conv2d_groups_zero_is_an_error_not_sigfpe():
    p = _conv_plan()
    x = torch.zeros(1, 8, 9, 9, dtype=torch.uint8)
    with pytest.raises(ValueError, match="quantized_conv2d: groups must be >= 1, got 0"):
        Q.quantized_conv2d(x, *p, [3, 3], [1, 1], [1, 1], [1, 1], 0, torch.uint8)
    other = torch.zeros(1, 16, 9, 9, dtype=torch.uint8)
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        Q.quantized_conv2d_add(x, *p, [3, 3], [1, 1], [1, 1], [1, 1], 0, torch.uint8, other, 0.05, 100, 0.05, 100)
    # The Meta kernel (torch.export / torch.compile tracing) checks before dividing too.
    meta = [t.to(META) for t in p]
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        Q.quantized_conv2d(x.to(META), *meta, [3, 3], [1, 1], [1, 1], [1, 1], 0, torch.uint8)


def test_export_of_a_meta_device_model_names_the_constant():
    model = torch.nn.Linear(8, 4).to(META).eval()
    with pytest.raises(torch_circle.exporter.ExportError, match="on device 'meta'.*model.to\\('cpu'\\)"):
        torch_circle.export(model, (torch.randn(2, 8, device=META),))


def test_export_refuses_zero_size_linear():
    with pytest.raises(torch_circle.exporter.ExportError, match="holds no elements"):
        torch_circle.export(torch.nn.Linear(0, 4).eval(), (torch.randn(2, 0),))


def test_run_survives_a_runtime_crash_and_names_the_file(tmp_path):
    """onert dies with SIGSEGV on an out-of-range gather index; run() raises instead, and the
    next call works (a new worker)."""
    pytest.importorskip("onert")
    model = torch.nn.Embedding(10, 4).eval()
    path = tmp_path / "embedding.circle"
    torch_circle.export(model, (torch.tensor([[1, 2]]),)).save(path)
    cm = torch_circle.load(path)
    with pytest.raises(runtime.RuntimeFailed, match="crashed.*embedding.circle"):
        cm.run(np.array([[1, 1000000]], dtype=np.int64))
    good = cm.run(np.array([[1, 2]], dtype=np.int64))[0]
    np.testing.assert_allclose(good, model(torch.tensor([[1, 2]])).detach().numpy(), rtol=1e-6)


def test_run_reports_runtime_errors_as_exceptions_of_the_same_type():
    pytest.importorskip("onert")
    cm = torch_circle.export(torch.nn.Linear(8, 4).eval(), (torch.randn(2, 8),))
    with pytest.raises(TypeError, match="input 0 .* expects float32, got int32"):
        cm.run(np.zeros((2, 8), dtype=np.int32))
    assert cm.run(np.zeros((2, 8), dtype=np.float32))[0].shape == (2, 4)


def test_run_works_when_the_caller_preloads_a_sanitizer_runtime(monkeypatch):
    """A sanitized build is run with libasan in LD_PRELOAD; the runtime worker must not inherit
    it (onert then finds no backend), while other preloads pass through."""
    pytest.importorskip("onert")
    libasan = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("no libasan to preload")
    monkeypatch.setenv("LD_PRELOAD", f"{libasan} /usr/lib/x86_64-linux-gnu/libkeep.so")
    assert runtime._worker_environment()["LD_PRELOAD"] == "/usr/lib/x86_64-linux-gnu/libkeep.so"
    monkeypatch.setenv("LD_PRELOAD", libasan)
    assert "LD_PRELOAD" not in runtime._worker_environment()
    runtime._close_worker()  # the next run starts a worker from this environment
    try:
        cm = torch_circle.export(torch.nn.Linear(8, 4).eval(), (torch.randn(2, 8),))
        assert cm.run(np.zeros((2, 8), dtype=np.float32))[0].shape == (2, 4)
    finally:
        runtime._close_worker()


# --- silent wrong results: devices ---------------------------------------------------------------


def _meta(t):
    return t.to(META)


DEVICE_CASES = {
    "quantize_per_channel": lambda x: Q.quantize_per_channel(
        x, _meta(torch.ones(2)), torch.zeros(2, dtype=torch.long), 0, -128, 127, torch.int8
    ),
    "dequantize_per_channel": lambda x: Q.dequantize_per_channel(
        torch.zeros(2, 3, dtype=torch.int8),
        torch.ones(2),
        _meta(torch.zeros(2, dtype=torch.long)),
        0,
        -128,
        127,
        torch.int8,
    ),
    "fake_quantize_per_channel": lambda x: Q.fake_quantize_per_channel(
        x, _meta(torch.ones(2)), torch.zeros(2, dtype=torch.int32), 0, -128, 127
    ),
    "choose_qparams": lambda x: Q.choose_qparams(
        torch.tensor(-1.0), _meta(torch.tensor(1.0)), 0, 255, torch.uint8, False, 1e-7
    ),
    "histogram_observe": lambda x: Q.histogram_observe(
        x, _meta(torch.zeros(64)), torch.tensor(float("inf")), torch.tensor(float("-inf"))
    ),
    "histogram_choose_qparams": lambda x: Q.histogram_choose_qparams(
        torch.ones(64), _meta(torch.tensor(-1.0)), _meta(torch.tensor(1.0)), 0, 255, torch.uint8, False, 1e-7
    ),
    "quantized_linear": lambda x: Q.quantized_linear(
        torch.zeros(2, 8, dtype=torch.uint8), *[_meta(t) for t in _linear_plan()], torch.uint8
    ),
    "quantized_conv2d": lambda x: Q.quantized_conv2d(
        torch.zeros(1, 8, 9, 9, dtype=torch.uint8),
        *[_meta(t) for t in _conv_plan()],
        [3, 3],
        [1, 1],
        [1, 1],
        [1, 1],
        1,
        torch.uint8,
    ),
}


@pytest.mark.parametrize("op", list(DEVICE_CASES))
def test_cpu_inputs_with_meta_parameters_are_refused(op):
    with pytest.raises(ValueError, match=f"circle_quant::{op}: .* is on meta but .* is on cpu"):
        DEVICE_CASES[op](torch.randn(2, 3))


# --- silent wrong results: the int32 accumulator -------------------------------------------------


def _uint8_linear(k, bias):
    """All-255 uint8 weights (zero point 0) at scale 1, input scale 1: bias is stored as is."""
    w = torch.full((1, k), 255, dtype=torch.uint8)
    return Q.linear_prepack(
        w,
        torch.ones(1),
        torch.zeros(1, dtype=torch.int32),
        torch.tensor([float(bias)]),
        1.0,
        0,
        torch.uint8,
        1.0,
        0,
        torch.float32,
        None,
        None,
        "float",
    )


def test_bias_that_could_wrap_the_int32_accumulator_is_refused():
    # The case: K = 32768, all-255 inputs and weights, bias 1e9 gave -7463.
    with pytest.raises(ValueError, match=r"linear_prepack: bias\[0\] = 1e\+09 .*past int32's range"):
        _uint8_linear(32768, 1e9)
    with pytest.raises(ValueError, match=r"bias\[0\] = 3e\+09 is 3e\+09 .*outside int32"):
        _uint8_linear(4, 3e9)


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
def test_bias_at_the_limit_is_exact(isa_name):
    k = 64
    reach = 255 * k * 255  # max |a - za| * sum |b - zb|
    limit = 2**31 - 1 - reach
    limit -= limit % 128  # exactly representable in float32, so the stored bias is this number
    with pytest.raises(ValueError, match="past int32's range"):
        _uint8_linear(k, limit + 128)
    plan = _uint8_linear(k, limit)
    x = torch.full((1, k), 255, dtype=torch.uint8)
    with torch_circle.use_kernel_isa(isa_name):
        y = Q.quantized_linear(x, *plan, torch.float32)
    assert y.item() == float(np.float32(limit + reach))  # the exact total, no wrap


# --- silent wrong results: zero points, qparams, conv arguments -----------------------------------


@pytest.mark.parametrize("isa_name", SUPPORTED_ISAS)
def test_fractional_zero_points_are_refused_on_every_isa(isa_name):
    with torch_circle.use_kernel_isa(isa_name):
        with pytest.raises(ValueError, match=r"quantize_per_channel: zero_points\[0\] = 0.5 is not an integer"):
            Q.quantize_per_channel(
                torch.full((2, 64), -1.3), torch.ones(2), torch.tensor([0.5, 0.5]), 0, -128, 127, torch.int8
            )
        with pytest.raises(ValueError, match=r"fake_quantize_per_channel: zero_points\[1\] = 0.25"):
            Q.fake_quantize_per_channel(torch.randn(2, 64), torch.ones(2), torch.tensor([1.0, 0.25]), 0, -128, 127)
        # Whole numbers in a float tensor stay accepted and match quantized_decomposed bit for bit.
        x = torch.randn(3, 5, 4, 7)
        scales, zps = torch.rand(5) + 0.01, torch.tensor([-3.0, 0.0, 2.0, 7.0, 1.0])
        ref = torch.ops.quantized_decomposed.quantize_per_channel(x, scales, zps, 1, -128, 127, torch.int8)
        assert torch.equal(Q.quantize_per_channel(x, scales, zps, 1, -128, 127, torch.int8), ref)
        # Dequantization takes fractional zero points: its float arithmetic is exact everywhere.
        q = torch.randint(-128, 128, (2, 64), dtype=torch.int8)
        frac = torch.tensor([0.5, -0.25])
        ref = torch.ops.quantized_decomposed.dequantize_per_channel(q, torch.ones(2), frac, 0, -128, 127, torch.int8)
        assert torch.equal(Q.dequantize_per_channel(q, torch.ones(2), frac, 0, -128, 127, torch.int8), ref)


def test_choose_qparams_refuses_zero_and_infinite_scales():
    zero = torch.tensor(0.0)
    with pytest.raises(ValueError, match=r"choose_qparams: .*\[0, 0\] with eps = 0 gives scale 0"):
        Q.choose_qparams(zero, zero, 0, 255, torch.uint8, False, 0.0)
    with pytest.raises(ValueError, match="gives scale 0"):
        Q.choose_qparams(zero, zero, -128, 127, torch.int8, True, 0.0)
    with pytest.raises(ValueError, match="gives scale inf"):
        Q.choose_qparams(torch.tensor(-3e38), torch.tensor(3e38), 0, 255, torch.uint8, False, 1e-7)
    with pytest.raises(ValueError, match=r"channel 1\).*gives scale inf"):
        Q.choose_qparams(torch.tensor([-1.0, -3e38]), torch.tensor([1.0, 3e38]), 0, 255, torch.uint8, False, 1e-7)


@pytest.mark.parametrize("name, value", [("padding", [2**32 + 1, 1]), ("stride", [2**40, 1]), ("dilation", [1, 2**31])])
def test_conv2d_prepack_refuses_arguments_past_int32(name, value):
    with pytest.raises(ValueError, match=f"conv2d_prepack: {name} must be <= 2147483647"):
        _conv_plan(**{name: value})


def test_histogram_choose_qparams_names_bad_counts():
    hist = torch.ones(64)
    hist[3] = float("nan")
    lo, hi = torch.tensor(-1.0), torch.tensor(1.0)
    with pytest.raises(ValueError, match=r"histogram\[3\] = nan; bin counts must be finite and >= 0"):
        Q.histogram_choose_qparams(hist, lo, hi, 0, 255, torch.uint8, False, 1e-7)
    hist[3] = -2
    with pytest.raises(ValueError, match=r"histogram\[3\] = -2"):
        Q.histogram_choose_qparams(hist, lo, hi, 0, 255, torch.uint8, False, 1e-7)


# --- plans edited after prepacking ---------------------------------------------------------------

PLAN_HEADER, CONV_PLAN_HEADER, SHIFT_ROW = 17, 32, 4
QMIN = 3  # the output stage's qmin entry, after its type, mode and zero point


def test_tampered_linear_plan_raises_on_every_call():
    n = 4
    x = torch.randint(0, 256, (3, 8), dtype=torch.uint8)
    packed, params, multiplier = _linear_plan(n, requant="fixed_point")
    Q.quantized_linear(x, packed, params, multiplier, torch.uint8)  # the plan as built works
    for index, value, message in [
        (PLAN_HEADER + SHIFT_ROW * n + 1, 100, "shift 100 of channel 1"),
        (6 + QMIN, -(2**31), "clamp .-2147483648"),
        (4, 1000, "input zero point 1000"),
        (6 + 2, 256, "output zero point 256"),
    ]:
        bad = params.clone()
        bad[index] = value
        with pytest.raises(ValueError, match=f"quantized_linear: params was modified after prepacking .*{message}"):
            Q.quantized_linear(x, packed, bad, multiplier, torch.uint8)
    bad = multiplier.clone()
    bad[2] = float("nan")
    with pytest.raises(ValueError, match=r"multiplier\[2\] = nan"):
        Q.quantized_linear(x, packed, params, bad, torch.uint8)


def test_tampered_conv_plan_raises():
    packed, params, multiplier = _conv_plan()
    x = torch.randint(0, 256, (1, 8, 9, 9), dtype=torch.uint8)
    bad = params.clone()
    bad[CONV_PLAN_HEADER + SHIFT_ROW * 16 + 5] = -40
    with pytest.raises(ValueError, match="quantized_conv2d: params was modified.*shift -40 of channel 5"):
        Q.quantized_conv2d(x, packed, bad, multiplier, [3, 3], [1, 1], [1, 1], [1, 1], 1, torch.uint8)
    bad = params.clone()
    bad[16 + QMIN] = -(2**31)
    with pytest.raises(ValueError, match="params was modified"):
        Q.quantized_conv2d(x, packed, bad, multiplier, [3, 3], [1, 1], [1, 1], [1, 1], 1, torch.uint8)


# --- exporter and runtime ------------------------------------------------------------------------


class Scale(torch.nn.Module):
    def forward(self, x):
        return x * 2 + 1


def test_scalar_model_input_exports_runs_and_verifies(tmp_path):
    pytest.importorskip("onert")
    x = torch.tensor(1.5)
    cm = torch_circle.export(Scale(), (x,))
    sg = cm.info["subgraphs"][0]
    assert sg["tensors"][sg["inputs"][0]]["shape"] == []
    out = cm.run(x)[0]
    assert out.shape == () and out == 4.0
    path = cm.save(tmp_path / "scalar.circle")
    from torch_circle import cli

    assert cli.main(["verify", str(path)]) == 0


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -0.5])
def test_export_refuses_bad_per_channel_weight_scales(bad):
    model = torch.nn.Sequential(torch.nn.Linear(8, 4)).eval()
    args = (torch.randn(2, 8),)
    converted = convert(model, args, "uint8")
    dq = next(n for n in converted.graph.nodes if "dequantize_per_channel" in str(n.target))
    scales_node = dq.args[1]
    scales = getattr(converted, scales_node.target).clone()
    scales[2] = bad
    setattr(converted, scales_node.target, scales)
    with pytest.raises(torch_circle.exporter.ExportError, match=f"node '{dq.name}'.*scales\\[2\\] = {bad:g}"):
        torch_circle.export(converted, args)


def test_calibrating_with_inf_names_the_input():
    from torch_circle.quantizer import CircleQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)).eval()
    graph = torch.export.export(model, (torch.randn(2, 4),)).module()
    prepared = prepare_pt2e(graph, CircleQuantizer(preset="uint8"))
    x = torch.randn(2, 4)
    x[1, 2] = float("inf")
    with pytest.raises(
        ValueError,
        match=r"batch 1: input '.*' of shape \[2, 4\] holds 1 Inf value\(s\), "
        r"the first at index \(1, 2\)",
    ):
        torch_circle.calibrate(prepared, [torch.randn(2, 4), x], progress=False)


# --- command line --------------------------------------------------------------------------------


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "torch_circle.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_reads_only_regular_files(tmp_path):
    fifo = tmp_path / "pipe.circle"
    os.mkfifo(fifo)
    for command in ("inspect", "verify"):
        run = _cli(command, str(fifo))  # used to block forever
        assert run.returncode == 1 and "pipe.circle: not a regular file" in run.stderr, run.stderr
    run = _cli("inspect", "/dev/zero")  # used to read until memory ran out
    assert run.returncode == 1 and "/dev/zero: not a regular file" in run.stderr and "Traceback" not in run.stderr
    big = tmp_path / "big.circle"
    big.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match="big.circle: 100 bytes, more than the limit of 99"):
        torch_circle.exporter.load(big, max_bytes=99)


def _good_file():
    return torch_circle.export(torch.nn.Linear(8, 4).eval(), (torch.randn(2, 8),)).data


def test_inspect_escapes_control_characters_in_names(tmp_path):
    def rename(model, graph):
        graph.tensors[graph.inputs[0]].name = b"in\x00put\n\x1b[31mred"

    path = tmp_path / "names.circle"
    path.write_bytes(_crafted(_good_file(), rename))
    run = _cli("inspect", str(path))
    assert run.returncode == 0, run.stderr
    assert "\x1b" not in run.stdout and "\x00" not in run.stdout
    assert "in\\x00put\\n\\x1b[31mred" in run.stdout


@pytest.mark.parametrize("dtype", ["INT4", "STRING"])
def test_verify_names_file_and_tensor_for_inputs_it_cannot_make(tmp_path, dtype):
    from circle_schema import circle

    def retype(model, graph):
        graph.tensors[graph.inputs[0]].type = getattr(circle.TensorType.TensorType, dtype)

    path = tmp_path / "odd.circle"
    path.write_bytes(_crafted(_good_file(), retype))
    run = _cli("verify", str(path))
    assert run.returncode == 1
    assert "odd.circle: input 0 ('" in run.stderr and f"has dtype {dtype}" in run.stderr, run.stderr


# --- big exports ---------------------------------------------------------------------------------


def test_big_exports_are_memory_mapped_and_saved_without_copies(tmp_path, monkeypatch):
    """A big file is written straight from the tensors to a file and mapped (issue 16: 3x the
    weights in peak memory before); the threshold is lowered to test it on a small model."""
    from torch_circle import exporter

    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    args = (torch.randn(2, 64),)
    graph = torch.export.export(model, args).module()
    in_memory = torch_circle._C.export_graph_module(graph, "circle", 0, 1024)  # extended layout, bytes
    with open(tmp_path / "spill", "w+b") as f:
        assert torch_circle._C.export_graph_module(graph, "circle", 0, 1024, f.fileno()) == len(in_memory)
        f.seek(0)
        assert f.read() == in_memory  # the file sink writes the same bytes

    monkeypatch.setattr(exporter, "_MAP_BYTES", 1)
    cm = torch_circle.export(model, args)
    assert not isinstance(cm.data, bytes) and cm._file is not None
    path = cm.save(tmp_path / "mapped.circle")
    assert path.read_bytes() == bytes(cm.data) == torch_circle._C.export_graph_module(graph, "circle")
    np.testing.assert_allclose(cm.run(*args)[0], model(*args).detach().numpy(), rtol=1e-5, atol=1e-6)
