"""CircleQuantizer: a PT2E Quantizer for the Circle conventions.

m = torch.export.export(model.eval(), example_inputs).module()
m = prepare_pt2e(m, CircleQuantizer(preset="uint8"))   # or "int8", "int16"
for x in calibration_data: m(x)
m = convert_pt2e(m)
"""

import os
import warnings
from typing import Dict, List, Optional, Tuple, Type

import torch
import torchao
from torch.fx import GraphModule, Node
from torchao.quantization.pt2e.quantizer import Quantizer

from . import patterns
from .decompose import rewrite_for_annotation
from .config import ConfigOrPreset, QuantizationConfig, preset as make_preset


def _type_name(module_type: Type[torch.nn.Module]) -> str:
    return f"{module_type.__module__}.{module_type.__qualname__}"


def _module_stack(node: Node) -> List[Tuple[str, str]]:
    """(qualified name, type name) of the modules that produced node, outermost first."""
    stack = node.meta.get("nn_module_stack") or {}
    out = []
    for fqn, module_type in stack.values():
        out.append((fqn, module_type if isinstance(module_type, str) else _type_name(module_type)))
    return out


_LIBRARY_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (torch, torchao))


def _source_line(node: Node) -> str:
    """The user's line that created node: the innermost stack frame outside torch and torchao."""
    trace = node.meta.get("stack_trace") or ""
    frames = [line.strip() for line in trace.splitlines() if line.strip().startswith("File")]
    user = [f for f in frames if not any(f'"{d}' in f for d in _LIBRARY_DIRS)]
    return (user or frames or ["no source location recorded"])[-1]


class CircleQuantizer(Quantizer):
    """Annotates an exported graph for the uint8, int8 or int16 Circle convention.

    ``set_global`` / ``set_module_name`` / ``set_module_type`` choose the configuration per region,
    as torchao's quantizers do, and ``set_operator_type`` per aten op (``torch.ops.aten.softmax``:
    every overload; ``torch.ops.aten.softmax.int``: that one); pass ``None`` to leave them in float.
    A module-name setting wins over a module-type one, which wins over an operator-type one, which
    wins over the global one; the innermost module decides. So ``set_operator_type`` refines the
    global setting (int16 softmax in a uint8 model) without reaching into regions set explicitly.
    """

    def __init__(self, preset: str = "uint8", observer: str = "histogram", qat: bool = False):
        super().__init__()
        self.observer, self.qat = observer, qat
        self.global_config: Optional[QuantizationConfig] = self._config(preset)
        self.module_name_config: Dict[str, Optional[QuantizationConfig]] = {}
        self.module_type_config: Dict[str, Optional[QuantizationConfig]] = {}
        self.operator_type_config: Dict[object, Optional[QuantizationConfig]] = {}
        self.left_in_float: Dict[str, List[str]] = {}  # op -> nodes, filled by annotate()

    def _config(self, value: ConfigOrPreset) -> Optional[QuantizationConfig]:
        """A preset name (with this quantizer's observer and QAT choice), a config, or None."""
        return make_preset(value, self.observer, self.qat) if isinstance(value, str) else value

    def set_global(self, config: ConfigOrPreset) -> "CircleQuantizer":
        self.global_config = self._config(config)
        return self

    def set_module_name(self, name: str, config: ConfigOrPreset) -> "CircleQuantizer":
        self.module_name_config[name] = self._config(config)
        return self

    def set_module_type(self, module_type: Type[torch.nn.Module], config: ConfigOrPreset) -> "CircleQuantizer":
        self.module_type_config[_type_name(module_type)] = self._config(config)
        return self

    def set_operator_type(self, op, config: ConfigOrPreset) -> "CircleQuantizer":
        if not isinstance(op, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
            raise TypeError(
                f"set_operator_type: expected an aten op such as torch.ops.aten.softmax or "
                f"torch.ops.aten.softmax.int (what an exported graph calls), got {op!r}"
            )
        self.operator_type_config[op] = self._config(config)
        return self

    def config_for(self, node: Node) -> Optional[QuantizationConfig]:
        stack = _module_stack(node)
        for fqn, _ in reversed(stack):
            for name, config in self.module_name_config.items():
                if fqn == name or fqn.startswith(name + "."):
                    return config
        for _, type_name in reversed(stack):
            if type_name in self.module_type_config:
                return self.module_type_config[type_name]
        for op in (node.target, getattr(node.target, "overloadpacket", None)):
            if op in self.operator_type_config:
                return self.operator_type_config[op]
        return self.global_config

    def transform_for_annotation(self, model: GraphModule) -> GraphModule:
        return rewrite_for_annotation(model)

    def annotate(self, model: GraphModule) -> GraphModule:
        if not self.qat:
            _check_inference_graph(model)
        self.left_in_float = {}
        patterns.mark_dataflow(model.graph)
        for node in model.graph.nodes:
            if (
                node.op != "call_function"
                or patterns.is_annotated(node)
                or not patterns.depends_on_input(node)
                or patterns.builds_attention_mask(node)
                # integer arithmetic (lengths, positions: Wav2Vec2's `lengths - 1`) is exact as it is
                or not patterns.produces_float(node)
            ):
                continue
            config = self.config_for(node)
            if config is None:
                continue
            rule = patterns.rule_for(node)
            if rule is not None:
                rule(node, config)
            if (
                not patterns.is_annotated(node)
                and node.target not in patterns.IGNORED
                and patterns.produces_float(node)
            ):
                self.left_in_float.setdefault(str(node.target), []).append(f"{node.name} ({_source_line(node)})")
        if self.left_in_float:
            listing = "; ".join(f"{op}: {', '.join(nodes)}" for op, nodes in self.left_in_float.items())
            warnings.warn(f"CircleQuantizer left these ops in float (no quantization rule): {listing}", stacklevel=2)
        return model

    def validate(self, model: GraphModule) -> None:
        pass

    def prepare_obs_or_fq_callback(self, model: GraphModule, edge_or_node_to_obs_or_fq) -> None:
        # Tell each observer what it observes, so an uncalibrated one can say so at convert time,
        # and who its peers are, so that message can list every uncalibrated observer at once.
        peers = []
        for edge_or_node, observer in edge_or_node_to_obs_or_fq.items():
            observer = getattr(observer, "activation_post_process", observer)  # QAT: the observer
            if getattr(observer, "observed_name", "unset") is None:
                peers.append(observer)
                observer.peers = peers
                if isinstance(edge_or_node, tuple):
                    producer, consumer = edge_or_node
                    observer.observed_name = f"input '{producer.name}' of '{consumer.name}' ({_source_line(consumer)})"
                else:
                    observer.observed_name = f"output of '{edge_or_node.name}' ({_source_line(edge_or_node)})"


# Ops whose arguments say the graph was exported in training mode: (target, index of the flag).
_TRAINING_FLAGS = {
    torch.ops.aten.batch_norm.default: 5,
    torch.ops.aten.dropout.default: 2,
    torch.ops.aten._native_batch_norm_legit.default: 5,
}


def _check_inference_graph(model: GraphModule) -> None:
    """Post-training quantization of a training-mode graph calibrates the wrong function."""
    for node in model.graph.nodes:
        index = _TRAINING_FLAGS.get(node.target)
        if index is not None and len(node.args) > index and node.args[index] is True:
            raise ValueError(
                f"CircleQuantizer: '{node.name}' ({node.target}, {_source_line(node)}) runs in "
                "training mode: call model.eval() before torch.export for post-training "
                "quantization, or use CircleQuantizer(qat=True) with prepare_qat_pt2e"
            )
