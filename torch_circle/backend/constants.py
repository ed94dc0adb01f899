"""Values known at compile time: the weights, scales and biases the prepack ops need.

dynamo passes module parameters and buffers as graph inputs (placeholders); the example inputs
it hands the backend are those very tensors, marked static. An exported / converted GraphModule
holds them as get_attr constants instead. Small chains on top (quantize of a float weight when
convert_pt2e ran with fold_quantize=False, dequantize of an int32 bias, transposes) are evaluated
here with the real ops.
"""

from typing import Any, Dict, List, Set

import torch
from torch.fx import GraphModule, Node

from .matching import DEQUANTIZE, QUANTIZE_PER_CHANNEL, QUANTIZE_PER_TENSOR, NoMatch, is_call

aten = torch.ops.aten
_EVALUABLE = (
    DEQUANTIZE
    | QUANTIZE_PER_CHANNEL
    | QUANTIZE_PER_TENSOR
    | {
        aten.t.default,
        aten.permute.default,
        aten.transpose.int,
        aten.view.default,
        aten.reshape.default,
        aten.contiguous.default,
        aten.clone.default,
        aten.detach.default,
        aten._to_copy.default,
        aten.to.dtype,
        aten.squeeze.dim,
        aten.unsqueeze.default,
    }
)


def is_static_input(value: Any, node: Node) -> bool:
    """A placeholder that carries module state (a parameter or buffer), not a user input."""
    if not isinstance(value, torch.Tensor):
        return False
    if isinstance(value, torch.nn.Parameter) or getattr(value, "_dynamo_static_input_type", None):
        return True
    grapharg = node.meta.get("grapharg")
    source = getattr(grapharg, "source", None)
    name = source.name() if callable(getattr(source, "name", None)) else getattr(source, "name", "")
    return isinstance(name, str) and ("._buffers[" in name or "._parameters[" in name)


class Constants:
    def __init__(self, gm: GraphModule, example_inputs: List[Any]):
        self.gm = gm
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        self.inputs: Dict[Node, Any] = dict(zip(placeholders, example_inputs))
        self.index = {n: i for i, n in enumerate(placeholders)}
        self._cache: Dict[Node, Any] = {}
        self._deps: Dict[Node, Set[int]] = {}

    def value(self, x: Any) -> Any:
        """The compile-time value of a node (or a plain argument); NoMatch if it has none."""
        if isinstance(x, (list, tuple)):
            return type(x)(self.value(v) for v in x)
        if not isinstance(x, Node):
            return x
        if x in self._cache:
            return self._cache[x]
        deps: Set[int] = set()
        if x.op == "placeholder":
            value = self.inputs.get(x)
            if not is_static_input(value, x):
                raise NoMatch(f"{x.name} is a graph input, not a module constant")
            deps.add(self.index[x])
        elif x.op == "get_attr":
            value = self.gm
            for part in x.target.split("."):
                value = getattr(value, part)
        elif is_call(x, _EVALUABLE):
            args, kwargs = self.value(list(x.args)), {k: self.value(v) for k, v in x.kwargs.items()}
            for a in list(x.args) + list(x.kwargs.values()):
                for n in a if isinstance(a, (list, tuple)) else [a]:
                    if isinstance(n, Node):
                        deps |= self._deps[n]
            with torch.no_grad():
                value = x.target(*args, **kwargs)
        else:
            raise NoMatch(f"{x.name} ({x.target}) is computed at run time")
        self._cache[x], self._deps[x] = value, deps
        return value

    def dependencies(self, x: Any) -> Set[int]:
        """Indices of the graph inputs x's value was computed from (after value(x))."""
        return self._deps.get(x, set()) if isinstance(x, Node) else set()
