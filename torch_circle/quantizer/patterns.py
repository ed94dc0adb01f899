"""Annotation rules: which tensors of each aten op get which quantization spec.

Rules match ``node.target`` (aten OpOverloads), never ``source_fn_stack`` metadata, which
torch.export's default non-strict mode does not record. Each rule receives the node and the
QuantizationConfig that applies to it, and annotates inputs and output the way the Circle
runtimes expect the op to be quantized:

* weighted ops (conv, linear): activation input, per-channel weight, bias derived from both;
  a following ReLU / ReLU6 / hardtanh is fused (no requantization between them), as it is after
  add / sub / mul;
* ops whose output range is their input's (pooling, layout ops): the output shares the input's
  quantization parameters;
* softmax, sigmoid, tanh: fixed output parameters, as the runtimes' lookup tables expect;
* an additive attention mask (``scores + constant`` feeding softmax) stays in float: a mask of
  -1e4 or -inf would otherwise set the quantization range of the scores;
* every other supported op: activation inputs and output.

Ops that depend on no model input (constants such as masks built in forward) are left alone.
"""
import operator
from typing import Callable, Dict, Iterable, Optional

import torch
from torch.fx import Node
from torchao.quantization.pt2e.quantizer import (
    DerivedQuantizationSpec,
    FixedQParamsQuantizationSpec,
    QuantizationAnnotation,
    SharedQuantizationSpec,
)

from .config import QuantizationConfig

aten = torch.ops.aten
ANNOTATION_KEY = "quantization_annotation"

Rule = Callable[[Node, QuantizationConfig], None]


# --- helpers ---------------------------------------------------------------------------------

DATA_KEY = "circle_depends_on_input"


def mark_data_dependence(graph) -> None:
    """Marks each node with whether it depends on a model input (constants do not)."""
    for node in graph.nodes:
        if node.op == "placeholder":
            node.meta[DATA_KEY] = True
        else:
            node.meta[DATA_KEY] = any(a.meta.get(DATA_KEY, False) for a in node.all_input_nodes)


def depends_on_input(node: Node) -> bool:
    return node.meta.get(DATA_KEY, True)

def is_float_tensor(arg) -> bool:
    val = arg.meta.get("val") if isinstance(arg, Node) else None
    return isinstance(val, torch.Tensor) and val.is_floating_point()


def is_annotated(node: Node) -> bool:
    annotation = node.meta.get(ANNOTATION_KEY)
    return annotation is not None and annotation._annotated


def annotate(node: Node, inputs: Dict[Node, object], output) -> None:
    node.meta[ANNOTATION_KEY] = QuantizationAnnotation(
        input_qspec_map=inputs, output_qspec=output, _annotated=True)


def float_inputs(node: Node) -> Iterable[Node]:
    """The node's floating-point tensor inputs, positional and in lists (cat), in order."""
    for arg in node.args:
        for a in arg if isinstance(arg, (list, tuple)) else (arg,):
            if is_float_tensor(a):
                yield a


SOFTMAX = {torch.ops.aten.softmax.int, torch.ops.aten._softmax.default}
MASK_OPS = {torch.ops.aten.add.Tensor, torch.ops.aten.sub.Tensor}


def is_masked_scores(node: Node) -> bool:
    """``scores + mask`` feeding only a softmax, the mask a constant: an attention mask."""
    if node.target not in MASK_OPS or len(node.users) != 1 or next(iter(node.users)).target not in SOFTMAX:
        return False
    operands = list(float_inputs(node))
    return len(operands) == 2 and sum(depends_on_input(a) for a in operands) == 1


def single_user(node: Node) -> Optional[Node]:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


FUSABLE_ACTIVATIONS = {aten.relu.default, aten.relu_.default, aten.relu6.default,
                       aten.hardtanh.default, aten.hardtanh_.default}


# Ops whose Circle counterparts carry a fused activation (CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED, TRANSPOSE_CONV, ADD, SUB, MUL): only they skip the requantization before it.
FUSING_OPS = {aten.conv1d.default, aten.conv2d.default, aten.conv1d.padding, aten.conv2d.padding,
              aten.conv_transpose1d.default, aten.conv_transpose2d.input, aten.linear.default,
              aten.add.Tensor, aten.add_.Tensor, aten.sub.Tensor, aten.sub_.Tensor,
              aten.mul.Tensor, aten.mul_.Tensor}


def fused_activation(node: Node) -> Optional[Node]:
    if node.target not in FUSING_OPS:
        return None
    user = single_user(node)
    return user if user is not None and user.target in FUSABLE_ACTIVATIONS else None


def annotate_output(node: Node, inputs: Dict[Node, object], config: QuantizationConfig) -> None:
    """Annotates node's inputs; its output, or that of a fused activation that follows it."""
    activation = fused_activation(node)
    if activation is None:
        annotate(node, inputs, config.activation)
    else:
        annotate(node, inputs, None)
        annotate(activation, {}, config.activation)


# --- rules -----------------------------------------------------------------------------------

def _bias_qparams(observers):
    activation_obs, weight_obs = observers
    activation_scale, _ = activation_obs.calculate_qparams()
    weight_scale, _ = weight_obs.calculate_qparams()
    scale = (activation_scale * weight_scale).to(torch.float32)
    return scale, torch.zeros_like(scale, dtype=torch.int64)


def weighted(weight_axis: int) -> Rule:
    """conv / linear: input, weight (per channel along weight_axis) and bias."""

    def rule(node: Node, config: QuantizationConfig) -> None:
        x, weight = node.args[0], node.args[1]
        bias = node.args[2] if len(node.args) > 2 else None
        inputs = {x: config.activation, weight: config.weight_spec(weight_axis)}
        if isinstance(bias, Node) and config.bias_dtype is not None:
            info = torch.iinfo(config.bias_dtype)
            inputs[bias] = DerivedQuantizationSpec(
                derived_from=[(x, node), (weight, node)], derive_qparams_fn=_bias_qparams,
                dtype=config.bias_dtype, quant_min=info.min, quant_max=info.max,
                qscheme=torch.per_channel_symmetric, ch_axis=0)
        annotate_output(node, inputs, config)

    return rule


def elementwise(node: Node, config: QuantizationConfig) -> None:
    """Every float input and the output get their own activation parameters."""
    if is_masked_scores(node):  # quantized scores in, float out to the softmax
        annotate(node, {a: config.activation for a in float_inputs(node) if depends_on_input(a)}, None)
        return
    annotate_output(node, {a: config.activation for a in float_inputs(node)}, config)


def shares_input_qparams(node: Node, config: QuantizationConfig) -> None:
    """Pooling and layout ops: the output keeps the input's scale and zero point."""
    x = node.args[0]
    if not is_float_tensor(x):
        return
    annotate(node, {x: config.activation}, SharedQuantizationSpec((x, node)))


def concatenation(node: Node, config: QuantizationConfig) -> None:
    """cat: all inputs and the output share one set of parameters (CONCATENATION's rule)."""
    tensors = [t for t in node.args[0] if is_float_tensor(t)]
    if not tensors:
        return
    first = (tensors[0], node)
    inputs = {tensors[0]: config.activation}
    inputs.update({t: SharedQuantizationSpec(first) for t in tensors[1:]})
    annotate(node, inputs, SharedQuantizationSpec(first))


# Output ranges fixed by the function: (scale, zero point) per activation dtype.
_UNIT_RANGE = {torch.uint8: (1 / 256, 0), torch.int8: (1 / 256, -128), torch.int16: (1 / 32768, 0)}
_SIGNED_UNIT_RANGE = {torch.uint8: (1 / 128, 128), torch.int8: (1 / 128, 0),
                      torch.int16: (1 / 32768, 0)}


def fixed_output(table) -> Rule:
    def rule(node: Node, config: QuantizationConfig) -> None:
        act = config.activation
        scale, zero_point = table[act.dtype]
        output = FixedQParamsQuantizationSpec(
            dtype=act.dtype, scale=scale, zero_point=zero_point, quant_min=act.quant_min,
            quant_max=act.quant_max, qscheme=act.qscheme)
        inputs = {a: act for a in float_inputs(node) if not is_masked_scores(a)}
        annotate(node, inputs, output)

    return rule


RULES: Dict[object, Rule] = {}


def _register(targets, rule: Rule) -> None:
    for target in targets:
        RULES[target] = rule


_register([aten.conv1d.default, aten.conv2d.default, aten.conv1d.padding, aten.conv2d.padding,
           aten.linear.default], weighted(weight_axis=0))
_register([aten.conv_transpose1d.default, aten.conv_transpose2d.input], weighted(weight_axis=1))
_register([aten.add.Tensor, aten.add_.Tensor, aten.sub.Tensor, aten.sub_.Tensor,
           aten.mul.Tensor, aten.mul_.Tensor, aten.div.Tensor, aten.matmul.default,
           aten.bmm.default, aten.mm.default, aten.mean.dim, aten.mean.default, aten.sum.dim_IntList,
           aten.relu.default, aten.relu_.default, aten.relu6.default, aten.hardtanh.default,
           aten.hardtanh_.default, aten.hardswish.default, aten.hardswish_.default,
           aten.hardsigmoid.default, aten.hardsigmoid_.default, aten.sum.default,
           aten.gelu.default, aten.silu.default, aten.silu_.default, aten.leaky_relu.default,
           aten.layer_norm.default, aten.rms_norm.default, aten.rsqrt.default, aten.pow.Tensor_Scalar,
           aten.embedding.default, aten.adaptive_avg_pool1d.default, aten.adaptive_avg_pool2d.default,
           aten.avg_pool1d.default, aten.avg_pool2d.default, aten.neg.default], elementwise)
_register([aten.max_pool1d.default, aten.max_pool2d.default, aten.flatten.using_ints,
           aten.reshape.default, aten.view.default, aten.permute.default, aten.transpose.int,
           aten.t.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default,
           aten.unsqueeze.default, aten.slice.Tensor, aten.select.int, aten.contiguous.default,
           aten.clone.default, aten.expand.default, aten.pad.default,
           aten.constant_pad_nd.default, aten.dropout.default, aten.unflatten.int,
           aten.repeat.default, aten.index_select.default, aten.gather.default],
          shares_input_qparams)
_register([aten.cat.default, aten.concat.default], concatenation)
_register([aten.softmax.int, aten._softmax.default, aten.sigmoid.default], fixed_output(_UNIT_RANGE))
_register([aten.tanh.default], fixed_output(_SIGNED_UNIT_RANGE))

# Ops that carry no numerics worth quantizing (or none at all): never reported as left in float.
IGNORED = {operator.getitem, aten.size.int, aten.sym_size.int, aten._assert_async.msg,
           aten._assert_scalar.default, aten.detach.default, aten.detach_.default,
           aten.lift_fresh_copy.default, aten.alias.default, aten.arange.start, aten.arange.default,
           aten.zeros.default, aten.ones.default, aten.full.default, aten.empty.memory_format,
           aten.scalar_tensor.default, aten.to.dtype, aten._to_copy.default}
