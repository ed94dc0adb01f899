#!/usr/bin/env python3
"""End-to-end int8 inference on CPU: CircleQuantizer + the circle_quant torch.compile backend
against PyTorch's x86 int8 path (torchao's X86InductorQuantizer + inductor), fp32 inductor and
fp32 eager, on a ResNet-18, a MobileNetV2 and a BERT-base-width encoder built in code.

Variants (one model instance, the same seeded input for all):
  fp32 eager     model(x) under torch.no_grad()
  fp32 inductor  torch.compile(model) under no_grad, torch._inductor.config.freezing = True
  x86 int8       as torchao's x86 inductor tutorial says: torch.export.export(model, (x,), strict=True)
                 .module(); prepare_pt2e with X86InductorQuantizer().set_global(
                 get_default_x86_inductor_quantization_config()) (importing that module registers
                 the int8 fusion passes); calibrate; convert_pt2e; freezing = True;
                 torch.compile(converted) under no_grad. CNN inputs are channels-last, as there.
  ours           CircleQuantizer(preset="uint8") on the same export, calibrated on the same data,
                 convert_pt2e, torch.compile(converted, backend="circle_quant")

The x86 peer is verified: its first call goes through torch._inductor.utils.run_and_get_code, and
the generated code is searched for the oneDNN int8 ops (torch.ops.onednn.qconv*/qlinear_pointwise);
the "peer int8 kernels" column counts them against the model's conv + linear layers and says NONE
when the peer fell back to fp32 (pytorch issue 144434: int8 slower than fp32 when that happens).

Timing: after compilation and warm-up, the variants' timed calls alternate in rounds; cells are
medians (ms per forward). The timings list each variant's minor page faults per call (memory
mapped on first touch: outputs allocated afresh in every forward pay one per 4 KiB). Every
compiled variant gets a fresh dynamo cache per (model, batch), so each shape is compiled
statically.

    python benchmarks/bench_int8_e2e.py                       # all models, batch 1 and 32
    python benchmarks/bench_int8_e2e.py --quick               # smoke test: tiny models, batch 1
    python benchmarks/bench_int8_e2e.py --models resnet18 --batch 1 --target-s 5
    python benchmarks/bench_int8_e2e.py --quick --no-freezing # a misconfigured peer: column says NONE

On a shared machine: "!" marks a median over 1.5x the fastest call; --clock cpu (with --threads 1)
times the thread's CPU time; --stat min reports the fastest call.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import gc
import importlib
import logging
import os
import platform
import resource
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # models.py, resnet50.py


def _import_torchao_quietly() -> None:
    """torchao logs at import that its CUDA libraries (_C_cutlass, _C_mxfp8) cannot load on a
    CPU-only torch, and torch logs a deprecation about an Enum torchao registers; neither concerns
    CPU int8. Muting those two loggers for the import only keeps the report readable."""
    loggers = [logging.getLogger(n) for n in ("torchao", "torch.utils._pytree")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        import torchao  # noqa: F401

        # Importing this module registers the x86 int8 fusion passes with inductor.
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer  # noqa: F401
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_import_torchao_quietly()
import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq  # noqa: E402
from torch._inductor.utils import run_and_get_code  # noqa: E402
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: E402

import models  # noqa: E402

warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # torch.export pytree deprecation noise
# inductor's own int8 lowering copies a tensor with torch.tensor(t): its warning is not ours to fix.
warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)

TARGET_VS_X86 = 1.2  # the issue: ours >= 1.2x faster than x86 inductor int8
TARGET_VS_EAGER = 3.0  # and >= 3x faster than fp32 eager

VARIANTS = ("fp32 eager", "fp32 inductor", "x86 int8", "ours")
# time.perf_counter (wall) by default; --clock cpu times the calling thread's CPU time, which other
# processes cannot inflate (valid at 1 thread only: everything then runs on the calling thread).
CLOCK = [time.perf_counter]
# The statistic in the table: the median (default), or with --stat min the fastest call, an
# estimate of the uncontended time when a busy machine interrupts most calls.
STAT = ["median"]
NOISY = 1.5  # "!" after a median above NOISY x the fastest call (whole-model calls vary less than kernels)

# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[bool], torch.nn.Module]  # quick -> model
    input_shape: Callable[[int, bool], Tuple[int, ...]]  # (batch, quick) -> shape
    description: Callable[[bool, argparse.Namespace], str]
    classifier: bool  # logits: top-1 agreement makes sense


def _bert_build(args):
    return lambda quick: models.bert_encoder(quick, layers=args.bert_layers)


def model_specs(args) -> Dict[str, ModelSpec]:
    img = lambda b, q: (b, 3, 64, 64) if q else (b, 3, 224, 224)  # noqa: E731
    return {
        "resnet18": ModelSpec(
            "resnet18",
            models.resnet18,
            img,
            lambda q, a: (
                "ResNet-18-like ([1,1,1,1] blocks, widths 16..128, 64x64)"
                if q
                else "ResNet-18 (basic blocks [2,2,2,2], widths 64..512, 1000 classes, 224x224)"
            ),
            True,
        ),
        "mobilenet_v2": ModelSpec(
            "mobilenet_v2",
            models.mobilenet_v2,
            img,
            lambda q, a: "MobileNetV2 width 0.25, 64x64" if q else "MobileNetV2 (width 1.0, 1000 classes, 224x224)",
            True,
        ),
        "bert": ModelSpec(
            "bert",
            _bert_build(args),
            lambda b, q: (b, 32, 128) if q else (b, args.seq, 768),
            lambda q, a: (
                "BERT-style encoder, 1 layer, hidden 128, 2 heads, ff 512, seq 32"
                if q
                else f"BERT-base encoder layers x{a.bert_layers} (hidden 768, 12 heads, ff 3072, "
                f"GELU, post-LN), seq {a.seq}, on hidden states (no embeddings)"
            ),
            False,
        ),
    }


def count_conv_linear(model: torch.nn.Module) -> Tuple[int, int]:
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    linears = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    return convs, linears


# ---------------------------------------------------------------------------------------------
# Variants


@dataclass
class Built:
    fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    compile_s: Optional[float] = None  # first call (compilation) time, compiled variants only
    quantize_s: Optional[float] = None  # export + prepare + calibrate + convert
    calls: Counter = field(default_factory=Counter)  # op calls in the generated code
    onednn: Counter = field(default_factory=Counter)  # oneDNN int8 calls by output dtype and post-ops
    error: str = ""


def one_line(error: BaseException, limit: int = 160) -> str:
    text = " | ".join(s.strip() for s in f"{type(error).__name__}: {error}".splitlines() if s.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CALL = re.compile(r"\b(torch\.ops\.[A-Za-z_]\w*\.[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?|extern_kernels\.\w+)\(")


def code_calls(codes: Sequence[str]) -> Counter:
    """Op calls in inductor's generated wrapper code (torch.ops.ns.op[.overload] and extern_kernels.*)."""
    calls: Counter = Counter()
    for code in codes:
        calls.update(_CALL.findall(code))
    return calls


_ONEDNN_LINE = re.compile(r"torch\.ops\.onednn\.(q\w+(?:\.\w+)?)\((.*)\)")


def onednn_details(codes: Sequence[str]) -> Counter:
    """oneDNN int8 calls by op, output dtype and post-ops, e.g. 'qconv_pointwise.tensor -> uint8, relu'."""
    found: Counter = Counter()
    for code in codes:
        for line in code.splitlines():
            m = _ONEDNN_LINE.search(line)
            if m:
                dtype = re.findall(r"torch\.(uint8|int8|float32|bfloat16)\b", m.group(2))
                posts = [p for p in re.findall(r"'(\w*)'", m.group(2)) if p and p != "none"]
                found[f"{m.group(1)} -> {dtype[0] if dtype else '?'}" + "".join(f" +{p}" for p in posts)] += 1
    return found


def compile_first_call(compiled, x) -> Tuple[float, Counter, Counter]:
    """Runs the first (compiling) call through run_and_get_code; returns its time, the op calls
    and the oneDNN int8 call details."""
    start = time.perf_counter()
    with torch.no_grad():
        _, codes = run_and_get_code(compiled, x)
    return time.perf_counter() - start, code_calls(codes), onednn_details(codes)


def export_module(model, x) -> torch.fx.GraphModule:
    with torch.no_grad():
        return torch.export.export(model, (x,), strict=True).module()


def calibrate(prepared, calib: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for c in calib:
            prepared(c)


def build_fp32_eager(model, x, calib) -> Built:
    return Built(fn=model)


def build_fp32_inductor(model, x, calib) -> Built:
    compiled = torch.compile(model)
    seconds, calls, _ = compile_first_call(compiled, x)
    return Built(fn=compiled, compile_s=seconds, calls=calls)


def build_x86_int8(model, x, calib) -> Built:
    start = time.perf_counter()
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(export_module(model, x), quantizer)
    calibrate(prepared, calib)
    converted = convert_pt2e(prepared)
    quantize_s = time.perf_counter() - start
    with torch.no_grad():
        compiled = torch.compile(converted)
    seconds, calls, onednn = compile_first_call(compiled, x)
    return Built(fn=compiled, compile_s=seconds, quantize_s=quantize_s, calls=calls, onednn=onednn)


# --- ours: CircleQuantizer + torch.compile(backend="circle_quant") -----------------------------

OURS_BACKEND = "circle_quant"
OURS_PRESET = "uint8"


@functools.lru_cache(None)
def import_torch_circle(modules: Tuple[str, ...] = ("torch_circle",)) -> Optional[str]:
    """Imports this checkout's torch_circle; returns None, or why it cannot be used.

    Other people rebuild the native library while benchmarks run, so (1) the package is imported
    from a snapshot copy, which a rebuild cannot swap out under this process (that crashes it), and
    (2) a child process imports the snapshot first: a library that aborts while loading (a bad op
    schema, a missing symbol) makes "ours" n/a instead of killing the benchmark."""
    package = ROOT / "torch_circle"
    if not any(package.glob("*.so")):
        return "torch_circle not built in this checkout"
    snapshot = Path(tempfile.mkdtemp(prefix="torch_circle_snapshot_"))
    atexit.register(shutil.rmtree, snapshot, True)
    shutil.copytree(package, snapshot / "torch_circle", ignore=shutil.ignore_patterns("__pycache__"))
    # The child loads the native library (where an abort would happen); Python-level import errors
    # of the other modules are caught below, in this process.
    code = "import sys; sys.path.insert(0, sys.argv[1]); import torch_circle"
    probe = subprocess.run([sys.executable, "-c", code, str(snapshot)], capture_output=True, text=True)
    if probe.returncode != 0:
        lines = [ln.strip() for ln in probe.stderr.strip().splitlines() if ln.strip()]
        tail = next((ln for ln in reversed(lines) if "Error" in ln or "what()" in ln), lines[-1] if lines else "")
        return f"torch_circle import failed (exit code {probe.returncode}): {tail[:140]}"
    sys.path.insert(0, str(snapshot))
    try:
        for m in modules:
            importlib.import_module(m)
    except Exception as error:  # noqa: BLE001
        return f"torch_circle import failed: {type(error).__name__}: {str(error)[:120]}"
    return None


def ours_status() -> Optional[str]:
    """None when this checkout's torch_circle imports (which registers the circle_quant backend),
    else why not."""
    return import_torch_circle(("torch_circle", "torch_circle.quantizer"))


def ours_quantize(model, x, calib) -> torch.fx.GraphModule:
    from torch_circle.quantizer import CircleQuantizer

    prepared = prepare_pt2e(export_module(model, x), CircleQuantizer(preset=OURS_PRESET))
    calibrate(prepared, calib)
    return convert_pt2e(prepared)


def ours_compile(converted: torch.fx.GraphModule):
    with torch.no_grad():
        return torch.compile(converted, backend=OURS_BACKEND)


def build_ours(model, x, calib) -> Built:
    reason = ours_status()
    if reason:
        return Built(error=reason)
    start = time.perf_counter()
    converted = ours_quantize(model, x, calib)
    quantize_s = time.perf_counter() - start
    compiled = ours_compile(converted)
    seconds, calls, _ = compile_first_call(compiled, x)  # no code unless the backend goes through inductor
    return Built(fn=compiled, compile_s=seconds, quantize_s=quantize_s, calls=calls)


BUILDERS = {
    "fp32 eager": build_fp32_eager,
    "fp32 inductor": build_fp32_inductor,
    "x86 int8": build_x86_int8,
    "ours": build_ours,
}

# ---------------------------------------------------------------------------------------------
# Peer verification

ONEDNN_INT8 = re.compile(r"torch\.ops\.onednn\.(q\w*(?:conv|linear)\w*pointwise)(?:\.(\w+))?$")
FP32_GEMM = re.compile(
    r"torch\.ops\.mkldnn\._(?:convolution|linear)_pointwise|torch\.ops\.mkl\._mkl_linear"
    r"|extern_kernels\.(?:convolution|mm|addmm|bmm|baddbmm)$"
    r"|torch\.ops\.aten\.(?:convolution|addmm|mm)"
)


def peer_kernels(calls: Counter, n_conv: int, n_linear: int) -> str:
    """'onednn qconv x20, qlinear x1 (21/21 conv+linear)' or 'NONE (peer fell back)'."""
    qconv = sum(n for op, n in calls.items() if ONEDNN_INT8.match(op) and "conv" in op)
    qlinear = sum(n for op, n in calls.items() if ONEDNN_INT8.match(op) and "linear" in op)
    layers = n_conv + n_linear
    if qconv + qlinear == 0:
        return "NONE (peer fell back to fp32)"
    parts = [f"qconv x{qconv}" if qconv else "", f"qlinear x{qlinear}" if qlinear else ""]
    text = "onednn " + ", ".join(p for p in parts if p) + f" ({qconv + qlinear}/{layers} conv+linear)"
    if qconv + qlinear < layers:
        text += f"; {layers - qconv - qlinear} not int8"
    return text


def top_calls(calls: Counter, n: int = 6) -> str:
    if not calls:
        return "(no inductor code captured)"
    return ", ".join(f"{op.replace('torch.ops.', '')} x{k}" for op, k in calls.most_common(n))


# ---------------------------------------------------------------------------------------------
# Timing and agreement


CPU_CLOCK_WARNINGS: List[str] = []


def check_cpu_clock(before: Tuple[float, float]) -> None:
    """With --clock cpu, only the calling thread's CPU time counts: if the process burned much more
    CPU than this thread while timing, work ran on other threads and the cells undercount it."""
    if CLOCK[0] not in (time.thread_time, time.thread_time_ns):
        return
    process, thread = time.process_time() - before[0], time.thread_time() - before[1]
    if process > 1.1 * thread + 0.01:
        CPU_CLOCK_WARNINGS.append(f"process CPU {process:.2f} s vs timing thread {thread:.2f} s")


def minor_faults() -> int:
    """The process's minor page faults so far (a page mapped on first touch)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_interleaved(
    fns: Dict[str, Callable[[], object]], target_s: float, min_reps: int, rounds: int = 5
) -> Dict[str, Tuple[float, int, float, float]]:
    """(median s, repeats, fastest s, minor page faults per call) per name. Warm-up of 2 calls each; the
    repeat count fits target_s of timed calls (at least min_reps); the calls alternate between the
    variants in rounds."""
    clock = CLOCK[0]
    plans = {}
    for name, fn in fns.items():
        warm = []
        for _ in range(2):
            t0 = clock()
            fn()
            warm.append(clock() - t0)
        plans[name] = (fn, max(min_reps, int(target_s / min(warm))), [])
    rounds = min(rounds, min(r for _, r, _ in plans.values()))
    faults = dict.fromkeys(plans, 0)
    cpu_before = (time.process_time(), time.thread_time())
    for r in range(rounds):
        for name, (fn, reps, samples) in plans.items():
            before = minor_faults()
            for _ in range(reps // rounds + (r < reps % rounds)):
                t0 = clock()
                fn()
                samples.append(clock() - t0)
            faults[name] += minor_faults() - before
    check_cpu_clock(cpu_before)
    return {name: (statistics.median(s), reps, min(s), faults[name] / reps) for name, (_, reps, s) in plans.items()}


def agreement(outputs: Dict[str, torch.Tensor], classifier: bool) -> str:
    ref = outputs["fp32 eager"].float()
    parts = []
    for name in ("x86 int8", "ours"):
        y = outputs.get(name)
        if y is None:
            continue
        y = y.float()
        rel = float((y - ref).norm() / ref.norm().clamp_min(1e-12))
        text = f"{name.split()[0]} vs fp32: rel err {rel:.3f}"
        if classifier:
            same = int((y.argmax(-1) == ref.argmax(-1)).sum())
            text += f", top-1 {same}/{ref.shape[0]}"
        parts.append(text)
    if classifier and "x86 int8" in outputs and "ours" in outputs:
        same = int((outputs["ours"].argmax(-1) == outputs["x86 int8"].argmax(-1)).sum())
        parts.append(f"ours vs x86: top-1 {same}/{ref.shape[0]}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Run


@dataclass
class Row:
    model: str
    batch: int
    ms: Dict[str, Optional[float]] = field(default_factory=dict)
    reps: Dict[str, int] = field(default_factory=dict)
    fastest_ms: Dict[str, float] = field(default_factory=dict)
    median_ms: Dict[str, float] = field(default_factory=dict)
    faults: Dict[str, float] = field(default_factory=dict)  # minor page faults per timed call
    built: Dict[str, Built] = field(default_factory=dict)
    peer: str = ""
    agree: str = ""
    layers: int = 0  # nn.Conv2d + nn.Linear in the model
    profile: Dict[str, Dict[str, float]] = field(default_factory=dict)  # --profile: variant -> ms by category


# --profile: where a forward's time goes, by the self CPU time torch.profiler records per op (and,
# with inductor's kernel profiling on, per generated C++ kernel). First match wins.
PROFILE_CATEGORIES = [
    ("int8 conv/linear", re.compile(r"^(circle_quant::quantized_(linear|conv2d)|onednn::q(conv|linear))")),
    # activation x activation products: float (aten, the peer's SDPA) or ours on integers
    (
        "matmul/attention",
        re.compile(r"^(aten::(bmm|mm|addmm|baddbmm|matmul|_scaled_dot_product)|circle_quant::quantized_matmul)"),
    ),
    ("pooling", re.compile(r"max_pool|avg_pool|adaptive")),
    # softmax, GELU, norms, quantize / dequantize: inductor's kernels or our integer ops
    ("elementwise", re.compile(r"cpp_fused|kernel_cpp|^circle_quant::(quantized_softmax|lookup_table)")),
]
PROFILE_OTHER = "other (dispatch, copies, framework)"


def profile_forward(fn, x, calls: int = 3) -> Dict[str, float]:
    """ms per forward by category (PROFILE_CATEGORIES), from torch.profiler's self CPU times."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        fn(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(calls):
                fn(x)
    out: Dict[str, float] = Counter()
    for event in prof.key_averages():
        name = event.key
        category = next((c for c, rx in PROFILE_CATEGORIES if rx.search(name)), PROFILE_OTHER)
        out[category] += event.self_cpu_time_total / 1e3 / calls
    return dict(out)


def run_one(spec: ModelSpec, batch: int, args) -> Row:
    def progress(msg: str) -> None:
        print(f"  [{time.perf_counter() - T0:5.0f} s] {spec.name} batch {batch}: {msg}", file=sys.stderr, flush=True)

    model = spec.build(args.quick)
    n_conv, n_linear = count_conv_linear(model)
    shape = spec.input_shape(batch, args.quick)
    gen = torch.Generator().manual_seed(1234)
    channels_last = len(shape) == 4  # as the x86 tutorial feeds CNNs
    fmt = (lambda t: t.contiguous(memory_format=torch.channels_last)) if channels_last else (lambda t: t)
    x = fmt(torch.randn(*shape, generator=gen))
    calib = [fmt(torch.randn(*shape, generator=gen)) for _ in range(max(1, args.calib_samples // batch))]
    evals = [x] + [fmt(torch.randn(*shape, generator=gen)) for _ in range(max(0, args.eval_samples // batch - 1))]

    row = Row(spec.name, batch, layers=n_conv + n_linear)
    torch._dynamo.reset()  # static shapes per (model, batch): no automatic-dynamic recompiles
    for name in args.variants:
        progress(f"building {name} ...")
        try:
            row.built[name] = BUILDERS[name](model, x, calib)
        except Exception as error:  # noqa: BLE001  a failing variant is a table entry
            row.built[name] = Built(error=f"error: {one_line(error)}")
    row.peer = (
        peer_kernels(row.built["x86 int8"].calls, n_conv, n_linear)
        if "x86 int8" in row.built and not row.built["x86 int8"].error
        else "n/a"
    )

    ready = {n: b.fn for n, b in row.built.items() if b.fn is not None}
    outputs: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, fn in ready.items():
            try:
                outputs[name] = torch.cat([fn(e) for e in evals])
            except Exception as error:  # noqa: BLE001
                row.built[name].error = f"error: {one_line(error)}"
    ready = {n: fn for n, fn in ready.items() if not row.built[n].error}
    if "fp32 eager" in outputs:
        row.agree = agreement({n: y for n, y in outputs.items() if n in ready}, spec.classifier)

    progress("timing " + ", ".join(ready) + " ...")
    with torch.no_grad():
        timed = time_interleaved({n: (lambda fn=fn: fn(x)) for n, fn in ready.items()}, args.target_s, args.min_reps)
    for name in args.variants:
        row.ms[name] = timed[name][2 if STAT[0] == "min" else 0] * 1e3 if name in timed else None
        row.reps[name] = timed[name][1] if name in timed else 0
        if name in timed:
            row.fastest_ms[name] = timed[name][2] * 1e3
            row.median_ms[name] = timed[name][0] * 1e3
            row.faults[name] = timed[name][3]
    progress("  ".join(f"{n} {row.ms[n]:.2f} ms" for n in ready))
    if args.profile:
        for name in ("x86 int8", "ours"):
            if name in ready:
                progress(f"profiling {name} ...")
                row.profile[name] = profile_forward(ready[name], x)
    del ready, outputs
    torch._dynamo.reset()
    gc.collect()
    return row


# ---------------------------------------------------------------------------------------------
# Report


def fmt_ms(ms: Optional[float]) -> str:
    if ms is None:
        return "n/a"
    return f"{ms:.2f}" if ms < 10 else f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def ratio(num: Optional[float], den: Optional[float]) -> str:
    return "n/a" if num is None or den is None else f"{num / den:.2f}x"


def target(num: Optional[float], den: Optional[float], goal: float, why: str) -> str:
    if den is None:
        return f"n/a ({why})"
    if num is None:
        return "n/a"
    s = num / den
    digits = 3 if abs(s - goal) < 0.01 else 2  # so a near miss never reads "3.00x, short by 0.00x"
    verdict = "met" if s >= goal else f"short by {goal - s:.{digits}f}x ({s / goal:.0%} of target)"
    return f"{s:.{digits}f}x, {verdict}"


def noisy(r: Row, variant: str) -> bool:
    """A median over NOISY x the fastest call: most calls were interrupted by other processes."""
    return variant in r.median_ms and r.median_ms[variant] > NOISY * r.fastest_ms[variant]


def short_reason(reason: str) -> str:
    """The reason's head for a table cell ("torch_circle import failed: <details>" -> the part before ':')."""
    return reason.split(":", 1)[0]


def print_table(rows: List[Row]) -> None:
    header = [
        "model",
        "batch",
        "fp32 eager ms",
        "fp32 inductor ms",
        "x86 int8 ms",
        "ours ms",
        "x86 int8 vs fp32 eager",
        "x86 int8 vs fp32 inductor",
        f"ours vs x86 int8 (>= {TARGET_VS_X86:g}x)",
        f"ours vs fp32 eager (>= {TARGET_VS_EAGER:g}x)",
        "peer int8 kernels",
        "agreement with fp32 eager",
        "ISA tier",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i in (0, 10, 11, 12) else "---:" for i in range(len(header))) + "|")
    for r in rows:
        ours_why = short_reason(r.built["ours"].error) if "ours" in r.built else "not run"
        cells = [
            r.model,
            str(r.batch),
            *[fmt_ms(r.ms.get(v)) + ("!" if noisy(r, v) else "") for v in VARIANTS],
            ratio(r.ms.get("fp32 eager"), r.ms.get("x86 int8")),
            ratio(r.ms.get("fp32 inductor"), r.ms.get("x86 int8")),
            target(r.ms.get("x86 int8"), r.ms.get("ours"), TARGET_VS_X86, ours_why),
            target(r.ms.get("fp32 eager"), r.ms.get("ours"), TARGET_VS_EAGER, ours_why),
            r.peer,
            r.agree or "n/a",
            TIERS[0],
        ]
        print("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")


def print_details(rows: List[Row]) -> None:
    print(
        "Timings, and for compiled variants: quantize (export + prepare + calibrate + convert), compile "
        "(the first call), and the ops their generated code calls:"
    )
    for r in rows:
        if "fp32 eager" in r.median_ms:
            print(
                f"  {r.model} b{r.batch} fp32 eager: median {fmt_ms(r.median_ms['fp32 eager'])} ms, fastest "
                f"{fmt_ms(r.fastest_ms['fp32 eager'])} ms of {r.reps['fp32 eager']} calls, "
                f"{r.faults['fp32 eager']:.0f} page faults per call"
            )
        for name in VARIANTS:
            b = r.built.get(name)
            if b is None or (b.compile_s is None and not b.error):
                continue
            head = f"  {r.model} b{r.batch} {name}: "
            if b.error:
                print(head + b.error)
                continue
            q = f"quantize {b.quantize_s:.1f} s, " if b.quantize_s is not None else ""
            t = (
                f"median {fmt_ms(r.median_ms[name])} ms, fastest {fmt_ms(r.fastest_ms[name])} ms of "
                f"{r.reps[name]} calls, {r.faults[name]:.0f} page faults per call"
                if name in r.median_ms
                else "not timed"
            )
            print(head + f"{q}compile {b.compile_s:.1f} s, {t}; calls: {top_calls(b.calls)}")
        ours_calls = r.built.get("ours", Built()).calls
        if ours_calls:
            layer_ops = ("torch.ops.circle_quant.quantized_linear", "torch.ops.circle_quant.quantized_conv2d")
            q = {op: k for op, k in ours_calls.items() if op.startswith(layer_ops)}
            print(
                f"  {r.model} b{r.batch} ours int8 kernels: {sum(q.values())}/{r.layers} conv+linear as circle_quant "
                "ops (" + (", ".join(f"{op.replace('torch.ops.', '')} x{k}" for op, k in q.items()) or "none") + ")"
            )
        onednn = r.built.get("x86 int8", Built()).onednn
        if onednn:
            print(
                f"  {r.model} b{r.batch} x86 int8 oneDNN calls (op -> output dtype +post-ops): "
                + ", ".join(f"{k} x{n}" for k, n in onednn.most_common())
            )
        fp32_in_int8 = {op: k for op, k in r.built.get("x86 int8", Built()).calls.items() if FP32_GEMM.search(op)}
        if fp32_in_int8:
            print(
                f"  {r.model} b{r.batch} x86 int8 also calls fp32 GEMM/conv: "
                + ", ".join(f"{op.replace('torch.ops.', '')} x{k}" for op, k in fp32_in_int8.items())
            )


def print_profile(rows: List[Row]) -> None:
    columns = [c for c, _ in PROFILE_CATEGORIES] + [PROFILE_OTHER]
    print(
        "Where the time goes (--profile): ms per forward by torch.profiler's self CPU time, 3 profiled calls "
        "(inductor's generated kernels are recorded one by one; profiling adds a little overhead)"
    )
    print("| model | batch | variant | " + " | ".join(columns) + " | total |")
    print("|---|---:|---|" + "---:|" * (len(columns) + 1))
    for r in rows:
        for name, cats in r.profile.items():
            cells = [f"{cats.get(c, 0.0):.2f}" for c in columns]
            print(f"| {r.model} | {r.batch} | {name} | " + " | ".join(cells) + f" | {sum(cats.values()):.2f} |")


TIERS = ["?"]  # "ours amx, oneDNN amx": filled once by isa_tiers()


def isa_tiers() -> str:
    """The ISA tier each side runs at here: ours is torch_circle's kernel ISA (CIRCLE_QUANT_ISA
    lowers it), oneDNN's is the implementation its verbose log names for one small int8 linear
    (ONEDNN_MAX_CPU_ISA lowers it), read as bench_int8_kernels.py reads it."""
    import bench_int8_kernels as kernels  # this directory

    ours = "n/a"
    with contextlib.suppress(Exception):
        import torch_circle

        ours = torch_circle.active_kernel_isa()
    problem = kernels.Problem.make(kernels.LinearShape(64, 256, 256))
    return f"ours {ours}, oneDNN {kernels.onednn_tier(kernels.onednn_impl(kernels.onednn_linear(problem)))}"


def machine_lines(args) -> List[str]:
    cpu = "?"
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            info = {}
            for line in f:
                k, _, v = line.partition(":")
                info.setdefault(k.strip(), v.strip())
            cpu = f"{info.get('model name', '?')} (family {info.get('cpu family', '?')} model {info.get('model', '?')})"
    import torchao

    return [
        f"CPU:     {cpu}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}",
        f"torch:   {torch.__version__}, torchao {torchao.__version__}; inductor freezing = "
        f"{torch._inductor.config.freezing}, cpp_wrapper = {torch._inductor.config.cpp_wrapper}",
        f"python:  {platform.python_version()} on {platform.platform()}",
        f"ISA:     {TIERS[0]} (CIRCLE_QUANT_ISA={os.environ.get('CIRCLE_QUANT_ISA', '')!r}, "
        f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '')!r})",
    ]


def reproduce(args) -> str:
    argv = ["python", "benchmarks/bench_int8_e2e.py"]
    if args.quick:
        argv.append("--quick")
    argv += [
        "--models",
        ",".join(args.models),
        "--batch",
        ",".join(map(str, args.batch)),
        "--threads",
        str(args.threads),
        "--target-s",
        f"{args.target_s:g}",
        "--min-reps",
        str(args.min_reps),
    ]
    if not args.quick:
        argv += ["--bert-layers", str(args.bert_layers), "--seq", str(args.seq)]
    if args.no_freezing:
        argv.append("--no-freezing")
    if args.clock != "wall":
        argv += ["--clock", args.clock]
    if args.stat != "median":
        argv += ["--stat", args.stat]
    if args.profile:
        argv.append("--profile")
    if args.variants != list(VARIANTS):
        argv += ["--variants", ",".join(args.variants)]
    return shlex.join(argv)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke test: tiny models, batch 1, short timing")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated: resnet18,mobilenet_v2,bert (default all; --quick: resnet18,bert)",
    )
    p.add_argument("--batch", default=None, help="comma-separated batch sizes (default 1,32; --quick 1)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: all cores; --quick 1)")
    p.add_argument(
        "--target-s", type=float, default=None, help="timed seconds per variant and row (default 3; --quick 0.2)"
    )
    p.add_argument("--min-reps", type=int, default=None, help="at least this many timed calls (default 10; quick 3)")
    p.add_argument("--bert-layers", type=int, default=4, help="encoder layers (default 4 of BERT-base's 12)")
    p.add_argument("--seq", type=int, default=128, help="BERT sequence length (default 128)")
    p.add_argument(
        "--variants",
        default=None,
        help="comma-separated subset of: "
        + ", ".join(VARIANTS)
        + " (default all; --quick leaves out fp32 inductor, whose compilation is the slowest part)",
    )
    p.add_argument(
        "--no-freezing",
        action="store_true",
        help="leave torch._inductor.config.freezing off (a misconfigured peer: shows the fallback)",
    )
    p.add_argument(
        "--stat",
        choices=("median", "min"),
        default="median",
        help="table statistic: median of the calls (default) or the fastest call (busy machines)",
    )
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: perf_counter (default); cpu: the thread's CPU time, immune to other "
        "processes' load (only with --threads 1)",
    )
    p.add_argument("--calib-samples", type=int, default=8, help="calibration samples (batches of the timed size)")
    p.add_argument("--eval-samples", type=int, default=4, help="samples for the agreement column")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print where the x86 int8 and ours variants spend a forward (torch.profiler, by "
        "category: int8 layers, attention matmuls, pooling, elementwise (inductor's kernels, circle_quant softmax / "
        "lookup tables), other)",
    )
    args = p.parse_args(argv)
    args.models = (args.models or ("resnet18,bert" if args.quick else "resnet18,mobilenet_v2,bert")).split(",")
    args.batch = [int(b) for b in (args.batch or ("1" if args.quick else "1,32")).split(",")]
    # --quick runs one thread: on a busy machine (CI, concurrent builds) multi-thread calls can take
    # a scheduler slice each, which turns a seconds-long smoke test into minutes.
    args.threads = args.threads or (1 if args.quick else os.cpu_count() or 1)
    args.target_s = args.target_s if args.target_s is not None else (0.2 if args.quick else 3.0)
    args.min_reps = args.min_reps or (3 if args.quick else 10)
    default_variants = [v for v in VARIANTS if not (args.quick and v == "fp32 inductor")]
    args.variants = [v.strip() for v in args.variants.split(",")] if args.variants else default_variants
    unknown = [v for v in args.variants if v not in VARIANTS] + [m for m in args.models if m not in model_specs(args)]
    if unknown:
        p.error(f"unknown variant / model: {unknown}")
    for needed in ("fp32 eager", "x86 int8"):  # the agreement reference and the verified peer
        if needed not in args.variants:
            args.variants.insert(0, needed)
    args.variants = [v for v in VARIANTS if v in args.variants]
    STAT[0] = args.stat
    if args.clock == "cpu":
        if args.threads != 1:
            p.error("--clock cpu needs --threads 1 (other threads' time would not be counted)")
        CLOCK[0] = time.thread_time
    sys.stdout.reconfigure(line_buffering=True)
    torch.set_num_threads(args.threads)
    # The x86 tutorial requires freezing (its int8 fusions are freezing passes); fp32 inductor gets it too.
    torch._inductor.config.freezing = not args.no_freezing
    if args.profile:  # record each generated C++ kernel as a profiler event (set before compiling)
        torch._inductor.config.cpp.enable_kernel_profile = True

    command = reproduce(args)
    print(f"reproduce: {command}")
    print()
    specs = model_specs(args)
    if "ours" in args.variants:
        print("checking torch_circle (snapshot + import in a child process) ...", file=sys.stderr, flush=True)
        ours_status()  # once, before any timing: the snapshot every row uses
    TIERS[0] = isa_tiers()
    start, load = time.perf_counter(), os.getloadavg()
    rows = [run_one(specs[m], b, args) for m in args.models for b in args.batch]
    wall = time.perf_counter() - start

    print(
        f"int8 end to end: {'fastest call (--stat min)' if args.stat == 'min' else 'medians'} of ms per forward "
        "(batch as given), no_grad; clock: "
        + ("thread CPU time (time.thread_time)" if args.clock == "cpu" else "wall (time.perf_counter)")
    )
    for line in machine_lines(args):
        print(line)
    for m in args.models:
        print(f"model:   {m} = {specs[m].description(args.quick, args)}")
    ours_why = ours_status()
    print(
        f"ours:    CircleQuantizer(preset={OURS_PRESET!r}) + torch.compile(backend={OURS_BACKEND!r}): "
        f"{ours_why or 'available'}"
    )
    print()
    print_table(rows)
    print()
    print(
        "x vs y = y time / x time (> 1: x faster). Targets: ours >= 1.2x faster than x86 int8, >= 3x faster "
        "than fp32 eager. peer int8 kernels = oneDNN int8 ops in the x86 variant's generated code, against "
        "the model's nn.Conv2d + nn.Linear count. rel err = ||y - y_fp32|| / ||y_fp32|| over the agreement samples."
    )
    if CPU_CLOCK_WARNINGS:
        print(
            f"WARNING: --clock cpu undercounts {len(CPU_CLOCK_WARNINGS)} rows: work ran on other threads "
            f"(e.g. {CPU_CLOCK_WARNINGS[0]}); use the wall clock on an idle machine."
        )
    n_noisy = sum(noisy(r, v) for r in rows for v in VARIANTS)
    if n_noisy:
        print(
            f"{n_noisy} cells marked '!': median over {NOISY:g}x the fastest call, i.e. most calls were "
            "interrupted by other processes; treat them as invalid."
        )
    print()
    if args.profile:
        print_profile(rows)
        print()
    print_details(rows)
    print()
    print(
        f"total wall time {wall:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start, "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
        + " at end"
    )
    print(f"reproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
