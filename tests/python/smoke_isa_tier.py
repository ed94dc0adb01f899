"""Smoke test of the Python package on whatever CPU runs it, meant for emulated lesser CPUs
(scripts/test_x86_tiers.sh runs it under `qemu-x86_64 -cpu Haswell`): the import, the automatic
kernel choice, quantize, and one fused linear and conv2d (3x3 and depthwise), each bit-identical to
the scalar reference kernels. Not a pytest module: it runs as a script, exits non-zero naming the
failed check.

    python tests/python/smoke_isa_tier.py [--expect-isa avx2]
"""

import argparse
import sys
import time

t0 = time.perf_counter()
import torch  # noqa: E402

import torch_circle  # noqa: E402
import torch.ao.quantization.fx._decomposed  # noqa: E402,F401  (quantized_decomposed reference)

cq = torch.ops.circle_quant


def fused_linear(x, w):
    plan = cq.linear_prepack(
        w,
        torch.full((w.shape[0],), 0.01),
        torch.zeros(w.shape[0], dtype=torch.int32),
        torch.randn(w.shape[0], generator=torch.Generator().manual_seed(1)),
        0.02,
        128,
        torch.uint8,
        0.05,
        100,
        torch.uint8,
        0.0,
        None,
        "float",
    )
    return cq.quantized_linear(x, *plan, torch.uint8)


def fused_conv(x, w, groups):
    c = w.shape[0]
    plan = cq.conv2d_prepack(
        w,
        torch.full((c,), 0.01),
        torch.zeros(c, dtype=torch.int32),
        None,
        [1, 1],
        [1, 1],
        [1, 1],
        groups,
        0.02,
        128,
        torch.uint8,
        0.05,
        100,
        torch.uint8,
    )
    return cq.quantized_conv2d(x, *plan, list(w.shape[2:]), [1, 1], [1, 1], [1, 1], groups, torch.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--expect-isa", help="the automatic kernel choice this CPU must lead to")
    args = parser.parse_args()
    isa = torch_circle.active_kernel_isa()
    print(f"import: {time.perf_counter() - t0:.1f} s; automatic kernel ISA: {isa}")
    failures = []
    if args.expect_isa and isa != args.expect_isa:
        failures.append(f"automatic ISA is {isa}, expected {args.expect_isa}")

    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 37, generator=g) * 4
    qargs = (0.03, 7, -128, 127, torch.int8)
    if not torch.equal(
        cq.quantize_per_tensor(x, *qargs), torch.ops.quantized_decomposed.quantize_per_tensor(x, *qargs)
    ):
        failures.append("quantize_per_tensor differs from quantized_decomposed")

    xl = torch.randint(0, 256, (5, 70), dtype=torch.uint8, generator=g)
    wl = torch.randint(-128, 128, (35, 70), dtype=torch.int8, generator=g)
    xc = torch.randint(0, 256, (2, 8, 9, 9), dtype=torch.uint8, generator=g)
    wc = torch.randint(-128, 128, (16, 8, 3, 3), dtype=torch.int8, generator=g)
    wd = torch.randint(-128, 128, (8, 1, 3, 3), dtype=torch.int8, generator=g)
    cases = {
        "quantized_linear": lambda: fused_linear(xl, wl),
        "quantized_conv2d 3x3": lambda: fused_conv(xc, wc, 1),
        "quantized_conv2d depthwise": lambda: fused_conv(xc, wd, 8),
    }
    for name, run in cases.items():
        automatic = run()
        with torch_circle.use_kernel_isa("scalar"):
            reference = run()
        same = torch.equal(automatic, reference)
        print(f"{name} on {isa}: {'bit-identical to scalar' if same else 'DIFFERS from scalar'}")
        if not same:
            failures.append(f"{name} on {isa} differs from the scalar reference")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(f"smoke test: {'FAILED' if failures else 'passed'} in {time.perf_counter() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
