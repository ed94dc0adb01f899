"""Writes a few tiny exported models into a directory, as the fuzzer's seed corpus.

    python tests/fuzz/make_seeds.py OUT_DIR

Real exporter output gives libFuzzer valid flatbuffers to mutate from (a verifier-clean start is
what lets it reach the bounds checks behind the verifier). Each seed is a few KB: a float conv
net and uint8 / int8 quantized ones (PT2E with CircleQuantizer), as .circle and .tflite (int8), plus a
dynamic-batch one (shape_signature). A seed whose export fails is reported and skipped; the exit
status is 0 when at least one seed was written.
"""

import sys
import warnings
from pathlib import Path

import torch
from torch import nn


class TinyConvNet(nn.Module):
    """conv -> relu -> depthwise conv -> relu6 -> max pool -> linear: small, but many op kinds."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = nn.functional.relu6(self.dw(x))
        x = self.pool(x)
        return self.fc(torch.flatten(x, 1))


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")

    import torch_circle
    from torch_circle.quantizer import CircleQuantizer  # before torchao: imports it quietly
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model = TinyConvNet().eval()
    x = torch.randn(1, 1, 8, 8)
    calibration = [torch.randn(1, 1, 8, 8) for _ in range(4)]

    def quantized(preset):
        prepared = prepare_pt2e(torch.export.export(model, (x,)).module(), CircleQuantizer(preset))
        with torch.no_grad():
            for batch in calibration:
                prepared(batch)
        return convert_pt2e(prepared)

    batch = torch.export.Dim("batch", min=1, max=8)
    jobs = [
        ("float_conv.circle", lambda: torch_circle.export(model, (x,))),
        ("float_conv.tflite", lambda: torch_circle.export(model, (x,), format="tflite")),
        (
            "float_conv_dynamic_batch.circle",
            lambda: torch_circle.export(model, (torch.randn(2, 1, 8, 8),), dynamic_shapes=({0: batch},)),
        ),
        ("uint8_conv.circle", lambda: torch_circle.export(quantized("uint8"), (x,))),
        ("int8_conv.circle", lambda: torch_circle.export(quantized("int8"), (x,))),
        # TFLite has no uint8 per-channel weights (ONE's convention): its quantized seed is int8.
        ("int8_conv.tflite", lambda: torch_circle.export(quantized("int8"), (x,), format="tflite")),
    ]
    written = 0
    for name, make in jobs:
        try:
            path = make().save(out / name)
        except Exception as e:  # one broken export must not cost the other seeds
            print(
                f"make_seeds: skipped {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                file=sys.stderr,
            )
            continue
        print(f"make_seeds: {path} ({path.stat().st_size:,} bytes)")
        written += 1
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
