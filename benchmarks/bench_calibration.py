#!/usr/bin/env python3
"""Calibration cost: float forward vs observed forward, and our histogram observer vs torchao's.

Calls of the compared implementations alternate, so load drift affects both alike.
Table 1: for each model, the median time of one forward of the float graph prepare_pt2e starts
from (exported, batch norms folded into convolutions, attention decomposed: the same graph apart
from the observers) and of the model prepared with CircleQuantizer (observers in place), and
their ratio (target <= 1.15). Tiny models, plus realistic sizes (ResNet-18 at 224x224, a
BERT-base-width encoder layer) unless --quick.
Table 2: CircleHistogramObserver vs torchao's HistogramObserver on the same batches: time per
observed batch, time of calculate_qparams, and the resulting scale / zero point.

    python benchmarks/bench_calibration.py [--repeats 30] [--quick]
"""

import argparse
import importlib.util
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

import torch_circle  # noqa: F401
from torch_circle.quantizer import CircleHistogramObserver, CircleQuantizer  # before torchao: quiet import
from torchao.quantization.pt2e.observer import HistogramObserver
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
sys.path.insert(1, str(Path(__file__).resolve().parent))  # benchmarks/models.py imports resnet50
from models import EncoderLayer, LlamaBlock, MobileNetV2Like, ResNetLike, seeded  # noqa: E402


def _load_benchmark_models():
    """benchmarks/models.py, under its own name: the tests' models.py already holds 'models'."""
    spec = importlib.util.spec_from_file_location("benchmark_models", Path(__file__).resolve().parent / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


realistic = _load_benchmark_models()
from torch_circle.workflow import _float_reference  # noqa: E402

# name -> (model builder, input shape)
TINY_MODELS = {
    "ResNet-like, batch 8 x 3x64x64": (lambda: seeded(ResNetLike()), (8, 3, 64, 64)),
    "MobileNetV2-like, batch 8 x 3x64x64": (lambda: seeded(MobileNetV2Like()), (8, 3, 64, 64)),
    "encoder layer, batch 8 x 128 x 32": (lambda: seeded(EncoderLayer()), (8, 128, 32)),
    "Llama-style block, batch 8 x 128 x 32": (lambda: seeded(LlamaBlock()), (8, 128, 32)),
}
REALISTIC_MODELS = {
    "ResNet-18, batch 8 x 3x224x224": (realistic.resnet18, (8, 3, 224, 224)),
    "BERT-base layer, batch 8 x 128 x 768": (lambda: realistic.bert_encoder(layers=1), (8, 128, 768)),
}


def interleaved_medians(fns, repeats):
    """Median call time of each fn, calls alternating so drift in machine load hits all alike."""
    for fn in fns:
        for _ in range(3):
            fn()
    samples = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


def median_time(fn, repeats):
    for _ in range(3):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def fmt(seconds):
    return f"{seconds * 1e3:8.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:8.1f} us"


def forward_table(repeats, observer, models):
    print(f"Observed forward ({observer} activation observers) vs the same float graph, medians of {repeats} calls")
    print(f"{'model':<40}{'float':>12}{'observed':>12}{'ratio':>8}")
    for name, (build, shape) in models.items():
        model = build().eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        exported = _float_reference(model, (x,))  # BN folded, attention decomposed, as prepared
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            observed = prepare_pt2e(
                torch.export.export(model, (x,)).module(), CircleQuantizer("uint8", observer=observer)
            )
        with torch.no_grad():
            t_float, t_observed = interleaved_medians([lambda: exported(x), lambda: observed(x)], repeats)
        print(f"{name:<40}{fmt(t_float):>12}{fmt(t_observed):>12}{t_observed / t_float:>7.2f}x")


def histogram_table(repeats, sizes):
    print(f"\nHistogram observer: ours vs torchao HistogramObserver (uint8 affine, 2048 bins), medians of {repeats}")
    print(
        f"{'batch elements':>14}{'ours/batch':>13}{'torchao/batch':>15}{'speedup':>9}"
        f"{'ours qparams':>13}{'torchao qparams':>17}{'speedup':>9}   scale / zero point"
    )
    for n in sizes:
        gen = torch.Generator().manual_seed(n)
        batches = [torch.randn(n, generator=gen) * (1 + 0.2 * i) for i in range(8)]

        def observe(observer):
            for b in batches:
                observer(b)
            return observer

        def fresh(cls):
            return cls(dtype=torch.uint8, qscheme=torch.per_tensor_affine)

        t_ours, t_ao = (
            t / len(batches)
            for t in interleaved_medians(
                [lambda: observe(fresh(CircleHistogramObserver)), lambda: observe(fresh(HistogramObserver))], repeats
            )
        )
        ours, theirs = observe(fresh(CircleHistogramObserver)), observe(fresh(HistogramObserver))
        q_ours = median_time(ours.calculate_qparams, repeats)
        q_ao = median_time(theirs.calculate_qparams, max(3, repeats // 5))
        (s1, z1), (s2, z2) = ours.calculate_qparams(), theirs.calculate_qparams()
        same = (
            "equal"
            if (s1.item() == s2.item() and z1.item() == z2.item())
            else f"ours {s1.item():.6g}/{z1.item()} vs {s2.item():.6g}/{z2.item()}"
        )
        print(
            f"{n:>14}{fmt(t_ours):>13}{fmt(t_ao):>15}{t_ao / t_ours:>8.1f}x"
            f"{fmt(q_ours):>13}{fmt(q_ao):>17}{q_ao / q_ours:>8.1f}x   {same}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--observer", choices=["histogram", "minmax"], default="histogram")
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes (CI smoke)")
    args = parser.parse_args()
    repeats = 5 if args.quick else args.repeats
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, kernels {torch_circle.active_kernel_isa()}\n")
    models = TINY_MODELS if args.quick else {**TINY_MODELS, **REALISTIC_MODELS}
    forward_table(repeats, args.observer, models)
    histogram_table(repeats, [4096, 65536] if args.quick else [4096, 65536, 1 << 20])
    print("\nreproduce: python benchmarks/bench_calibration.py " + " ".join(map(shlex.quote, sys.argv[1:])))


if __name__ == "__main__":
    main()
