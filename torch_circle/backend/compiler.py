"""The circle_quant torch.compile backend: fuse the quantized layers, hand over the rest.

    torch.compile(converted, backend="circle_quant")
    torch.compile(converted, backend="circle_quant", options={"requant": "fixed_point"})

Options (torch.compile's ``options=``):
    requant       "float" (default): the PyTorch rounding, within one quantization step of the
                  converted graph run eagerly; "fixed_point": TFLite / ONE's, bit-exact with the
                  Circle runtimes (docs/numerics.md).
    delegate      what runs everything that is not fused: "inductor", "eager" (the graph as is, on
                  the fast direct bindings), or "auto" (default): inductor when float compute is
                  left (softmax, layer norm, GELU, residual adds...), eager when only
                  quantize / dequantize / layout ops remain, where inductor adds nothing but
                  call overhead.
    float_output  fuse dequantize → linear / conv2d whose result stays float (default True).
Any other key is an inductor config patch (like backend="inductor"'s options).

Weights are frozen at compile time (prepacked once, like inductor's freezing). A call checks
that each weight it was built from is still the same tensor at the same version, and prepacks
again if not, so load_state_dict() after compiling is picked up.
"""

import copy
import operator
import warnings
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.fx import GraphModule

from .constants import Constants
from .matching import DEQUANTIZE, QUANTIZE_PER_CHANNEL, QUANTIZE_PER_TENSOR, is_call, target_of
from .report import FusionReport, record
from .rewrite import fuse

_OWN_OPTIONS = {
    "requant": ("float", "fixed_point"),
    "delegate": ("auto", "inductor", "eager"),
    "float_output": (True, False),
}
_warned_nothing = False
_VERSION = operator.attrgetter("_version")


def _parse_options(options: Optional[Dict[str, Any]]):
    options = dict(options or {})
    own = {"requant": "float", "delegate": "auto", "float_output": True}
    for key, allowed in _OWN_OPTIONS.items():
        if key in options:
            value = options.pop(key)
            if value not in allowed:
                raise ValueError(f"circle_quant backend: options[{key!r}] must be one of {allowed}, got {value!r}")
            own[key] = value
    return own, options  # the rest: inductor config patches


# Nodes inductor cannot improve on: they either are our kernels or copy / reinterpret tensors.
_NO_COMPUTE = {
    getattr(torch.ops.circle_quant, name).default
    for name in (
        "quantized_linear",
        "quantized_linear_add",
        "quantized_conv2d",
        "quantized_conv2d_add",
        "quantized_matmul",
    )
}
_NO_COMPUTE |= DEQUANTIZE | QUANTIZE_PER_TENSOR | QUANTIZE_PER_CHANNEL
_LAYOUT = {
    "view",
    "reshape",
    "flatten",
    "permute",
    "transpose",
    "contiguous",
    "size",
    "getitem",
    "squeeze",
    "unsqueeze",
    "t",
    "expand",
    "_unsafe_view",
    "clone",
    "detach",
    "alias",
}


def _has_float_compute(gm: GraphModule) -> bool:
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if is_call(node, _NO_COMPUTE):
            continue
        name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        if name in _LAYOUT:
            continue
        return True
    return False


def _eager_fast_paths(gm: GraphModule) -> None:
    """Points the eager graph's quantize / dequantize / fused calls at the direct bindings of
    torch_circle._C (the same kernels, ~1 us less Python per call; bit-identical to
    quantized_decomposed, docs/numerics.md)."""
    from .. import _C

    qd, cq = torch.ops.quantized_decomposed, torch.ops.circle_quant
    # The ops torch_circle._C binds directly (csrc/python/bindings.cpp).
    names = [
        "quantize_per_tensor",
        "dequantize_per_tensor",
        "quantize_per_channel",
        "dequantize_per_channel",
        "quantized_linear",
    ]
    fast = {}
    for name in names:
        for ns in (qd, cq):
            if hasattr(ns, name):
                fast[getattr(ns, name).default] = getattr(_C, name)
    for node in gm.graph.nodes:
        if is_call(node, fast) and not node.kwargs:
            node.target = fast[target_of(node)]
    gm.recompile()


def _copy_graph(graph: torch.fx.Graph) -> torch.fx.Graph:
    with warnings.catch_warnings():  # torch's own pytree specs warn about a deprecated isinstance
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(graph)


def _lift_constants(gm: GraphModule) -> List[torch.Tensor]:
    """Turns the get_attr constants into trailing graph inputs, which is how inductor expects a
    dynamo graph's state; returns their values (appended to every call's arguments)."""
    values = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    last_placeholder = placeholders[-1] if placeholders else None
    for node in list(gm.graph.nodes):
        if node.op != "get_attr" or node.target not in gm._buffers:
            continue
        value = getattr(gm, node.target)
        where = (
            gm.graph.inserting_after(last_placeholder)
            if last_placeholder is not None
            else gm.graph.inserting_before(next(iter(gm.graph.nodes)))
        )
        with where:
            placeholder = gm.graph.placeholder(node.target.lstrip("_"))
        placeholder.meta["val"] = placeholder.meta["example_value"] = value
        last_placeholder = placeholder
        node.replace_all_uses_with(placeholder)
        gm.graph.erase_node(node)
        values.append(value)
    gm.recompile()
    return values


class CompiledGraph:
    """One dynamo graph compiled by the backend; dynamo calls it with the graph's inputs."""

    def __init__(
        self,
        gm: GraphModule,
        example_inputs: List[Any],
        own: Dict[str, Any],
        inductor_config: Dict[str, Any],
        mode: Optional[str],
    ):
        self.original, self.graph = gm, _copy_graph(gm.graph)
        self.own, self.inductor_config, self.mode = own, inductor_config, mode
        self._build(example_inputs)

    def _build(self, inputs: List[Any]) -> None:
        global _warned_nothing
        gm = GraphModule(self.original, _copy_graph(self.graph))
        report = FusionReport(requant=self.own["requant"])
        used = fuse(gm, Constants(gm, inputs), self.own["requant"], self.own["float_output"], report)
        delegate = self.own["delegate"]
        if delegate == "auto":
            delegate = "inductor" if _has_float_compute(gm) else "eager"
        report.delegate = delegate
        if delegate == "inductor":
            from torch._inductor.compile_fx import compile_fx

            patches = dict(self.inductor_config)
            if self.mode and self.mode != "default":
                patches.update(torch._inductor.list_mode_options(self.mode))
            constants = _lift_constants(gm)
            inner = compile_fx(gm, list(inputs) + constants, config_patches=patches or None)
            fn = lambda *args: inner(*args, *constants)  # noqa: E731
        else:
            if self.inductor_config:
                raise ValueError(
                    f"circle_quant backend: unknown options {sorted(self.inductor_config)} "
                    "(inductor config patches need delegate='inductor')"
                )
            _eager_fast_paths(gm)
            # The prepacked tensors as plain instance attributes: `self.<name>` in the generated
            # code then skips Module.__getattr__ (~0.4 us per access).
            for node in gm.graph.nodes:
                if node.op == "get_attr" and node.target in gm._buffers:
                    gm.__dict__[node.target] = gm._buffers[node.target]
            fn = gm.forward
        self.gm, self.fn, self.report = gm, fn, report
        # Guards on the tensors the plans were built from, evaluated with C-level iterators (about
        # 0.05 us per tensor): the same objects, at the same version.
        indices = sorted(used)
        self._pick = (
            operator.itemgetter(*indices)
            if len(indices) > 1
            else ((lambda args, i=indices[0]: (args[i],)) if indices else (lambda args: ()))
        )
        self._tensors = tuple(inputs[i] for i in indices)
        try:
            self._versions = tuple(t._version for t in self._tensors)
        except RuntimeError:  # inference tensors have no version counter: identity only
            self._versions = None
        record(report)
        if report.fused == 0 and not report.unmatched and not _warned_nothing:
            _warned_nothing = True
            warnings.warn(
                "circle_quant backend: the graph has no quantized linear / conv2d (is it a "
                "convert_pt2e model?); running it on " + delegate,
                stacklevel=2,
            )

    def __call__(self, *args):
        current = self._pick(args)
        if not all(map(operator.is_, current, self._tensors)) or (
            self._versions is not None and tuple(map(_VERSION, current)) != self._versions
        ):
            self._build(list(args))  # weights were replaced or updated in place: prepack again
        return self.fn(*args)


def compile_graph(
    gm: GraphModule, example_inputs: List[Any], options: Optional[Dict[str, Any]] = None, mode: Optional[str] = None
) -> CompiledGraph:
    """The backend's work on one graph, returning the CompiledGraph (its rewritten module is
    `.gm`, its report `.report`) rather than just a callable."""
    own, inductor_config = _parse_options(options)
    return CompiledGraph(gm, example_inputs, own, inductor_config, mode)


def circle_quant_backend(
    gm: GraphModule, example_inputs: List[Any], options: Optional[Dict[str, Any]] = None, mode: Optional[str] = None
) -> Callable:
    """torch.compile backend "circle_quant" (see the module docstring for the options)."""
    compiled = compile_graph(gm, example_inputs, options, mode)
    # Nothing prepacked from graph inputs (nothing fused, or constants held by the graph itself):
    # no weight to guard, so the compiled function itself is called.
    return compiled if compiled._tensors else compiled.fn
