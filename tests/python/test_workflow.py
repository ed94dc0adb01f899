"""calibrate, quantization_report, lower, QAT, and the errors around the PT2E flow."""

import pytest
import torch
from torch import nn
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

import torch_circle
from conftest import assert_bits_equal
from models import ResNetLike, seeded
from torch_circle.quantizer import CircleQuantizer


def batches(n=4, shape=(2, 3, 32, 32)):
    gen = torch.Generator().manual_seed(3)
    return [torch.randn(shape, generator=gen) for _ in range(n)]


def prepared(model, quantizer=None, example=None):
    example = example if example is not None else batches(1)[0]
    return prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer or CircleQuantizer())


def test_calibrate_runs_every_batch_and_shows_progress(capsys):
    model = seeded(ResNetLike())
    m = prepared(model)
    assert torch_circle.calibrate(m, batches(5)) == 5
    err = capsys.readouterr().err
    assert "calibrating" in err and "5/5 batches" in err
    assert torch_circle.calibrate(m, iter(batches(5)), max_batches=2, progress=False) == 2
    assert capsys.readouterr().err == ""
    with pytest.raises(ValueError, match="no batch was given"):
        torch_circle.calibrate(m, [], progress=False)


def test_calibrate_accepts_tuples_and_dicts():
    class TwoInputs(nn.Module):
        def forward(self, a, b):
            return torch.relu(a) + b

    args = (torch.randn(4), torch.randn(4))
    m = prepare_pt2e(torch.export.export(TwoInputs(), args).module(), CircleQuantizer())
    assert torch_circle.calibrate(m, [args, {"a": args[0], "b": args[1]}], progress=False) == 2


def test_report_lists_quantized_ops_and_plots(tmp_path):
    model, data = seeded(ResNetLike()), batches()
    m = prepared(model)
    torch_circle.calibrate(m, data, progress=False)
    converted = convert_pt2e(m)
    report = torch_circle.quantization_report(model, converted, data[:2])
    names = [row[0] for row in report.rows]
    assert "linear" in names and "max_pool2d" in names and len(names) >= 8
    assert all(20 < row[2] < 80 for row in report.rows), report.table()
    assert "worst:" in report.table()
    path = report.plot(str(tmp_path / "sqnr.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_lower_is_bit_identical_and_uses_circle_ops():
    model, data = seeded(ResNetLike()), batches()
    m = prepared(model)
    torch_circle.calibrate(m, data, progress=False)
    converted = convert_pt2e(m)
    reference = converted(data[0])
    lowered = torch_circle.lower(converted)
    targets = {str(n.target) for n in lowered.graph.nodes if n.op == "call_function"}
    assert "circle_quant.quantize_per_tensor.default" in targets
    assert not any(t.startswith("quantized_decomposed") for t in targets)
    assert_bits_equal(lowered(data[0]), reference)


def test_convert_without_calibration_lists_every_silent_observer():
    m = prepared(seeded(ResNetLike()))
    with pytest.raises(
        ValueError,
        match=r"(?s)no data was observed.*16 of the model's 16 observers "
        r"saw no data:.*models\.py",
    ):
        convert_pt2e(m)


def test_training_mode_graph_is_rejected_for_post_training_quantization():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1)).train()
    exported = torch.export.export(model, (torch.randn(2, 8),)).module()
    with pytest.raises(ValueError, match=r"runs in training mode: call model.eval\(\)"):
        prepare_pt2e(exported, CircleQuantizer())


def test_nan_during_calibration_names_the_observer():
    m = prepared(seeded(ResNetLike()))
    x = batches(1)[0]
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"Circle\w+Observer on input 'x' .* NaN"):
        m(x)


@pytest.mark.parametrize("preset", ["uint8", "int8"])
def test_qat_training_improves_the_quantized_model(preset):
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    student = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    x = torch.randn(256, 16)
    y = teacher(x).detach()
    m = prepare_qat_pt2e(torch.export.export(student, (x,)).module(), CircleQuantizer(preset, qat=True))
    fake_quants = [
        mod for mod in m.modules() if type(mod).__name__.startswith("Circle") and "FakeQuantize" in type(mod).__name__
    ]
    assert fake_quants  # QAT runs on the C++ fake-quantize ops
    optimizer = torch.optim.Adam(m.parameters(), lr=1e-2)

    def loss():
        return nn.functional.mse_loss(m(x), y)

    before = loss().item()
    for _ in range(150):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    converted = convert_pt2e(m)
    after = nn.functional.mse_loss(converted(x), y).item()
    assert after < before / 10, (before, after)


def test_calibrate_takes_input_target_batches_and_input_fn(capsys):
    from torch.utils.data import DataLoader, TensorDataset

    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    m = prepared(model, example=torch.randn(8, 4))
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    assert torch_circle.calibrate(m, DataLoader(TensorDataset(x, y), batch_size=8)) == 8
    assert "8/8 batches" in capsys.readouterr().err  # the loader's length is the bar's total
    records = [{"pixels": x[i : i + 8], "label": y[i : i + 8]} for i in range(0, 64, 8)]
    assert torch_circle.calibrate(m, records, input_fn=lambda r: r["pixels"], progress=False) == 8


def test_report_compares_every_quantized_op_of_decomposed_attention():
    model = seeded(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)).eval()
    data = batches(3, (2, 8, 32))
    m = prepared(model, example=data[0])
    torch_circle.calibrate(m, data, progress=False)
    converted = convert_pt2e(m)
    report = torch_circle.quantization_report(model, converted, data[:2])
    carriers = torch_circle.workflow._quantized_outputs(converted)
    assert [row[0] for row in report.rows] == list(carriers) and not report.not_compared
    ops = {row[1] for row in report.rows}
    assert {"matmul", "softmax.int", "mul.Tensor"} <= ops  # made by the attention decomposition
    assert all(row[2] > 20 for row in report.rows), report.table()


def test_report_lists_ops_without_a_float_counterpart():
    model, data = seeded(ResNetLike()), batches()
    m = prepared(model)
    torch_circle.calibrate(m, data, progress=False)
    converted = convert_pt2e(m)
    other = torch.export.export(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)).eval(), (data[0],)).module()
    report = torch_circle.quantization_report(other, converted, data[:1])
    assert report.not_compared and "not compared" in report.table()
    assert len(report.rows) + len(report.not_compared) == len(torch_circle.workflow._quantized_outputs(converted))


def test_inf_during_calibration_warning_names_the_observer():
    x = torch.randn(2, 8)
    m = prepared(nn.Sequential(nn.Hardtanh()).eval(), example=x)  # the clamp keeps Inf local
    x[0, 0] = float("inf")
    with pytest.warns(
        UserWarning,
        match=r"CircleHistogramObserver on input '\w+' of 'hardtanh' "
        r"\(File .*Inf values",
    ):
        m(x)


def test_qat_conv_bn_relu_folds_trains_and_runs_in_onert():
    from torchao.quantization.pt2e import move_exported_model_to_eval

    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1)).eval()
    student = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1), nn.BatchNorm2d(4)
    ).train()
    x = torch.randn(32, 3, 8, 8)
    y = teacher(x).detach()
    m = prepare_qat_pt2e(torch.export.export(student, (x,)).module(), CircleQuantizer("uint8", qat=True))
    optimizer = torch.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 3, (losses[0], losses[-1])
    move_exported_model_to_eval(m)
    converted = convert_pt2e(m)
    float_ops = [
        str(n.target)
        for n in converted.graph.nodes
        if n.op == "call_function" and not str(n.target).startswith("quantized_decomposed")
    ]
    assert float_ops == ["aten.conv2d.default", "aten.relu.default", "aten.conv2d.default"]
    pytest.importorskip("onert")
    cm = torch_circle.export(converted, (x,))  # the graph keeps the training batch size
    assert cm.output_steps(cm.run(x)[0], converted(x).detach().numpy()).max() <= 1
