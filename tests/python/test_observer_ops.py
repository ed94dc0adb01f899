"""circle_quant observer ops against torch.aminmax and torchao's PT2E observers."""

import random
import warnings

import pytest
import torch
from torch.library import opcheck
from torchao.quantization.pt2e.observer import (
    HistogramObserver,
    MinMaxObserver,
    PerChannelMinMaxObserver,
)

from conftest import assert_bits_equal

cq = torch.ops.circle_quant
EPS = torch.finfo(torch.float32).eps
INF = float("inf")


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 63, 64, 65, 1000, 200_003])
def test_minmax_matches_aminmax(isa, n):
    x = torch.randn(n) * 7
    mn, mx = cq.minmax(x)
    ref = torch.aminmax(x)
    assert mn.shape == () and mx.shape == ()
    assert mn.item() == ref.min.item() and mx.item() == ref.max.item()


def test_minmax_layouts_and_half_input(isa):
    x = torch.randn(2, 3, 8, 9)
    for view in (x.to(memory_format=torch.channels_last), x.transpose(1, 3), x[:, :, ::2]):
        mn, mx = cq.minmax(view)
        assert (mn.item(), mx.item()) == (view.min().item(), view.max().item())
    h = x.to(torch.bfloat16)
    assert cq.minmax(h)[1].item() == h.float().max().item()


def test_minmax_empty_is_the_identity():
    mn, mx = cq.minmax(torch.empty(0, 3))
    assert mn.item() == INF and mx.item() == -INF


def test_minmax_nan_is_an_error_and_inf_is_kept(isa):
    x = torch.randn(100)
    x[37] = float("nan")
    with pytest.raises(ValueError, match=r"circle_quant::minmax: input .* NaN .* index \[37\]"):
        cq.minmax(x)
    x[37] = INF
    assert cq.minmax(x)[1].item() == INF


@pytest.mark.parametrize(
    "shape,axis", [((16, 3, 3, 3), 0), ((4, 37, 5), 1), ((5, 70), 1), ((2, 3, 4), 2), ((8, 1, 6), 1), ((3, 4), -1)]
)
def test_minmax_per_channel_matches_torchao(isa, shape, axis):
    x = torch.randn(shape) * 3
    obs = PerChannelMinMaxObserver(ch_axis=axis % len(shape), dtype=torch.int8, qscheme=torch.per_channel_symmetric)
    obs(x)
    for view in (x, x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x.mT):
        if view is not x and view.dim() != 4:
            continue
        mn, mx = cq.minmax_per_channel(view, axis)
        assert_bits_equal(mn, obs.min_val)
        assert_bits_equal(mx, obs.max_val)


def test_minmax_per_channel_nan_names_position():
    x = torch.randn(4, 6)
    x[2, 5] = float("nan")
    with pytest.raises(ValueError, match=r"index \[2, 5\]"):
        cq.minmax_per_channel(x, 1)


# --- choose_qparams vs torchao's _calculate_qparams -------------------------------------------

QPARAM_SETTINGS = [
    # dtype, qscheme, quant_min, quant_max (None = dtype default)
    (torch.uint8, torch.per_tensor_affine, None, None),
    (torch.int8, torch.per_tensor_affine, None, None),
    (torch.int8, torch.per_tensor_symmetric, -127, 127),
    (torch.uint8, torch.per_tensor_symmetric, None, None),
    (torch.uint8, torch.per_tensor_symmetric, 0, 127),
    (torch.int16, torch.per_tensor_symmetric, -32767, 32767),
    (torch.int16, torch.per_tensor_affine, -32768, 32767),
    (torch.uint8, torch.per_tensor_affine, 0, 15),
]


def observed_ranges(rng):
    ranges = [(-1.0, 3.0), (0.5, 2.0), (-2.0, -0.25), (0.0, 0.0), (-1e-9, 1e-9), (-3e4, 1e-3)]
    for _ in range(40):
        a, b = sorted(rng.uniform(-10, 10) * 10 ** rng.uniform(-3, 2) for _ in range(2))
        ranges.append((a, b))
    return ranges


@pytest.mark.parametrize("dtype,qscheme,qmin,qmax", QPARAM_SETTINGS)
def test_choose_qparams_matches_torchao(dtype, qscheme, qmin, qmax):
    rng = random.Random(str((dtype, qscheme, qmin)))
    obs = MinMaxObserver(dtype=dtype, qscheme=qscheme, quant_min=qmin, quant_max=qmax)
    symmetric = qscheme == torch.per_tensor_symmetric
    for lo, hi in observed_ranges(rng):
        obs.min_val.fill_(lo)
        obs.max_val.fill_(hi)
        ref_scale, ref_zp = obs.calculate_qparams()
        scale, zp = cq.choose_qparams(
            obs.min_val, obs.max_val, obs.quant_min, obs.quant_max, dtype, symmetric, EPS, obs.has_customized_qrange
        )
        assert_bits_equal(scale, ref_scale)
        assert zp.tolist() == ref_zp.tolist(), (lo, hi)


@pytest.mark.parametrize("qscheme", [torch.per_channel_affine, torch.per_channel_symmetric])
def test_choose_qparams_per_channel_matches_torchao(qscheme):
    w = torch.randn(32, 3, 3, 3) * torch.logspace(-3, 1, 32).view(-1, 1, 1, 1)
    w[5] = 0.0  # an all-zero channel: the eps floor
    w[6] = w[6].abs()  # a channel without negatives
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.int8, qscheme=qscheme, quant_min=-127, quant_max=127)
    obs(w)
    ref_scale, ref_zp = obs.calculate_qparams()
    mn, mx = cq.minmax_per_channel(w, 0)
    scale, zp = cq.choose_qparams(mn, mx, -127, 127, torch.int8, qscheme == torch.per_channel_symmetric, EPS, True)
    assert_bits_equal(scale, ref_scale)
    assert zp.tolist() == ref_zp.tolist()


def test_choose_qparams_wide_int32_range_keeps_its_zero_point():
    # min / scale exceeds int32 here; torchao's int32 conversion overflows, ours does not.
    scale, zp = cq.choose_qparams(
        torch.tensor(-1000.0), torch.tensor(0.0), -(2**31), 2**31 - 1, torch.int32, False, EPS
    )
    assert zp.item() == 2**31 - 1


@pytest.mark.parametrize(
    "lo,hi,message",
    [
        (INF, -INF, "no data was observed"),
        (float("nan"), 1.0, "NaN"),
        (-INF, 1.0, "infinite"),
        (0.0, INF, "infinite"),
        (2.0, 1.0, "greater than max_val"),
    ],
)
def test_choose_qparams_errors(lo, hi, message):
    with pytest.raises(ValueError, match=message):
        cq.choose_qparams(torch.tensor(lo), torch.tensor(hi), 0, 255, torch.uint8, False, EPS)


def test_choose_qparams_error_names_channel():
    mn, mx = torch.tensor([0.0, -1.0, 0.0]), torch.tensor([1.0, INF, 2.0])
    with pytest.raises(ValueError, match=r"choose_qparams \(channel 1\).*infinite"):
        cq.choose_qparams(mn, mx, -127, 127, torch.int8, True, EPS)


# --- histogram observer -------------------------------------------------------------------------


def run_histogram(batches, bins=2048, upsample_rate=16):
    hist, mn, mx = torch.zeros(bins), torch.tensor(INF), torch.tensor(-INF)
    for x in batches:
        hist, mn, mx = cq.histogram_observe(x, hist, mn, mx, upsample_rate)
    return hist, mn, mx


def run_torchao_histogram(batches, **kwargs):
    obs = HistogramObserver(**kwargs)
    for x in batches:
        obs(x)
    return obs


def test_histogram_first_batch_equals_histc(isa):
    x = torch.randn(100_000)
    hist, mn, mx = run_histogram([x])
    assert (mn.item(), mx.item()) == tuple(v.item() for v in torch.aminmax(x))
    assert_bits_equal(hist, torch.histc(x, 2048, mn.item(), mx.item()))


def test_histogram_same_range_accumulates(isa):
    x = torch.randn(10_000)
    hist, _, _ = run_histogram([x, x.flip(0), x[:5000]])
    assert_bits_equal(hist, torch.histc(torch.cat([x, x, x[:5000]]), 2048, x.min().item(), x.max().item()))


@pytest.mark.parametrize("scenario", ["growing", "shifting", "single-value-first"])
def test_histogram_state_matches_torchao(isa, scenario):
    gen = torch.Generator().manual_seed(3)
    if scenario == "growing":
        batches = [torch.randn(20_000, generator=gen) * (1 + i) for i in range(6)]
    elif scenario == "shifting":
        batches = [torch.randn(20_000, generator=gen) + 3 * i for i in range(4)]
    else:
        batches = [torch.full((100,), 0.5), torch.randn(20_000, generator=gen)]
    hist, mn, mx = run_histogram(batches)
    obs = run_torchao_histogram(batches)
    assert (mn.item(), mx.item()) == (obs.min_val.item(), obs.max_val.item())
    assert hist.sum().item() == pytest.approx(obs.histogram.sum().item(), rel=1e-5)
    # Re-binning can differ only where a sub-bin midpoint sits on a new bin edge (float rounding
    # of the edges): the cumulative mass may then differ by at most one sub-bin's mass.
    sub_bin_mass = obs.histogram.max().item() / 16
    torch.testing.assert_close(hist.cumsum(0), obs.histogram.cumsum(0).float(), rtol=0, atol=sub_bin_mass + 1.0)


@pytest.mark.parametrize(
    "dtype,qscheme,qmin,qmax",
    [
        (torch.uint8, torch.per_tensor_affine, None, None),
        (torch.int8, torch.per_tensor_affine, None, None),
        (torch.int8, torch.per_tensor_symmetric, -127, 127),
        (torch.int16, torch.per_tensor_symmetric, -32767, 32767),
    ],
)
@pytest.mark.parametrize("data", ["gaussian", "outliers", "relu", "growing"])
def test_histogram_qparams_match_torchao(dtype, qscheme, qmin, qmax, data):
    gen = torch.Generator().manual_seed(11)
    if data == "gaussian":
        batches = [torch.randn(50_000, generator=gen)]
    elif data == "outliers":
        x = torch.randn(50_000, generator=gen)
        x[:5] = torch.tensor([40.0, -35.0, 25.0, 60.0, -50.0])
        batches = [x]
    elif data == "relu":
        batches = [torch.relu(torch.randn(30_000, generator=gen)) for _ in range(3)]
    else:
        batches = [torch.randn(20_000, generator=gen) * (i + 1) for i in range(4)]
    obs = run_torchao_histogram(batches, dtype=dtype, qscheme=qscheme, quant_min=qmin, quant_max=qmax)
    ref_scale, ref_zp = obs.calculate_qparams()
    hist, mn, mx = run_histogram(batches)
    scale, zp = cq.histogram_choose_qparams(
        hist,
        mn,
        mx,
        obs.quant_min,
        obs.quant_max,
        dtype,
        qscheme == torch.per_tensor_symmetric,
        EPS,
        obs.has_customized_qrange,
    )
    # torchao searches in float32 tensors, we in double: the chosen range may differ by a bin.
    bin_width = (mx - mn).item() / 2048
    assert abs(scale.item() - ref_scale.item()) * (obs.quant_max - obs.quant_min) <= 2.5 * bin_width
    assert abs(zp.item() - ref_zp.item()) <= 1


@pytest.mark.parametrize("tail_fraction", [0.0, 0.001, 0.02])
def test_histogram_search_only_narrows_the_range(tail_fraction):
    # The L2 search may clip sparse tails but never quantizes over more than the observed range.
    x = torch.randn(200_000)
    k = int(tail_fraction * x.numel())
    x[:k] = torch.rand(k) * 60 - 30
    hist, mn, mx = run_histogram([x])
    scale, _ = cq.histogram_choose_qparams(hist, mn, mx, 0, 255, torch.uint8, False, EPS)
    minmax_scale, _ = cq.choose_qparams(mn, mx, 0, 255, torch.uint8, False, EPS)
    assert 0 < scale.item() <= minmax_scale.item()


def test_histogram_skips_inf_with_a_warning_and_rejects_nan(capfd):
    x = torch.randn(1000)
    x[3] = INF
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist, mn, mx = run_histogram([x])
    # TORCH_WARN reaches Python as a warning or, through torch.ops, on stderr.
    reported = " ".join(str(w.message) for w in caught) + capfd.readouterr().err
    assert "holds Inf values; they are left out of the histogram" in reported
    assert hist.sum().item() == 999 and mx.item() < INF
    x[3] = float("nan")
    with pytest.raises(ValueError, match=r"histogram_observe: input .* NaN"):
        run_histogram([x])


@pytest.mark.parametrize("value", [0.5, 3e7, -1e20])
def test_histogram_of_one_repeated_value(isa, value):
    # Past 2^24, histc's widening by +-1 rounds away; the range must still have width.
    hist, mn, mx = run_histogram([torch.full((10,), value)])
    assert hist.sum().item() == 10 and mn.item() == mx.item() == pytest.approx(value)
    hist, _, _ = run_histogram([torch.full((10,), value), torch.full((5,), value)])
    assert hist.sum().item() == 15


def test_histogram_of_a_range_wider_than_float_max(isa):
    x = torch.tensor([-3e38, 0.0, 3e38])  # max - min overflows to inf
    hist, _, _ = run_histogram([x])
    assert hist.sum().item() == 3


def test_histogram_empty_and_uncalibrated():
    hist, mn, mx = run_histogram([torch.empty(0)])
    assert mn.item() == INF and hist.sum().item() == 0
    with pytest.raises(ValueError, match="no data was observed"):
        cq.histogram_choose_qparams(hist, mn, mx, 0, 255, torch.uint8, False, EPS)


def test_histogram_state_validation():
    with pytest.raises(ValueError, match="histogram must be 1-D"):
        cq.histogram_observe(torch.randn(3), torch.zeros(2, 2), torch.tensor(INF), torch.tensor(-INF))
    with pytest.raises(TypeError, match="histogram must be a float32 tensor"):
        cq.histogram_observe(torch.randn(3), torch.zeros(8, dtype=torch.float64), torch.tensor(INF), torch.tensor(-INF))
    with pytest.raises(ValueError, match="upsample_rate must be >= 1"):
        cq.histogram_observe(torch.randn(3), torch.zeros(8), torch.tensor(INF), torch.tensor(-INF), 0)


def test_histogram_is_thread_count_independent():
    x = torch.randn(2_000_000)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_histogram([x, x * 2])
        torch.set_num_threads(max(2, threads))
        many = run_histogram([x, x * 2])
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, many):
        assert_bits_equal(a, b)


OPCHECK_CASES = [
    (cq.minmax, (torch.randn(5, 7),)),
    (cq.minmax_per_channel, (torch.randn(5, 7), 1)),
    (cq.choose_qparams, (torch.tensor(-1.0), torch.tensor(2.0), 0, 255, torch.uint8, False, EPS)),
    (cq.choose_qparams, (torch.tensor([-1.0, 0.0]), torch.tensor([2.0, 1.0]), -127, 127, torch.int8, True, EPS)),
    (cq.histogram_observe, (torch.randn(100), torch.zeros(64), torch.tensor(-1.0), torch.tensor(1.0))),
    (
        cq.histogram_choose_qparams,
        (torch.rand(64), torch.tensor(-1.0), torch.tensor(1.0), 0, 255, torch.uint8, False, EPS),
    ),
    (cq.running_minmax_, (torch.randn(5, 7), torch.tensor(-0.5), torch.tensor(0.5))),
    (cq.running_minmax_, (torch.randn(5, 7), torch.tensor(-0.5), torch.tensor(0.5), 0.1)),
    (cq.histogram_observe_, (torch.randn(100), torch.zeros(64), torch.tensor(-1.0), torch.tensor(1.0))),
]


def test_in_place_updates_match_the_functional_ops(isa):
    x = torch.randn(3000) * 2
    hist, mn, mx = torch.zeros(128), torch.tensor(-1.0), torch.tensor(1.0)
    expected = cq.histogram_observe(x, hist, mn, mx)
    cq.histogram_observe_(x, hist, mn, mx)
    for a, b in zip((hist, mn, mx), expected):
        assert_bits_equal(a, b)
    lo, hi = torch.tensor(INF), torch.tensor(-INF)
    cq.running_minmax_(x, lo, hi, 0.5)  # first batch: plain min / max
    assert (lo.item(), hi.item()) == (x.min().item(), x.max().item())
    cq.running_minmax_(x * 2, lo, hi, 0.5)  # then the moving average
    assert lo.item() == pytest.approx(x.min().item() * 1.5) and hi.item() == pytest.approx(x.max().item() * 1.5)
    with pytest.raises(ValueError, match=r"averaging_constant must be in \(0, 1\]"):
        cq.running_minmax_(x, lo, hi, 1.5)


@pytest.mark.parametrize("op,args", OPCHECK_CASES, ids=lambda v: getattr(v, "__name__", None))
def test_opcheck(op, args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opcheck(op, args)
