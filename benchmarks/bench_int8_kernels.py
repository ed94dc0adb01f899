#!/usr/bin/env python3
"""int8 GEMM / conv kernels: circle_quant against oneDNN (the ops the x86 inductor path calls) and
FBGEMM (PyTorch's quantized engine), on BERT-base linears and ResNet-18/50 / MobileNetV2 conv layers.

Every implementation computes the same thing from the same bytes: uint8 activations (per-tensor
scale, non-zero zero point), int8 symmetric per-channel weights, a float bias, and a uint8 output
requantized inside the kernel (no post-op). Peers are called the way their users' graphs call them:

  oneDNN  torch.ops.onednn.qlinear_prepack + qlinear_pointwise.tensor, qconv_prepack +
          qconv_pointwise.tensor (channels-last input): what torchao's x86 inductor passes put into a
          frozen graph (plain uint8 / int8 tensors, the input scale / zero point as 0-d tensors)
  FBGEMM  torch.backends.quantized.engine = "fbgemm"; torch.ops.quantized.linear_prepack + linear,
          conv2d_prepack + conv2d on quint8 / qint8 QTensors (channels-last input)
  ours    torch.ops.circle_quant.linear_prepack + quantized_linear, conv2d_prepack +
          quantized_conv2d (see ours_linear / ours_conv); a checkout whose torch_circle does not
          import stops the benchmark with the reason

Timing: per shape and thread count, each implementation is warmed up, then its timed calls
(time.perf_counter_ns around one call) alternate with the other implementations' in 5 rounds; the
cell is the median. The number of calls adapts to the call time. GOPS = 2 * MACs / median time; the
peak is measured on this machine (see measure_cpu). The table's speedups are peer time / our time.

    python benchmarks/bench_int8_kernels.py                     # full run, threads 1 and 2
    python benchmarks/bench_int8_kernels.py --quick             # smoke test (a few shapes, 1 thread)
    python benchmarks/bench_int8_kernels.py --only linear --threads 1 --target-s 0.5
    python benchmarks/bench_int8_kernels.py --threads 1 --clock cpu   # on a busy machine

On a shared machine: "!" marks a median over 2x the fastest call (most calls were interrupted);
--clock cpu (1 thread only) times the thread's CPU time; --stat min reports the fastest call.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import functools
import importlib
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]

# QTensors are the FBGEMM peer's interface: silence their deprecation warning.
warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")

TARGET_LINEAR = 1.2  # the targets: ours >= 1.2x oneDNN on BERT linears, >= 1.0x on convs
TARGET_CONV = 1.0
ROUNDS = 5
NOISY = 2.0  # a median over NOISY x the fastest call: most calls were interrupted ("!" in the table)
# perf_counter_ns (wall) by default; --clock cpu times the calling thread's CPU time instead, which
# a busy machine cannot inflate (valid at 1 thread only: the kernels then run on the calling thread).
CLOCK = [time.perf_counter_ns]
# The statistic in the table: the median (default), or with --stat min the fastest call, an
# estimate of the uncontended time when a busy machine interrupts most calls.
STAT = ["median"]
MIN_REPS, MAX_REPS = 10, 20_000
WARMUP_S, MIN_WARMUP = 0.03, 3

# ---------------------------------------------------------------------------------------------
# Shapes


@dataclass(frozen=True)
class LinearShape:
    m: int
    k: int
    n: int
    group: str = "BERT-base linear"

    @property
    def kind(self) -> str:
        return "linear"

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    @property
    def label(self) -> str:
        return f"M={self.m} {self.k}->{self.n}"


@dataclass(frozen=True)
class ConvShape:
    group: str  # model the layer comes from
    cin: int
    cout: int
    hw: int  # square input height = width
    k: int
    stride: int = 1
    groups: int = 1
    batch: int = 1

    @property
    def kind(self) -> str:
        return "conv"

    @property
    def pad(self) -> int:
        return (self.k - 1) // 2

    @property
    def out_hw(self) -> int:
        return (self.hw + 2 * self.pad - self.k) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.batch * self.cout * self.out_hw**2 * (self.cin // self.groups) * self.k**2

    @property
    def label(self) -> str:
        if self.groups == self.cin == self.cout:
            kind = f"dw{self.k}x{self.k} s{self.stride} {self.cin}"
        else:
            kind = f"{self.k}x{self.k} s{self.stride} {self.cin}->{self.cout}"
        return f"{kind} {self.hw}x{self.hw}" + (f" b{self.batch}" if self.batch != 1 else "")


BERT_LINEARS = [LinearShape(m, k, n) for m in (1, 8, 32, 128, 512) for k, n in ((768, 768), (768, 3072), (3072, 768))]

R18, R50, MV2 = "ResNet-18 conv", "ResNet-50 conv", "MobileNetV2 conv"
CONVS = [
    # ResNet-18: stem, one 3x3 per stage (stride 1), the stride-2 3x3 and 1x1 downsample per stage
    ConvShape(R18, 3, 64, 224, 7, 2),
    ConvShape(R18, 64, 64, 56, 3),
    ConvShape(R18, 64, 128, 56, 3, 2),
    ConvShape(R18, 64, 128, 56, 1, 2),
    ConvShape(R18, 128, 128, 28, 3),
    ConvShape(R18, 128, 256, 28, 3, 2),
    ConvShape(R18, 256, 256, 14, 3),
    ConvShape(R18, 256, 512, 14, 3, 2),
    ConvShape(R18, 512, 512, 7, 3),
    # ResNet-50 (v1.5, stride on the 3x3): the bottleneck 1x1s; its 3x3s at stride 1 equal ResNet-18's
    ConvShape(R50, 64, 64, 56, 1),
    ConvShape(R50, 64, 256, 56, 1),
    ConvShape(R50, 256, 64, 56, 1),
    ConvShape(R50, 256, 128, 56, 1),
    ConvShape(R50, 128, 128, 56, 3, 2),
    ConvShape(R50, 128, 512, 28, 1),
    ConvShape(R50, 512, 128, 28, 1),
    ConvShape(R50, 256, 512, 56, 1, 2),
    ConvShape(R50, 1024, 256, 14, 1),
    ConvShape(R50, 256, 1024, 14, 1),
    ConvShape(R50, 2048, 512, 7, 1),
    ConvShape(R50, 512, 2048, 7, 1),
    # MobileNetV2 (width 1.0): stem, every depthwise shape, the expand / project 1x1s around them
    ConvShape(MV2, 3, 32, 224, 3, 2),
    ConvShape(MV2, 32, 32, 112, 3, 1, 32),
    ConvShape(MV2, 32, 16, 112, 1),
    ConvShape(MV2, 16, 96, 112, 1),
    ConvShape(MV2, 96, 96, 112, 3, 2, 96),
    ConvShape(MV2, 96, 24, 56, 1),
    ConvShape(MV2, 24, 144, 56, 1),
    ConvShape(MV2, 144, 144, 56, 3, 1, 144),
    ConvShape(MV2, 144, 24, 56, 1),
    ConvShape(MV2, 144, 144, 56, 3, 2, 144),
    ConvShape(MV2, 144, 32, 28, 1),
    ConvShape(MV2, 32, 192, 28, 1),
    ConvShape(MV2, 192, 192, 28, 3, 1, 192),
    ConvShape(MV2, 192, 192, 28, 3, 2, 192),
    ConvShape(MV2, 192, 64, 14, 1),
    ConvShape(MV2, 64, 384, 14, 1),
    ConvShape(MV2, 384, 384, 14, 3, 1, 384),
    ConvShape(MV2, 384, 64, 14, 1),
    ConvShape(MV2, 384, 96, 14, 1),
    ConvShape(MV2, 576, 576, 14, 3, 1, 576),
    ConvShape(MV2, 576, 576, 14, 3, 2, 576),
    ConvShape(MV2, 576, 160, 7, 1),
    ConvShape(MV2, 960, 960, 7, 3, 1, 960),
    ConvShape(MV2, 960, 160, 7, 1),
    ConvShape(MV2, 160, 960, 7, 1),
    ConvShape(MV2, 320, 1280, 7, 1),
]

QUICK_SHAPES = [
    LinearShape(1, 768, 768),
    LinearShape(32, 768, 3072),
    ConvShape(R18, 256, 256, 14, 3),
    ConvShape(MV2, 384, 384, 14, 3, 1, 384),
    ConvShape(MV2, 64, 384, 14, 1),
]

# ---------------------------------------------------------------------------------------------
# Problem data: the same quantized tensors for every implementation


# How the int8 weights are drawn (--weights): "uniform" in [-127, 127] (the default: a quarter of
# the same-sign k pairs pass |w0| + |w1| > 128, the pairs that saturate vpmaddubsw), or "normal":
# Gaussian floats quantized per output channel (max |w| -> 127), as a quantizer treats a trained
# layer; about 1% of the pairs are past 128 there.
WEIGHTS = ["uniform"]
# The activations' zero point (--x-zero-point). 115 (the default) stands for an input with
# negative values, such as a LayerNorm's output; 0 is what a layer after ReLU sees, which is most
# conv layers of a CNN. oneDNN does less work with 0 (no zero-point compensation), so the two
# give different ratios.
X_ZERO_POINT = [115]


def make_weights(shape, kind: str, gen: torch.Generator) -> torch.Tensor:
    if kind == "uniform":
        return torch.randint(-127, 128, shape, dtype=torch.int8, generator=gen)
    w = torch.randn(shape, generator=gen)
    scale = w.abs().flatten(1).amax(dim=1).clamp_min(1e-12) / 127
    return torch.round(w / scale.view(-1, *([1] * (w.dim() - 1)))).to(torch.int8)


@dataclass
class Problem:
    shape: object
    x: torch.Tensor  # uint8 activations: [M, K] or NCHW with channels-last memory
    x_scale: float
    x_zp: int
    w: torch.Tensor  # int8 weights [N, K] or [Cout, Cin/groups, k, k]
    w_scale: torch.Tensor  # float32 [N]
    w_zp: torch.Tensor  # int64 zeros [N] (symmetric weights)
    bias: torch.Tensor  # float32 [N]
    y_scale: float
    y_zp: int
    reference: torch.Tensor  # float reference output, quantized with (y_scale, y_zp) -> uint8

    @staticmethod
    def make(shape, seed: int = 0) -> "Problem":
        gen = torch.Generator().manual_seed(seed)
        x_scale, x_zp = 0.02, X_ZERO_POINT[0]
        if shape.kind == "linear":
            x = torch.randint(0, 256, (shape.m, shape.k), dtype=torch.uint8, generator=gen)
            w_shape = (shape.n, shape.k)
            fan_in, n = shape.k, shape.n
        else:
            x = torch.randint(
                0, 256, (shape.batch, shape.cin, shape.hw, shape.hw), dtype=torch.uint8, generator=gen
            ).contiguous(memory_format=torch.channels_last)
            w_shape = (shape.cout, shape.cin // shape.groups, shape.k, shape.k)
            fan_in, n = shape.cin // shape.groups * shape.k**2, shape.cout
        w = make_weights(w_shape, WEIGHTS[0], gen)
        # Weight scales that give outputs of about unit scale, varying per channel.
        w_scale = (torch.rand(n, generator=gen) + 0.5) / (127 * x_scale * 128 * fan_in**0.5) * 4
        bias = torch.randn(n, generator=gen) * 0.1
        xf = (x.float() - x_zp) * x_scale
        wf = w.float() * w_scale.view(-1, *([1] * (w.dim() - 1)))
        if shape.kind == "linear":
            ref = torch.nn.functional.linear(xf, wf, bias)
        else:
            ref = torch.nn.functional.conv2d(xf, wf, bias, shape.stride, shape.pad, 1, shape.groups)
        lo, hi = min(float(ref.min()), 0.0), max(float(ref.max()), 0.0)
        y_scale = max(hi - lo, 1e-6) / 255
        y_zp = int(min(255, max(0, round(-lo / y_scale))))
        return Problem(shape, x, x_scale, x_zp, w, w_scale, torch.zeros(n, dtype=torch.int64), bias, y_scale, y_zp, ref)

    def quantized_reference(self) -> torch.Tensor:
        return torch.clamp(torch.round(self.reference / self.y_scale) + self.y_zp, 0, 255).to(torch.uint8)


def as_uint8(y) -> torch.Tensor:
    """An implementation's output as a plain uint8 tensor (QTensors give their integer values)."""
    return y.int_repr() if y.is_quantized else y


# ---------------------------------------------------------------------------------------------
# Peers


def onednn_available() -> Optional[str]:
    if not torch.backends.mkldnn.is_available():
        return "torch built without oneDNN"
    if not hasattr(torch.ops.onednn, "qlinear_pointwise"):
        return "torch.ops.onednn.qlinear_pointwise missing"
    return None


def fbgemm_available() -> Optional[str]:
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return "torch built without FBGEMM"
    return None


def _onednn_x_qparams(p: Problem) -> Tuple[torch.Tensor, torch.Tensor]:
    """Input scale / zero point as the frozen inductor graph passes them: 0-d float32 / int32
    constants to the .tensor overloads (its generated code reads qconv_pointwise.tensor(buf, x_scale,
    x_zp, ...))."""
    return torch.tensor(p.x_scale, dtype=torch.float32), torch.tensor(p.x_zp, dtype=torch.int32)


def onednn_linear(p: Problem) -> Callable[[], torch.Tensor]:
    # As torchao's x86 inductor pass lowers dequant -> linear -> quant after freezing:
    # qlinear_prepack(int8 weight, x_shape), then qlinear_pointwise with a uint8 output.
    packed = torch.ops.onednn.qlinear_prepack(p.w, list(p.x.shape))
    op = torch.ops.onednn.qlinear_pointwise.tensor
    args = (
        p.x,
        *_onednn_x_qparams(p),
        packed,
        p.w_scale,
        p.w_zp,
        p.bias,
        p.y_scale,
        p.y_zp,
        torch.uint8,
        "none",
        [],
        "",
    )
    return lambda: op(*args)


def onednn_conv(p: Problem) -> Callable[[], torch.Tensor]:
    s = p.shape
    stride, pad, dil = [s.stride] * 2, [s.pad] * 2, [1, 1]
    packed = torch.ops.onednn.qconv_prepack(
        p.w, p.w_scale, p.x_scale, p.x_zp, stride, pad, dil, s.groups, list(p.x.shape)
    )
    op = torch.ops.onednn.qconv_pointwise.tensor  # what the x86 pass emits (qconv2d_pointwise: same kernel)
    args = (
        p.x,
        *_onednn_x_qparams(p),
        packed,
        p.w_scale,
        p.w_zp,
        p.bias,
        stride,
        pad,
        dil,
        s.groups,
        p.y_scale,
        p.y_zp,
        torch.uint8,
        "none",
        [],
        "",
    )
    return lambda: op(*args)


def _qtensors(p: Problem):
    qx = torch._make_per_tensor_quantized_tensor(p.x, p.x_scale, p.x_zp)  # keeps channels-last strides
    qw = torch._make_per_channel_quantized_tensor(p.w, p.w_scale.double(), p.w_zp, 0)
    return qx, qw


def fbgemm_linear(p: Problem) -> Callable[[], torch.Tensor]:
    qx, qw = _qtensors(p)
    packed = torch.ops.quantized.linear_prepack(qw, p.bias)
    op = torch.ops.quantized.linear
    return lambda: op(qx, packed, p.y_scale, p.y_zp)


def fbgemm_conv(p: Problem) -> Callable[[], torch.Tensor]:
    s = p.shape
    qx, qw = _qtensors(p)
    packed = torch.ops.quantized.conv2d_prepack(qw, p.bias, [s.stride] * 2, [s.pad] * 2, [1, 1], s.groups)
    op = torch.ops.quantized.conv2d
    return lambda: op(qx, packed, p.y_scale, p.y_zp)


# ---------------------------------------------------------------------------------------------
# Ours: torch.ops.circle_quant (being written; keep each call in one small function)

OURS_REQUANT = "float"  # requantization family passed to the prepack ops ("float" = FBGEMM/oneDNN rounding)
NO_ACTIVATION = (None, None)  # activation_min / max (float?): None = no fused clamp


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


def ours_linear(p: Problem) -> Callable[[], torch.Tensor]:
    """circle_quant::linear_prepack + quantized_linear on the problem's tensors, uint8 output."""
    cq = torch.ops.circle_quant
    packed, params, multiplier = cq.linear_prepack(
        p.w,
        p.w_scale,
        p.w_zp,
        p.bias,
        p.x_scale,
        p.x_zp,
        torch.uint8,
        p.y_scale,
        p.y_zp,
        torch.uint8,
        *NO_ACTIVATION,
        OURS_REQUANT,
    )
    op = cq.quantized_linear.default
    return lambda: op(p.x, packed, params, multiplier, torch.uint8)


def ours_conv(p: Problem) -> Callable[[], torch.Tensor]:
    """circle_quant::conv2d_prepack + quantized_conv2d; NCHW logical input, channels-last memory."""
    s = p.shape
    cq = torch.ops.circle_quant
    kernel, stride, pad, dil = [s.k] * 2, [s.stride] * 2, [s.pad] * 2, [1, 1]
    packed, params, multiplier = cq.conv2d_prepack(
        p.w,
        p.w_scale,
        p.w_zp,
        p.bias,
        stride,
        pad,
        dil,
        s.groups,
        p.x_scale,
        p.x_zp,
        torch.uint8,
        p.y_scale,
        p.y_zp,
        torch.uint8,
        *NO_ACTIVATION,
        OURS_REQUANT,
    )
    op = cq.quantized_conv2d.default
    return lambda: op(p.x, packed, params, multiplier, kernel, stride, pad, dil, s.groups, torch.uint8)


@dataclass(frozen=True)
class Impl:
    name: str
    build: Dict[str, Callable[[Problem], Callable[[], torch.Tensor]]]  # kind -> builder
    status: Callable[[str], Optional[str]]  # kind -> None (usable) or reason


IMPLS = [
    Impl("oneDNN", {"linear": onednn_linear, "conv": onednn_conv}, lambda kind: onednn_available()),
    Impl("FBGEMM", {"linear": fbgemm_linear, "conv": fbgemm_conv}, lambda kind: fbgemm_available()),
    # main() has imported torch_circle (or stopped): its ops are always there.
    Impl("ours", {"linear": ours_linear, "conv": ours_conv}, lambda kind: None),
]

# ---------------------------------------------------------------------------------------------
# This CPU's int8 peak, measured

_CPU_PROBE_C = r"""
#include <stdint.h>
#include <time.h>
static double now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
/* 200 dependent adds per iteration: 1 cycle each, so adds / ns = GHz. A register operand, not an
   immediate: Intel's Golden Cove folds chains of add-immediate at rename (reads as 2-3x the clock). */
double add_chain_ns(long iters) {
    uint64_t x = 0, one = 1; double t0 = now_ns();
    for (long i = 0; i < iters; i++) __asm__ volatile(".rept 200\n\tadd %1, %0\n\t.endr" : "+r"(x) : "r"(one));
    return now_ns() - t0;
}
/* 16 independent vpdpbusd zmm accumulators (latency 4-5 needs >= 10 to be throughput-bound) */
#define V(a) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #a "\n\t"
double vnni_zmm_ns(long iters) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++)
        __asm__ volatile(".rept 10\n\t" V(0) V(1) V(2) V(3) V(4) V(5) V(6) V(7) V(8) V(9) V(10) V(11)
                         V(12) V(13) V(14) V(15) ".endr"
                         ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                             "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    __asm__ volatile("vzeroupper" ::: "memory");
    return now_ns() - t0;
}
/* AVX2 only: 12 independent vpmaddwd ymm accumulations (16 exact int16 MACs each) */
#define M(a) "vpmaddwd %%ymm14, %%ymm15, %%ymm" #a "\n\t"
double madd_ymm_ns(long iters) {
    double t0 = now_ns();
    for (long i = 0; i < iters; i++)
        __asm__ volatile(".rept 10\n\t" M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)
                         ".endr"
                         ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                             "xmm9", "xmm10", "xmm11");
    __asm__ volatile("vzeroupper" ::: "memory");
    return now_ns() - t0;
}
/* AMX-INT8 only (the caller holds Linux's tile permission: torch_circle asked for it when it found
   the amx tier): 4 independent tdpbusd accumulators (tmm0-3) on zeroed 16 x 64-byte sources, each
   16 x 16 x 64 = 16384 u8*s8 MACs. */
#define T(c) "tdpbusd %%tmm6, %%tmm4, %%tmm" #c "\n\t"
double amx_tile_ns(long iters) {
    unsigned char cfg[64] = {0};
    cfg[0] = 1; /* palette 1: colsb (16-bit) from byte 16, rows from byte 48 */
    for (int t = 0; t < 8; t++) { cfg[16 + 2 * t] = 64; cfg[48 + t] = 16; }
    __asm__ volatile("ldtilecfg %0" :: "m"(*(const unsigned char(*)[64])cfg));
    __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"
                     "tilezero %%tmm4\n\ttilezero %%tmm6" ::: "memory");
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) __asm__ volatile(".rept 10\n\t" T(0) T(1) T(2) T(3) ".endr" ::: "memory");
    double t = now_ns() - t0;
    __asm__ volatile("tilerelease" ::: "memory");
    return t;
}
#ifdef PROBE_MAIN
/* Stand-alone form for the tests: runs one probe by name, so an emulator of an older CPU shows
   which probes it can execute ("probe madd_ymm_ns" must run on any AVX2 CPU). */
#include <string.h>
int main(int argc, char** argv) {
    if (argc != 2) return 2;
    if (!strcmp(argv[1], "add_chain_ns")) return add_chain_ns(10) < 0;
    if (!strcmp(argv[1], "vnni_zmm_ns")) return vnni_zmm_ns(10) < 0;
    if (!strcmp(argv[1], "madd_ymm_ns")) return madd_ymm_ns(10) < 0;
    if (!strcmp(argv[1], "amx_tile_ns")) return amx_tile_ns(10) < 0;
    return 2;
}
#endif
"""


@dataclass(frozen=True)
class PeakProbe:
    """The throughput probe of one ISA tier: function in _CPU_PROBE_C, instructions per call
    iteration, u8*s8 MACs one instruction stands for."""

    function: str
    instruction: str
    per_iteration: int
    macs: int
    granularity: float = 0.5  # the peak's instructions per cycle: the measured value rounded to this


# Our kernel tier -> the probe it may run. The AVX2 tiers count exact int16 MACs: vpmaddwd does 16
# per instruction, and oneDNN's vpmaddubsw + vpmaddwd pair spends the same two multiply-port
# instructions per 32 MACs, so one number is the peak of both AVX2 kernels.
PEAK_PROBES = {
    # One tdpbusd per 16 cycles is Intel's figure; the probe measures what this machine gives.
    "amx": PeakProbe("amx_tile_ns", "tdpbusd", 40, 16384, 1 / 64),
    "avx512vnni": PeakProbe("vnni_zmm_ns", "vpdpbusd zmm", 160, 64),
    "avx512": PeakProbe("madd_ymm_ns", "vpmaddwd ymm", 120, 16),
    "avxvnni": PeakProbe("madd_ymm_ns", "vpmaddwd ymm", 120, 16),
    "avx2": PeakProbe("madd_ymm_ns", "vpmaddwd ymm", 120, 16),
}


def peak_probe_for(isa: str) -> Tuple[Optional[PeakProbe], str]:
    """The probe this tier can execute, or None and why: never an instruction above the tier."""
    probe = PEAK_PROBES.get(isa)
    if probe is None:
        return None, f"no int8 SIMD peak for ISA tier '{isa}' (x86 AVX2 or better needed)"
    return probe, ""


def benchmark_isa() -> Tuple[str, str]:
    """(tier, how it was found): torch_circle's own CPU detection, which honours CIRCLE_QUANT_ISA."""
    import torch_circle

    return torch_circle.active_kernel_isa(), "torch_circle.active_kernel_isa()"


@dataclass
class CpuPeak:
    ghz: Dict[int, float]  # threads -> measured clock (GHz, mean over the busy cores)
    per_cycle: float  # measured probe instructions per cycle on one core
    per_cycle_used: float  # the value the peak uses (measured, rounded to 0.5)
    method: str
    probe: Optional[PeakProbe] = None  # None: no peak for this tier (see method)
    isa: str = "?"

    def peak_gops(self, threads: int) -> Optional[float]:
        if self.probe is None:
            return None
        cores = min(threads, os.cpu_count() or threads)
        ghz = self.ghz.get(threads) or self.ghz[1]
        return self.per_cycle_used * self.probe.macs * 2 * ghz * cores  # 2 ops per MAC

    def describe(self) -> str:
        if self.probe is None:
            return f"peak:    n/a at ISA tier {self.isa}: {self.method}"
        return (
            f"peak:    {self.probe.instruction} per cycle x {self.probe.macs} u8*s8 MACs x 2 ops/MAC x clock "
            f"x cores (ISA tier {self.isa}) = "
            + ", ".join(f"{self.peak_gops(t):.0f} GOPS at {t} thread{'s' if t > 1 else ''}" for t in self.ghz)
        )


def _cpuinfo_mhz() -> Optional[float]:
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    return None


def measure_cpu(threads: Sequence[int], isa: str) -> CpuPeak:
    """Clock and the int8 multiply throughput of ISA tier `isa` from a tiny C probe (gcc, run through
    ctypes, which releases the GIL, so every core of a multi-thread count is busy while its clock is
    measured). Only the probe of `isa` runs (peak_probe_for): vpdpbusd zmm at avx512vnni, vpmaddwd
    ymm at the AVX2 tiers, none below. Without a compiler: /proc/cpuinfo's "cpu MHz" (a VM reports
    the nominal clock there) and 2 per cycle."""
    probe, why_not = peak_probe_for(isa)
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        mhz = _cpuinfo_mhz() or 0.0
        return CpuPeak(
            {t: mhz / 1e3 for t in threads},
            float("nan"),
            2.0,
            why_not
            or f'clock = /proc/cpuinfo "cpu MHz" (no C compiler to measure it); '
            f"2 {probe.instruction} per cycle assumed",
            probe,
            isa,
        )
    tmp = Path(tempfile.mkdtemp(prefix="cpu_probe_"))
    try:
        (tmp / "probe.c").write_text(_CPU_PROBE_C)
        subprocess.run(
            [cc, "-O2", "-shared", "-fPIC", str(tmp / "probe.c"), "-o", str(tmp / "probe.so")],
            check=True,
            capture_output=True,
        )
        lib = ctypes.CDLL(str(tmp / "probe.so"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lib.add_chain_ns.restype = ctypes.c_double
    lib.add_chain_ns.argtypes = [ctypes.c_long]
    # Many short samples, best one kept: a sample the scheduler interrupts only reads slower, and
    # on a shared machine some samples always are.
    iters, samples = 15_000, 300  # 3 M dependent adds, about 1 ms at 3.5 GHz, per sample

    def clock_ghz(n_threads: int) -> float:
        results: List[float] = []

        def work():
            results.append(max(iters * 200 / lib.add_chain_ns(iters) for _ in range(samples)))

        pool = [threading.Thread(target=work) for _ in range(n_threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        return statistics.mean(results)

    ghz = {t: clock_ghz(t) for t in sorted(set(threads) | {1})}
    clock_method = (
        "clock = a chain of dependent 64-bit register adds (1 per cycle), best of "
        f"{samples} samples of {iters * 200 / 1e6:g} M adds on every busy core"
    )
    if probe is None:
        return CpuPeak(ghz, float("nan"), float("nan"), f"{why_not}; {clock_method}", None, isa)
    fn = getattr(lib, probe.function)
    fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_long]
    per_ns = max(iters * probe.per_iteration / fn(iters) for _ in range(samples))
    per_cycle = per_ns / ghz[1]
    step = probe.granularity
    used = max(step, round(per_cycle / step) * step)
    method = (
        f"{clock_method}; {probe.instruction} throughput with independent accumulators: "
        f"{per_cycle:.3g} per cycle (the peak uses {used:.3g})"
    )
    return CpuPeak(ghz, per_cycle, used, method, probe, isa)


# ---------------------------------------------------------------------------------------------
# oneDNN's chosen implementation (its verbose log, captured from fd 1)


ONEDNN_ISA = [""]  # oneDNN's own "isa:" line from its verbose header, once captured


def onednn_impl(fn: Callable[[], object]) -> str:
    """The implementation name oneDNN logs for one call of fn (e.g. brg_matmul:avx512_core_vnni)."""
    if not hasattr(torch.backends.mkldnn, "verbose"):
        return "?"
    sys.stdout.flush()
    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = os.dup(1)
        try:
            os.dup2(log.fileno(), 1)
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                fn()
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
        log.seek(0)
        lines = log.read().decode(errors="replace").splitlines()
    impls = [
        ln.split(",")[6]
        for ln in lines
        if ",exec,cpu," in ln and len(ln.split(",")) > 6 and ln.split(",")[5] != "reorder"
    ]
    # The ISA oneDNN dispatches to (after ONEDNN_MAX_CPU_ISA) is in the header its first verbose
    # output prints ("onednn_verbose,v1,info,cpu,isa:Intel AVX2"); some implementation names
    # (gemm:jit) do not say it.
    for ln in lines:
        if ",info,cpu,isa:" in ln:
            ONEDNN_ISA[0] = ln.split(",info,cpu,isa:", 1)[1].strip()
    return impls[-1] if impls else "?"


# ---------------------------------------------------------------------------------------------
# Timing


CPU_CLOCK_WARNINGS: List[str] = []


def check_cpu_clock(before: Tuple[float, float]) -> None:
    """With --clock cpu, only the calling thread's CPU time counts: if the process burned much more
    CPU than this thread while timing, work ran on other threads and the cells undercount it."""
    if CLOCK[0] not in (time.thread_time, time.thread_time_ns):
        return
    process, thread = time.process_time() - before[0], time.thread_time() - before[1]
    if process > 1.1 * thread + 0.01:
        CPU_CLOCK_WARNINGS.append(f"process CPU {process:.2f} s vs timing thread {thread:.2f} s")


def time_interleaved(fns: Sequence[Callable[[], object]], target_s: float) -> List[Tuple[float, int, float]]:
    """(median ns, repeats, fastest ns) per fn. Each fn is warmed up, gets as many timed calls as fit in
    target_s (MIN_REPS..MAX_REPS), and the calls alternate between the fns in ROUNDS rounds, so a
    slow spell of this shared machine hits every implementation alike."""
    clock = CLOCK[0]
    plans = []
    for fn in fns:
        warm: List[int] = []
        while len(warm) < MIN_WARMUP or sum(warm) < WARMUP_S * 1e9:
            t0 = clock()
            fn()
            warm.append(clock() - t0)
        reps = int(min(MAX_REPS, max(MIN_REPS, target_s * 1e9 / statistics.median(warm))))
        plans.append((fn, reps, []))
    cpu_before = (time.process_time(), time.thread_time())
    for r in range(ROUNDS):
        for fn, reps, samples in plans:
            for _ in range(reps // ROUNDS + (r < reps % ROUNDS)):
                t0 = clock()
                fn()
                samples.append(clock() - t0)
    check_cpu_clock(cpu_before)
    return [(statistics.median(samples), reps, min(samples)) for _, reps, samples in plans]


# ---------------------------------------------------------------------------------------------
# Run and report


@dataclass
class Row:
    shape: object
    threads: int
    ns: Dict[str, Optional[float]] = field(default_factory=dict)  # impl -> median ns (None: n/a)
    fastest: Dict[str, float] = field(default_factory=dict)  # impl -> fastest call, ns
    median: Dict[str, float] = field(default_factory=dict)  # impl -> median, ns
    why: Dict[str, str] = field(default_factory=dict)  # impl -> reason for n/a
    ref_steps: Dict[str, int] = field(default_factory=dict)  # impl -> max |y - float ref| steps
    onednn_impl: str = ""


def run(shapes, threads: Sequence[int], target_s: float) -> List[Row]:
    rows: List[Row] = []
    status = {(impl.name, kind): impl.status(kind) for impl in IMPLS for kind in ("linear", "conv")}
    for i, shape in enumerate(shapes):
        problem = Problem.make(shape, seed=i)
        calls: Dict[str, Callable[[], torch.Tensor]] = {}
        why: Dict[str, str] = {}
        outputs: Dict[str, torch.Tensor] = {}
        for impl in IMPLS:
            reason = status[(impl.name, shape.kind)]
            if reason is None:
                engine = torch.backends.quantized.engine
                try:
                    if impl.name == "FBGEMM":
                        torch.backends.quantized.engine = "fbgemm"  # the packed weight remembers it
                    calls[impl.name] = impl.build[shape.kind](problem)
                    outputs[impl.name] = as_uint8(calls[impl.name]())
                except Exception as error:  # noqa: BLE001  a failing impl is a table entry
                    calls.pop(impl.name, None)
                    reason = f"error: {type(error).__name__}: {str(error).splitlines()[0][:100]}"
                finally:
                    torch.backends.quantized.engine = engine
            if reason is not None:
                why[impl.name] = reason
        ref = problem.quantized_reference().int()
        # -1: wrong output shape (reported as such)
        ref_steps = {n: int((y.int() - ref).abs().max()) if y.shape == ref.shape else -1 for n, y in outputs.items()}
        impl_name = onednn_impl(calls["oneDNN"]) if "oneDNN" in calls else ""
        for t in threads:
            torch.set_num_threads(t)
            names = list(calls)
            timings = time_interleaved([calls[n] for n in names], target_s) if names else []
            row = Row(shape, t, why=dict(why), ref_steps=ref_steps, onednn_impl=impl_name)
            for impl in IMPLS:
                row.ns[impl.name] = None
            for n, (median, _, fastest) in zip(names, timings):
                row.median[n], row.fastest[n] = median, fastest
                row.ns[n] = fastest if STAT[0] == "min" else median
            rows.append(row)
            cells = "  ".join(f"{n} {row.ns[n] / 1e3:.1f} us" for n in names)
            print(
                f"  [{len(rows)}/{len(shapes) * len(threads)}] {shape.group} {shape.label} threads {t}: {cells}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def is_noisy(row: Row, impl: str) -> bool:
    return impl in row.median and row.median[impl] > NOISY * row.fastest[impl]


def fmt_us(ns: Optional[float]) -> str:
    if ns is None:
        return "n/a"
    us = ns / 1e3
    return f"{us:.1f}" if us < 100 else f"{us:.0f}"


def speedup_cell(peer: Optional[float], ours: Optional[float]) -> str:
    return "n/a" if peer is None or ours is None else f"{peer / ours:.2f}x"


def target_cell(row: Row, ours_reason: str) -> str:
    target = TARGET_LINEAR if row.shape.kind == "linear" else TARGET_CONV
    peer, ours = row.ns.get("oneDNN"), row.ns.get("ours")
    if ours is None:
        return f">= {target:.1f}x: n/a ({ours_reason})"
    if peer is None:
        return f">= {target:.1f}x: n/a (no oneDNN)"
    s = peer / ours
    digits = 3 if abs(s - target) < 0.01 else 2  # a near miss never reads "short by 0.00x"
    return (
        f">= {target:.1f}x: met"
        if s >= target
        else f">= {target:.1f}x: short by {target - s:.{digits}f}x ({s / target:.0%} of target)"
    )


def print_table(rows: List[Row], peak: CpuPeak) -> None:
    header = [
        "layer",
        "shape",
        "thr",
        "oneDNN us",
        "FBGEMM us",
        "ours us",
        "GOPS oneDNN",
        "GOPS FBGEMM",
        "GOPS ours",
        "% peak oneDNN",
        "% peak FBGEMM",
        "% peak ours",
        "ours vs oneDNN",
        "ours vs FBGEMM",
        "target (vs oneDNN)",
        "max diff vs float ref (steps)",
        "oneDNN impl",
        "ISA tier",
        "CPU",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 or i >= 14 else "---:" for i in range(len(header))) + "|")
    for row in rows:
        ops = 2 * row.shape.macs
        peak_g = peak.peak_gops(row.threads)
        gops = {n: (ops / ns if ns else None) for n, ns in row.ns.items()}  # ops per ns == GOPS
        ours_reason = row.why.get("ours", "").split(":", 1)[0]  # details are in the header's "ours:" line
        diffs = ", ".join(f"{n} {v}" if v >= 0 else f"{n} WRONG SHAPE" for n, v in row.ref_steps.items())
        cells = [
            row.shape.group,
            row.shape.label,
            str(row.threads),
            *[fmt_us(row.ns[n]) + ("!" if is_noisy(row, n) else "") for n in ("oneDNN", "FBGEMM", "ours")],
            *["n/a" if gops[n] is None else f"{gops[n]:.0f}" for n in ("oneDNN", "FBGEMM", "ours")],
            *[
                "n/a" if gops[n] is None or peak_g is None else f"{gops[n] / peak_g:.0%}"
                for n in ("oneDNN", "FBGEMM", "ours")
            ],
            speedup_cell(row.ns["oneDNN"], row.ns["ours"]) if row.ns["ours"] is not None else f"n/a ({ours_reason})",
            speedup_cell(row.ns["FBGEMM"], row.ns["ours"]) if row.ns["ours"] is not None else "n/a",
            target_cell(row, ours_reason),
            diffs,
            row.onednn_impl,
            tier_cell(row, peak.isa),
            CPU_LABEL[0],
        ]
        print("| " + " | ".join(cells) + " |")


def tier_cell(row: Row, isa: str) -> str:
    """The tier both sides ran at: ours' kernel ISA, and oneDNN's as its verbose log names it."""
    return f"ours {isa}, oneDNN {onednn_tier(row.onednn_impl)}"


def onednn_tier(impl: str) -> str:
    """oneDNN's ISA from an implementation name (brg_matmul:avx2, jit_int8:avx512_core_vnni, ...),
    else from the ISA its verbose header reported (gemm:jit names none)."""
    name = impl.lower()
    for tier in ("amx", "avx512_core_vnni", "avx512_core", "avx2_vnni", "avx2"):
        if tier in name:
            return tier
    isa = ONEDNN_ISA[0]
    if "AMX" in isa:
        return "amx"
    if "AVX-512" in isa or "AVX512" in isa:
        return "avx512_core_vnni" if "DL Boost" in isa or "VNNI" in isa else "avx512_core"
    if "AVX2" in isa or "AVX 2" in isa:
        return "avx2_vnni" if "VNNI" in isa else "avx2"
    return f"unknown ({impl})"


def geomean(values: List[float]) -> Optional[float]:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def print_summary(rows: List[Row]) -> None:
    print("Summary (geometric means over the rows of each group; speedup = peer time / other time):")
    groups: Dict[Tuple[str, int], List[Row]] = {}
    for row in rows:
        groups.setdefault((row.shape.group, row.threads), []).append(row)
    for (group, threads), rs in groups.items():

        def gm(a, b):
            vals = [r.ns[a] / r.ns[b] for r in rs if r.ns.get(a) and r.ns.get(b)]
            g = geomean(vals)
            return "n/a" if g is None else f"{g:.2f}x"

        target = TARGET_LINEAR if rs[0].shape.kind == "linear" else TARGET_CONV
        met = [r for r in rs if r.ns.get("ours") and r.ns.get("oneDNN") and r.ns["oneDNN"] / r.ns["ours"] >= target]
        have = [r for r in rs if r.ns.get("ours") and r.ns.get("oneDNN")]
        verdict = f"target >= {target:.1f}x met on {len(met)}/{len(have)} shapes" if have else "ours n/a"
        print(
            f"  {group:18s} threads {threads}: ours vs oneDNN {gm('oneDNN', 'ours')}, ours vs FBGEMM "
            f"{gm('FBGEMM', 'ours')}, FBGEMM vs oneDNN {gm('oneDNN', 'FBGEMM')} ({len(rs)} shapes); {verdict}"
        )


def cpu_description() -> Tuple[str, str]:
    info: Dict[str, str] = {}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    family = info.get("cpu family", "?")
    model = info.get("model", "?")
    flags = set(info.get("flags", "").split())
    arch = (
        {"25": "Zen 3/Zen 4 (family 19h)", "26": "Zen 5 (family 1Ah)"}.get(family, "")
        if "AMD" in info.get("vendor_id", "")
        else ""
    )
    have = [f for f in ("avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8") if f in flags]
    desc = (
        f"{info.get('model name', platform.processor() or '?')}, cpu family {family} model {model}"
        + (f" = {arch}" if arch else "")
        + f", {os.cpu_count()} logical cores"
    )
    return desc, "int8 ISA flags: " + (", ".join(have) or "none") + ("" if "avx_vnni" in flags else " (no avx_vnni)")


def reproduce(args, threads: Sequence[int]) -> str:
    argv = ["python", "benchmarks/bench_int8_kernels.py"]
    if args.quick:
        argv.append("--quick")
    argv += ["--threads", ",".join(map(str, threads)), "--target-s", f"{args.target_s:g}"]
    if args.only:
        argv += ["--only", args.only]
    if args.clock != "wall":
        argv += ["--clock", args.clock]
    if args.stat != "median":
        argv += ["--stat", args.stat]
    if args.isa != "best":
        argv += ["--isa", args.isa]
    if args.weights != "uniform":
        argv += ["--weights", args.weights]
    if args.batch != 1:
        argv += ["--batch", str(args.batch)]
    if args.x_zero_point != 115:
        argv += ["--x-zero-point", str(args.x_zero_point)]
    return shlex.join(argv)


# ---------------------------------------------------------------------------------------------
# ISA tiers: each one measured in its own process, because oneDNN reads ONEDNN_MAX_CPU_ISA once,
# before its first kernel

TIER_ENV = {
    "best": {},
    # FBGEMM_ENABLE_INSTRUCTIONS caps FBGEMM as well; unlike oneDNN's, nothing verifies it here.
    "avx2": {"CIRCLE_QUANT_ISA": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"},
}
CPU_LABEL = ["?"]  # the CPU model, repeated in every row


def tier_is_active(tier: str) -> bool:
    return all(os.environ.get(k) == v for k, v in TIER_ENV[tier].items()) and (
        tier != "best" or not any(k in os.environ for k in TIER_ENV["avx2"])
    )


def run_tier_child(tier: str, argv: List[str]) -> List[dict]:
    """Runs this script for one tier in a child process (its output goes to ours) and returns its
    rows (shape, impl medians, oneDNN's implementation) from a JSON side file."""
    import json

    env = {k: v for k, v in os.environ.items() if k not in TIER_ENV["avx2"]}
    env.update(TIER_ENV[tier])
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        sys.stdout.flush()
        done = subprocess.run([sys.executable, __file__, *argv, "--isa", tier, "--rows-json", out.name], env=env)
        if done.returncode != 0:
            raise SystemExit(f"the {tier} tier's run failed (exit code {done.returncode})")
        return json.loads(Path(out.name).read_text() or "[]")


def print_side_by_side(tiers: List[str], results: Dict[str, List[dict]]) -> None:
    print(
        f"Side by side (CPU: {CPU_LABEL[0]}; speedup = oneDNN time / our time at the same tier; "
        "tier = ours' kernel ISA / oneDNN's ISA from ONEDNN_VERBOSE):"
    )
    header = ["layer", "shape", "thr"] + [
        f"{t} {c}" for t in tiers for c in ("tier", "oneDNN us", "ours us", "ours vs oneDNN")
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|")
    keyed = {t: {(r["group"], r["label"], r["threads"]): r for r in results[t]} for t in tiers}
    for key in keyed[tiers[0]]:
        cells = [key[0], key[1], str(key[2])]
        for t in tiers:
            r = keyed[t].get(key)
            if r is None:
                cells += ["n/a"] * 4
                continue
            peer, ours = r["ns"].get("oneDNN"), r["ns"].get("ours")
            cells += [r["tier"], fmt_us(peer), fmt_us(ours), speedup_cell(peer, ours)]
        print("| " + " | ".join(cells) + " |")
    for t in tiers:
        groups: Dict[Tuple[str, int], List[float]] = {}
        for r in results[t]:
            peer, ours = r["ns"].get("oneDNN"), r["ns"].get("ours")
            if peer and ours:
                groups.setdefault((r["group"], r["threads"]), []).append(peer / ours)
        for (group, threads), ratios in groups.items():
            print(
                f"  tier {t:5s} {group:18s} threads {threads}: ours vs oneDNN geomean {geomean(ratios):.2f}x "
                f"({len(ratios)} shapes)"
            )


# ---------------------------------------------------------------------------------------------
# The saturation case (issue 15): oneDNN's AVX2 int8 kernels add two u8*s8 products into int16
# with saturation (vpmaddubsw), so same-sign weight pairs summing past 128 in magnitude overflow.


def saturation_case() -> str:
    """ReLU + Linear(256, 64, bias=False) with weights uniform in [0.5, 1.0): the x86 path
    (X86InductorQuantizer, inductor with freezing) and ours (circle_quant backend), each against
    the converted PT2E reference graph, as max |diff| / max |reference output|."""
    try:
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    except Exception as error:  # noqa: BLE001
        return f"n/a (torchao: {type(error).__name__}: {str(error)[:80]})"
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(256, 64, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(torch.rand(64, 256, generator=gen) * 0.5 + 0.5)
    x = torch.randn(32, 256, generator=gen) * 2
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(torch.export.export(model, (x,), strict=True).module(), quantizer)
    prepared(x)
    converted = convert_pt2e(prepared)
    with torch.no_grad():
        reference = converted(x)
        scale = float(reference.abs().max())
        freezing = torch._inductor.config.freezing
        torch._inductor.config.freezing = True
        try:
            torch._dynamo.reset()
            peer = torch.compile(converted)(x)
        finally:
            torch._inductor.config.freezing = freezing
        cells = [f"x86 inductor (oneDNN, freezing) {float((peer - reference).abs().max()) / scale:.1%}"]
        torch._dynamo.reset()
        ours = torch.compile(converted, backend="circle_quant")(x)
        cells.append(f"ours (circle_quant) {float((ours - reference).abs().max()) / scale:.1%}")
    return ", ".join(cells) + " (max abs diff from the converted reference / max abs reference output)"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default=None, help="comma-separated thread counts (default 1,2; --quick 1)")
    p.add_argument("--quick", action="store_true", help="smoke test: 5 shapes, short timing")
    p.add_argument("--only", choices=("linear", "conv"), default=None, help="only linear or only conv shapes")
    p.add_argument(
        "--target-s",
        type=float,
        default=None,
        help="timed seconds per implementation and cell (default 0.25; --quick 0.02)",
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
    p.add_argument(
        "--isa",
        default="best",
        help="ISA tiers, comma separated: best (the machine's, default) and/or avx2 (ours with "
        "CIRCLE_QUANT_ISA=avx2, oneDNN with ONEDNN_MAX_CPU_ISA=AVX2, each tier in a child "
        "process); several tiers also print a side-by-side table",
    )
    p.add_argument(
        "--weights",
        choices=("uniform", "normal"),
        default="uniform",
        help="int8 weights uniform in [-127, 127] (default) or Gaussian quantized per channel (as trained layers)",
    )
    p.add_argument(
        "--batch",
        type=int,
        default=1,
        help="images per conv call (default 1): at 32 a layer's activations no longer fit the caches",
    )
    p.add_argument(
        "--x-zero-point",
        type=int,
        default=115,
        help="the activations' zero point (default 115); 0 is what layers after ReLU see, "
        "and oneDNN runs faster with it",
    )
    p.add_argument("--rows-json", default=None, help=argparse.SUPPRESS)  # a tier child's rows, for its parent
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error(f"--batch must be at least 1, got {args.batch}")
    if not 0 <= args.x_zero_point <= 255:
        p.error(f"--x-zero-point must be in [0, 255] (uint8 activations), got {args.x_zero_point}")
    tiers = args.isa.split(",")
    for t in tiers:
        if t not in TIER_ENV:
            p.error(f"--isa: unknown tier {t!r} (choose from {', '.join(TIER_ENV)})")
    CPU_LABEL[0] = cpu_description()[0].split(",")[0]
    if len(tiers) > 1 or not tier_is_active(tiers[0]):
        own = list(argv if argv is not None else sys.argv[1:])
        for i, a in enumerate(own):  # drop --isa X / --isa=X: each child gets its own
            if a == "--isa":
                own[i : i + 2] = []
                break
            if a.startswith("--isa="):
                own[i : i + 1] = []
                break
        results = {t: run_tier_child(t, own) for t in tiers}
        if len(tiers) > 1:
            print()
            print_side_by_side(tiers, results)
        return 0
    sys.stdout.reconfigure(line_buffering=True)
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    STAT[0] = args.stat
    WEIGHTS[0] = args.weights
    X_ZERO_POINT[0] = args.x_zero_point
    if args.clock == "cpu":
        if threads != [1]:
            p.error("--clock cpu needs --threads 1 (other threads' time would not be counted)")
        CLOCK[0] = time.thread_time_ns
    args.target_s = args.target_s or (0.02 if args.quick else 0.25)
    shapes = QUICK_SHAPES if args.quick else BERT_LINEARS + CONVS
    if args.only:
        shapes = [s for s in shapes if s.kind == args.only]
    shapes = [replace(s, batch=args.batch) if s.kind == "conv" else s for s in shapes]
    command = reproduce(args, threads)
    print(f"reproduce: {command}")
    print()

    error = import_torch_circle()
    if error:
        print(f"bench_int8_kernels.py: {error}", file=sys.stderr)
        return 2
    isa, isa_source = benchmark_isa()
    probe = peak_probe_for(isa)[0]
    print(
        f"ISA tier {isa} ({isa_source}); measuring the clock"
        + (f" and {probe.instruction} throughput" if probe else "")
        + " ...",
        file=sys.stderr,
        flush=True,
    )
    peak = measure_cpu(threads, isa)
    cpu, flags = cpu_description()
    start, load = time.perf_counter(), os.getloadavg()
    cpu_before = _busy_seconds()
    rows = run(shapes, threads, args.target_s)
    wall = time.perf_counter() - start
    others = None if cpu_before is None else _busy_seconds() - cpu_before

    print(
        f"int8 kernels: uint8 activations (zero point {args.x_zero_point}), int8 symmetric per-channel weights "
        f"({args.weights}), float bias, uint8 output requantized in the kernel; "
        f"conv batch {args.batch}, channels-last input"
    )
    print(f"CPU:     {cpu}; {flags}")
    print(
        f"torch:   {torch.__version__}, oneDNN {_onednn_version()}, quantized engines "
        f"{torch.backends.quantized.supported_engines} (FBGEMM peer: engine 'fbgemm')"
    )
    print(f"python:  {platform.python_version()} on {platform.platform()}")
    print(
        "clock:   "
        + ", ".join(f"{t} thread{'s' if t > 1 else ''} {peak.ghz[t]:.2f} GHz" for t in threads)
        + f" ({peak.method})"
    )
    print(peak.describe())
    print(
        f"tier:    {args.isa}: ours' kernels at {isa} ({isa_source}; GEMM microkernel "
        f"{_ours_kernel_name()}); " + tier_check(rows, args.isa)
    )
    print()
    print_table(rows, peak)
    print()
    print_summary(rows)
    print(f"saturation case, ReLU + Linear(256, 64) with weights in [0.5, 1.0), tier {args.isa}: {saturation_case()}")
    if args.rows_json:
        import json

        Path(args.rows_json).write_text(
            json.dumps(
                [
                    {
                        "group": r.shape.group,
                        "label": r.shape.label,
                        "threads": r.threads,
                        "ns": r.ns,
                        "tier": f"{isa} / {onednn_tier(r.onednn_impl)}",
                    }
                    for r in rows
                ]
            )
        )
    errors = sorted({f"{n}: {w}" for r in rows for n, w in r.why.items() if w.startswith("error")})
    for e in errors:
        print(f"  failed: {e}")
    off = [(r, n, v) for r in rows if r.threads == threads[0] for n, v in r.ref_steps.items() if v > 1 or v < 0]
    if off:
        print(
            "  outputs more than 1 step off the exact result: "
            + "; ".join(
                f"{n} {v if v >= 0 else 'wrong shape'} steps on {r.shape.group} {r.shape.label}" for r, n, v in off
            )
        )
    print()
    print(f"clock: {'thread CPU time (time.thread_time_ns)' if args.clock == 'cpu' else 'wall (time.perf_counter_ns)'}")
    if CPU_CLOCK_WARNINGS:
        print(
            f"WARNING: --clock cpu undercounts {len(CPU_CLOCK_WARNINGS)} cells: work ran on other threads "
            f"(e.g. {CPU_CLOCK_WARNINGS[0]}); use the wall clock on an idle machine."
        )
    noisy = sum(1 for r in rows for n in r.median if is_noisy(r, n))
    if noisy:
        print(
            f"{noisy} cells marked '!': their median is over {NOISY:g}x their fastest call, so most calls were "
            "interrupted (busy machine); treat them as invalid."
        )
    print(
        f"us = {'fastest of the timed calls (--stat min)' if args.stat == 'min' else 'median time of one call'}; "
        "GOPS = 2 x MACs / that time; % peak = GOPS / peak at that thread count; "
        "ours vs X = X time / our time (> 1: ours faster); max diff vs float ref = largest difference "
        "from the exact result rounded half-to-even, in output quantization steps (0-1 is rounding)."
    )
    note = (
        f"; other processes used {others:.0f} CPU-s meanwhile ({others / wall:.0%} of one core)"
        if others is not None
        else ""
    )
    print(f"timing took {wall:.0f} s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at start{note}")
    if others is not None and others / wall > 0.1:
        print(
            "WARNING: the machine was busy. Multi-thread cells suffer most: an OpenMP parallel region "
            "waits for its slowest thread, and a descheduled thread costs a whole scheduler slice. Rerun idle."
        )
    print(f"reproduce: {command}")
    return 0


def _ours_kernel_name() -> str:
    import torch_circle

    name = torch_circle.ops.gemm_kernel_name
    few, many = name(1), name(512)
    if few == many:
        return many
    switch = next(r for r in range(2, 513) if name(r) == many)
    return f"{few} below {switch} rows, {many} from {switch}"


def tier_check(rows: List[Row], tier: str) -> str:
    """Whether oneDNN really ran at the requested tier, from its verbose log (ONEDNN_VERBOSE)."""
    impls = [r.onednn_impl for r in rows if r.onednn_impl]
    if tier != "avx2":
        return f"oneDNN ran {', '.join(sorted({onednn_tier(i) for i in impls})) or 'n/a'} (ONEDNN_VERBOSE)"
    bad = [i for i in impls if onednn_tier(i) != "avx2"]
    if bad or "AVX2" not in ONEDNN_ISA[0]:
        return (
            f"WARNING: oneDNN ran above AVX2 on {len(bad)}/{len(impls)} shapes ({bad[0] if bad else ''}; "
            f"verbose isa: {ONEDNN_ISA[0] or 'not seen'}) despite ONEDNN_MAX_CPU_ISA"
        )
    return (
        f"oneDNN verified at AVX2 on {len(impls)}/{len(impls)} shapes (ONEDNN_VERBOSE: "
        f"'isa:{ONEDNN_ISA[0]}', implementations {', '.join(sorted(set(impls)))})"
    )


def _onednn_version() -> str:
    for line in torch.__config__.show().splitlines():
        if "MKL-DNN" in line or "oneDNN" in line:
            return line.split("v", 1)[-1].split()[0] if " v" in line else line.strip()
    return "?"


def _busy_seconds() -> Optional[float]:
    """CPU seconds every other process used so far (from /proc/stat; None where absent)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    mine = os.times()
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK") - (mine.user + mine.system)


if __name__ == "__main__":
    sys.exit(main())
