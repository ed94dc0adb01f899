"""PT2E quantization for Circle: CircleQuantizer, its presets, C++-backed observers and fake
quantizers."""

import logging as _logging


class _DropTorchaoImportNoise(_logging.Filter):
    """Drops exactly the import-time messages of torchao that do not concern CPU quantization:
    its CUDA-only kernel libraries (_C_cutlass*, _C_mxfp8*) failing to load on a CPU build of
    torch, and torch's deprecation note about the Enum torchao registers as a pytree constant.
    Every other record passes."""

    def filter(self, record: _logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.name == "torchao" and message.startswith("Failed to load "):
            library = message[len("Failed to load ") :].split(":", 1)[0].rsplit("/", 1)[-1]
            return not library.startswith(("_C_cutlass", "_C_mxfp8"))
        if record.name == "torch.utils._pytree" and "is an Enum subclass" in message:
            registered = record.args[0] if isinstance(record.args, tuple) and record.args else None
            return not getattr(registered, "__module__", "").startswith("torchao")
        return True


def _import_torchao_quietly():
    """Imports torchao with _DropTorchaoImportNoise on the two loggers involved, for the length
    of the import only (torch_circle is the one importing torchao here; later messages pass)."""
    noise = _DropTorchaoImportNoise()
    loggers = [_logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    for logger in loggers:
        logger.addFilter(noise)
    try:
        import torchao  # noqa: F401
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


_import_torchao_quietly()
from .config import QuantizationConfig, preset  # noqa: F401
from .fake_quantize import CircleFakeQuantize, CirclePerChannelFakeQuantize  # noqa: F401
from .observers import (  # noqa: F401
    CircleHistogramObserver,
    CircleMinMaxObserver,
    CirclePerChannelMinMaxObserver,
)
from .quantizer import CircleQuantizer  # noqa: F401
