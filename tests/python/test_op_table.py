"""The exporter's op table as Python sees it, and the op-coverage check built on it."""

import torch
from torch import nn

import torch_circle
from torch_circle import _C

import op_coverage
from test_export_ops import Fn


def test_table_lists_the_circle_ops_and_the_importer_only_ops():
    rows = {row["type"]: row for row in _C.circle_op_table()}
    assert rows["CONV_2D"]["builtin"] and rows["CONV_2D"]["onert_int"] and rows["CONV_2D"]["fuses_activation"]
    assert not rows["torch.conv2d"]["builtin"]
    assert rows["TRANSPOSE_CONV"]["litert_int"] and not rows["TRANSPOSE_CONV"]["onert_int"]


def test_coverage_check_names_every_row_no_export_wrote():
    every = op_coverage.table_ops()
    assert op_coverage.missing_ops(every) == []
    assert op_coverage.missing_ops(every - {"TRANSPOSE_CONV", "ADD"}) == ["ADD", "TRANSPOSE_CONV"]


def test_exports_are_recorded_with_the_ops_they_write():
    cm = torch_circle.export(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (torch.randn(2, 4),))
    assert "FULLY_CONNECTED" in cm.operators
    assert _C.export_graph_module.__name__ == "recording_export"


def test_fusable_activations_come_from_the_exporter():
    assert _C.fusable_activations() == ["RELU", "RELU6", "RELU_N1_TO_1"]


def test_clamp_min_is_one_fusable_activation_for_exporter_quantizer_and_backend():
    from torch_circle import activations
    from torch_circle.backend import matching

    model = nn.Linear(4, 3)
    x = torch.randn(2, 4)
    fn = lambda x: torch.clamp_min(model(x), 0.0)  # noqa: E731
    cm = torch_circle.export(Fn(fn), (x,))
    assert cm.operators == ["FULLY_CONNECTED"], cm.operators  # RELU fused
    gm = torch.export.export(Fn(fn), (x,)).module()
    clamp = next(n for n in gm.graph.nodes if n.target == torch.ops.aten.clamp_min.default)
    assert activations.is_fusable_activation(clamp)
    assert matching.activation_bounds(clamp) == (0.0, None)
    other = next(
        n
        for n in torch.export.export(Fn(lambda x: torch.clamp_min(x, 0.5)), (x,)).module().graph.nodes
        if n.target == torch.ops.aten.clamp_min.default
    )
    assert not activations.is_fusable_activation(other)  # a MAXIMUM of its own in Circle
    assert activations.activation_bounds(other) == (0.5, None)  # which the backend's kernels clamp to
