"""PT2E observers whose work is done by the C++ ``circle_quant`` ops.

They subclass torchao's ``UniformQuantizationObserverBase``, so ``prepare_pt2e`` inserts them and
``convert_pt2e`` turns them into the standard ``quantized_decomposed`` quantize / dequantize pairs,
exactly as for torchao's own observers; they produce the same scales and zero points
(docs/numerics.md) with less work per forward:

=================================  ==============================================================
``CircleMinMaxObserver``           running min / max (``averaging_constant`` for a moving average)
``CirclePerChannelMinMaxObserver`` per-channel min / max along ``ch_axis`` (weights)
``CircleHistogramObserver``        HistogramObserver's histogram and L2 range search
=================================  ==============================================================

An observer that never saw data raises at ``calculate_qparams`` (so at ``convert_pt2e``) with a
message that names what it observes, instead of silently using scale 1.0.
"""

import math
import warnings
from typing import Optional

import torch
from torchao.quantization.pt2e.observer import UniformQuantizationObserverBase

from .. import ops

# torchao accepts the legacy quantized dtypes too; the ops take the plain integer ones.
_PLAIN_DTYPE = {torch.quint8: torch.uint8, torch.qint8: torch.int8, torch.qint32: torch.int32}
_SYMMETRIC = (torch.per_tensor_symmetric, torch.per_channel_symmetric)


class _CircleObserverBase(UniformQuantizationObserverBase):
    """Shared by the observers: the op-facing dtype, and errors that say what is observed."""

    def __init__(self, dtype=torch.uint8, qscheme=torch.per_tensor_affine, **kwargs):
        super().__init__(dtype=dtype, qscheme=qscheme, **kwargs)
        # Set by CircleQuantizer, for error messages: what this observes, and all observers of
        # the same model (a plain list, so they are not registered as submodules).
        self.observed_name: Optional[str] = None
        self.peers: list = []

    @property
    def _op_dtype(self) -> torch.dtype:
        return _PLAIN_DTYPE.get(self.dtype, self.dtype)

    @property
    def _symmetric(self) -> bool:
        return self.qscheme in _SYMMETRIC

    def _qparams_args(self):
        return (
            self.quant_min,
            self.quant_max,
            self._op_dtype,
            self._symmetric,
            float(self.eps.item()),
            self.has_customized_qrange,
        )

    def _describe(self) -> str:
        return f"{type(self).__name__} on {self.observed_name or 'an unnamed tensor'}"

    def has_data(self) -> bool:
        return bool(self.min_val.numel()) and bool(torch.all(self.min_val <= self.max_val))

    def _uncalibrated_peers(self) -> str:
        missing = [p._describe() for p in self.peers if not p.has_data()]
        if len(missing) <= 1:
            return ""
        return f"\n{len(missing)} of the model's {len(self.peers)} observers saw no data:\n  " + "\n  ".join(missing)

    def _choose(self, choose, *state):
        try:
            return choose(*state, *self._qparams_args())
        except ValueError as error:
            raise ValueError(f"{self._describe()}: {error}{self._uncalibrated_peers()}") from None

    def _observe(self, op, *args):
        """Runs a statistics op, naming this observer in its errors (NaN in the data)."""
        try:
            return op(*args)
        except ValueError as error:
            raise ValueError(f"{self._describe()}: {error}") from None

    def _observe_naming_warnings(self, op, *args):
        """_observe, and the op's warnings (Inf left out of a histogram), which know only the op
        and the shape, are re-issued naming this observer. Costs a few microseconds a call."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = self._observe(op, *args)
        for warning in caught:
            warnings.warn(f"{self._describe()}: {warning.message}", warning.category, stacklevel=3)
        return result


class CircleMinMaxObserver(_CircleObserverBase):
    """Per-tensor min / max; with ``averaging_constant`` c, a moving average
    ``m <- m + c * (batch - m)`` as torchao's MovingAverageMinMaxObserver."""

    def __init__(
        self, dtype=torch.uint8, qscheme=torch.per_tensor_affine, averaging_constant: Optional[float] = None, **kwargs
    ):
        super().__init__(dtype=dtype, qscheme=qscheme, **kwargs)
        if averaging_constant is not None and not 0 < averaging_constant <= 1:
            raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
        self.averaging_constant = averaging_constant
        self.register_buffer("min_val", torch.tensor(math.inf))
        self.register_buffer("max_val", torch.tensor(-math.inf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x
        self._observe(ops.running_minmax_, x.detach(), self.min_val, self.max_val, self.averaging_constant)
        return x

    def calculate_qparams(self):
        return self._choose(ops.choose_qparams, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val.item()}, max_val={self.max_val.item()}"


class CirclePerChannelMinMaxObserver(_CircleObserverBase):
    """Per-channel min / max along ``ch_axis`` (weights: the output channel)."""

    def __init__(self, ch_axis: int = 0, dtype=torch.int8, qscheme=torch.per_channel_symmetric, **kwargs):
        super().__init__(dtype=dtype, qscheme=qscheme, **kwargs)
        self.ch_axis = ch_axis
        self.register_buffer("min_val", torch.tensor([]))
        self.register_buffer("max_val", torch.tensor([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x
        mn, mx = self._observe(ops.minmax_per_channel, x.detach(), self.ch_axis)
        if self.min_val.numel() == 0:
            self.min_val, self.max_val = mn, mx
        else:
            if mn.shape != self.min_val.shape:
                raise ValueError(
                    f"{self._describe()}: channel count changed from "
                    f"{self.min_val.numel()} to {mn.numel()} along axis {self.ch_axis}"
                )
            torch.minimum(self.min_val, mn, out=self.min_val)
            torch.maximum(self.max_val, mx, out=self.max_val)
        return x

    def calculate_qparams(self):
        if self.min_val.numel() == 0:
            raise ValueError(
                f"{self._describe()}: no data was observed; run calibration data "
                f"through the model before convert_pt2e{self._uncalibrated_peers()}"
            )
        return self._choose(ops.choose_qparams, self.min_val, self.max_val)


class CircleHistogramObserver(_CircleObserverBase):
    """torchao HistogramObserver's algorithm (running histogram, L2 range search) in C++."""

    def __init__(
        self, bins: int = 2048, upsample_rate: int = 16, dtype=torch.uint8, qscheme=torch.per_tensor_affine, **kwargs
    ):
        super().__init__(dtype=dtype, qscheme=qscheme, **kwargs)
        self.bins = bins
        self.upsample_rate = upsample_rate
        self.register_buffer("histogram", torch.zeros(bins))
        self.register_buffer("min_val", torch.tensor(math.inf))
        self.register_buffer("max_val", torch.tensor(-math.inf))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x
        self._observe_naming_warnings(
            ops.histogram_observe_, x.detach(), self.histogram, self.min_val, self.max_val, self.upsample_rate
        )
        return x

    def calculate_qparams(self):
        return self._choose(ops.histogram_choose_qparams, self.histogram, self.min_val, self.max_val)
