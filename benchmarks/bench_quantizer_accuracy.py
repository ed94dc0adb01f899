#!/usr/bin/env python3
"""What quantizing each part of a transformer costs in accuracy, and what keeping it float buys.

The BERT encoder of bench_int8_e2e.py (BERT-base layers, seeded weights), or with `--model vit`
torchvision's ViT-B/16 (its own initialization: a zero class token; needs torchvision, see
tests/python/vision_models.py), is quantized with
X86InductorQuantizer (the x86 int8 path: only the inputs of linear layers are quantized, every
other tensor stays float) and with CircleQuantizer in several settings; each converted model runs
in PyTorch on the same held-out inputs. rel err = ||y - y_fp32|| / ||y_fp32|| over all of them,
and the output SQNR in dB (-20 log10 rel err).
Circle files need every tensor quantized (or one dtype per region), so the float settings are for
users who run the model in PyTorch only.

    python benchmarks/bench_quantizer_accuracy.py [--model bert|vit] [--layers 4] [--seq 128] [--calib 8] [--quick]
"""

import argparse
import math
import importlib.util
import shlex
import sys
import warnings
from pathlib import Path

import torch

from torch_circle.quantizer import CircleQuantizer  # before torchao: quiet import
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq

aten = torch.ops.aten


def _benchmark_models():
    spec = importlib.util.spec_from_file_location("benchmark_models", Path(__file__).resolve().parent / "models.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    spec.loader.exec_module(module)
    return module


def _float_ops(*ops):
    quantizer = CircleQuantizer("uint8")
    for op in ops:
        quantizer.set_operator_type(op, None)
    return quantizer


SETUPS = {
    "x86 int8 (X86InductorQuantizer)": lambda: xiq.X86InductorQuantizer().set_global(
        xiq.get_default_x86_inductor_quantization_config()
    ),
    "ours uint8": lambda: CircleQuantizer("uint8"),
    "ours uint8, softmax float": lambda: _float_ops(aten.softmax),
    "ours uint8, softmax int16": lambda: CircleQuantizer("uint8").set_operator_type(aten.softmax, "int16"),
    "ours uint8, layer_norm + gelu + softmax float": lambda: _float_ops(aten.softmax, aten.layer_norm, aten.gelu),
    "ours uint8, residual adds + layer_norm int16": lambda: (
        CircleQuantizer("uint8").set_operator_type(aten.add, "int16").set_operator_type(aten.layer_norm, "int16")
    ),
    "ours int16 (a16w8)": lambda: CircleQuantizer("int16"),
}


def rel_err(model, quantizer, calib, evals, refs) -> float:
    prepared = prepare_pt2e(torch.export.export(model, (calib[0],)).module(), quantizer)
    with torch.no_grad():
        for batch in calib:
            prepared(batch)
        converted = convert_pt2e(prepared)
        outs = [converted(x) for x in evals]
    noise = sum((o - r).pow(2).sum() for o, r in zip(outs, refs)).sqrt()
    return (noise / sum(r.pow(2).sum() for r in refs).sqrt()).item()


def vit_b16(layers: int):
    """torchvision's ViT-B/16 with its own initialization, `layers` encoder layers. Its zero class
    token makes the row the head reads tiny next to the patch rows; the head, zero-initialized by
    torchvision, gets small random weights so that the output is not identically zero."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
    import vision_models

    vision_models.import_torchvision()
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        image_size=224, patch_size=16, num_layers=layers, num_heads=12, hidden_dim=768, mlp_dim=3072
    )
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=["bert", "vit"], default="bert", help="BERT-base encoder or ViT-B/16")
    p.add_argument("--layers", type=int, default=4, help="encoder layers (default 4)")
    p.add_argument("--seq", type=int, default=128, help="tokens per sample")
    p.add_argument("--calib", type=int, default=8, help="calibration samples (as many held-out ones)")
    p.add_argument("--quick", action="store_true", help="a 1-layer, 128-wide encoder")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    gen = torch.Generator().manual_seed(0)
    if args.model == "vit":
        model, shape = vit_b16(args.layers), (2, 3, 224, 224)
        what = f"ViT-B/16 x{args.layers} layers (torchvision init), batch 2, 197 tokens"
    else:
        model = _benchmark_models().bert_encoder(args.quick, layers=args.layers)
        shape = (1, args.seq, model.layers[0].query.in_features)
        what = "1-layer 128-wide encoder" if args.quick else f"BERT-base encoder x{args.layers}, seq {args.seq}"
    calib = [torch.randn(shape, generator=gen) for _ in range(args.calib)]
    evals = [torch.randn(shape, generator=gen) for _ in range(args.calib)]
    with torch.no_grad():
        refs = [model(x) for x in evals]
    print(f"{what}; {args.calib} calibration + {args.calib} held-out samples; converted models in PyTorch")
    print(f"{'quantizer setting':<48}{'rel err vs fp32':>16}{'SQNR dB':>9}")
    for name, make in SETUPS.items():
        err = rel_err(model, make(), calib, evals, refs)
        print(f"{name:<48}{err:>16.4f}{-20 * math.log10(err):>9.1f}", flush=True)
    print(
        "\nreproduce: python benchmarks/bench_quantizer_accuracy.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    )


if __name__ == "__main__":
    main()
