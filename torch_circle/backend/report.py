"""What the backend fused in each graph it compiled: torch_circle.backend.last_report()."""

import logging
from dataclasses import dataclass, field
from typing import List, Tuple

logger = logging.getLogger("torch_circle.backend")


@dataclass
class FusionReport:
    fused_linear: List[str] = field(default_factory=list)  # names of the replaced layer nodes
    fused_conv2d: List[str] = field(default_factory=list)  # conv1d included (run as conv2d)
    float_output: List[str] = field(default_factory=list)  # fused layers that end in float
    unmatched: List[Tuple[str, str]] = field(default_factory=list)  # (node, why) quantized layers left as is
    fused_adds: int = 0  # residual adds (+ activation) folded into a fused layer's output
    integer_ops: int = 0  # max pools / layout ops moved onto the integers (q / dq pairs removed)
    lookup_tables: int = 0  # elementwise chains between dequantize and quantize run as 256-entry tables
    softmaxes: int = 0  # dequantize → softmax → quantize run as quantized_softmax
    matmuls: int = 0  # matmuls of two dequantized activations (attention) run as quantized_matmul
    delegate: str = ""  # what runs the rest: "inductor" or "eager"
    requant: str = ""

    def add_fused(self, kind: str, name: str, float_output: bool) -> None:
        (self.fused_linear if kind == "linear" else self.fused_conv2d).append(name)
        if float_output:
            self.float_output.append(name)

    @property
    def fused(self) -> int:
        return len(self.fused_linear) + len(self.fused_conv2d)

    def summary(self) -> str:
        text = (
            f"circle_quant: fused {len(self.fused_linear)} linear, {len(self.fused_conv2d)} conv2d "
            f"({len(self.float_output)} with float output; requant={self.requant}); "
            f"{self.fused_adds} residual add(s) fused into them; "
            f"{self.integer_ops} pooling / layout op(s) on integers; "
            f"{self.lookup_tables} elementwise chain(s) as lookup tables; "
            f"{self.softmaxes} softmax(es) on integers; "
            f"{self.matmuls} activation matmul(s) on integers; "
            f"the rest runs on {self.delegate}"
        )
        if self.unmatched:
            text += f"; {len(self.unmatched)} quantized layer(s) left unfused: " + "; ".join(
                f"{name} ({why})" for name, why in self.unmatched
            )
        return text


_reports: List[FusionReport] = []


def record(report: FusionReport) -> None:
    _reports.append(report)
    del _reports[:-64]  # a long-running process recompiling often should not grow without bound
    logger.info(report.summary())


def last_report() -> FusionReport:
    """The report of the graph the backend compiled last (one per graph; graph breaks make more)."""
    if not _reports:
        raise RuntimeError("the circle_quant backend has not compiled a graph in this process yet")
    return _reports[-1]


def reports() -> List[FusionReport]:
    """Reports of the recent graphs, oldest first."""
    return list(_reports)
