#!/usr/bin/env python3
"""Times the circle_quant CPU ops against their torch equivalents and against memcpy.

For every op and buffer size (size = bytes of the float32 input) the table gives the median
wall time of one call, the bandwidth (bytes = every tensor the op reads + every tensor it writes),
the peer's time divided by ours (> 1 means circle_quant is faster) and the bandwidth as a
fraction of memcpy's at the same size (memcpy moves 2 x size bytes: dst.copy_(src)).

    python benchmarks/bench_ops.py                    # full run, 1 KB .. 64 MB
    python benchmarks/bench_ops.py --quick            # CI smoke test: 1 KB and 256 KB, 10 repeats
    python benchmarks/bench_ops.py --isa avx2         # force the kernels onto one ISA
    python benchmarks/bench_ops.py --sizes 4KB,1MB --threads 1 --repeats 50 --markdown
"""

import argparse
import contextlib
import os
import platform
import re
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

import torch_circle
import torch_circle.quantizer  # noqa: F401  imports torchao without its CPU-only log noise

KB, MB = 1 << 10, 1 << 20
DEFAULT_SIZES = (1 * KB, 16 * KB, 256 * KB, 4 * MB, 64 * MB)
QUICK_SIZES = (1 * KB, 256 * KB)
QUICK_REPEATS = 10

TIMED_S_PER_MEASUREMENT = 0.3  # adaptive repeats: aim for this much timed work per (impl, size)
MIN_REPEATS, MAX_REPEATS = 7, 20_000
ROUNDS = 5  # timed calls alternate between a case's impls in this many rounds
WARMUP_S, MIN_WARMUP = 0.05, 2
MAX_CALL_S = 2.0  # an impl whose first call takes longer is skipped at that size

# Quantization parameters. Inputs are N(0, 1); the histogram range is wider than any sample.
SCALE = 8.0 / 127
UINT8 = (128, 0, 255, torch.uint8)  # zero_point, quant_min, quant_max, dtype
INT8 = (0, -128, 127, torch.int8)
CHANNELS = 64
BINS = 2048
HIST_RANGE = (-8.0, 8.0)

cq = torch_circle.ops  # the Python API: direct bindings of the torch.ops.circle_quant ops
qd = torch.ops.quantized_decomposed


# ---------------------------------------------------------------------------------------------
# Inputs and benchmark cases


class Inputs:
    """The tensors every case draws on, for one buffer size (n float32 elements)."""

    def __init__(self, n: int):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, generator=gen)
        self.dst = torch.empty_like(self.x)
        self.q_u8 = cq.quantize_per_tensor(self.x, SCALE, *UINT8)
        self.qtensor = torch.quantize_per_tensor(self.x, SCALE, UINT8[0], torch.quint8)
        self.w = self.x.view(CHANNELS, -1)  # weight-like [C, K], quantized along axis 0
        self.w_scales = (self.w.abs().amax(dim=1) / 127).clamp_min(1e-8)
        self.w_zero_points = torch.zeros(CHANNELS, dtype=torch.int64)
        # Histogram state already holding a range wider than x: the steady-state update path.
        lo, hi = HIST_RANGE
        self.hist = torch.histc(self.x, BINS, lo, hi)
        self.hist_min, self.hist_max = torch.tensor(lo), torch.tensor(hi)
        self._observer = None

    @property
    def observer(self):
        """torchao's HistogramObserver, initialised on [lo, hi] (built on first use)."""
        if self._observer is None:
            from torchao.quantization.pt2e.observer import HistogramObserver

            self._observer = HistogramObserver(bins=BINS)
            self._observer(torch.tensor(HIST_RANGE))
        return self._observer


@dataclass(frozen=True)
class Impl:
    name: str
    bind: Callable[[Inputs], Callable[[], object]]  # returns the zero-argument call to time


@dataclass(frozen=True)
class Case:
    name: str
    bytes_moved: Callable[[int], int]  # n elements -> bytes our op reads + writes
    ours: Impl
    peers: Tuple[Impl, ...]


def quantize_case(label: str, qparams: tuple, qdtype: torch.dtype) -> Case:
    zero_point = qparams[0]
    return Case(
        f"quantize_per_tensor f32->{label}",
        lambda n: 4 * n + n,
        Impl("circle_quant", lambda d: partial(cq.quantize_per_tensor, d.x, SCALE, *qparams)),
        (
            Impl("quantized_decomposed", lambda d: partial(qd.quantize_per_tensor, d.x, SCALE, *qparams)),
            Impl(
                "torch.quantize_per_tensor (QTensor)",
                lambda d: partial(torch.quantize_per_tensor, d.x, SCALE, zero_point, qdtype),
            ),
        ),
    )


CASES: List[Case] = [
    quantize_case("uint8", UINT8, torch.quint8),
    quantize_case("int8", INT8, torch.qint8),
    Case(
        "dequantize_per_tensor uint8->f32",
        lambda n: n + 4 * n,
        Impl("circle_quant", lambda d: partial(cq.dequantize_per_tensor, d.q_u8, SCALE, *UINT8)),
        (
            Impl("quantized_decomposed", lambda d: partial(qd.dequantize_per_tensor, d.q_u8, SCALE, *UINT8)),
            Impl("QTensor.dequantize()", lambda d: d.qtensor.dequantize),
        ),
    ),
    Case(
        f"quantize_per_channel f32->int8 [{CHANNELS}, K] axis 0",
        lambda n: 4 * n + n + CHANNELS * (4 + 8),
        Impl(
            "circle_quant", lambda d: partial(cq.quantize_per_channel, d.w, d.w_scales, d.w_zero_points, 0, *INT8[1:])
        ),
        (
            Impl(
                "quantized_decomposed",
                lambda d: partial(qd.quantize_per_channel, d.w, d.w_scales, d.w_zero_points, 0, *INT8[1:]),
            ),
        ),
    ),
    Case(
        "minmax f32",
        lambda n: 4 * n + 2 * 4,
        Impl("circle_quant", lambda d: partial(cq.minmax, d.x)),
        (Impl("torch.aminmax", lambda d: partial(torch.aminmax, d.x)),),
    ),
    Case(
        f"histogram observe f32, {BINS} bins (steady state)",
        lambda n: 4 * n + 2 * (4 * BINS + 2 * 4),  # x + (hist, min, max) read and written
        Impl("circle_quant", lambda d: partial(cq.histogram_observe, d.x, d.hist, d.hist_min, d.hist_max)),
        (
            Impl("torch.histc", lambda d: partial(torch.histc, d.x, BINS, *HIST_RANGE)),
            Impl("torchao HistogramObserver", lambda d: partial(d.observer, d.x)),
        ),
    ),
]

MEMCPY = Impl("dst.copy_(src) f32", lambda d: partial(d.dst.copy_, d.x))


# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    repeats: int = 0
    samples: List[int] = field(default_factory=list)  # ns per call
    skipped: str = ""

    @property
    def median_ns(self) -> float:
        return statistics.median(self.samples)


def time_calls(fns: Sequence[Callable[[], object]], repeats: Optional[int]) -> List[Timing]:
    """Median wall time of one call of each fn, measured with time.perf_counter_ns.

    Each fn is warmed up first, and skipped if its first call takes over MAX_CALL_S. Unless
    `repeats` is given, each fn gets as many timed calls as fit in TIMED_S_PER_MEASUREMENT
    (within MIN_REPEATS..MAX_REPEATS). The timed calls are spread over ROUNDS rounds that take
    turns between the fns, so a slow spell on a shared machine hits every fn alike.
    """
    clock = time.perf_counter_ns

    def timed(fn, calls: int) -> List[int]:
        out = []
        for _ in range(calls):
            t0 = clock()
            fn()
            out.append(clock() - t0)
        return out

    timings, active = [], []
    for fn in fns:
        first = timed(fn, 1)[0]
        if first > MAX_CALL_S * 1e9:
            timings.append(Timing(skipped=f"skipped, 1 call = {format_time(first)}"))
            continue
        warm = []
        while len(warm) < MIN_WARMUP or sum(warm) < WARMUP_S * 1e9:
            warm += timed(fn, 1)
        n = repeats or int(min(MAX_REPEATS, max(MIN_REPEATS, TIMED_S_PER_MEASUREMENT * 1e9 / statistics.median(warm))))
        timings.append(Timing(repeats=n))
        active.append((fn, timings[-1]))
    for r in range(ROUNDS):
        for fn, t in active:
            t.samples += timed(fn, t.repeats // ROUNDS + (r < t.repeats % ROUNDS))
    return timings


def run(sizes: Sequence[int], repeats: Optional[int]) -> Dict[Tuple[str, int, str], Timing]:
    """Times every impl of every case (and memcpy) at every size; keys are (case, size, impl)."""
    results = {}
    for size in sizes:
        inputs = Inputs(size // 4)
        print(f"  timing {format_size(size)} ...", file=sys.stderr, flush=True)
        for name, impls in [("memcpy", [MEMCPY])] + [(c.name, [c.ours, *c.peers]) for c in CASES]:
            timings = time_calls([impl.bind(inputs) for impl in impls], repeats)
            results.update({(name, size, impl.name): t for impl, t in zip(impls, timings)})
        del inputs
    return results


# ---------------------------------------------------------------------------------------------
# Report


def format_size(size: int) -> str:
    for unit, scale in (("MB", MB), ("KB", KB)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KM]?)B?\s*", text.upper())
    if not m:
        raise argparse.ArgumentTypeError(f"bad size {text!r}; use e.g. 1KB, 256KB, 4MB, 4096")
    size = int(m.group(1)) * {"": 1, "K": KB, "M": MB}[m.group(2)]
    if size <= 0 or size % (4 * CHANNELS):
        raise argparse.ArgumentTypeError(
            f"size {text!r} must be a positive multiple of {4 * CHANNELS} bytes "
            f"({CHANNELS} channels of float32 for quantize_per_channel)"
        )
    return size


def format_time(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def table_rows(sizes: Sequence[int], results) -> Tuple[List[str], List[List[str]]]:
    header = ["op", "size", "impl", "median", "reps", "GB/s", "peer/ours", "% memcpy"]
    groups = [("memcpy (reference)", "memcpy", lambda n: 8 * n, MEMCPY, ())]
    groups += [(c.name, c.name, c.bytes_moved, c.ours, c.peers) for c in CASES]
    rows = []
    for label, key, bytes_moved, ours, peers in groups:
        for size in sizes:
            memcpy = results[("memcpy", size, MEMCPY.name)]
            base = results[(key, size, ours.name)]
            for impl in (ours, *peers):
                t = results[(key, size, impl.name)]
                row = [label, format_size(size), impl.name]
                if t.skipped:
                    rows.append(row + [t.skipped, "", "", "", ""])
                    continue
                gbs = bytes_moved(size // 4) / t.median_ns  # bytes per ns == GB/s
                ratio = "" if impl is ours or base.skipped else f"{t.median_ns / base.median_ns:.2f}x"
                share = "" if memcpy.skipped else f"{gbs / (2 * size / memcpy.median_ns):.0%}"
                rows.append(row + [format_time(t.median_ns), str(t.repeats), f"{gbs:.2f}", ratio, share])
    return header, rows


def print_text_table(header: List[str], rows: List[List[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7}

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    print(line(header))
    print(line(["-" * w for w in widths]))
    previous_op = None
    for row in rows:
        shown = list(row)
        if row[0] == previous_op:
            shown[0] = ""  # print each op's name once
        elif previous_op is not None:
            print()
        previous_op = row[0]
        print(line(shown))


def print_markdown_table(header: List[str], rows: List[List[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i >= 3 else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def print_machine() -> None:
    print(f"CPU:     {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"torch:   {torch.__version__}, torch.get_num_threads() = {torch.get_num_threads()}")
    print(f"kernels: circle_quant ISA = {torch_circle.active_kernel_isa()}")
    print(f"python:  {platform.python_version()} on {platform.platform()}")
    print("load:    {:.2f} {:.2f} {:.2f} (1/5/15-min load average before timing)".format(*os.getloadavg()))


def others_cpu_seconds() -> Optional[float]:
    """CPU seconds used so far by every process but this one (from /proc/stat; None if absent)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    mine = os.times()
    return busy - (mine.user + mine.system)


def reproduce_command(args, sizes: Sequence[int], repeats: Optional[int]) -> str:
    argv = [
        "python",
        "benchmarks/bench_ops.py",
        "--sizes",
        ",".join(format_size(s).replace(" ", "") for s in sizes),
        "--threads",
        str(torch.get_num_threads()),
        "--isa",
        torch_circle.active_kernel_isa(),
    ]
    if repeats is not None:
        argv += ["--repeats", str(repeats)]
    if args.markdown:
        argv.append("--markdown")
    return shlex.join(argv)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--sizes",
        type=lambda s: [parse_size(t) for t in s.split(",")],
        help="comma-separated float32 input sizes (default 1KB,16KB,256KB,4MB,64MB)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads before timing (default: torch.get_num_threads())",
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="timed calls per (op, size, impl); default adapts to the call time"
    )
    p.add_argument(
        "--isa",
        choices=torch_circle.ops.KERNEL_ISAS,
        default=None,
        help="run circle_quant kernels under torch_circle.use_kernel_isa(ISA)",
    )
    p.add_argument("--quick", action="store_true", help=f"smoke test: sizes 1KB,256KB and {QUICK_REPEATS} repeats")
    p.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = p.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else None)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    isa = torch_circle.use_kernel_isa(args.isa) if args.isa else contextlib.nullcontext()
    # QTensors are a deliberate peer here: silence their deprecation warning.
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions")
    with isa:
        print_machine()
        start, others_before = time.perf_counter(), others_cpu_seconds()
        results = run(sizes, repeats)
        wall, others_after = time.perf_counter() - start, others_cpu_seconds()
        print()
        header, rows = table_rows(sizes, results)
        (print_markdown_table if args.markdown else print_text_table)(header, rows)
        command = reproduce_command(args, sizes, repeats)
    print()
    print(
        "bytes = input + output bytes of our op; GB/s = bytes / median time; "
        "peer/ours = peer time / our time (> 1: circle_quant faster);"
    )
    print("% memcpy = GB/s / memcpy GB/s at the same size (memcpy moves 2 x size bytes).")
    print(f"timing took {wall:.0f} s", end="")
    if others_before is not None:
        busy = max(0.0, others_after - others_before)
        print(
            f"; other processes used {busy:.1f} CPU-s meanwhile ({busy / wall:.0%} of a core)"
            + (" -- rerun on an idle machine" if busy / wall > 0.05 else ""),
            end="",
        )
    print()
    print(f"reproduce: {command}")


if __name__ == "__main__":
    main()
