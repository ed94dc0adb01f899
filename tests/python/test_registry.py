"""The circle_quant namespace as a whole: every tensor op has CPU and Meta kernels and is opchecked."""
import torch

import test_fake_quantize
import test_observer_ops
import test_quantize_ops

CONTROL_OPS = {"_active_isa", "_set_isa"}  # kernel-path switches for tests, no tensors


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
    checked = {case[0]._qualified_op_name.split("::")[1]
               for module in (test_quantize_ops, test_observer_ops, test_fake_quantize)
               for case in module.OPCHECK_CASES}
    missing = set(registered_ops()) - CONTROL_OPS - checked
    assert not missing, f"ops without an opcheck case: {sorted(missing)}"
