import pytest
import torch

import torch_circle
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed

import vision_models

# transformers imports torchvision when it is installed; PyPI's torchvision needs the two op schemas
# that vision_models defines on torch's CPU build, or every transformers model fails to import.
vision_models.import_torchvision(required=False)

# Fails a whole-suite run in which some op of the exporter's op table is exported by no test.
pytest_plugins = ["op_coverage"]


# From the kernel registry: every level this CPU runs (scalar, avx2, avxvnni, avx512, ...).
SUPPORTED_ISAS = torch_circle.ops.supported_kernel_isas()


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """Runs the test once per kernel ISA of torch_circle.ops.KERNEL_ISAS this CPU supports."""
    with torch_circle.use_kernel_isa(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def assert_bits_equal(actual: torch.Tensor, expected: torch.Tensor):
    """Exact equality, float bit patterns included (so -0.0 != 0.0 and rounding counts)."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if actual.is_floating_point():
        int_type = {2: torch.int16, 4: torch.int32, 8: torch.int64}[actual.element_size()]
        a, e = actual.contiguous().view(int_type), expected.contiguous().view(int_type)
    else:
        a, e = actual, expected
    mismatch = (a != e).nonzero()
    assert mismatch.numel() == 0, (
        f"{mismatch.shape[0]} of {a.numel()} elements differ; first at {mismatch[0].tolist()}: "
        f"{actual[tuple(mismatch[0])]} vs {expected[tuple(mismatch[0])]}"
    )
