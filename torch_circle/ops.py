"""The ``circle_quant::`` operators.

Quantize / dequantize take the same arguments as ``torch.ops.quantized_decomposed`` and return
bit-identical results (docs/numerics.md). Observers' statistics and qparams mirror torchao's
observers. Every op has a Meta kernel, so ``torch.export`` and ``torch.compile`` trace it.

The functions here are the ops for Python callers. Eagerly they call the direct bindings in
``torch_circle._C``, which reach the same dispatcher entries as ``torch.ops.circle_quant.<op>``
(so autograd, Meta kernels and tensor subclasses behave identically) about 1 us per call
cheaper. Under ``torch.compile`` / strict ``torch.export`` (dynamo) they call the
``torch.ops.circle_quant`` op, which is what graphs record.
"""

import contextlib
from typing import Callable, Iterator, NamedTuple

import torch

from . import _C

_ops = torch.ops.circle_quant


def _bind(name: str) -> Callable:
    fast, traced = getattr(_C, name), getattr(_ops, name)

    # A Python wrapper rather than torch.compiler.substitute_in_graph: that would import dynamo
    # (about 1 s) with torch_circle. Dynamo reads is_compiling() as True and records `traced`.
    def op(*args, **kwargs):
        if torch.compiler.is_compiling():
            return traced(*args, **kwargs)
        return fast(*args, **kwargs)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"circle_quant::{traced.default._schema}"
    return op


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
# In-place state updates for observers: one call per observed batch.
running_minmax_ = _bind("running_minmax_")
histogram_observe_ = _bind("histogram_observe_")
# Fused int8 layers (docs/kernels.md): pack once (the torch.ops entry: not a hot path), run many
# times (direct binding: at M = 1 the call overhead is a large part of the time).
linear_prepack = _ops.linear_prepack.default
quantized_linear = _bind("quantized_linear")
# The ops without a direct binding are the torch.ops entries themselves.
quantized_linear_add = _ops.quantized_linear_add.default
conv2d_prepack = _ops.conv2d_prepack.default
quantized_conv2d = _ops.quantized_conv2d.default
quantized_conv2d_add = _ops.quantized_conv2d_add.default
quantized_softmax = _ops.quantized_softmax.default
quantized_matmul = _ops.quantized_matmul.default
lookup_table = _ops.lookup_table.default

# Every ISA name the kernels know, lowest first per architecture (CIRCLE_QUANT_ISA takes the same
# names); a CPU runs the ones it supports. Which kernel families have a variant for which level is
# the kernel registry: registered_kernels().
KERNEL_ISAS = tuple(name for name, _ in _C.kernel_isas())


class RegisteredKernel(NamedTuple):
    family: str  # "gemm", "dwconv", "quantize", ...
    name: str  # its source file, csrc/core/ukernels/<name>.cpp
    isa: str  # the instruction set it needs
    dispatched: bool  # False: run by the tests, or reached through a GEMM kernel, never chosen itself
    supported: bool  # this CPU runs it


def supported_kernel_isas() -> tuple:
    """The KERNEL_ISAS this CPU runs, lowest first."""
    return tuple(name for name, supported in _C.kernel_isas() if supported)


def registered_kernels() -> list:
    """Every microkernel of this build's kernel registry (csrc/core/ukernels/registry.cpp)."""
    supported = set(supported_kernel_isas())
    return [
        RegisteredKernel(family, name, isa, dispatched, isa in supported)
        for family, name, isa, dispatched in _C.registered_kernels()
    ]


def active_kernel_isa() -> str:
    """The instruction set the kernels use now: one of KERNEL_ISAS."""
    return _ops._active_isa()


def gemm_kernel_name(rows: int = 512) -> str:
    """The integer GEMM microkernel the active ISA runs for a call of `rows` rows (batch x
    sequence, or output pixels), e.g. "qu8-gemm-8x48c4-avx512vnni"."""
    return _ops._gemm_kernel(rows)


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


class OutputCacheStats(NamedTuple):
    cached_bytes: int  # freed output blocks held for reuse now
    limit_bytes: int  # CIRCLE_QUANT_OUTPUT_CACHE_MB (default 512 MiB; 0: no cache)
    reused: int  # outputs served from the cache so far
    allocated: int  # outputs that needed a new block


def output_cache_stats() -> OutputCacheStats:
    """The state of the kernels' output cache.

    The ops keep each freed CPU output of 1 MiB or more for the next output of about its size,
    with its memory pages already mapped: a new block costs a page fault per 4 KiB the first time
    a kernel writes it (up to a fifth of MobileNetV2's time at batch 32). The cache holds at most
    CIRCLE_QUANT_OUTPUT_CACHE_MB (read at first use); blocks freed past that are given back.
    """
    return OutputCacheStats(*_C.output_cache_stats())


def release_output_cache() -> None:
    """Gives every cached output block back to the system (outputs still alive are unaffected)."""
    _C.release_output_cache()
