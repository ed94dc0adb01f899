"""Graph rewrites run before annotation (Quantizer.transform_for_annotation).

``scaled_dot_product_attention`` is one op in the exported graph, but its quantizable parts are
matmuls and a softmax: it is rewritten into them, so the scores, the probabilities and the
output get quantization parameters (and Circle runtimes, which have no attention op in the
8-bit conventions, receive ops they know). ``addmm`` with a constant weight (GPT-2's Conv1D) is
rewritten into the linear layer it is.
"""

import math

import torch
from torch.fx import GraphModule, Node

aten = torch.ops.aten


def _call(graph, target, args, like: Node) -> Node:
    """Adds target(*args) with its meta["val"] computed on the fake tensors of its inputs."""
    node = graph.call_function(target, args)
    fake_args = [a.meta["val"] if isinstance(a, Node) else a for a in args]
    val = like.meta["val"]
    with val.fake_mode:
        node.meta["val"] = target(*fake_args)
    for key in ("nn_module_stack", "stack_trace"):
        if key in like.meta:
            node.meta[key] = like.meta[key]
    return node


def rewrite_for_annotation(model: GraphModule) -> GraphModule:
    """Every rewrite CircleQuantizer makes before annotating (transform_for_annotation).
    quantization_report repeats them on the float reference, so each quantized op has a float
    counterpart of the same name to compare with."""
    return decompose_attention(addmm_as_linear(model))


def addmm_as_linear(model: GraphModule) -> GraphModule:
    """addmm(bias, x, weight) with a constant [in, out] weight (GPT-2's Conv1D) as
    linear(x, weight.t(), bias), so it is quantized, exported and fused as the linear layer it is.
    convert_pt2e folds the transpose into the quantized weight."""
    graph = model.graph
    for node in list(graph.nodes):
        if node.target != aten.addmm.default or "val" not in node.meta:
            continue
        bias, x, weight = node.args[:3]
        scaled = {k: v for k, v in node.kwargs.items() if k in ("beta", "alpha") and v != 1}
        if scaled or len(node.args) > 3 or not isinstance(weight, Node) or weight.op != "get_attr":
            continue
        if not isinstance(bias, Node) or bias.meta["val"].dim() != 1:
            continue  # a 2-D bias is an add of a matrix, not a layer's bias
        with graph.inserting_before(node):
            weight_t = _call(graph, aten.t.default, (weight,), node)
            linear = _call(graph, aten.linear.default, (x, weight_t, bias), node)
        node.replace_all_uses_with(linear)
        graph.erase_node(node)
    graph.lint()
    model.recompile()
    return model


def decompose_attention(model: GraphModule) -> GraphModule:
    """Replaces each scaled_dot_product_attention by matmul, scale, mask, softmax, matmul."""
    graph = model.graph
    for node in list(graph.nodes):
        if node.target != aten.scaled_dot_product_attention.default:
            continue
        q, k, v = node.args[:3]
        kwargs = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"), node.args[3:]))
        kwargs.update(node.kwargs)
        if kwargs.get("dropout_p", 0.0) or kwargs.get("enable_gqa", False) or "val" not in node.meta:
            continue  # training-time dropout or grouped queries: left as is (reported in float)
        head_dim = q.meta["val"].shape[-1]
        scale = kwargs.get("scale") or 1.0 / math.sqrt(head_dim)
        with graph.inserting_before(node):
            scores = _call(graph, aten.matmul.default, (q, _call(graph, aten.transpose.int, (k, -2, -1), node)), node)
            scores = _call(graph, aten.mul.Tensor, (scores, scale), node)
            mask = kwargs.get("attn_mask")
            if kwargs.get("is_causal"):
                length, source = q.meta["val"].shape[-2], k.meta["val"].shape[-2]
                full = _call(graph, aten.full.default, ((length, source), -1e4), node)
                mask = _call(graph, aten.triu.default, (full, 1), node)
            if mask is not None:
                if mask.meta["val"].dtype == torch.bool:  # True = attend
                    # Additive: 0 where attended, the lowest float where not (softmax gives it
                    # weight 0, as SDPA's -inf; a fully masked row stays finite). Arithmetic
                    # rather than where(): the exporter and onert run CAST / SUB / MUL.
                    dtype = scores.meta["val"].dtype
                    mask = _call(graph, aten.to.dtype, (mask, dtype), node)
                    mask = _call(graph, aten.sub.Tensor, (mask, 1.0), node)
                    mask = _call(graph, aten.mul.Tensor, (mask, torch.finfo(dtype).max), node)
                scores = _call(graph, aten.add.Tensor, (scores, mask), node)
            probs = _call(graph, aten.softmax.int, (scores, -1), node)
            out = _call(graph, aten.matmul.default, (probs, v), node)
        node.replace_all_uses_with(out)
        graph.erase_node(node)
    graph.lint()
    model.recompile()
    return model
