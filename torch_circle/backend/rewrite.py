"""Replaces matched chains with circle_quant.quantized_linear / quantized_conv2d on weights
prepacked once, here, at compile time.

The prepacked tensors become buffers of the graph module (get_attr nodes); for inductor the
compiler turns them into extra graph inputs. The fused op reads the integer
tensor under the input's dequantize, so when that tensor is itself the output of a fused op the
quantize → dequantize pair between two layers disappears and the int8 tensor flows through
directly (conv outputs stay channels_last).
"""

import operator
from dataclasses import dataclass
from typing import List, Optional, Set

import torch
from torch.fx import GraphModule, Node

from .constants import Constants
from .matching import (
    DEQUANTIZE,
    DEQUANTIZE_PER_CHANNEL,
    DEQUANTIZE_PER_TENSOR,
    INPUT_DTYPES,
    LAYER_LIKE,
    OUTPUT_DTYPES,
    QUANTIZE_PER_TENSOR,
    LayerMatch,
    NoMatch,
    TensorQuant,
    activation_bounds,
    arg,
    is_call,
    match_layer,
    per_tensor_params,
    target_of,
)
from .report import FusionReport

_cq = torch.ops.circle_quant


def _weight_params(m: LayerMatch, constants: Constants):
    """(int weight, scales, zero points) of the weight's dequantize as tensors."""
    dq = m.weight
    w = constants.value(dq.args[0])
    scale, zero_point = (
        constants.value(arg(dq, 1, "scales", arg(dq, 1, "scale"))),
        constants.value(arg(dq, 2, "zero_points", arg(dq, 2, "zero_point"))),
    )
    if not isinstance(w, torch.Tensor) or w.dtype not in (torch.int8, torch.uint8):
        raise NoMatch(f"weight is not an int8 / uint8 constant ({getattr(w, 'dtype', type(w).__name__)})")
    if is_call(dq, DEQUANTIZE_PER_CHANNEL):
        axis = arg(dq, 3, "axis")
        if axis not in (0, -w.dim()):
            raise NoMatch(f"weight is quantized per channel along axis {axis}, not the output channels")
    if zero_point is None:
        zero_point = 0
    scale = torch.as_tensor(scale, dtype=torch.float32).reshape(-1)
    zero_point = torch.as_tensor(zero_point).to(torch.int32).reshape(-1)
    return w, scale, zero_point


def _bias(m: LayerMatch, constants: Constants) -> Optional[torch.Tensor]:
    if m.bias is None:
        return None
    value = constants.value(m.bias)
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise NoMatch("bias is not a float constant")
    return value.float()


def _prepack(m: LayerMatch, constants: Constants, requant: str):
    w, w_scale, w_zp = _weight_params(m, constants)
    bias = _bias(m, constants)
    out = m.out_quant
    out_args = (out.scale, out.zero_point, out.dtype) if out else (1.0, 0, torch.float32)
    common = (m.x_quant.scale, m.x_quant.zero_point, m.x_quant.dtype, *out_args, m.act_min, m.act_max, requant)
    try:
        if m.kind == "linear":
            if w.dim() != 2:
                raise NoMatch(f"linear weight has {w.dim()} dimensions")
            return _cq.linear_prepack.default(w, w_scale, w_zp, bias, *common), ()
        if m.kind == "conv1d" and w.dim() == 3:
            w = w.unsqueeze(2)  # [out, in, k] → [out, in, 1, k]
        if w.dim() != 4:
            raise NoMatch(f"conv2d weight has {w.dim()} dimensions")
        stride, padding, dilation, groups = m.conv
        packed = _cq.conv2d_prepack.default(
            w, w_scale, w_zp, bias, list(stride), list(padding), list(dilation), groups, *common
        )
        return packed, (list(w.shape[2:]), list(stride), list(padding), list(dilation), groups)
    except (RuntimeError, ValueError, TypeError) as error:
        raise NoMatch(f"prepack rejected it: {str(error).splitlines()[0]}") from error


# Ops that commute with dequantize (max is monotonic; layout ops move values): with the same
# parameters on both sides, quantize(op(dequantize(x))) == op(x) exactly, on the integers.
_aten = torch.ops.aten
_INTEGER_EXACT = {
    _aten.max_pool2d.default,
    torch.nn.functional.max_pool2d,
    _aten.view.default,
    _aten.reshape.default,
    _aten.flatten.using_ints,
    torch.flatten,
    _aten.permute.default,
    _aten.transpose.int,
    _aten.squeeze.dim,
    _aten.unsqueeze.default,
    _aten.contiguous.default,
    _aten.clone.default,
}
_MAX_POOL = {_aten.max_pool2d.default, torch.nn.functional.max_pool2d}
_INTEGER_EXACT_METHODS = {"view", "reshape", "flatten", "permute", "transpose", "squeeze", "unsqueeze", "contiguous"}


def fold_integer_ops(gm: GraphModule) -> int:
    """Runs max pooling and layout ops between dequantize / quantize with equal parameters on the
    integers themselves: two float passes fewer, and the integer tensor reaches the next fused
    layer directly (PT2E quantizers give such ops their input's parameters). Returns the count."""
    count = 0
    for q in list(gm.graph.nodes):
        if not is_call(q, QUANTIZE_PER_TENSOR):
            continue
        op = q.args[0]
        if not isinstance(op, Node) or len(op.users) != 1 or not op.args:
            continue
        exact = is_call(op, _INTEGER_EXACT) or (op.op == "call_method" and op.target in _INTEGER_EXACT_METHODS)
        if op.target is torch.nn.functional.max_pool2d and (arg(op, 6, "return_indices", False)):
            exact = False
        dq = op.args[0]
        if (
            not exact
            or not is_call(dq, DEQUANTIZE_PER_TENSOR)
            or dq.kwargs.get("out_dtype") not in (None, torch.float32)
        ):
            continue
        if tuple(dq.args[1:6]) != tuple(q.args[1:6]) or any(isinstance(a, Node) for a in q.args[1:6]):
            continue
        if is_call(op, _MAX_POOL):
            # torch's CPU max pool on integer tensors indexes with the element type (wrong past
            # 255 positions for uint8), and inductor's int8 max-pool pattern falls back to an op
            # only QuantizedCPU tensors have: pool exactly converted values instead.
            with gm.graph.inserting_before(op):
                as_float = gm.graph.call_method("to", (dq.args[0], torch.float32))
            op.replace_input_with(dq, as_float)
            with gm.graph.inserting_after(op):
                back = gm.graph.call_method("to", (op, q.args[5]))
            q.replace_all_uses_with(back)
        else:
            op.replace_input_with(dq, dq.args[0])
            q.replace_all_uses_with(op)
        gm.graph.erase_node(q)
        if not dq.users:  # so that the integer tensor's producer counts only live readers
            gm.graph.erase_node(dq)
        count += 1
    return count


_ADD = {_aten.add.Tensor, torch.add, operator.add}
# `out += identity` (torchvision's ResNet, MobileNetV3, EfficientNet): the same add, fused when
# nothing else reads the tensor it overwrites.
_ADD_INPLACE = {_aten.add_.Tensor, operator.iadd}
_FUSED_WITH_ADD = {
    _cq.quantized_linear.default: "quantized_linear_add",
    _cq.quantized_conv2d.default: "quantized_conv2d_add",
}


_SHAPE_KEY = "circle_quant_shape"  # set on fused nodes: the replaced layer's output shape


def _shape(node: Node):
    """The node's shape from tracing metadata, as strings (a symbolic size compares by its symbol:
    no guard), or None. Nodes convert_pt2e inserted carry none: quantize / dequantize take their
    input's."""
    if not isinstance(node, Node):
        return None
    value = node.meta.get("val", node.meta.get("example_value"))
    if isinstance(value, torch.Tensor):
        return tuple(str(d) for d in value.shape)
    if _SHAPE_KEY in node.meta:
        return node.meta[_SHAPE_KEY]
    if is_call(node, DEQUANTIZE_PER_TENSOR | QUANTIZE_PER_TENSOR) and node.args:
        return _shape(node.args[0])
    return None


@dataclass
class AddMatch:
    layer: Node  # the fused quantized_linear / quantized_conv2d node
    removed: List[Node]  # quantize, activation, add, the layer's dequantize: erased
    quantize: Node  # the add's output quantize, whose value the fused op replaces
    other: Node  # the integer tensor under the other operand's dequantize
    other_quant: TensorQuant
    out_quant: TensorQuant
    act_min: Optional[float]
    act_max: Optional[float]
    # A linear layer run on rows flattened from [..., N] and its output viewed back (GPT-2's
    # Conv1D): the view between layer and add, or None. The fused op then adds the residual in the
    # layer's [rows, N] shape, and the view moves after it.
    row_view: Optional[Node] = None


_ROW_VIEWS = {_aten.view.default, _aten.reshape.default}


def _rows_viewed(view: Node) -> Optional[Node]:
    """The fused linear layer under a view / reshape that only regroups its rows (the last
    dimension is kept), or None."""
    if not is_call(view, _ROW_VIEWS) or len(view.users) != 1:
        return None
    layer = view.args[0]
    if not is_call(layer, {_cq.quantized_linear.default}) or len(layer.users) != 1:
        return None
    before, after = _shape(layer), _shape(view)
    if before is None or after is None or len(before) != 2 or before[-1] != after[-1]:
        return None
    return layer


def _match_add(add: Node) -> Optional[AddMatch]:
    """A residual add of a fused layer's dequantized output and another dequantized tensor,
    followed by an optional activation and a quantize, or None. Everything must be per tensor,
    of one integer type and of one shape (the fused add neither broadcasts nor converts)."""
    if not is_call(add, _ADD | _ADD_INPLACE) or len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return None
    if not all(is_call(a, DEQUANTIZE_PER_TENSOR) for a in add.args) or add.args[0] is add.args[1]:
        return None
    if is_call(add, _ADD_INPLACE) and len(add.args[0].users) != 1:
        return None  # another reader would see the sum: the add must stay
    for layer_dq, other_dq in (add.args, tuple(reversed(add.args))):  # noqa: B007 (read after the loop)
        layer, row_view = layer_dq.args[0], None
        if _rows_viewed(layer) is not None:
            layer, row_view = _rows_viewed(layer), layer
        if is_call(layer, _FUSED_WITH_ADD) and len(layer.users) == 1 and len(layer_dq.users) == 1:
            break
    else:
        return None
    last, act_min, act_max = add, None, None
    if len(add.users) == 1:
        user = next(iter(add.users))
        bounds = activation_bounds(user)
        if bounds is not None and user.args and user.args[0] is add:
            last, (act_min, act_max) = user, bounds
    if len(last.users) != 1:
        return None
    quantize = next(iter(last.users))
    if not is_call(quantize, QUANTIZE_PER_TENSOR) or quantize.args[0] is not last:
        return None
    try:
        layer_q = per_tensor_params(layer_dq, OUTPUT_DTYPES, "layer dequantize")
        other_q = per_tensor_params(other_dq, OUTPUT_DTYPES, "residual dequantize")
        out_q = per_tensor_params(quantize, OUTPUT_DTYPES, "add output quantize")
    except NoMatch:
        return None
    if not layer_q.dtype == other_q.dtype == out_q.dtype == layer.args[-1]:
        return None
    shape = _shape(layer_dq)
    if shape is None or shape != _shape(other_dq) or shape != _shape(add):
        return None
    removed = [quantize, *([last] if last is not add else []), add, layer_dq, *([row_view] if row_view else [])]
    return AddMatch(layer, removed, quantize, other_dq.args[0], other_q, out_q, act_min, act_max, row_view)


def fuse_residual_adds(gm: GraphModule) -> int:
    """Folds dequantize → add (→ activation) → quantize after a fused layer into the layer's
    *_add op: the add runs on each output tile while it is in cache, and the layer's quantized
    output, the two dequantizes and the add's float tensor disappear (what the x86 path does with
    oneDNN's binary post-op). Numerically the add is the reference graph's, in float
    (docs/numerics.md, "Fused residual add"). Returns the count."""
    graph = gm.graph
    count = 0
    for node in list(graph.nodes):
        m = _match_add(node)
        if m is None:
            continue
        op = getattr(_cq, _FUSED_WITH_ADD[target_of(m.layer)]).default
        with graph.inserting_before(m.quantize):  # after both operands, wherever they were computed
            other = m.other
            if m.row_view is not None:  # the residual in the layer's rows, the sum viewed back
                other = graph.call_function(_aten.reshape.default, (other, [-1, int(_shape(m.layer)[-1])]))
            fused = graph.call_function(
                op,
                (
                    *m.layer.args,
                    other,
                    m.other_quant.scale,
                    m.other_quant.zero_point,
                    m.out_quant.scale,
                    m.out_quant.zero_point,
                    m.act_min,
                    m.act_max,
                ),
            )
        fused.meta.update(
            {k: v for k, v in m.layer.meta.items() if k in ("stack_trace", "nn_module_stack", _SHAPE_KEY)}
        )
        result = fused
        if m.row_view is not None:
            with graph.inserting_after(fused):
                result = graph.call_function(_aten.reshape.default, (fused, m.row_view.args[1]))
            result.meta[_SHAPE_KEY] = _shape(m.row_view)
        m.quantize.replace_all_uses_with(result)
        for dead in (*m.removed, m.layer):
            graph.erase_node(dead)
        count += 1
    return count


# Elementwise aten ops that lack torch.Tag.pointwise in torch 2.13.
_UNTAGGED_POINTWISE = {torch.ops.aten.hardswish, torch.ops.aten.hardswish_}


def _is_elementwise_step(node: Node) -> bool:
    """A deterministic pointwise aten op of one tensor (its other arguments are constants)."""
    target = target_of(node)
    if not isinstance(target, torch._ops.OpOverload):
        return False
    if torch.Tag.pointwise not in target.tags and target.overloadpacket not in _UNTAGGED_POINTWISE:
        return False
    if torch.Tag.nondeterministic_seeded in target.tags:
        return False
    operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, Node)]
    return len(operands) == 1 and node.args and node.args[0] is operands[0]


# Arithmetic a fused float kernel does in a few instructions: a chain of only these is left to
# inductor (a table would cut its fusion for no gain).
_CHEAP_STEPS = {
    torch.ops.aten.add,
    torch.ops.aten.sub,
    torch.ops.aten.mul,
    torch.ops.aten.div,
    torch.ops.aten.neg,
    torch.ops.aten.abs,
    torch.ops.aten.relu,
    torch.ops.aten.relu_,
    torch.ops.aten.clamp,
    torch.ops.aten.clamp_min,
    torch.ops.aten.clamp_max,
    torch.ops.aten.hardtanh,
}


def _run_chain(dq: Node, chain: List[Node], q: Node, values: torch.Tensor) -> torch.Tensor:
    """The reference graph's dequantize → chain → quantize, run on the given integer values."""
    x = target_of(dq)(values, *dq.args[1:], **dq.kwargs)
    for node in chain:
        x = target_of(node)(x, *node.args[1:], **node.kwargs)
    return target_of(q)(x, *q.args[1:], **q.kwargs)


def _replace_quantize(graph: torch.fx.Graph, q: Node, target, args: tuple) -> Node:
    """Calls `target` on args in place of the quantize q (its users now read the call, which keeps
    q's source location), erases q and returns the call; the caller erases what fed q."""
    with graph.inserting_before(q):
        call = graph.call_function(target, args)
    call.meta.update({k: v for k, v in q.meta.items() if k in ("stack_trace", "nn_module_stack")})
    q.replace_all_uses_with(call)
    graph.erase_node(q)
    return call


def _is_fused_call(node) -> bool:
    return (
        isinstance(node, Node)
        and node.op == "call_function"
        and getattr(node.target, "namespace", "") == "circle_quant"
    )


def _between_fused_ops(dq: Node, q: Node) -> bool:
    """Whether the integers come from a fused op and go only to fused ops: nothing around the
    chain that inductor could fuse it with."""
    return isinstance(dq, Node) and bool(dq.args) and _is_fused_call(dq.args[0]) and all(map(_is_fused_call, q.users))


def fold_lookup_tables(gm: GraphModule) -> int:
    """Replaces dequantize → elementwise ops (GELU, sigmoid, tanh, SiLU, hardswish, exp, ...) →
    quantize on 8-bit per-tensor integers with circle_quant.lookup_table: the chain is a function
    of one byte, so a 256-entry table, computed here by the reference ops themselves, gives the
    reference's results with one lookup per element instead of a float pass that evaluates the
    function per element. Chains of plain arithmetic (or none: a requantize) stay with inductor,
    which fuses them into the float work around them, unless fused ops are all that is around them
    (attention's scaling between its matmul and softmax, a requantize between two layers): then a
    table is one pass where inductor would run a kernel of its own. Returns the count."""
    graph = gm.graph
    count = 0
    for q in list(graph.nodes):
        if not is_call(q, QUANTIZE_PER_TENSOR) or any(isinstance(a, Node) for a in (*q.args[1:], *q.kwargs.values())):
            continue
        chain, node = [], q.args[0]
        while isinstance(node, Node) and len(node.users) == 1 and _is_elementwise_step(node):
            chain.insert(0, node)
            node = node.args[0]
        dq = node
        if all(target_of(n).overloadpacket in _CHEAP_STEPS for n in chain) and not _between_fused_ops(dq, q):
            continue
        if not is_call(dq, DEQUANTIZE_PER_TENSOR) or any(
            isinstance(a, Node) for a in (*dq.args[1:], *dq.kwargs.values())
        ):
            continue
        in_dtype, out_dtype = arg(dq, 5, "dtype"), arg(q, 5, "dtype")
        if in_dtype not in INPUT_DTYPES or out_dtype not in INPUT_DTYPES:
            continue
        low, high = INPUT_DTYPES[in_dtype]
        try:
            table = _run_chain(dq, chain, q, torch.arange(low, high + 1).to(in_dtype))
        except (RuntimeError, TypeError, ValueError):  # an op that cannot run on its own: leave it
            continue
        name = f"_circle_quant_table_{count}"
        gm.register_buffer(name, table.contiguous())
        with graph.inserting_before(q):
            table_node = graph.get_attr(name)
        _replace_quantize(graph, q, _cq.lookup_table.default, (dq.args[0], table_node))
        for dead in reversed(chain):
            graph.erase_node(dead)
        count += 1
    return count


_SOFTMAX = {torch.ops.aten._softmax.default, torch.ops.aten.softmax.int}


def fuse_quantized_softmax(gm: GraphModule) -> int:
    """Replaces dequantize → softmax over the last dimension → quantize on 8-bit per-tensor
    integers with circle_quant.quantized_softmax: one pass per row on bytes, its exps read from
    tables, instead of a float kernel that evaluates the dequantize chain and exp per element in
    each of softmax's three passes. Returns the count."""
    graph = gm.graph
    count = 0
    for q in list(graph.nodes):
        if not is_call(q, QUANTIZE_PER_TENSOR):
            continue
        softmax = q.args[0]
        if not is_call(softmax, _SOFTMAX) or len(softmax.users) != 1:
            continue
        dq, dim = softmax.args[0], arg(softmax, 1, "dim")
        if target_of(softmax) is torch.ops.aten._softmax.default and arg(softmax, 2, "half_to_float"):
            continue
        if arg(softmax, 2, "dtype") not in (None, torch.float32) and target_of(softmax) is torch.ops.aten.softmax.int:
            continue
        shape = _shape(dq)  # convert_pt2e's dequantize carries no metadata: its input's shape
        if not is_call(dq, DEQUANTIZE_PER_TENSOR) or shape is None or dim not in (-1, len(shape) - 1):
            continue
        try:
            x_quant = per_tensor_params(dq, INPUT_DTYPES, "softmax input dequantize")
            out_quant = per_tensor_params(q, INPUT_DTYPES, "softmax output quantize")
        except NoMatch:
            continue
        if dq.kwargs.get("out_dtype") not in (None, torch.float32):
            continue
        q_range = (arg(q, 3, "quant_min"), arg(q, 4, "quant_max"))
        args = (dq.args[0], x_quant.scale, x_quant.zero_point, out_quant.scale, out_quant.zero_point, *q_range)
        _replace_quantize(graph, q, _cq.quantized_softmax.default, (*args, out_quant.dtype))
        graph.erase_node(softmax)
        count += 1
    return count


_MATMUL = {_aten.matmul.default, _aten.bmm.default, torch.matmul, torch.bmm, operator.matmul}


def fuse_quantized_matmuls(gm: GraphModule, requant: str) -> int:
    """Replaces matmul / bmm of two dequantized 8-bit tensors followed by a quantize (attention's
    Q·Kᵀ and P·V) with circle_quant.quantized_matmul: the integer GEMM with exact int32 sums and
    one requantization, instead of two float dequantize passes, a float bmm and a quantize pass.
    Operands must be [..., M, K] and [..., K, N] with equal leading dimensions (or a 2-D right
    operand), as the op requires. Returns the count."""
    graph = gm.graph
    count = 0
    for q in list(graph.nodes):
        if not is_call(q, QUANTIZE_PER_TENSOR):
            continue
        matmul = q.args[0]
        if not is_call(matmul, _MATMUL) or len(matmul.users) != 1 or len(matmul.args) != 2 or matmul.kwargs:
            continue
        left, right = matmul.args
        try:
            left_quant = per_tensor_params(left, INPUT_DTYPES, "matmul input dequantize")
            right_quant = per_tensor_params(right, INPUT_DTYPES, "matmul other dequantize")
            out_quant = per_tensor_params(q, OUTPUT_DTYPES, "matmul output quantize")
        except NoMatch:
            continue
        if not is_call(left, DEQUANTIZE_PER_TENSOR) or not is_call(right, DEQUANTIZE_PER_TENSOR):
            continue
        a_shape, b_shape = _shape(left), _shape(right)
        if a_shape is None or b_shape is None or len(a_shape) < 2 or len(b_shape) < 2:
            continue
        if a_shape[-1] != b_shape[-2] or (len(b_shape) > 2 and b_shape[:-2] != a_shape[:-2]):
            continue  # broadcasting matmuls stay float
        operands = (left.args[0], left_quant.scale, left_quant.zero_point)
        operands += (right.args[0], right_quant.scale, right_quant.zero_point)
        output = (out_quant.scale, out_quant.zero_point, out_quant.dtype, requant)
        fused = _replace_quantize(graph, q, _cq.quantized_matmul.default, (*operands, *output))
        fused.meta[_SHAPE_KEY] = (*a_shape[:-1], b_shape[-1])
        graph.erase_node(matmul)
        for dq in {left, right}:
            if not dq.users:
                graph.erase_node(dq)
        count += 1
    return count


_DROPOUT = {
    _aten.dropout.default,
    _aten.feature_dropout.default,
    _aten.alpha_dropout.default,
    _aten.feature_alpha_dropout.default,
    torch.nn.functional.dropout,
}


def remove_eval_dropouts(gm: GraphModule) -> int:
    """Removes dropouts in eval mode (identities) and then the quantize of a dequantize with the
    same parameters that the quantizer put around each: `layer → dropout → add` (BERT, ViT) then
    reads the layer's integers directly, so the add fuses into the layer. Returns the count."""
    graph = gm.graph
    count = 0
    for node in list(graph.nodes):
        if not is_call(node, _DROPOUT) or arg(node, 2, "train", arg(node, 2, "training", True)) is not False:
            continue
        node.replace_all_uses_with(node.args[0])
        graph.erase_node(node)
        count += 1
    for q in list(graph.nodes):  # q(dq(x)) with equal parameters is x, exactly
        dq = q.args[0] if is_call(q, QUANTIZE_PER_TENSOR) else None
        if (
            not is_call(dq, DEQUANTIZE_PER_TENSOR)
            or q.kwargs
            or dq.kwargs.get("out_dtype") not in (None, torch.float32)
        ):
            continue
        if tuple(dq.args[1:6]) != tuple(q.args[1:6]) or any(isinstance(a, Node) for a in q.args[1:6]):
            continue
        q.replace_all_uses_with(dq.args[0])
        graph.erase_node(q)
        if not dq.users:
            graph.erase_node(dq)
    return count


def _layer_nodes(gm: GraphModule) -> List[Node]:
    return [n for n in gm.graph.nodes if is_call(n, LAYER_LIKE)]


def _looks_quantized(node: Node) -> bool:
    return any(is_call(a, DEQUANTIZE) for a in node.args[:2])


def fuse(gm: GraphModule, constants: Constants, requant: str, float_output: bool, report: FusionReport) -> Set[int]:
    """Rewrites gm in place; returns the graph inputs the prepacked weights were built from."""
    used_inputs: Set[int] = set()
    graph = gm.graph
    count = 0
    remove_eval_dropouts(gm)
    for node in _layer_nodes(gm):
        if not _looks_quantized(node):
            continue
        try:
            m = match_layer(node, float_output)
            (packed, params, multiplier), conv_args = _prepack(m, constants, requant)
        except NoMatch as why:
            report.unmatched.append((node.name, str(why)))
            continue
        prefix = f"_circle_quant_{m.kind}_{count}"
        count += 1
        attrs = []
        for suffix, tensor in (("packed_weight", packed), ("params", params), ("multiplier", multiplier)):
            gm.register_buffer(f"{prefix}_{suffix}", tensor)
            attrs.append(f"{prefix}_{suffix}")
        out_dtype = m.out_quant.dtype if m.out_quant else torch.float32
        with graph.inserting_before(m.layer):
            getters = [graph.get_attr(a) for a in attrs]
            if m.kind == "linear":
                fused = graph.call_function(_cq.quantized_linear.default, (m.x, *getters, out_dtype))
            elif m.kind == "conv2d":
                fused = graph.call_function(_cq.quantized_conv2d.default, (m.x, *getters, *conv_args, out_dtype))
            else:  # conv1d: NCW → NC1W, conv2d, back
                image = graph.call_function(_aten.unsqueeze.default, (m.x, 2))
                conv = graph.call_function(_cq.quantized_conv2d.default, (image, *getters, *conv_args, out_dtype))
                fused = graph.call_function(_aten.squeeze.dim, (conv, 2))
        last = m.last
        fused.meta.update({k: v for k, v in last.meta.items() if k in ("stack_trace", "nn_module_stack")})
        if m.kind != "conv1d":  # a fused conv1d's output is a squeeze, into which no add fuses
            fused.meta[_SHAPE_KEY] = _shape(m.layer)
        last.replace_all_uses_with(fused)
        for n in reversed(m.nodes):
            graph.erase_node(n)
        for x in (*m.weight.args, *m.weight.kwargs.values(), m.bias):
            used_inputs |= constants.dependencies(x)
        report.add_fused(m.kind, node.name, m.out_quant is None)
    report.fused_adds = fuse_residual_adds(gm)
    report.integer_ops = fold_integer_ops(gm)
    # Once views run on the integers, an add behind a view of a layer's rows sees the layer.
    report.fused_adds += fuse_residual_adds(gm)
    report.matmuls = fuse_quantized_matmuls(gm, requant)
    report.softmaxes = fuse_quantized_softmax(gm)  # first: a table between it and a matmul sees it
    graph.eliminate_dead_code()  # drops the dequantizes fused ops replaced: tables look at live readers
    report.lookup_tables = fold_lookup_tables(gm)
    graph.eliminate_dead_code()
    graph.lint()
    gm.recompile()
    return used_inputs
