"""The steps around prepare_pt2e / convert_pt2e: calibration with progress, a per-layer accuracy
report, and lowering a converted graph onto the circle_quant ops."""

import copy
import inspect
import math
import operator
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.ao.quantization.fx._decomposed  # noqa: F401  registers torch.ops.quantized_decomposed
from torch.fx import GraphModule, Interpreter, Node

_qd = torch.ops.quantized_decomposed
_cq = torch.ops.circle_quant


# --- calibration -------------------------------------------------------------------------------


class _Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal, else one final line)."""

    def __init__(self, total: Optional[int], label: str, enabled: bool):
        self.total, self.label, self.enabled = total, label, enabled
        self.start = self.last = time.perf_counter()
        self.interactive = enabled and sys.stderr.isatty()

    def update(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not final and (not self.interactive or now - self.last < 0.1)):
            return
        self.last = now
        elapsed = now - self.start
        if self.total:
            filled = int(30 * done / self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total}"
        else:
            bar = f"{done}"
        line = f"{self.label} {bar} batches, {elapsed:.1f} s"
        sys.stderr.write(("\r" if self.interactive else "") + line + ("\n" if final else ""))
        sys.stderr.flush()


def _positional_input_count(model) -> Optional[int]:
    """How many positional inputs model's forward takes, or None if it takes *args."""
    try:
        parameters = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return None
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)


def _model_inputs(batch, input_count: Optional[int], input_fn: Optional[Callable]):
    """The positional and keyword inputs a batch stands for (see calibrate)."""
    if input_fn is not None:
        batch = input_fn(batch)
    if isinstance(batch, dict):
        return (), batch
    if isinstance(batch, (tuple, list)):
        if input_fn is None and input_count is not None and len(batch) > input_count:
            batch = batch[:input_count]  # (inputs..., target...): the extra items are labels
        return tuple(batch), {}
    return (batch,), {}


def calibrate(
    model: torch.nn.Module,
    batches: Iterable,
    *,
    max_batches: Optional[int] = None,
    progress: bool = True,
    label: str = "calibrating",
    input_fn: Optional[Callable[[Any], Any]] = None,
) -> int:
    """Runs calibration batches through a prepared model (no gradients) and returns their count.

    A batch may be a tensor, a tuple / list of positional inputs, or a dict of keyword inputs.
    A tuple / list with more items than the model's forward takes positional inputs is an
    (inputs..., target...) batch, as a DataLoader of (x, y) pairs yields: the leading items are
    the inputs, the rest is ignored. ``input_fn`` maps each batch to the model's inputs instead
    (a tensor, tuple or dict), for any other layout, e.g. ``input_fn=lambda b: b["pixels"]``.
    A progress bar goes to stderr unless ``progress=False``.
    """
    total = max_batches if max_batches is not None else (len(batches) if hasattr(batches, "__len__") else None)
    bar = _Progress(total, label, progress)
    input_count = _positional_input_count(model)
    count = 0
    with torch.no_grad():
        for batch in batches:
            if max_batches is not None and count >= max_batches:
                break
            args, kwargs = _model_inputs(batch, input_count, input_fn)
            try:
                model(*args, **kwargs)
            except ValueError as error:  # an observer's "contains NaN": maybe an Inf earlier
                if "NaN" in str(error):
                    _blame_first_inf(model, args, kwargs, count, error)
                raise
            count += 1
            bar.update(count)
    bar.update(count, final=True)
    if count == 0:
        raise ValueError("calibrate: no batch was given; the observers would stay empty")
    return count


class _NonFinite(Exception):
    def __init__(self, node: Node, value: torch.Tensor):
        self.node, self.value = node, value


class _FindNonFinite(Interpreter):
    """Runs a graph until the first node whose output holds NaN or Inf."""

    def run_node(self, n: Node) -> Any:
        value = super().run_node(n)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            raise _NonFinite(n, value)
        return value


def _blame_first_inf(model, args, kwargs, batch_index: int, error: ValueError) -> None:
    """An observer reported NaN. Inf + (-Inf), 0 · Inf and the like make NaN from an Inf that
    appeared earlier (an input, an overflowing layer), and that is the place to report. Re-runs
    the batch node by node (only on this error path) and raises a ValueError naming the first
    node or input holding Inf; returns when the first non-finite value is a NaN (the observer's
    message is then accurate) or the search cannot run."""
    try:
        if isinstance(model, GraphModule) and not kwargs:
            _FindNonFinite(model).run(*args)
        else:  # only the inputs can be checked
            for x in [*args, *kwargs.values()]:
                if isinstance(x, torch.Tensor) and x.is_floating_point() and not torch.isfinite(x).all():
                    raise _NonFinite(None, x)
        return
    except _NonFinite as found:
        where, value = found.node, found.value
    except Exception:  # noqa: BLE001  the original error stands
        return
    inf = torch.isinf(value)
    if not inf.any():
        return
    index = tuple(int(i) for i in inf.nonzero()[0])
    place = (
        "an input"
        if where is None
        else f"input '{where.name}'"
        if where.op == "placeholder"
        else f"node '{where.name}' ({where.target})"
    )
    raise ValueError(
        f"calibrate: batch {batch_index}: {place} of shape {list(value.shape)} holds "
        f"{int(inf.sum())} Inf value(s), the first at index {index}; the NaN an observer "
        f"reported later comes from it. Quantization needs finite data"
    ) from error


# --- per-layer report --------------------------------------------------------------------------

_QUANTIZE = {_qd.quantize_per_tensor.default, _cq.quantize_per_tensor.default}
_DEQUANTIZE = {
    _qd.dequantize_per_tensor.default,
    _cq.dequantize_per_tensor.default,
    _qd.dequantize_per_channel.default,
    _cq.dequantize_per_channel.default,
}


class _Recorder(Interpreter):
    def __init__(self, module: GraphModule, names: Optional[set] = None):
        super().__init__(module)
        self.names, self.values = names, {}

    def run_node(self, n: Node) -> Any:
        value = super().run_node(n)
        if isinstance(value, torch.Tensor) and (self.names is None or n.name in self.names):
            self.values[n.name] = value.detach().float()
        return value


def _quantized_outputs(converted: GraphModule) -> Dict[str, str]:
    """op node name -> name of the dequantize that carries its quantized output."""
    out = {}
    for node in converted.graph.nodes:
        if node.op != "call_function" or node.target in _QUANTIZE | _DEQUANTIZE:
            continue
        for q in node.users:
            if q.target in _QUANTIZE:
                dq = next((u for u in q.users if u.target in _DEQUANTIZE), None)
                if dq is not None:
                    out[node.name] = dq.name
    return out


def _op_label(node: Node) -> str:
    """The op's short name; a tuple element (max.dim's values) is labelled with its op."""
    if node.target is operator.getitem and isinstance(node.args[0], Node):
        return f"{_op_label(node.args[0])}[{node.args[1]}]"
    return str(node.target).replace("aten.", "").replace(".default", "")


@dataclass
class QuantizationReport:
    """SQNR (dB) of each quantized op's output against the float model, in graph order.

    ``not_compared`` lists quantized ops that have no float counterpart to compare with, and
    why; ``table()`` prints them under the SQNR rows, so every quantized op shows up."""

    rows: List[Tuple[str, str, float]] = field(default_factory=list)  # (node, op, sqnr_db)
    not_compared: List[Tuple[str, str, str]] = field(default_factory=list)  # (node, op, reason)

    def table(self) -> str:
        everything = self.rows + self.not_compared
        width = max([len(r[0]) for r in everything] + [4]) + 2
        op_width = max([len(r[1]) for r in everything] + [2]) + 2
        lines = [f"{'node':<{width}}{'op':<{op_width}}{'SQNR dB':>9}"]
        lines += [f"{n:<{width}}{op:<{op_width}}{s:>9.1f}" for n, op, s in self.rows]
        lines += [f"{n:<{width}}{op:<{op_width}}{'-':>9}  not compared: {why}" for n, op, why in self.not_compared]
        if self.rows:
            worst = min(self.rows, key=lambda r: r[2])
            lines.append(f"worst: {worst[0]} ({worst[2]:.1f} dB)")
        return "\n".join(lines)

    def plot(self, path: str) -> str:
        """Saves a bar chart of the per-layer SQNR to ``path`` (needs matplotlib); returns it."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError as error:
            raise ImportError("QuantizationReport.plot needs matplotlib: pip install matplotlib") from error
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(self.rows)), 4))
        ax.bar(range(len(self.rows)), [r[2] for r in self.rows], color="tab:blue")
        ax.set_xticks(range(len(self.rows)), [r[0] for r in self.rows], rotation=90, fontsize=7)
        ax.set_ylabel("SQNR vs float (dB)")
        ax.set_title("Per-layer quantization error (higher is better)")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _float_reference(float_model: torch.nn.Module, example_args: Tuple) -> GraphModule:
    """The float graph quantization started from, rewritten as prepare_pt2e rewrote it before
    annotation: batch norms folded into convolutions, and CircleQuantizer's own rewrites
    (attention decomposed into matmul / softmax / matmul), so quantized ops and float ops
    correspond name for name."""
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_
    from .quantizer.decompose import rewrite_for_annotation

    if isinstance(float_model, GraphModule):
        reference = copy.deepcopy(float_model)  # the rewrites below work in place
    else:
        reference = torch.export.export(float_model.eval(), example_args).module()
    _fuse_conv_bn_(reference)
    return rewrite_for_annotation(reference)


def quantization_report(
    float_model: torch.nn.Module,
    converted: GraphModule,
    inputs: Sequence,
    *,
    input_fn: Optional[Callable[[Any], Any]] = None,
) -> QuantizationReport:
    """Compares every quantized op of ``converted`` with the same op of ``float_model``.

    ``float_model`` is the model before quantization (an nn.Module or its exported GraphModule);
    ``inputs`` are batches as for ``calibrate`` (positional inputs; ``input_fn`` as there). Ops
    are matched by their node names, which torch.export makes deterministic, after the float
    graph gets the rewrites prepare_pt2e made (conv + batch norm folding, the quantizer's
    attention decomposition). A quantized op without a float op of the same name, target and
    shape is listed in ``not_compared`` with the reason.
    """
    batches = list(inputs)
    if not batches:
        raise ValueError("quantization_report: no input batch was given")
    input_count = _positional_input_count(converted)
    arg_batches = []
    for batch in batches:
        args, kwargs = _model_inputs(batch, input_count, input_fn)
        if kwargs:
            raise ValueError(
                "quantization_report: batches must be positional inputs, not dicts; use input_fn to order them"
            )
        arg_batches.append(args)
    reference = _float_reference(float_model, arg_batches[0])
    carriers = _quantized_outputs(converted)
    quantized_nodes = {n.name: n for n in converted.graph.nodes}
    float_nodes = {n.name: n for n in reference.graph.nodes}
    signal: Dict[str, float] = {}
    noise: Dict[str, float] = {}
    unmatched: Dict[str, str] = {}
    for name in carriers:
        float_node = float_nodes.get(name)
        if float_node is None:
            unmatched[name] = "the float graph has no op of this name"
        elif float_node.target != quantized_nodes[name].target:
            unmatched[name] = f"the float op of this name is {_op_label(float_node)}"
    compared = [name for name in carriers if name not in unmatched]
    with torch.no_grad():
        for args in arg_batches:
            ref = _Recorder(reference, set(compared))
            ref.run(*args)
            quant = _Recorder(converted, {carriers[name] for name in compared})
            quant.run(*args)
            for name in compared:
                r, q = ref.values.get(name), quant.values.get(carriers[name])
                if r is None or q is None or r.shape != q.shape:
                    unmatched[name] = (
                        f"float output {tuple(r.shape) if r is not None else None} "
                        f"vs quantized {tuple(q.shape) if q is not None else None}"
                    )
                    continue
                signal[name] = signal.get(name, 0.0) + r.pow(2).sum().item()
                noise[name] = noise.get(name, 0.0) + (r - q).pow(2).sum().item()
    rows, not_compared = [], []
    for name in carriers:
        op = _op_label(quantized_nodes[name])
        if name in unmatched:
            not_compared.append((name, op, unmatched[name]))
        else:
            sqnr = math.inf if noise[name] == 0 else 10 * math.log10(max(signal[name], 1e-30) / noise[name])
            rows.append((name, op, sqnr))
    return QuantizationReport(rows, not_compared)


# --- lowering ----------------------------------------------------------------------------------

_LOWERING = {
    _qd.quantize_per_tensor.default: _cq.quantize_per_tensor.default,
    _qd.dequantize_per_tensor.default: _cq.dequantize_per_tensor.default,
    _qd.quantize_per_channel.default: _cq.quantize_per_channel.default,
    _qd.dequantize_per_channel.default: _cq.dequantize_per_channel.default,
}


def lower(model: GraphModule) -> GraphModule:
    """Rewrites a converted PT2E graph's quantize / dequantize ops onto the circle_quant ops.

    The arguments are the same and so are the results, bit for bit (docs/numerics.md); the
    circle_quant kernels are faster and report NaN inputs. Returns the model, modified in place.
    """
    for node in model.graph.nodes:
        if node.op == "call_function" and node.target in _LOWERING:
            node.target = _LOWERING[node.target]
    model.recompile()
    return model
