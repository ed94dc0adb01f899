"""torch-circle: PyTorch 2 Export int8 quantization, fast CPU kernels and Circle export.

Importing the package loads the native library, which registers the ``circle_quant::`` ops:
``torch.ops.circle_quant.quantize_per_tensor(...)`` and friends (see ``torch_circle.ops``).
"""

from ._loader import load_library as _load_library

_load_library()

from . import ops  # noqa: E402
from .ops import active_kernel_isa, output_cache_stats, release_output_cache, use_kernel_isa  # noqa: E402
from .workflow import QuantizationReport, calibrate, lower, quantization_report  # noqa: E402
from .exporter import CircleFileError, CircleModel, ExportError, export, load  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "ops",
    "active_kernel_isa",
    "use_kernel_isa",
    "output_cache_stats",
    "release_output_cache",
    "calibrate",
    "lower",
    "quantization_report",
    "QuantizationReport",
    "export",
    "load",
    "CircleModel",
    "ExportError",
    "CircleFileError",
    "__version__",
]
