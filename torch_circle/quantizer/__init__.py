"""PT2E quantization for Circle: CircleQuantizer, its presets and its C++-backed observers."""
from .config import QuantizationConfig, preset  # noqa: F401
from .observers import (  # noqa: F401
    CircleHistogramObserver,
    CircleMinMaxObserver,
    CirclePerChannelMinMaxObserver,
)
from .quantizer import CircleQuantizer  # noqa: F401
