"""Clamp-like activations in FX graphs, and which of them Circle fuses into the op before them.

One definition for the three places that must agree: the quantizer (an activation Circle fuses
gets no observer between it and its producer), the torch.compile backend (fuses any clamp into
its integer kernels) and the exporter (fuse_activation), whose list of fusable Circle
activations (RELU, RELU6, RELU_N1_TO_1) comes from torch_circle._C.fusable_activations().
"""

from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.fx import Node

from . import _C

aten = torch.ops.aten

# Targets as aten ops (torch.export, PT2E) and as the torch functions dynamo records. Each also
# has an importer in csrc/exporter/import/ops_elementwise.cpp.
_RELU = {aten.relu.default, aten.relu_.default, torch.relu, torch.relu_, F.relu}
_HARDTANH = {aten.hardtanh.default, aten.hardtanh_.default, F.hardtanh}
_RELU6 = {F.relu6, aten.relu6.default}
_CLAMP = {aten.clamp.default, aten.clamp_.default, torch.clamp, torch.clip}
_CLAMP_MIN = {aten.clamp_min.default, aten.clamp_min_.default}

# The (min, max) clamp each Circle activation is; None: unbounded.
CIRCLE_ACTIVATION_BOUNDS = {"RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}
FUSABLE_BOUNDS = frozenset(CIRCLE_ACTIVATION_BOUNDS[name] for name in _C.fusable_activations())

Bounds = Tuple[Optional[float], Optional[float]]


def _target(node: Node) -> Any:
    """The node's target, an op packet (what dynamo records for torch.ops.ns.op(...)) read as its
    default overload."""
    t = node.target
    return t.default if isinstance(t, torch._ops.OpOverloadPacket) else t


def _arg(node: Node, index: int, name: str, default: Any = None) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


class _NotANumber(Exception):
    pass


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _NotANumber
    return float(value)


def _optional_number(value: Any) -> Optional[float]:
    return None if value is None else _number(value)


def activation_bounds(node: Node) -> Optional[Bounds]:
    """(min, max) of a clamp-like activation node (None = unbounded), or None if it is not one
    (or its bounds are not constant numbers)."""
    if node.op == "call_method" and node.target in ("relu", "relu_"):
        return 0.0, None
    if node.op != "call_function":
        return None
    t = _target(node)
    try:
        if t in _RELU:
            return 0.0, None
        if t in _RELU6:
            return 0.0, 6.0
        if t in _HARDTANH:
            return _number(_arg(node, 1, "min_val", -1.0)), _number(_arg(node, 2, "max_val", 1.0))
        if t in _CLAMP:
            return _optional_number(_arg(node, 1, "min")), _optional_number(_arg(node, 2, "max"))
        if t in _CLAMP_MIN:
            return _number(_arg(node, 1, "min")), None
    except _NotANumber:
        return None
    return None


def is_fusable_activation(node: Node) -> bool:
    """Whether Circle fuses the node into the op before it (one of the fused activations)."""
    return activation_bounds(node) in FUSABLE_BOUNDS
