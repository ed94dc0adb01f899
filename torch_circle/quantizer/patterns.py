"""Annotation rules: which tensors of each aten op get which quantization spec.

Rules match ``node.target`` (aten OpOverloads), never ``source_fn_stack`` metadata, which
torch.export's default non-strict mode does not record. Each rule receives the node and the
QuantizationConfig that applies to it, and annotates inputs and output the way the Circle
runtimes expect the op to be quantized:

* weighted ops (conv, linear): activation input, per-channel weight, bias derived from both;
  a following activation Circle fuses (ReLU, ReLU6, RELU_N1_TO_1 bounds) gets the only
  requantization, as after add / sub / mul; in QAT graphs a batch norm between conv and
  activation is part of the pattern, so convert_pt2e can fold it;
* ops whose output range is their input's (pooling, layout ops): the output shares the input's
  quantization parameters;
* ops returning several tensors (max.dim, adaptive / indexed max pooling, unbind, split): the
  float ones share the input's parameters;
* softmax, sigmoid, tanh: fixed output parameters, as the runtimes' lookup tables expect
  (hardsigmoid, exported as ADD + DIV, observes its range: a fixed uint8 range stops at 255/256,
  and the gate is often exactly 1);
* masked attention scores (``scores + mask``, masked_fill, where, feeding softmax) stay in float
  with everything that only builds the mask, constant or from a model input: a mask of -1e4 or
  -inf would otherwise set the quantization range of the scores;
* every other supported op: activation inputs and output.

Ops that depend on no model input (constants such as masks built in forward) are left alone.
"""

import operator
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import torch
from torch.fx import Node
from torchao.quantization.pt2e.quantizer import (
    DerivedQuantizationSpec,
    FixedQParamsQuantizationSpec,
    QuantizationAnnotation,
    SharedQuantizationSpec,
)

from ..activations import is_fusable_activation
from .config import QuantizationConfig

aten = torch.ops.aten
ANNOTATION_KEY = "quantization_annotation"

Rule = Callable[[Node, QuantizationConfig], None]


# --- helpers ---------------------------------------------------------------------------------

DATA_KEY = "circle_depends_on_input"
AFTER_MATMUL_KEY = "circle_after_matmul"
MASK_KEY = "circle_attention_mask"

# Products of two activations (or of an activation and a weight): attention scores descend from
# one, attention masks (built from token ids, padding flags or constants) do not.
MATMUL_OPS = {
    aten.matmul.default,
    aten.bmm.default,
    aten.mm.default,
    aten.linear.default,
    aten.baddbmm.default,
    aten.einsum.default,
}


def mark_dataflow(graph) -> None:
    """Marks each node with whether it depends on a model input (constants do not), whether a
    matmul lies upstream of it, and whether it only builds an attention mask (mask_cone)."""
    for node in graph.nodes:
        inputs = node.all_input_nodes
        node.meta[DATA_KEY] = node.op == "placeholder" or any(a.meta.get(DATA_KEY, False) for a in inputs)
        node.meta[AFTER_MATMUL_KEY] = node.target in MATMUL_OPS or any(
            a.meta.get(AFTER_MATMUL_KEY, False) for a in inputs
        )
        node.meta.pop(MASK_KEY, None)
    for node in graph.nodes:
        operands = masked_scores_operands(node)
        if operands is not None:
            _mark_mask_cone(node, operands[1])


def _mark_mask_cone(masked: Node, masks) -> None:
    """Marks the nodes that exist only to build the masks of `masked`: they stay in float, since
    quantizing a mask of -1e4 or -inf would either break it or set its consumers' ranges."""
    cone = {masked}
    pending = [m for m in masks if m.op == "call_function"]
    while pending:
        node = pending.pop()
        if node in cone or not all(user in cone for user in node.users):
            continue  # also used as an activation elsewhere: quantized there as usual
        cone.add(node)
        node.meta[MASK_KEY] = True
        pending.extend(a for a in node.all_input_nodes if a.op == "call_function")


def depends_on_input(node: Node) -> bool:
    return node.meta.get(DATA_KEY, True)


def builds_attention_mask(node: Node) -> bool:
    return node.meta.get(MASK_KEY, False)


def is_float_tensor(arg) -> bool:
    val = arg.meta.get("val") if isinstance(arg, Node) else None
    return isinstance(val, torch.Tensor) and val.is_floating_point()


def produces_float(node: Node) -> bool:
    """A float tensor output, or a tuple / list holding one (max.dim's values, ...)."""
    val = node.meta.get("val")
    values = val if isinstance(val, (tuple, list)) else (val,)
    return any(isinstance(v, torch.Tensor) and v.is_floating_point() for v in values)


def is_annotated(node: Node) -> bool:
    annotation = node.meta.get(ANNOTATION_KEY)
    return annotation is not None and annotation._annotated


def annotate(node: Node, inputs: Dict[Node, object], output) -> None:
    node.meta[ANNOTATION_KEY] = QuantizationAnnotation(input_qspec_map=inputs, output_qspec=output, _annotated=True)


def float_inputs(node: Node) -> Iterable[Node]:
    """The node's floating-point tensor inputs, positional and in lists (cat), in order."""
    for arg in node.args:
        for a in arg if isinstance(arg, (list, tuple)) else (arg,):
            if is_float_tensor(a):
                yield a


SOFTMAX = {aten.softmax.int, aten._softmax.default}
# Ways to apply a mask to attention scores: additive (scores + mask), or by selection.
MASKING_OPS = {
    aten.add.Tensor,
    aten.sub.Tensor,
    aten.masked_fill.Scalar,
    aten.masked_fill.Tensor,
    aten.where.self,
    aten.where.ScalarOther,
    aten.where.ScalarSelf,
}


def masked_scores_operands(node: Node) -> Optional[Tuple[Node, List[Node]]]:
    """(scores, masks) if node applies a mask to attention scores, else None.

    The pattern: a masking op whose only user is a softmax, exactly one of whose operands
    descends from a matmul (the scores); the others (the mask, a boolean condition) do not. The
    mask may be a constant or come from a model input (token ids, a padding mask, a float mask).
    """
    if node.target not in MASKING_OPS or len(node.users) != 1 or next(iter(node.users)).target not in SOFTMAX:
        return None
    operands = [a for a in node.args if isinstance(a, Node)]
    scores = [a for a in operands if a.meta.get(AFTER_MATMUL_KEY, False)]
    if len(scores) != 1 or not is_float_tensor(scores[0]):
        return None
    return scores[0], [a for a in operands if a is not scores[0]]


def is_masked_scores(node: Node) -> bool:
    return masked_scores_operands(node) is not None


def single_user(node: Node) -> Optional[Node]:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


# The activations Circle fuses into the op before them (RELU, RELU6, RELU_N1_TO_1, by clamp
# bounds) are torch_circle.activations' is_fusable_activation. A clamp to other bounds is an op of
# its own (MAXIMUM / MINIMUM) and requantizes.


CONV_OPS = {
    aten.conv1d.default,
    aten.conv2d.default,
    aten.conv1d.padding,
    aten.conv2d.padding,
    aten.conv_transpose1d.default,
    aten.conv_transpose2d.input,
}
BATCH_NORM = {aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default}

# Ops whose Circle counterparts carry a fused activation (CONV_2D, DEPTHWISE_CONV_2D,
# FULLY_CONNECTED, TRANSPOSE_CONV, ADD, SUB, MUL): only they skip the requantization before it.
FUSING_OPS = CONV_OPS | {
    aten.linear.default,
    aten.add.Tensor,
    aten.add_.Tensor,
    aten.sub.Tensor,
    aten.sub_.Tensor,
    aten.mul.Tensor,
    aten.mul_.Tensor,
}


def fused_successors(node: Node) -> List[Node]:
    """The ops after node that run without a requantization before them.

    A batch norm after a conv (QAT graphs: prepare_pt2e folds it before annotation in
    post-training quantization), then an activation Circle can fuse. torchao's QAT conv-BN
    folding at convert_pt2e needs exactly this: no observer between conv and BN.
    """
    chain, last = [], node
    if node.target in CONV_OPS:
        bn = single_user(last)
        if bn is not None and bn.target in BATCH_NORM and bn.args[0] is node:
            chain.append(bn)
            last = bn
    if node.target in FUSING_OPS:
        activation = single_user(last)
        if activation is not None and is_fusable_activation(activation):
            chain.append(activation)
    return chain


def annotate_output(node: Node, inputs: Dict[Node, object], config: QuantizationConfig) -> None:
    """Annotates node's inputs, and the output of node or of the last op fused after it."""
    chain = fused_successors(node)
    annotate(node, inputs, None if chain else config.activation)
    for fused in chain:
        annotate(fused, {}, config.activation if fused is chain[-1] else None)


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
                derived_from=[(x, node), (weight, node)],
                derive_qparams_fn=_bias_qparams,
                dtype=config.bias_dtype,
                quant_min=info.min,
                quant_max=info.max,
                qscheme=torch.per_channel_symmetric,
                ch_axis=0,
            )
        annotate_output(node, inputs, config)

    return rule


def masked_scores(node: Node, config: QuantizationConfig) -> None:
    """scores + mask (or a masked_fill / where of the scores) feeding a softmax: the scores come
    in quantized, the mask and the result stay float, so -1e4 / -inf survive to the softmax."""
    scores, _ = masked_scores_operands(node)
    annotate(node, {scores: config.activation}, None)


def elementwise(node: Node, config: QuantizationConfig) -> None:
    """Every float input and the output get their own activation parameters."""
    annotate_output(node, {a: config.activation for a in float_inputs(node)}, config)


def shares_input_qparams(node: Node, config: QuantizationConfig) -> None:
    """Pooling and layout ops: the output keeps the input's scale and zero point."""
    x = node.args[0]
    if not is_float_tensor(x):
        return
    annotate(node, {x: config.activation}, SharedQuantizationSpec((x, node)))


def pieces_share_input_qparams(node: Node, config: QuantizationConfig) -> None:
    """Ops returning several tensors: the float ones (max.dim's values, unbind's slices) keep the
    input's parameters, as max pooling and slicing do; integer ones (indices) are left alone."""
    x = node.args[0]
    if not is_float_tensor(x):
        return
    annotate(node, {x: config.activation}, None)
    for user in node.users:
        if user.target is operator.getitem and is_float_tensor(user):
            annotate(user, {}, SharedQuantizationSpec((x, node)))


def data_input_only(node: Node, config: QuantizationConfig) -> None:
    """A batch norm without a conv before it: the input and output are activations; the
    statistics and affine parameters stay float (the exporter folds them into MUL + ADD)."""
    x = node.args[0]
    if is_float_tensor(x):
        annotate(node, {x: config.activation}, config.activation)


def prelu(node: Node, config: QuantizationConfig) -> None:
    """Input and output are activations; the slopes stay float. The exporter writes PReLU as
    RELU, MINIMUM, MUL by the slopes, ADD (onert has no PRELU kernel) and needs the slopes as a
    float constant; a float slope next to an 8-bit input costs no accuracy."""
    annotate(node, {node.args[0]: config.activation}, config.activation)


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
_SIGNED_UNIT_RANGE = {torch.uint8: (1 / 128, 128), torch.int8: (1 / 128, 0), torch.int16: (1 / 32768, 0)}


def rule_for(node: Node) -> Optional[Rule]:
    """The rule that annotates node, or None if it has none (it stays in float)."""
    if is_masked_scores(node):
        return masked_scores
    return RULES.get(node.target)


def fixed_output(table) -> Rule:
    def rule(node: Node, config: QuantizationConfig) -> None:
        act = config.activation
        scale, zero_point = table[act.dtype]
        output = FixedQParamsQuantizationSpec(
            dtype=act.dtype,
            scale=scale,
            zero_point=zero_point,
            quant_min=act.quant_min,
            quant_max=act.quant_max,
            qscheme=act.qscheme,
        )
        inputs = {a: act for a in float_inputs(node) if not is_masked_scores(a)}
        annotate(node, inputs, output)

    return rule


RULES: Dict[object, Rule] = {}


def _register(targets, rule: Rule) -> None:
    for target in targets:
        RULES[target] = rule


_register(
    [aten.conv1d.default, aten.conv2d.default, aten.conv1d.padding, aten.conv2d.padding, aten.linear.default],
    weighted(weight_axis=0),
)
_register([aten.conv_transpose1d.default, aten.conv_transpose2d.input], weighted(weight_axis=1))
_register(
    [
        aten.add.Tensor,
        aten.add_.Tensor,
        aten.sub.Tensor,
        aten.sub_.Tensor,
        aten.mul.Tensor,
        aten.mul_.Tensor,
        aten.div.Tensor,
        aten.matmul.default,
        aten.bmm.default,
        aten.mm.default,
        aten.mean.dim,
        aten.mean.default,
        aten.sum.dim_IntList,
        aten.relu.default,
        aten.relu_.default,
        aten.relu6.default,
        aten.hardtanh.default,
        aten.hardtanh_.default,
        aten.hardswish.default,
        aten.hardswish_.default,
        aten.hardsigmoid.default,
        aten.hardsigmoid_.default,
        aten.sum.default,
        aten.gelu.default,
        aten.silu.default,
        aten.silu_.default,
        aten.leaky_relu.default,
        aten.layer_norm.default,
        aten.rms_norm.default,
        aten.rsqrt.default,
        aten.pow.Tensor_Scalar,
        aten.embedding.default,
        aten.adaptive_avg_pool1d.default,
        aten.adaptive_avg_pool2d.default,
        aten.neg.default,
        aten.rsub.Scalar,
        aten.rsub.Tensor,
        aten.clamp.default,
        aten.clamp_.default,
        aten.clamp_min.default,
        aten.clamp_min_.default,
        aten.upsample_bilinear2d.vec,
        aten.upsample_bilinear2d.default,
    ],
    elementwise,
)
_register(
    [
        aten.max_pool1d.default,
        aten.max_pool2d.default,
        # Circle's AVERAGE_POOL_2D keeps its input's parameters; an own output scale would cost a
        # second rounding (a requantize after the pool) in the exported file.
        aten.avg_pool1d.default,
        aten.avg_pool2d.default,
        aten.flatten.using_ints,
        aten.reshape.default,
        aten.view.default,
        aten.permute.default,
        aten.transpose.int,
        aten.t.default,
        aten.squeeze.dim,
        aten.squeeze.dims,
        aten.squeeze.default,
        aten.unsqueeze.default,
        aten.slice.Tensor,
        aten.select.int,
        aten.contiguous.default,
        aten.clone.default,
        aten.expand.default,
        aten.pad.default,
        aten.constant_pad_nd.default,
        aten.dropout.default,
        aten.unflatten.int,
        aten.repeat.default,
        aten.index_select.default,
        aten.gather.default,
        aten.flip.default,
        aten.upsample_nearest2d.vec,
        aten.upsample_nearest2d.default,
    ],
    shares_input_qparams,
)
_register(
    [
        aten.max.dim,
        aten.min.dim,
        aten.adaptive_max_pool1d.default,
        aten.adaptive_max_pool2d.default,
        aten.max_pool1d_with_indices.default,
        aten.max_pool2d_with_indices.default,
        aten.unbind.int,
        aten.split.Tensor,
        aten.split_with_sizes.default,
        aten.chunk.default,
    ],
    pieces_share_input_qparams,
)
_register(BATCH_NORM, data_input_only)
_register([aten.prelu.default], prelu)
_register([aten.cat.default, aten.concat.default], concatenation)
_register([aten.softmax.int, aten._softmax.default, aten.sigmoid.default], fixed_output(_UNIT_RANGE))
_register([aten.tanh.default], fixed_output(_SIGNED_UNIT_RANGE))

# Ops that carry no numerics worth quantizing (or none at all): never reported as left in float.
IGNORED = {
    operator.getitem,
    aten.size.int,
    aten.sym_size.int,
    aten._assert_async.msg,
    aten._assert_scalar.default,
    aten.detach.default,
    aten.detach_.default,
    aten.lift_fresh_copy.default,
    aten.alias.default,
    aten.arange.start,
    aten.arange.default,
    aten.zeros.default,
    aten.ones.default,
    aten.full.default,
    aten.empty.memory_format,
    aten.scalar_tensor.default,
    aten.to.dtype,
    aten._to_copy.default,
}
