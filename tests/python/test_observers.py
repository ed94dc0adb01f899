"""torch_circle's PT2E observers against torchao's: same statistics, same qparams."""

import pytest
import torch
from torchao.quantization.pt2e.observer import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
)

from conftest import assert_bits_equal
from torch_circle.quantizer import (
    CircleHistogramObserver,
    CircleMinMaxObserver,
    CirclePerChannelMinMaxObserver,
)

SETTINGS = [
    dict(dtype=torch.uint8, qscheme=torch.per_tensor_affine),
    dict(dtype=torch.int8, qscheme=torch.per_tensor_affine),
    dict(dtype=torch.int8, qscheme=torch.per_tensor_symmetric, quant_min=-127, quant_max=127),
    dict(dtype=torch.int16, qscheme=torch.per_tensor_symmetric, quant_min=-32767, quant_max=32767),
    dict(dtype=torch.quint8, qscheme=torch.per_tensor_affine),
]


def batches(n=5, shape=(8, 16, 5, 5)):
    gen = torch.Generator().manual_seed(5)
    return [torch.randn(shape, generator=gen) * (1 + i) + i * 0.3 for i in range(n)]


def run(observer, data):
    for x in data:
        assert observer(x) is x  # observers pass their input through untouched
    return observer.calculate_qparams()


def assert_same_qparams(ours, theirs):
    assert_bits_equal(ours[0], theirs[0].to(torch.float32))
    assert ours[1].tolist() == theirs[1].tolist()


@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_minmax_matches_torchao(settings):
    data = batches()
    assert_same_qparams(run(CircleMinMaxObserver(**settings), data), run(MinMaxObserver(**settings), data))


@pytest.mark.parametrize("settings", SETTINGS[:3], ids=str)
def test_moving_average_matches_torchao(settings):
    data = batches()
    ours = run(CircleMinMaxObserver(averaging_constant=0.1, **settings), data)
    theirs = run(MovingAverageMinMaxObserver(averaging_constant=0.1, **settings), data)
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-6, atol=0)
    assert (ours[1] - theirs[1]).abs().max() <= 1


@pytest.mark.parametrize("ch_axis", [0, 1])
@pytest.mark.parametrize("qscheme", [torch.per_channel_symmetric, torch.per_channel_affine])
def test_per_channel_matches_torchao(ch_axis, qscheme):
    data = batches(3)
    kwargs = dict(ch_axis=ch_axis, dtype=torch.int8, qscheme=qscheme, quant_min=-127, quant_max=127)
    assert_same_qparams(
        run(CirclePerChannelMinMaxObserver(**kwargs), data), run(PerChannelMinMaxObserver(**kwargs), data)
    )


@pytest.mark.parametrize("settings", SETTINGS[:4], ids=str)
def test_histogram_matches_torchao(settings):
    data = batches(4, (20_000,))
    ours = run(CircleHistogramObserver(**settings), data)
    theirs = run(HistogramObserver(**settings), data)
    obs = CircleHistogramObserver(**settings)
    run(obs, data)
    # Same search, double vs float32 arithmetic: at most a bin apart (see docs/numerics.md).
    bin_width = (obs.max_val - obs.min_val).item() / obs.bins
    assert abs(ours[0].item() - theirs[0].item()) * (obs.quant_max - obs.quant_min) <= 2.5 * bin_width
    assert abs(ours[1].item() - theirs[1].item()) <= 1


@pytest.mark.parametrize("observer", [CircleMinMaxObserver, CirclePerChannelMinMaxObserver, CircleHistogramObserver])
def test_uncalibrated_observer_names_what_it_observes(observer):
    obs = observer()
    obs.observed_name = "conv1 output (model.py:12)"
    with pytest.raises(ValueError, match=r"on conv1 output \(model.py:12\): .*no data was observed"):
        obs.calculate_qparams()


def test_nan_in_calibration_data_is_an_error():
    x = torch.randn(4, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"NaN value\(s\), the first at index \[1, 2\]"):
        CircleMinMaxObserver()(x)
