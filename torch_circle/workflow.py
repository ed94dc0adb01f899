"""The steps around prepare_pt2e / convert_pt2e: calibration with progress, a per-layer accuracy
report, and lowering a converted graph onto the circle_quant ops."""
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

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


def _call(model, batch):
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def calibrate(model: torch.nn.Module, batches: Iterable, *, max_batches: Optional[int] = None,
              progress: bool = True, label: str = "calibrating") -> int:
    """Runs calibration batches through a prepared model (no gradients) and returns their count.

    A batch may be a tensor, a tuple / list of positional inputs, or a dict of keyword inputs; a
    DataLoader of (inputs, labels) pairs works with ``batches=(x for x, _ in loader)``. A progress
    bar goes to stderr unless ``progress=False``.
    """
    total = max_batches if max_batches is not None else (len(batches) if hasattr(batches, "__len__") else None)
    bar = _Progress(total, label, progress)
    count = 0
    with torch.no_grad():
        for batch in batches:
            if max_batches is not None and count >= max_batches:
                break
            _call(model, batch)
            count += 1
            bar.update(count)
    bar.update(count, final=True)
    if count == 0:
        raise ValueError("calibrate: no batch was given; the observers would stay empty")
    return count


# --- per-layer report --------------------------------------------------------------------------

_QUANTIZE = {_qd.quantize_per_tensor.default, _cq.quantize_per_tensor.default}
_DEQUANTIZE = {_qd.dequantize_per_tensor.default, _cq.dequantize_per_tensor.default,
               _qd.dequantize_per_channel.default, _cq.dequantize_per_channel.default}


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


@dataclass
class QuantizationReport:
    """SQNR (dB) of each quantized op's output against the float model, in graph order."""

    rows: List[Tuple[str, str, float]] = field(default_factory=list)  # (node, op, sqnr_db)

    def table(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [4]) + 2
        op_width = max([len(r[1]) for r in self.rows] + [2]) + 2
        lines = [f"{'node':<{width}}{'op':<{op_width}}{'SQNR dB':>9}"]
        lines += [f"{n:<{width}}{op:<{op_width}}{s:>9.1f}" for n, op, s in self.rows]
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


def quantization_report(float_model: torch.nn.Module, converted: GraphModule,
                        inputs: Sequence) -> QuantizationReport:
    """Compares every quantized op of ``converted`` with the same op of ``float_model``.

    ``float_model`` is the model before quantization (an nn.Module or its exported GraphModule);
    ``inputs`` are batches as for ``calibrate``. Ops are matched by their node names, which
    torch.export makes deterministic; batch norms are folded into convolutions first, as
    prepare_pt2e does, so the folded outputs compare like for like.
    """
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    batches = list(inputs)
    if not batches:
        raise ValueError("quantization_report: no input batch was given")
    reference = float_model
    if not isinstance(reference, GraphModule):
        first = batches[0] if isinstance(batches[0], (tuple, list)) else (batches[0],)
        reference = torch.export.export(float_model.eval(), tuple(first)).module()
    _fuse_conv_bn_(reference)
    carriers = _quantized_outputs(converted)
    signal: Dict[str, float] = {}
    noise: Dict[str, float] = {}
    with torch.no_grad():
        for batch in batches:
            args = batch if isinstance(batch, (tuple, list)) else (batch,)
            ref = _Recorder(reference, set(carriers))
            ref.run(*args)
            quant = _Recorder(converted, set(carriers.values()))
            quant.run(*args)
            for name, carrier in carriers.items():
                if name in ref.values and ref.values[name].shape == quant.values[carrier].shape:
                    r, q = ref.values[name], quant.values[carrier]
                    signal[name] = signal.get(name, 0.0) + r.pow(2).sum().item()
                    noise[name] = noise.get(name, 0.0) + (r - q).pow(2).sum().item()
    ops = {n.name: str(n.target).replace("aten.", "").replace(".default", "")
           for n in converted.graph.nodes}
    rows = [(name, ops[name], math.inf if noise[name] == 0 else
             10 * math.log10(max(signal[name], 1e-30) / noise[name]))
            for name in carriers if name in noise]
    return QuantizationReport(rows)


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
