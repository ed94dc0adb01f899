"""The ``circle_quant::`` operators.

Quantize / dequantize take the same arguments as ``torch.ops.quantized_decomposed`` and return
bit-identical results (docs/numerics.md). Observers' statistics and qparams mirror torchao's
observers. Every op has a Meta kernel, so ``torch.export`` and ``torch.compile`` trace it.

The functions here are the ops for Python callers. They are the direct bindings in
``torch_circle._C``, which call the same dispatcher entries as ``torch.ops.circle_quant.<op>``
(so autograd, Meta kernels and tensor subclasses behave identically) about 1 us per call
cheaper. ``torch.compile`` / ``torch.export`` trace a call to one of them as the
``torch.ops.circle_quant`` op (registered with ``torch.compiler.substitute_in_graph``).
"""
import contextlib
from typing import Callable, Iterator

import torch

from . import _C

_ops = torch.ops.circle_quant


def _bind(name: str) -> Callable:
    fast, traced = getattr(_C, name), getattr(_ops, name)

    # Dynamo cannot look inside a C++ function: have it record the dispatcher op instead.
    @torch.compiler.substitute_in_graph(fast)
    def _traceable(*args, **kwargs):
        return traced(*args, **kwargs)

    return fast


quantize_per_tensor = _bind("quantize_per_tensor")
dequantize_per_tensor = _bind("dequantize_per_tensor")
quantize_per_channel = _bind("quantize_per_channel")
dequantize_per_channel = _bind("dequantize_per_channel")
fake_quantize_per_tensor = _bind("fake_quantize_per_tensor")
fake_quantize_per_channel = _bind("fake_quantize_per_channel")
minmax = _bind("minmax")
minmax_per_channel = _bind("minmax_per_channel")
choose_qparams = _bind("choose_qparams")
histogram_observe = _bind("histogram_observe")
histogram_choose_qparams = _bind("histogram_choose_qparams")

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
