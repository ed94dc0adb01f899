"""QAT fake quantizers running the C++ fake-quantize ops (straight-through gradient).

They are torchao ``FakeQuantize`` modules (same buffers, enable / disable switches and
``convert_pt2e`` handling) whose forward calls ``circle_quant::fake_quantize_per_*`` instead of
``torch.fake_quantize_per_*_affine``, so QAT rounds exactly as the converted model will
(docs/numerics.md). The per-channel class name must contain "PerChannel": torchao's prepare only
passes ``ch_axis`` to such classes.
"""

import torch
from torchao.quantization.pt2e.fake_quantize import FakeQuantize

from .. import ops
from .observers import CircleMinMaxObserver, CirclePerChannelMinMaxObserver


class CircleFakeQuantize(FakeQuantize):
    """Per-tensor fake quantization; observes with a moving-average min/max by default."""

    def __init__(self, observer=CircleMinMaxObserver.with_args(averaging_constant=0.01), **kwargs):
        super().__init__(observer=observer, **kwargs)

    def _update_qparams(self, x: torch.Tensor) -> None:
        self.activation_post_process(x.detach())
        scale, zero_point = self.calculate_qparams()
        if self.scale.shape != scale.shape:
            self.scale.resize_(scale.shape)
            self.zero_point.resize_(zero_point.shape)
        self.scale.copy_(scale)
        self.zero_point.copy_(zero_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled[0] == 1:
            self._update_qparams(x)
        if self.fake_quant_enabled[0] == 1:
            x = ops.fake_quantize_per_tensor(x, float(self.scale), int(self.zero_point), self.quant_min, self.quant_max)
        return x


class CirclePerChannelFakeQuantize(CircleFakeQuantize):
    """Per-channel fake quantization along ``ch_axis`` (weights)."""

    def __init__(self, observer=CirclePerChannelMinMaxObserver, **kwargs):
        super().__init__(observer=observer, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observer_enabled[0] == 1:
            self._update_qparams(x)
        if self.fake_quant_enabled[0] == 1:
            x = ops.fake_quantize_per_channel(
                x, self.scale, self.zero_point, self.ch_axis, self.quant_min, self.quant_max
            )
        return x
