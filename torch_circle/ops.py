"""The ``circle_quant::`` operators, as registered by the native library.

Quantize / dequantize take the same arguments as ``torch.ops.quantized_decomposed`` and return
bit-identical results (docs/numerics.md). Observers' statistics and qparams mirror torchao's
observers. Every op has a Meta kernel, so ``torch.export`` and ``torch.compile`` trace it.
"""
import contextlib
from typing import Iterator

import torch

_ops = torch.ops.circle_quant

quantize_per_tensor = _ops.quantize_per_tensor
dequantize_per_tensor = _ops.dequantize_per_tensor
quantize_per_channel = _ops.quantize_per_channel
dequantize_per_channel = _ops.dequantize_per_channel
fake_quantize_per_tensor = _ops.fake_quantize_per_tensor
fake_quantize_per_channel = _ops.fake_quantize_per_channel
minmax = _ops.minmax
minmax_per_channel = _ops.minmax_per_channel
choose_qparams = _ops.choose_qparams
histogram_observe = _ops.histogram_observe
histogram_choose_qparams = _ops.histogram_choose_qparams

KERNEL_ISAS = ("scalar", "avx2", "avx512")


def active_kernel_isa() -> str:
    """The instruction set the kernels use now: 'scalar', 'avx2' or 'avx512'."""
    return _ops._active_isa()


@contextlib.contextmanager
def use_kernel_isa(isa: str) -> Iterator[None]:
    """Forces the kernels onto one ISA inside the block (for tests and benchmarks).

    Raises ValueError if the name is unknown or this CPU cannot run that ISA. The environment
    variable CIRCLE_QUANT_ISA does the same for a whole process.
    """
    previous = active_kernel_isa()
    _ops._set_isa(isa)
    try:
        yield
    finally:
        _ops._set_isa(previous)
