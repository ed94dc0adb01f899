"""PT2E quantization for Circle: CircleQuantizer, its presets, C++-backed observers and fake
quantizers."""
import logging as _logging


def _import_torchao_quietly():
    """Imports torchao with its import-time log noise muted: on a CPU-only torch it warns that
    its CUDA kernel libraries cannot load, and torch warns about an Enum torchao registers.
    Neither concerns CPU quantization; the loggers are restored afterwards."""
    loggers = [_logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(_logging.ERROR)
    try:
        import torchao  # noqa: F401
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


_import_torchao_quietly()
from .config import QuantizationConfig, preset  # noqa: F401
from .fake_quantize import CircleFakeQuantize, CirclePerChannelFakeQuantize  # noqa: F401
from .observers import (  # noqa: F401
    CircleHistogramObserver,
    CircleMinMaxObserver,
    CirclePerChannelMinMaxObserver,
)
from .quantizer import CircleQuantizer  # noqa: F401
