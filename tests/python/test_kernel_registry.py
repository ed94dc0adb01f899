"""The kernel registry as Python sees it (torch_circle.ops.registered_kernels, KERNEL_ISAS): the
same rows as the C++ registry, each naming its source file, and the ISA lists the tests and
benchmarks iterate come from it."""

from pathlib import Path

import pytest

import torch_circle
from torch_circle import _C

from conftest import SUPPORTED_ISAS

UKERNELS = Path(__file__).resolve().parents[2] / "csrc" / "core" / "ukernels"
FAMILIES = {
    "quantize",
    "dequantize",
    "fake_quantize",
    "minmax",
    "histogram",
    "gemm",
    "requantize",
    "residual_add",
    "dwconv",
    "lookup",
    "softmax",
    "winograd",
    "rowsum",
}


def test_isa_names_come_from_the_kernels():
    assert torch_circle.ops.KERNEL_ISAS == tuple(name for name, _ in _C.kernel_isas())
    assert torch_circle.ops.KERNEL_ISAS[0] == "scalar"
    assert {"avx2", "avxvnni", "avx512", "avx512vnni", "neon", "neondot"} <= set(torch_circle.ops.KERNEL_ISAS)


def test_supported_isas_are_exactly_the_ones_the_kernels_accept():
    accepted = []
    for isa in torch_circle.ops.KERNEL_ISAS:
        try:
            with torch_circle.use_kernel_isa(isa):
                accepted.append(isa)
        except ValueError:
            pass
    assert tuple(accepted) == torch_circle.ops.supported_kernel_isas() == tuple(SUPPORTED_ISAS)


def test_every_registered_kernel_names_its_file_and_isa():
    kernels = torch_circle.ops.registered_kernels()
    assert {k.family for k in kernels} == FAMILIES
    for k in kernels:
        assert k.isa in torch_circle.ops.KERNEL_ISAS, k
        assert k.name.endswith("-" + k.isa), k
        if UKERNELS.is_dir():  # a source checkout
            assert (UKERNELS / f"{k.name}.cpp").is_file(), k
    for family in FAMILIES:
        assert [k for k in kernels if k.family == family][0].isa == "scalar", family


@pytest.mark.parametrize("rows", [1, 8, 512])
def test_the_gemm_kernel_of_every_supported_isa_is_a_registered_row(rows):
    gemm = {k.name: k for k in torch_circle.ops.registered_kernels() if k.family == "gemm"}
    for isa in SUPPORTED_ISAS:
        with torch_circle.use_kernel_isa(isa):
            name = torch_circle.ops.gemm_kernel_name(rows)
        assert name in gemm and gemm[name].dispatched and gemm[name].supported, (isa, name)
