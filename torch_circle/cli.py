"""The ``torch-circle`` command.

torch-circle convert model.pt2 -o model.circle [--format tflite]
torch-circle inspect model.circle [--no-tensors]
torch-circle verify model.circle [--no-run]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path


def _convert(args) -> int:
    import torch
    import torch_circle
    import torch_circle.quantizer  # noqa: F401  quiets torchao's import warnings
    import torch.ao.quantization.fx._decomposed  # noqa: F401  registers quantized_decomposed ops

    start = time.perf_counter()
    program = torch.export.load(args.model)
    cm = torch_circle.export(program, format=args.format)
    out = Path(args.output or Path(args.model).with_suffix("." + args.format))
    cm.save(out)
    print(
        f"{args.model} -> {out}: {len(cm.data):,} bytes, {len(cm.operators)} ops ({time.perf_counter() - start:.2f} s)"
    )
    return 0


def _inspect(args) -> int:
    from torch_circle.exporter import load
    from torch_circle.summary import format_summary

    print(format_summary(load(args.model).info, tensors=args.tensors))
    return 0


# Input dtypes verify fills with random values (numpy names of the file's tensor types).
_RANDOM_INPUT_DTYPES = {
    "float16",
    "float32",
    "float64",
    "uint8",
    "int8",
    "uint16",
    "int16",
    "uint32",
    "int32",
    "uint64",
    "int64",
    "bool",
}


def _verify(args) -> int:
    import numpy as np
    from torch_circle.exporter import load
    from torch_circle.summary import printable
    from torch_circle import runtime

    cm = load(args.model)  # flatbuffers verifier + bounds checks
    sg = cm.info["subgraphs"][0]
    print(f"{args.model}: well formed ({cm.format}, {len(sg['operators'])} ops, {len(sg['tensors'])} tensors)")
    if args.no_run:
        return 0
    rng = np.random.default_rng(0)
    inputs = []
    for k, i in enumerate(sg["inputs"]):
        t = sg["tensors"][i]
        shape = [1 if d < 0 else d for d in (t["shape_signature"] or t["shape"])]
        if t["dtype"].lower() not in _RANDOM_INPUT_DTYPES:
            raise ValueError(
                f"{args.model}: input {k} ('{printable(t['name'])}') has dtype {t['dtype']}, "
                f"which verify cannot make inputs for (it can: "
                f"{', '.join(sorted(_RANDOM_INPUT_DTYPES))}); --no-run checks the structure only"
            )
        dtype = np.dtype(t["dtype"].lower())
        megabytes = math.prod(shape) * dtype.itemsize / 2**20
        if megabytes > args.max_input_mb:
            raise ValueError(
                f"{args.model}: input {k} ('{printable(t['name'])}') of shape {shape} needs "
                f"{megabytes:,.0f} MB, more than --max-input-mb {args.max_input_mb}; "
                "not run (--no-run checks the structure only)"
            )
        if dtype.kind == "f":
            inputs.append(rng.standard_normal(shape).astype(dtype))
        else:
            info = np.iinfo(dtype) if dtype.kind in "iu" else None
            inputs.append(rng.integers(info.min if info else 0, (info.max if info else 1) + 1, shape).astype(dtype))
    try:  # in a child process: a runtime crashing on a hostile file must not take us with it
        outputs = runtime.run_isolated(cm.data, inputs, source=args.model, fresh=True)
    except runtime.RuntimeNotInstalled as error:
        print(f"not run: {error}")
        return 0
    except runtime.RuntimeFailed as error:  # names the file
        raise ValueError(str(error)) from None
    for k, out in enumerate(outputs):
        finite = bool(np.isfinite(out).all()) if out.dtype.kind == "f" else True
        print(f"  output {k}: {out.dtype} {list(out.shape)}{'' if finite else '  (contains NaN/Inf)'}")
    print(f"runs in {'LiteRT' if cm.format == 'tflite' else 'onert'} on random inputs")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="torch-circle", description="PyTorch to Circle exporter tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert", help="export a saved ExportedProgram (.pt2, torch.export.save) to Circle")
    p.add_argument("model")
    p.add_argument("-o", "--output")
    p.add_argument("--format", choices=["circle", "tflite"], default="circle")
    p.set_defaults(run=_convert)
    p = sub.add_parser("inspect", help="list the ops, tensors, dtypes, quantization and sizes of a model")
    p.add_argument("model")
    p.add_argument("--no-tensors", dest="tensors", action="store_false", help="ops only")
    p.set_defaults(run=_inspect)
    p = sub.add_parser("verify", help="check a model is well formed and runs in onert / LiteRT")
    p.add_argument("model")
    p.add_argument("--no-run", action="store_true", help="only check the file's structure")
    p.add_argument(
        "--max-input-mb", type=float, default=1024, help="largest random input to run the model on (default 1024)"
    )
    p.set_defaults(run=_verify)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `torch-circle inspect m.circle | head`: the reader left early
        sys.stdout = None  # nothing more can be written; keep interpreter shutdown quiet
        return 0
    except (ValueError, OSError, TypeError) as error:  # CircleFileError / ExportError are ValueErrors
        print(f"torch-circle {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
