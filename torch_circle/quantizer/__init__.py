"""PT2E quantization for Circle: CircleQuantizer, its presets, C++-backed observers and fake
quantizers."""
from .config import QuantizationConfig, preset  # noqa: F401
from .fake_quantize import CircleFakeQuantize, CirclePerChannelFakeQuantize  # noqa: F401
from .observers import (  # noqa: F401
    CircleHistogramObserver,
    CircleMinMaxObserver,
    CirclePerChannelMinMaxObserver,
)
from .quantizer import CircleQuantizer  # noqa: F401
