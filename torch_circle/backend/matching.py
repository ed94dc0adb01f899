"""Which nodes of a converted PT2E graph form a fusable layer:

    dequantize_per_tensor(x_q) ─┐
    dequantize_per_channel(w_q) ─┼─ linear / conv2d ─ [relu | relu6 | hardtanh | clamp] ─ [quantize_per_tensor]
    bias (float, or int32 via dq)┘

x_q is uint8 / int8; w_q an int8 / uint8 constant, per channel (axis 0) or per tensor; the
output quantize gives uint8 / int8 / int16, or the chain ends in float (float-output variant).
Both the quantized_decomposed ops (convert_pt2e) and the circle_quant ones (torch_circle.lower)
are recognised, as are aten overloads and the torch functions dynamo records.
"""

from dataclasses import dataclass
from typing import Any, Optional, Tuple

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed
import torch.nn.functional as F
from torch.fx import Node

from ..activations import activation_bounds  # noqa: F401  (the fusable clamps, shared with the quantizer)

_qd = torch.ops.quantized_decomposed
_cq = torch.ops.circle_quant
aten = torch.ops.aten

QUANTIZE_PER_TENSOR = {_qd.quantize_per_tensor.default, _cq.quantize_per_tensor.default}
DEQUANTIZE_PER_TENSOR = {_qd.dequantize_per_tensor.default, _cq.dequantize_per_tensor.default}
DEQUANTIZE_PER_CHANNEL = {_qd.dequantize_per_channel.default, _cq.dequantize_per_channel.default}
QUANTIZE_PER_CHANNEL = {_qd.quantize_per_channel.default, _cq.quantize_per_channel.default}
DEQUANTIZE = DEQUANTIZE_PER_TENSOR | DEQUANTIZE_PER_CHANNEL

LINEAR = {aten.linear.default, F.linear, torch._C._nn.linear}
CONV2D = {aten.conv2d.default, F.conv2d, torch.conv2d}
# conv1d runs as conv2d on a height-1 image (Wav2Vec2's and Whisper's feature encoders).
CONV1D = {aten.conv1d.default, F.conv1d, torch.conv1d}
# Layers the report lists as unmatched when their input is quantized.
LAYER_LIKE = (
    LINEAR
    | CONV2D
    | CONV1D
    | {aten.conv2d.padding, aten.addmm.default, aten.mm.default, aten.convolution.default, aten.conv1d.padding}
)


# Full ranges: a narrower quantize range would need its own clamp.
INPUT_DTYPES = {torch.uint8: (0, 255), torch.int8: (-128, 127)}
OUTPUT_DTYPES = {**INPUT_DTYPES, torch.int16: (-32768, 32767)}


class NoMatch(Exception):
    """The nodes look like a quantized layer but cannot be fused; the message says why."""


def arg(node: Node, index: int, name: str, default: Any = None) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def target_of(node: Node) -> Any:
    """The node's target, with an op packet (what dynamo records for torch.ops.ns.op(...)) read
    as its default overload."""
    t = node.target
    return t.default if isinstance(t, torch._ops.OpOverloadPacket) else t


def is_call(node: Any, targets) -> bool:
    return isinstance(node, Node) and node.op == "call_function" and target_of(node) in targets


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NoMatch(f"{what} is not a constant number")
    return float(value)


@dataclass
class TensorQuant:
    """Per-tensor parameters read from a quantize / dequantize node's arguments."""

    scale: float
    zero_point: int
    dtype: torch.dtype


def per_tensor_params(node: Node, dtypes, what: str) -> TensorQuant:
    scale, zero_point = arg(node, 1, "scale"), arg(node, 2, "zero_point")
    qmin, qmax, dtype = arg(node, 3, "quant_min"), arg(node, 4, "quant_max"), arg(node, 5, "dtype")
    if isinstance(scale, Node) or isinstance(zero_point, Node):
        raise NoMatch(f"{what} has tensor-valued qparams (dynamic quantization)")
    if dtype not in dtypes:
        raise NoMatch(f"{what} has dtype {dtype}")
    if (qmin, qmax) != dtypes[dtype]:
        raise NoMatch(f"{what} has the narrowed range [{qmin}, {qmax}] of {dtype}")
    out_dtype = node.kwargs.get("out_dtype")
    if out_dtype not in (None, torch.float32):
        raise NoMatch(f"{what} dequantizes to {out_dtype}")
    return TensorQuant(_number(scale, f"{what}'s scale"), int(_number(zero_point, f"{what}'s zero point")), dtype)


def node_rank(node: Node) -> Optional[int]:
    value = node.meta.get("val", node.meta.get("example_value"))
    return value.dim() if isinstance(value, torch.Tensor) else None


@dataclass
class LayerMatch:
    """One fusable chain. `last` is the node whose value the fused op replaces."""

    kind: str  # "linear", "conv2d" or "conv1d"
    layer: Node  # the linear / conv2d node
    activation: Optional[Node]  # fused activation node, if any
    quantize: Optional[Node]  # output quantize node; None: float output
    x: Node  # the integer activations
    x_quant: TensorQuant
    weight: Node  # the weight's dequantize node
    bias: Any  # None, a node or a tensor
    act_min: Optional[float]
    act_max: Optional[float]
    out_quant: Optional[TensorQuant]
    conv: Optional[Tuple] = None  # (stride, padding, dilation, groups) of a conv2d (a conv1d's as 1 x k)

    @property
    def last(self) -> Node:
        return self.quantize or self.activation or self.layer

    @property
    def nodes(self):
        return [n for n in (self.layer, self.activation, self.quantize) if n is not None]


def _pair(value: Any, what: str) -> Tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) in (1, 2) and all(isinstance(v, int) for v in value):
        return (value[0], value[-1])
    raise NoMatch(f"{what} {value!r} is not a constant int pair")


def match_layer(node: Node, float_output: bool = True) -> LayerMatch:
    """The fusable chain starting at a linear / conv2d node, or NoMatch saying why not."""
    target = target_of(node)
    kind = "linear" if target in LINEAR else "conv2d" if target in CONV2D else "conv1d" if target in CONV1D else None
    if kind is None:
        raise NoMatch(f"{node.target} has no fused kernel")
    x_dq, w_dq = arg(node, 0, "input"), arg(node, 1, "weight")
    bias = arg(node, 2, "bias")
    if not is_call(x_dq, DEQUANTIZE_PER_TENSOR):
        raise NoMatch("input is not dequantized per tensor")
    x_quant = per_tensor_params(x_dq, INPUT_DTYPES, "input dequantize")
    if not is_call(w_dq, DEQUANTIZE):
        raise NoMatch("weight is not dequantized")
    conv = None
    if kind in ("conv2d", "conv1d"):
        # A conv1d's parameters are the width's; its height is 1 (no stride, padding or dilation).
        def pair(value, what, unit):
            return _pair(value, what) if kind == "conv2d" else (unit, _pair(value, what)[0])

        conv = (
            pair(arg(node, 3, "stride", 1), "stride", 1),
            pair(arg(node, 4, "padding", 0), "padding", 0),
            pair(arg(node, 5, "dilation", 1), "dilation", 1),
            arg(node, 6, "groups", 1),
        )
        if not isinstance(conv[3], int):
            raise NoMatch("groups is not a constant int")
        rank, want = node_rank(x_dq), 4 if kind == "conv2d" else 3
        if rank is not None and rank != want:
            raise NoMatch(f"{kind} input has {rank} dimensions (the fused op takes NCHW, a conv1d NCW)")
    if isinstance(bias, Node) and is_call(bias, DEQUANTIZE) and arg(bias, 6, "dtype") not in (torch.int32, None):
        raise NoMatch("bias is quantized to a type other than int32")

    # Activation and output quantize: each only when the previous node feeds nothing else.
    last, activation, act_min, act_max = node, None, None, None
    if len(node.users) == 1:
        user = next(iter(node.users))
        bounds = activation_bounds(user)
        if bounds is not None and user.args and user.args[0] is node:
            activation, (act_min, act_max), last = user, bounds, user
    quantize, out_quant = None, None
    if len(last.users) == 1:
        user = next(iter(last.users))
        if is_call(user, QUANTIZE_PER_TENSOR) and user.args[0] is last:
            try:
                out_quant = per_tensor_params(user, OUTPUT_DTYPES, "output quantize")
                quantize = user
            except NoMatch:
                if not float_output:
                    raise
    if quantize is None and not float_output:
        raise NoMatch("output is not quantized (float output disabled)")
    return LayerMatch(
        kind, node, activation, quantize, x_dq.args[0], x_quant, w_dq, bias, act_min, act_max, out_quant, conv
    )
