#!/usr/bin/env python3
"""Circle export of ResNet-50: torch-circle against Samsung's TICO, in one run on one machine.

Cases (input 1x3x224x224):
  float   the float model (eval mode, batch norm in the graph)
  uint8   its PT2E graph quantized with CircleQuantizer(preset="uint8") (int32 bias), calibrated
          on a few seeded inputs and converted with convert_pt2e
  uint8-fb  (extra) the same with the bias left in float, because TICO 0.3.0 rejects int32 bias
          quantize nodes; it quantizes bias itself

Both exporters get the same already-captured graph: the float model's ExportedProgram, and for the
quantized cases the ExportedProgram of the converted GraphModule (TICO takes ExportedPrograms;
torch-circle takes both). TICO rewrites the program it is given in place, so every timed
conversion gets a fresh copy.deepcopy of it (made before the clock starts). Timed: the conversion
only, median of N runs, the exporters alternating each round. Also reported: torch-circle from the
nn.Module (torch.export capture included) and from the converted GraphModule.

For every file: size, op count (all subgraphs, read with ONE's own circle_schema bindings, not
with torch-circle's reader), the five most frequent op types, and a run in onert on the same seeded
inputs as the PyTorch reference: float cases give the max abs error against the float model;
quantized cases the max abs error in units of the output's quantization step against the quantized
PyTorch graph, and how often the argmax agrees (with the quantized graph and with the float model).
Each file runs in onert in a child process, so a runtime crash becomes a table entry.

    python benchmarks/bench_export.py                  # ResNet-50, N=5 (about 5 minutes)
    python benchmarks/bench_export.py --quick          # tiny ResNet, N=2: smoke test
    python benchmarks/bench_export.py --model mobilenet_v2 --repeats 3 --save-dir /tmp/circles
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import dataclasses
import gc
import importlib.metadata
import io
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _use_this_checkout() -> str:
    """Benchmarks the torch_circle of the checkout this script is in when it is built there (an
    editable install may point elsewhere); --snapshot imports a copy, so a rebuild during the run
    cannot pull the native library from under the process (which crashes it)."""
    package = ROOT / "torch_circle"
    if not any(package.glob("_C*.so")):
        return "installed package"
    if "--snapshot" in sys.argv:
        tmp = Path(tempfile.mkdtemp(prefix="bench_export_"))
        shutil.copytree(package, tmp / "torch_circle", ignore=shutil.ignore_patterns("__pycache__"))
        atexit.register(shutil.rmtree, tmp, True)
        sys.path.insert(0, str(tmp))
        return f"a snapshot of {package} taken at start"
    sys.path.insert(0, str(ROOT))
    return "this checkout"


PACKAGE_ORIGIN = _use_this_checkout()

import torch_circle  # noqa: E402
from torch_circle.quantizer import CircleQuantizer  # noqa: E402  before torchao: silences its CUDA warnings
from torch_circle.quantizer import preset as circle_preset  # noqa: E402
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resnet50 import MODELS  # noqa: E402

TARGET_TIME_S = 1.0  # the targets for ResNet-50
TARGET_SPEEDUP = 5.0

# torch.export's pytree deprecation noise when deep-copying / re-exporting programs.
warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)

# ---------------------------------------------------------------------------------------------
# Helpers


def one_line(error: BaseException | str, limit: int = 240) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    text = " | ".join(line.strip() for line in str(text).strip().splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 3] + "..."


TICO_WARNINGS: List[str] = []  # everything TICO warned about, reported at the end
CURRENT_CASE = [""]
try:
    with warnings.catch_warnings(record=True) as _caught:
        warnings.simplefilter("always")
        import tico
    TICO_WARNINGS += [f"import tico: {w.category.__name__}: {one_line(str(w.message), 200)}" for w in _caught]
    TICO_ERROR = None
except Exception as error:  # noqa: BLE001  (not installed, or broken against this torch)
    tico, TICO_ERROR = None, f"{type(error).__name__}: {error}"


def fmt_s(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cpu_seconds() -> Tuple[float, float]:
    """(CPU-seconds all processes have used, CPU-seconds this process and its children used)."""
    ours = sum(os.times()[:4])
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
        return busy / os.sysconf("SC_CLK_TCK"), ours
    except (OSError, ValueError, IndexError):
        return float("nan"), ours


def git_state() -> str:
    try:
        run = lambda *a: subprocess.run(
            ["git", "-C", str(ROOT), *a],
            capture_output=True,  # noqa: E731
            text=True,
            timeout=10,
        ).stdout.strip()
        head = run("rev-parse", "--short", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"; checkout at git {head}{' with uncommitted changes' if dirty else ''}" if head else ""


def machine_info() -> List[str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    tico_v = version("tico")
    if tico is not None and getattr(tico, "__version__", tico_v) != tico_v:
        tico_v += f" (its tico.__version__ says {tico.__version__})"
    return [
        f"CPU:      {cpu}, {os.cpu_count()} logical cores ({affinity} usable), torch threads {torch.get_num_threads()}",
        f"versions: torch {torch.__version__}, torchao {version('torchao')}, tico {tico_v}, "
        f"onert {version('onert')}, torch-circle {torch_circle.__version__}, "
        f"circle-schema {version('circle-schema')}, numpy {np.__version__}",
        f"package:  torch_circle from {Path(torch_circle.__file__).parent} ({PACKAGE_ORIGIN}{git_state()})",
        f"python:   {platform.python_version()} on {platform.platform()}",
    ]


# ---------------------------------------------------------------------------------------------
# Reading files with ONE's official Circle bindings


def _circle():
    import circle_schema.v0_10.circle as circle

    return circle


def op_histogram(data: bytes) -> Counter:
    circle = _circle()
    names = {
        v: k
        for k, v in vars(circle.BuiltinOperator.BuiltinOperator).items()
        if not k.startswith("_") and isinstance(v, int)
    }
    model = circle.Model.Model.GetRootAs(data, 0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = oc.BuiltinCode()
        code = code if code < 0 else max(code, oc.DeprecatedBuiltinCode())
        name = names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM" and oc.CustomCode():
            name = f"CUSTOM:{oc.CustomCode().decode()}"
        codes.append(name)
    ops = Counter()
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            ops[codes[sg.Operators(o).OpcodeIndex()]] += 1
    return ops


def _tensor_quantization(data: bytes, which: str) -> Tuple[str, Optional[Tuple[float, int]]]:
    """Type name and (scale, zero point) of the first input / output tensor of subgraph 0."""
    circle = _circle()
    types = {v: k for k, v in vars(circle.TensorType.TensorType).items() if not k.startswith("_")}
    sg = circle.Model.Model.GetRootAs(data, 0).Subgraphs(0)
    tensor = sg.Tensors(sg.Inputs(0) if which == "input" else sg.Outputs(0))
    q = tensor.Quantization()
    qparams = None
    if q is not None and q.ScaleLength():
        qparams = float(q.Scale(0)), int(q.ZeroPoint(0)) if q.ZeroPointLength() else 0
    return types.get(tensor.Type(), str(tensor.Type())), qparams


_INT_RANGES = {"UINT8": (np.uint8, 0, 255), "INT8": (np.int8, -128, 127), "INT16": (np.int16, -32768, 32767)}


def file_inputs(data: bytes, inputs: List[np.ndarray]) -> Tuple[List[np.ndarray], str]:
    """The float inputs as the file takes them: quantized with its own input qparams when its input
    tensor is an integer one (then the file's first op is not a QUANTIZE of a float input)."""
    kind, qparams = _tensor_quantization(data, "input")
    if kind == "FLOAT32":
        return inputs, ""
    if kind not in _INT_RANGES or qparams is None:
        return inputs, f"{kind} input without quantization parameters"
    dtype, lo, hi = _INT_RANGES[kind]
    scale, zero_point = qparams
    return [np.clip(np.round(x / scale) + zero_point, lo, hi).astype(dtype) for x in inputs], f"{kind.lower()} input"


def output_quantization(data: bytes) -> Optional[Tuple[float, int]]:
    return _tensor_quantization(data, "output")[1]


# ---------------------------------------------------------------------------------------------
# onert, in a child process (a crash there must not end the benchmark)

_ONERT_CHILD = r"""
import importlib.util, sys, numpy as np
spec = importlib.util.spec_from_file_location("tc_runtime", sys.argv[1])
rt = importlib.util.module_from_spec(spec); spec.loader.exec_module(rt)   # numpy-only module
inputs = np.load(sys.argv[3])
outs = [rt.run_onert(open(sys.argv[2], "rb").read(), [inputs[k]])[0] for k in sorted(inputs.files)]
np.save(sys.argv[4], np.stack(outs))
"""


def run_in_onert(path: Path, inputs: List[np.ndarray], workdir: Path) -> Tuple[Optional[np.ndarray], str]:
    """Outputs (stacked over the inputs, the model's dtype) or None and the runtime's error."""
    runtime_py = Path(torch_circle.__file__).resolve().parent / "runtime.py"
    in_path, out_path = workdir / f"{path.stem}.inputs.npz", workdir / f"{path.stem}.outputs.npy"
    np.savez(in_path, **{f"x{i:03d}": x for i, x in enumerate(inputs)})
    proc = subprocess.run(
        [sys.executable, "-c", _ONERT_CHILD, str(runtime_py), str(path), str(in_path), str(out_path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        # onert prints its reason ("Fail to load model: ...") before the exception's generic status
        lines = [
            line.strip()
            for line in (proc.stdout + "\n" + proc.stderr).splitlines()
            if line.strip() and not line.startswith((" ", "Traceback", "^"))
        ]
        detail = " | ".join(lines[-3:]) if lines else f"exit code {proc.returncode}"
        if proc.returncode < 0:
            return None, f"onert crashed (signal {-proc.returncode}): {one_line(detail)}"
        return None, "onert: " + one_line(detail)
    return np.load(out_path), ""


# ---------------------------------------------------------------------------------------------
# The cases


@dataclasses.dataclass
class Result:
    case: str
    exporter: str
    given: str
    times: List[float] = dataclasses.field(default_factory=list)
    data: Optional[bytes] = None
    error: str = ""
    ops: Counter = dataclasses.field(default_factory=Counter)
    check: str = ""

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.times) if self.times else None

    @property
    def n_ops(self) -> int:
        return sum(self.ops.values())


@dataclasses.dataclass
class Case:
    name: str
    description: str
    program: Optional[torch.export.ExportedProgram]  # what both exporters get
    reference: Callable  # PyTorch model the files are compared with
    quantized: bool
    out_qparams: Optional[Tuple[float, int]] = None  # of the reference graph's output
    setup_error: str = ""


def torch_circle_convert(program) -> bytes:
    return torch_circle.export(program).data


def tico_convert(program) -> bytes:
    printed = io.StringIO()  # TICO prints some warnings ("[QuantCheck] ...") to stdout
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
        warnings.simplefilter("always")
        binary = tico.convert_from_exported_program(program).circle_binary
    messages = [f"{w.category.__name__}: {one_line(str(w.message), 200)}" for w in caught]
    messages += [f"printed: {line.strip()}" for line in printed.getvalue().splitlines() if line.strip()]
    for message in messages:
        message = f"{CURRENT_CASE[0]}: {message}"
        if message not in TICO_WARNINGS:
            TICO_WARNINGS.append(message)
    return bytes(binary)


def time_conversions(case: Case, repeats: int, exporters: Dict[str, Callable]) -> List[Result]:
    """N rounds; in each, every exporter converts a fresh deep copy of the same program."""
    results = [Result(case.name, name, "ExportedProgram") for name in exporters]
    CURRENT_CASE[0] = case.name
    if case.program is None:
        for r in results:
            r.error = case.setup_error
        return results
    for round_ in range(repeats):
        order = results if round_ % 2 == 0 else results[::-1]  # alternate who goes first
        for r in order:
            if r.error:
                continue
            if r.exporter == "tico" and tico is None:
                r.error = f"tico not importable: {TICO_ERROR}"
                continue
            program = copy.deepcopy(case.program)
            gc.collect()
            start = time.perf_counter()
            try:
                data = exporters[r.exporter](program)
            except Exception as error:  # noqa: BLE001
                r.error = explain(r.exporter, one_line(error))
                r.times.clear()
                if os.environ.get("BENCH_TRACEBACK"):
                    traceback.print_exc()
                continue
            r.times.append(time.perf_counter() - start)
            r.data = data
            print(
                f"  {case.name:9s} {r.exporter:12s} run {round_ + 1}/{repeats}: {fmt_s(r.times[-1])}",
                file=sys.stderr,
                flush=True,
            )
    return results


def explain(exporter: str, error: str) -> str:
    if exporter == "tico" and "Unsupported quantization range: (-2147483648, 2147483647)" in error:
        return "tico rejects the graph's int32 bias quantize/dequantize nodes: " + error
    return error


def time_plain(fn: Callable, repeats: int, fresh: Callable = lambda: None) -> Tuple[Optional[float], str]:
    """Median time of fn(fresh()); fresh() (e.g. a deep copy) is not timed."""
    times = []
    for _ in range(repeats):
        arg = fresh()
        gc.collect()
        start = time.perf_counter()
        try:
            fn(arg)
        except Exception as error:  # noqa: BLE001
            return None, one_line(error)
        times.append(time.perf_counter() - start)
    return statistics.median(times), ""


def quantize(model, example, calib: List[torch.Tensor], config) -> torch.fx.GraphModule:
    graph = torch.export.export(model, (example,)).module()
    prepared = prepare_pt2e(graph, CircleQuantizer().set_global(config))
    with torch.no_grad():
        for x in calib:
            prepared(x)
    return convert_pt2e(prepared)


def graph_output_qparams(gm: torch.fx.GraphModule) -> Optional[Tuple[float, int]]:
    out = next(n for n in gm.graph.nodes if n.op == "output").args[0]
    node = out[0] if isinstance(out, (tuple, list)) else out
    if isinstance(node, torch.fx.Node) and "dequantize_per_tensor" in str(node.target):
        scale, zero_point = node.args[1], node.args[2]
        if isinstance(scale, (float, int)):
            return float(scale), int(zero_point)
    return None


def check_outputs(
    case: Case,
    r: Result,
    path: Path,
    eval_x: List[torch.Tensor],
    refs: np.ndarray,
    float_argmax: np.ndarray,
    workdir: Path,
) -> str:
    inputs, input_note = file_inputs(r.data, [x.numpy() for x in eval_x])
    outs, error = run_in_onert(path, inputs, workdir)
    if outs is None:
        return error
    note = f" [{input_note}]" if input_note else ""
    outs = outs.reshape(refs.shape) if outs.size == refs.size else outs
    if outs.shape != refs.shape:
        return f"output shape {outs.shape[1:]} != PyTorch {refs.shape[1:]}"
    if outs.dtype != np.float32:  # a quantized output: dequantize with the file's own qparams
        qp = output_quantization(r.data)
        if qp is None:
            return f"{outs.dtype} output without quantization parameters"
        outs = (outs.astype(np.float64) - qp[1]) * qp[0]
    diff = np.abs(outs.astype(np.float64) - refs.astype(np.float64))
    err = float(diff.max())
    n = len(eval_x)
    if not case.quantized:
        return f"max abs err {err:.2e} (|ref| max {np.abs(refs).max():.1f}, {n} inputs){note}"
    agree_q = int((outs.argmax(-1) == refs.argmax(-1)).sum())
    agree_f = int((outs.argmax(-1) == float_argmax).sum())
    if case.out_qparams is None:
        steps = f"max abs err {err:.2e} (output not quantized in the graph)"
    else:
        scale = case.out_qparams[0]
        steps = (
            f"max err {err / scale:.2f} steps (mean {diff.mean() / scale:.2f}, "
            f"{(diff <= 1.01 * scale).mean():.0%} within 1 step)"
        )
    return f"{steps}; argmax = quantized graph {agree_q}/{n}, = float model {agree_f}/{n}{note}"


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", choices=sorted(MODELS), default=None, help="default resnet50 (tiny_resnet with --quick)"
    )
    parser.add_argument(
        "--repeats",
        "-n",
        type=int,
        default=None,
        help="timed conversions per exporter and case (default 5, 2 with --quick); the table shows medians",
    )
    parser.add_argument("--eval-inputs", type=int, default=None, help="seeded inputs run in onert (default 4, 2 quick)")
    parser.add_argument("--calib-inputs", type=int, default=None, help="calibration inputs (default 4, 2 quick)")
    parser.add_argument("--quick", action="store_true", help="tiny ResNet, N=2: a smoke test of a few seconds")
    parser.add_argument(
        "--no-inplace-relu",
        action="store_true",
        help="build the model with ReLU(inplace=False) (torchvision's models use inplace=True)",
    )
    parser.add_argument(
        "--no-float-bias-variant",
        action="store_true",
        help="skip the uint8-fb case (uint8 with float bias, the form TICO accepts)",
    )
    parser.add_argument(
        "--no-capture-timing", action="store_true", help="skip timing torch-circle with torch.export capture included"
    )
    parser.add_argument(
        "--snapshot",
        action="store_true",
        help="import a copy of this checkout's torch_circle (safe while it is being rebuilt)",
    )
    parser.add_argument("--save-dir", type=Path, default=None, help="keep the .circle files here")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # the report and stderr's progress lines in order
    model_name = args.model or ("tiny_resnet" if args.quick else "resnet50")
    repeats = args.repeats or (2 if args.quick else 5)
    n_eval = args.eval_inputs or (2 if args.quick else 4)
    n_calib = args.calib_inputs or (2 if args.quick else 4)

    command = [
        f"python benchmarks/{Path(__file__).name}",
        "--model",
        model_name,
        "--repeats",
        str(repeats),
        "--eval-inputs",
        str(n_eval),
        "--calib-inputs",
        str(n_calib),
    ]
    command += [
        flag
        for flag, on in (
            ("--no-inplace-relu", args.no_inplace_relu),
            ("--no-float-bias-variant", args.no_float_bias_variant),
            ("--no-capture-timing", args.no_capture_timing),
            ("--snapshot", args.snapshot),
        )
        if on
    ]

    wall = time.perf_counter()
    cpu_start = cpu_seconds()
    load_start = os.getloadavg()
    build, shape, description = MODELS[model_name]
    model = build()
    if args.no_inplace_relu:
        for m in model.modules():
            if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
                m.inplace = False
    gen = torch.Generator().manual_seed(1234)
    example = torch.randn(*shape, generator=gen)
    calib = [torch.randn(*shape, generator=gen) for _ in range(n_calib)]
    eval_x = [torch.randn(*shape, generator=gen) for _ in range(n_eval)]
    with torch.no_grad():
        float_refs = np.stack([model(x).numpy() for x in eval_x])
    float_argmax = float_refs.argmax(-1)

    print(f"setup: capturing and quantizing {model_name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    float_ep = torch.export.export(model, (example,))
    capture_s = time.perf_counter() - start
    cases = [Case("float", "float model", float_ep, model, quantized=False)]

    quant_specs = [("uint8", "CircleQuantizer uint8 (int32 bias)", circle_preset("uint8"))]
    if not args.no_float_bias_variant:
        quant_specs.append(
            (
                "uint8-fb",
                "CircleQuantizer uint8, bias left float",
                dataclasses.replace(circle_preset("uint8"), name="uint8-floatbias", bias_dtype=None),
            )
        )
    converted: Dict[str, torch.fx.GraphModule] = {}
    for name, desc, config in quant_specs:
        try:
            gm = quantize(model, example, calib, config)
            converted[name] = gm
            program = torch.export.export(gm, (example,))
            cases.append(Case(name, desc, program, gm, quantized=True, out_qparams=graph_output_qparams(gm)))
        except Exception as error:  # noqa: BLE001
            cases.append(Case(name, desc, None, None, quantized=True, setup_error=f"quantization: {one_line(error)}"))

    exporters = {"torch-circle": torch_circle_convert, "tico": tico_convert}
    results: List[Result] = []
    for case in cases:
        results += time_conversions(case, repeats, exporters)

    # torch-circle from its other natural inputs (not comparable with TICO, reported below the table)
    extra: List[Tuple[str, Optional[float], str]] = []
    if not args.no_capture_timing:
        t, err = time_plain(lambda _: torch_circle.export(model, (example,)), repeats)
        extra.append(("torch-circle float, from the nn.Module (torch.export capture included)", t, err))
    for name, gm in converted.items():
        t, err = time_plain(lambda g: torch_circle.export(g, (example,)), repeats, lambda gm=gm: copy.deepcopy(gm))
        extra.append((f"torch-circle {name}, from the convert_pt2e GraphModule", t, err))

    # Files: size, ops, onert
    print("checking the files in onert ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        out_dir = args.save_dir or workdir
        out_dir.mkdir(parents=True, exist_ok=True)
        refs_by_case: Dict[str, np.ndarray] = {"float": float_refs}
        for case in cases:
            if case.quantized and case.reference is not None:
                with torch.no_grad():
                    refs_by_case[case.name] = np.stack([case.reference(x).numpy() for x in eval_x])
        for r in results:
            if r.data is None:
                continue
            case = next(c for c in cases if c.name == r.case)
            path = out_dir / f"{model_name}_{r.case}_{r.exporter}.circle"
            path.write_bytes(r.data)
            try:
                r.ops = op_histogram(r.data)
            except Exception as error:  # noqa: BLE001
                r.check = f"unreadable by circle_schema: {one_line(error)}"
                continue
            r.check = check_outputs(case, r, path, eval_x, refs_by_case[r.case], float_argmax, workdir)

    # Noise floor of the quantized comparisons: how far the quantized PyTorch graph itself moves
    # when its input gets +-0.5 input-quantization-step uniform noise (rounding-level differences).
    noise_floor: Dict[str, str] = {}
    for case in cases:
        if not case.quantized or case.reference is None or case.out_qparams is None:
            continue
        in_q = next(
            (
                n
                for n in case.reference.graph.nodes
                if "quantize_per_tensor" in str(n.target) and n.args and getattr(n.args[0], "op", "") == "placeholder"
            ),
            None,
        )
        if in_q is None or not isinstance(in_q.args[1], float):
            continue
        noise_gen = torch.Generator().manual_seed(99)
        with torch.no_grad():
            noisy = [x + (torch.rand(x.shape, generator=noise_gen) - 0.5) * in_q.args[1] for x in eval_x]
            moved = np.stack([case.reference(x).numpy() for x in noisy])
        d = np.abs(moved.astype(np.float64) - refs_by_case[case.name]) / case.out_qparams[0]
        noise_floor[case.name] = f"max {d.max():.2f} steps, mean {d.mean():.2f}, {(d <= 1.01).mean():.0%} within 1 step"

    # ------------------------------------------------------------------ report
    print()
    print(
        f"Circle export benchmark: {description}, input {'x'.join(map(str, shape))}, "
        f"{'ReLU(inplace=False)' if args.no_inplace_relu else 'ReLU(inplace=True) as in torchvision'}"
    )
    for line in machine_info():
        print(line)
    print(
        f"export time = median of {repeats} conversions of the same already-captured ExportedProgram "
        f"(fresh deep copy each time, copy not timed); torch.export capture of the float model took "
        f"{fmt_s(capture_s)} (once, not included)"
    )
    print(f"onert check on {n_eval} seeded inputs; calibration on {n_calib} seeded inputs")
    print()
    for case in cases:
        print(f"  {case.name:9s} = {case.description}")
    print()
    header = ("case", "exporter", "export", "file MB", "ops", "onert vs PyTorch")
    rows = []
    for r in results:
        if r.error:
            rows.append((r.case, r.exporter, "FAILED", "-", "-", r.error))
        else:
            rows.append(
                (
                    r.case,
                    r.exporter,
                    fmt_s(r.median),
                    f"{len(r.data) / 1e6:.2f}",
                    str(r.n_ops) if r.ops else "?",
                    r.check,
                )
            )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header[:-1])]
    fmt_row = lambda row: "  ".join(  # noqa: E731
        [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))] + [row[-1]]
    )
    print(fmt_row(header))
    print(fmt_row(tuple("-" * w for w in widths) + ("-" * 16,)))
    for row in rows:
        print(fmt_row(row))
    for name, text in noise_floor.items():
        print(f"noise floor {name}: the quantized PyTorch graph itself, input +-0.5 input step of noise: {text}")
    print()
    print("ops by type (top 5):")
    for r in results:
        if r.ops:
            print(f"  {r.case:9s} {r.exporter:12s} " + ", ".join(f"{k} {v}" for k, v in r.ops.most_common(5)))
    print()
    for label, t, err in extra:
        print(f"{label}: {fmt_s(t) if err == '' else 'FAILED: ' + err}{'' if err else f' (median of {repeats})'}")
    print()

    print("ratios (same case, same program):")
    by_key = {(r.case, r.exporter): r for r in results}
    verdicts = []
    for case in cases:
        ours, peer = by_key[(case.name, "torch-circle")], by_key[(case.name, "tico")]
        if ours.error or peer.error:
            missing = ", ".join(f"{r.exporter} failed" for r in (ours, peer) if r.error)
            print(f"  {case.name:9s} n/a ({missing})")
            continue
        speedup = peer.median / ours.median
        diff = ours.n_ops - peer.n_ops
        print(
            f"  {case.name:9s} tico time / torch-circle time = {speedup:.1f}x; "
            f"ops torch-circle - tico = {diff:+d} ({ours.n_ops} vs {peer.n_ops})"
        )
        verdicts.append((case.name, speedup, diff))
    print()

    print(
        f"targets (issue, for ResNet-50): export <= {TARGET_TIME_S:.0f} s, >= {TARGET_SPEEDUP:.0f}x faster than "
        f"tico, no more ops than tico"
        + ("" if model_name == "resnet50" else f"  [this run is {model_name}: indicative only]")
    )
    for case in cases:
        ours = by_key[(case.name, "torch-circle")]
        if ours.error:
            print(f"  {case.name:9s} NOT MET: torch-circle failed to export")
            continue
        parts = [f"time {fmt_s(ours.median)} {'met' if ours.median <= TARGET_TIME_S else 'NOT MET'}"]
        v = next((v for v in verdicts if v[0] == case.name), None)
        if v is None:
            parts.append("speed-up and op count vs tico: n/a (tico failed)")
        else:
            parts.append(f"speed-up {v[1]:.1f}x {'met' if v[1] >= TARGET_SPEEDUP else 'NOT MET'}")
            parts.append(f"ops {v[2]:+d} vs tico {'met' if v[2] <= 0 else 'NOT MET'}")
        print(f"  {case.name:9s} " + "; ".join(parts))
    print()
    if TICO_WARNINGS:
        print("tico warnings:")
        for w in TICO_WARNINGS:
            print(f"  {one_line(w, 300)}")
        print()
    elapsed = time.perf_counter() - wall
    cpu_end = cpu_seconds()
    others = (cpu_end[0] - cpu_start[0]) - (cpu_end[1] - cpu_start[1])
    print(
        f"total wall time {elapsed:.0f} s; other processes used {max(others, 0):.0f} CPU-s meanwhile "
        f"({max(others, 0) / elapsed:.0%} of one core); load average (1/5/15 min) "
        f"{' '.join(f'{v:.2f}' for v in load_start)} at start, "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} at end"
    )
    print("reproduce: " + " ".join(shlex.quote(c) if " " not in c else c for c in command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
