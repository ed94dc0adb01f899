"""The ``circle_quant`` torch.compile backend.

    converted = convert_pt2e(prepared)                     # CircleQuantizer, uint8 or int8 preset
    fast = torch.compile(converted, backend="circle_quant")

pip registers the backend under the ``torch_dynamo_backends`` entry point, so the name works
without importing torch_circle. It rewrites dequantize → linear / conv2d (→ ReLU / ReLU6 /
hardtanh / clamp) (→ quantize) chains onto circle_quant's fused int8 ops with weights prepacked
at compile time, and leaves the rest to inductor (or runs it as is). ``last_report()`` says what
was fused; the same summary is logged at INFO on the ``torch_circle.backend`` logger.
Options: see ``torch_circle.backend.compiler``.
"""

from .compiler import CompiledGraph, circle_quant_backend, compile_graph
from .report import FusionReport, last_report, reports

__all__ = ["circle_quant_backend", "compile_graph", "CompiledGraph", "FusionReport", "last_report", "reports"]
