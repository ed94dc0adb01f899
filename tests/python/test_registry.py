"""The circle_quant namespace as a whole: every tensor op has CPU and Meta kernels and is opchecked."""

import importlib
from pathlib import Path

import torch

# Every test module that defines OPCHECK_CASES (found by name, so new op families join by
# defining theirs).
OPCHECK_MODULES = [
    importlib.import_module(p.stem)
    for p in sorted(Path(__file__).parent.glob("test_*.py"))
    if "\nOPCHECK_CASES = " in p.read_text()
]

CONTROL_OPS = {"_active_isa", "_set_isa", "_gemm_kernel"}  # kernel-path switches and names for tests, no tensors


def registered_ops():
    names = torch._C._dispatch_get_all_op_names()
    return sorted(n.split("::")[1] for n in names if n.startswith("circle_quant::"))


def test_every_tensor_op_has_cpu_and_meta_kernels():
    ops = [op for op in registered_ops() if op not in CONTROL_OPS]
    assert len(ops) >= 13, ops
    for op in ops:
        for key in ("CPU", "Meta"):
            assert torch._C._dispatch_has_kernel_for_dispatch_key(f"circle_quant::{op}", key), (op, key)


def test_every_tensor_op_is_opchecked():
    checked = {case[0]._qualified_op_name.split("::")[1] for module in OPCHECK_MODULES for case in module.OPCHECK_CASES}
    missing = set(registered_ops()) - CONTROL_OPS - checked
    assert not missing, f"ops without an opcheck case: {sorted(missing)}"
