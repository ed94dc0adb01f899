"""Quantization configurations: which dtype, range and observer each kind of tensor gets.

Presets follow the two Circle conventions (docs/numerics.md, docs/exporter.md "Quantization"):

* ``uint8`` (ONE's default): asymmetric uint8 activations, asymmetric uint8 per-channel weights,
  int32 bias with scale s_in * s_w.
* ``int8`` (TFLite / LiteRT): asymmetric int8 activations, symmetric int8 per-channel weights in
  [-127, 127], int32 bias.
* ``int16`` (a16w8): symmetric int16 activations, symmetric int8 per-channel weights. The bias
  stays float in the PT2E graph: PT2E's quantize ops stop at int32, and the Circle int16 format
  wants int64, which the exporter writes from the float bias and s_in * s_w.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torchao.quantization.pt2e.quantizer import QuantizationSpec

from .fake_quantize import CircleFakeQuantize, CirclePerChannelFakeQuantize
from .observers import CircleHistogramObserver, CircleMinMaxObserver, CirclePerChannelMinMaxObserver


@dataclass(frozen=True)
class QuantizationConfig:
    """How one region of the model is quantized.

    ``activation``: every activation tensor (per tensor). ``weight``: weights of conv / linear
    (per channel along the output channel; the quantizer picks the axis). ``bias_dtype``: the
    integer type bias is quantized to, with scale input_scale * weight_scale and zero point 0,
    or None to leave bias in float.
    """

    name: str
    activation: QuantizationSpec
    weight: QuantizationSpec
    bias_dtype: Optional[torch.dtype]

    def weight_spec(self, ch_axis: int) -> QuantizationSpec:
        return QuantizationSpec(
            dtype=self.weight.dtype,
            observer_or_fake_quant_ctr=self.weight.observer_or_fake_quant_ctr,
            quant_min=self.weight.quant_min,
            quant_max=self.weight.quant_max,
            qscheme=self.weight.qscheme,
            ch_axis=ch_axis,
        )


# prepare_pt2e passes each spec's dtype, range, qscheme (and ch_axis) to these constructors.
def _activation(dtype, qmin, qmax, symmetric, constructor: Callable) -> QuantizationSpec:
    qscheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    return QuantizationSpec(
        dtype=dtype, quant_min=qmin, quant_max=qmax, qscheme=qscheme, observer_or_fake_quant_ctr=constructor
    )


def _weight(dtype, qmin, qmax, symmetric, constructor: Callable) -> QuantizationSpec:
    qscheme = torch.per_channel_symmetric if symmetric else torch.per_channel_affine
    return QuantizationSpec(
        dtype=dtype, quant_min=qmin, quant_max=qmax, qscheme=qscheme, ch_axis=0, observer_or_fake_quant_ctr=constructor
    )


OBSERVERS = {"minmax": CircleMinMaxObserver, "histogram": CircleHistogramObserver}


def preset(name: str, observer: str = "histogram", qat: bool = False) -> QuantizationConfig:
    """The configuration of a preset: 'uint8', 'int8' or 'int16'.

    ``observer`` chooses the activation observer for post-training quantization: 'histogram'
    (L2-optimal range, the default) or 'minmax' (the full observed range). With ``qat=True``
    activations and weights get fake quantizers (moving-average min/max for activations), for
    ``prepare_qat_pt2e``.
    """
    if observer not in OBSERVERS:
        raise ValueError(f"unknown observer {observer!r}; expected one of {sorted(OBSERVERS)}")
    act = CircleFakeQuantize if qat else OBSERVERS[observer]
    wgt = CirclePerChannelFakeQuantize if qat else CirclePerChannelMinMaxObserver
    if name == "uint8":
        return QuantizationConfig(
            name, _activation(torch.uint8, 0, 255, False, act), _weight(torch.uint8, 0, 255, False, wgt), torch.int32
        )
    if name == "int8":
        return QuantizationConfig(
            name, _activation(torch.int8, -128, 127, False, act), _weight(torch.int8, -127, 127, True, wgt), torch.int32
        )
    if name == "int16":
        return QuantizationConfig(
            name, _activation(torch.int16, -32767, 32767, True, act), _weight(torch.int8, -127, 127, True, wgt), None
        )
    raise ValueError(f"unknown preset {name!r}; expected 'uint8', 'int8' or 'int16'")


# What set_global / set_module_name / set_module_type accept: None leaves the region in float.
ConfigOrPreset = Optional[QuantizationConfig | str]
