"""Op coverage of torch_circle.export, op by op, in both runtimes.

Each case is a small model around one aten op (or one lowering choice); it is exported as .circle
(run in onert) and as .tflite (run in LiteRT). Float results match PyTorch at 1e-5; quantized
results stay within one output step of the PT2E converted model (two of int16's finer steps).
"""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import torch_circle
from torch_circle.quantizer import CircleQuantizer
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

import models


class Fn(nn.Module):
    """A model whose forward is `fn(*inputs)`."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def _randn(*shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))


X3, X4 = _randn(2, 5, 8), _randn(2, 4, 6, 6)
INTS = torch.arange(-4, 6, dtype=torch.int32).reshape(2, 1, 5)
CAUSAL = torch.ones(5, 5, dtype=torch.bool).triu(1)

# name: (fn, inputs)
FLOAT_CASES = {
    "hardsigmoid": (F.hardsigmoid, (X4 * 4,)),
    "hardswish": (F.hardswish, (X4 * 4,)),
    "sum_all": (lambda x: x.sum(), (X3,)),
    "max_all": (lambda x: x.max(), (X3,)),
    "min_all": (lambda x: x.min(), (X3,)),
    "gather": (lambda x, i: torch.gather(x, 1, i), (X3, torch.randint(0, 5, (2, 3, 6)))),
    "gather_last_dim": (lambda x, i: torch.gather(x, -1, i), (X3, torch.randint(0, 8, (2, 5, 8)))),
    "gather_constant_index": (lambda x: torch.gather(x, 2, torch.tensor([[[7, 0], [1, 1]]]).expand(2, 2, 2)), (X3,)),
    "index_select": (lambda x, i: torch.index_select(x, 1, i), (X3, torch.tensor([4, 0, 2, 2]))),
    "index_tensor": (lambda x: x[:, torch.tensor([0, 2, 4])], (X3,)),
    "index_tensor_2d_index": (lambda x, i: x[:, :, i], (X3, torch.tensor([[1, 7], [3, 0]]))),
    "index_constant_pair": (lambda x: x[torch.arange(2).view(2, 1, 1), torch.tensor([[[-1, 0, 3]]])], (X3,)),
    "chunk_uneven": (lambda x: [c * (k + 1) for k, c in enumerate(x.chunk(2, dim=1))], (X3,)),
    "chunk_more_than_size": (lambda x: [c + 1 for c in x.chunk(4, dim=0)], (X3,)),
    "where_scalar_other": (lambda x: torch.where(x > 0, x, 0.0), (X3,)),
    "where_scalar_self": (lambda x: torch.where(x > 0, -1.5, x), (X3,)),
    "where_int": (lambda i: torch.where(i > 3, i, 0), (torch.arange(10, dtype=torch.int32).reshape(2, 5),)),
    "masked_fill": (lambda x: x.masked_fill(x > 0.5, -1e4), (X3,)),
    "masked_fill_causal": (lambda x: (x @ x.transpose(1, 2)).masked_fill(CAUSAL, float("-inf")).softmax(-1), (X3,)),
    "square": (torch.square, (X3,)),
    "reciprocal": (lambda x: torch.reciprocal(x.abs() + 1), (X3,)),
    "var_unbiased": (lambda x: x.var(-1), (X3,)),
    "var_biased_keepdim": (lambda x: x.var((1, 2), keepdim=True, unbiased=False), (X4,)),
    "std_correction": (lambda x: x.std(1, correction=0), (X3,)),
    "manual_layer_norm": (
        lambda x: (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + 1e-5),
        (X3,),
    ),
    "baddbmm": (lambda x: torch.baddbmm(x[:, :, :5], x, x.transpose(1, 2)), (X3,)),
    "baddbmm_scaled": (lambda x: torch.baddbmm(x[:, :, :5], x, x.transpose(1, 2), beta=0.5, alpha=2.0), (X3,)),
    "max_pool_ceil": (lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True), (_randn(1, 4, 8, 8),)),
    "max_pool_ceil_padded": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), (_randn(1, 4, 8, 8),)),
    "avg_pool_ceil": (lambda x: F.avg_pool2d(x, 2, 2, ceil_mode=True), (_randn(1, 4, 7, 7),)),
    "pad_reflect": (lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), (X4,)),
    "pad_replicate": (lambda x: F.pad(x, (2, 0, 0, 3), mode="replicate"), (X4,)),
    "pad_circular": (lambda x: F.pad(x, (1, 1, 2, 0), mode="circular"), (X4,)),
    "pad_reflect_1d": (lambda x: nn.ReflectionPad1d(3)(x), (X3,)),
    "expand": (lambda x: x[:, :1].expand(2, 5, 8) + x, (X3,)),
    "expand_as": (lambda x: x[:, :1].expand_as(x) * x, (X3,)),
    # PyTorch's type promotion, written out as casts (runtimes refuse or miscompute mixed types).
    "promote_add_int64_constant": (lambda x: x + torch.arange(8), (X3,)),
    "promote_div_int_by_float": (lambda i, x: i / x, (INTS, X3[..., :5])),
    "promote_true_div_of_ints": (lambda i: i / (i + 10), (INTS,)),
    "promote_ge_float_int64": (lambda x: (x >= torch.arange(8) - 4).float(), (X3,)),
    "promote_where_int_float": (lambda i, x: torch.where(x > 0, i, x), (INTS, X3[..., :5])),
    "promote_pow_int_exponent": (lambda x: x.abs() ** torch.tensor(3, dtype=torch.int32), (X3,)),
    # Python numbers folded with the constants they meet (position ids, masks).
    "arange_of_size_plus_one": (lambda x: x * (torch.arange(x.shape[-1]) + 1), (X3,)),
    "constant_split_folded": (lambda x: x + torch.arange(16.0).reshape(2, 8).split(1)[1], (X3,)),
    "matmul_constant_left": (lambda x: torch.linspace(-1, 1, 20).reshape(4, 5) @ x, (X3,)),
    # ops and variants
    "full_like": (lambda x: x + torch.full_like(x, 2.5), (X3,)),
    "empty_like_zeros_like": (lambda x: x + torch.zeros_like(x) * torch.empty_like(x).fill_(0.0), (X3,)),
    "new_zeros_new_ones": (lambda x: x + x.new_ones(5, 8) - x.new_zeros(2, 1, 8), (X3,)),
    "fill_tensor": (lambda x, v: x.clone().fill_(v[0]) * x, (X3, torch.tensor([1.5]))),
    "copy": (lambda x, y: torch.zeros(2, 5, 8).copy_(y) + x, (X3, X3[:1, :1] + 1)),
    "alias_copy": (lambda x: torch.ops.aten.alias_copy(x) * 2, (X3,)),
    "clamp_tensor": (lambda x, lo: torch.clamp(x, lo, lo + 1.0), (X3, _randn(5, 1) * 0.5)),
    "elu": (F.elu, (X3 * 2,)),
    "elu_alpha": (lambda x: F.elu(x, alpha=0.5), (X3 * 2,)),
    "selu": (F.selu, (X3 * 2,)),
    "log1p": (lambda x: torch.log1p(x.abs()), (X3,)),
    "logical_and": (lambda x: torch.logical_and(x > 0, x < 1).float(), (X3,)),
    "and_tensor": (lambda x: ((x > 0) & (x < 1)).float(), (X3,)),
    "round": (lambda x: torch.round(x * 4), (X3,)),
    "any_dim": (lambda x: (x > 1).any(-1).float(), (X3,)),
    "any_all": (lambda x: (x > 1).any().float() + x, (X3,)),
    "linalg_vector_norm": (lambda x: x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-6), (X3,)),
    "linalg_vector_norm_ord1_all": (lambda x: torch.linalg.vector_norm(x, ord=1) + x, (X3,)),
    "linalg_vector_norm_inf": (lambda x: torch.linalg.vector_norm(x, ord=float("inf"), dim=(0, 2)), (X3,)),
    "clamp_min_max_scalar": (lambda x: torch.clamp_max(torch.clamp_min(x, -0.5), 0.7), (X3,)),
    "swapaxes": (lambda x: torch.swapaxes(x, 0, 2) * 2, (X3,)),
    "adaptive_avg_pool_from_1x1": (lambda x: F.adaptive_avg_pool2d(x, 7) + 1, (_randn(1, 4, 1, 1),)),
    "zero_": (lambda x: x.clone().zero_() + x.new_ones(5, 8), (X3,)),
    "cumsum": (lambda x: torch.cumsum(x, 1), (X3,)),
    "cumsum_last_dim": (lambda x: x.cumsum(-1), (X3,)),
    "instance_norm": (lambda x: F.instance_norm(x), (X4,)),
    "instance_norm_affine": (lambda x: F.instance_norm(x, weight=torch.arange(4.0), bias=torch.ones(4)), (X4,)),
    "native_layer_norm": (lambda x: torch.ops.aten.native_layer_norm(x, [8], None, None, 1e-5)[0], (X3,)),
    "native_group_norm": (lambda x: torch.ops.aten.native_group_norm(x, None, None, 2, 4, 36, 2, 1e-5)[0], (X4,)),
    "split_with_sizes_copy": (lambda x: [t * 2 for t in torch.ops.aten.split_with_sizes_copy(x, [3, 5], -1)], (X3,)),
    "slice_scatter": (lambda x, y: torch.slice_scatter(x, y, 2, 2, 5), (X3, X3[:, :, :3] * 3)),
    "addmm_beta_alpha": (
        lambda b, x: torch.addmm(b, x, torch.linspace(-1, 1, 48).reshape(8, 6), beta=0.5, alpha=2.0),
        (_randn(6), _randn(4, 8)),
    ),
    "addmm_beta_zero": (
        lambda b, x, w: torch.addmm(b, x, w, beta=0.0, alpha=0.5),
        (_randn(6), _randn(4, 8), _randn(8, 6)),
    ),
    "avg_pool_count_include_pad": (lambda x: F.avg_pool2d(x, 3, 2, 1), (X4,)),
    "repeat_adds_dims": (lambda x: x.repeat(2, 1, 1, 2), (X3,)),
    "native_batch_norm_stats": (
        lambda x: torch.ops.aten.native_batch_norm(
            x, torch.ones(4), torch.zeros(4), torch.zeros(4), torch.ones(4) * 2, False, 0.1, 1e-5
        )[0],
        (X4,),
    ),
    "upsample_bilinear": (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), (X4,)),
    "upsample_bilinear_size_align": (
        lambda x: F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=True),
        (X4,),
    ),
    "roll": (lambda x: torch.roll(x, shifts=(2, -3), dims=(1, 2)), (X3,)),
    "roll_flat": (lambda x: torch.roll(x, 5), (X3,)),
    "to_device": (lambda x: x.to(device="cpu") * 2, (X3,)),
    "diff": (lambda x: torch.diff(x, dim=1), (X3,)),
    "diff_twice_prepend": (lambda x: torch.diff(x, n=2, prepend=x[:, :, :1]), (X3,)),
    # conv3d: the depth taps gathered into the channels of one conv2d (onert has no CONV_3D).
    "conv3d": (lambda x, w: F.conv3d(x, w), (_randn(1, 2, 4, 5, 5), _randn(3, 2, 2, 2, 2))),
    "conv3d_stride_pad_dilation": (
        lambda x, w, b: F.conv3d(x, w, b, stride=(2, 1, 2), padding=(1, 0, 2), dilation=(2, 1, 1)),
        (_randn(2, 2, 7, 6, 7), _randn(3, 2, 3, 2, 3), _randn(3)),
    ),
    "conv3d_padding_same": (
        lambda x, w: F.conv3d(x, w, padding="same"),
        (_randn(1, 2, 4, 5, 5), _randn(3, 2, 3, 3, 3)),
    ),
    "conv3d_grouped": (
        lambda x, w, b: F.conv3d(x, w, b, padding=(1, 0, 1), groups=2),
        (_randn(1, 4, 4, 5, 5), _randn(6, 2, 3, 2, 3), _randn(6)),
    ),
    "grouped_conv_weight_input": (
        lambda x, w, b: F.conv2d(x, w, b, padding=1, groups=2),
        (X4, _randn(6, 2, 3, 3), _randn(6)),
    ),
    "flip": (lambda x: torch.flip(x, [0, 2]), (X3,)),
    "flip_int64": (lambda i: torch.flip(i, [-1]) * 2, (torch.arange(12).reshape(3, 4),)),
    "einsum_batched_matmul": (lambda a, b: torch.einsum("bij,bjk->bik", a, b), (X3, _randn(2, 8, 3))),
    "einsum_maxvit_scores": (
        lambda q, k: torch.einsum("B G H I D, B G H J D -> B G H I J", q, k),
        (_randn(2, 3, 2, 5, 4), _randn(2, 3, 2, 6, 4)),
    ),
    "einsum_ellipsis_implicit_sum": (
        lambda a, b: torch.einsum("...ij,...kj", a, b) + torch.einsum("bij->j", a).sum(),
        (X3, _randn(2, 3, 8)),
    ),
    "einsum_three_operands": (
        lambda a, b, c: torch.einsum("ij,jk,kl->li", a, b, c),
        (_randn(3, 4), _randn(4, 2), _randn(2, 5)),
    ),
    "einsum_outer_and_hadamard": (
        lambda a, b: torch.einsum("i,j->ji", a, b[0]) * torch.einsum("ij,ij->i", b, b)[0],
        (_randn(3), _randn(2, 4)),
    ),
    "index_several_tensors": (lambda x, i, j: x[:, i, j], (X3, torch.tensor([[0], [4]]), torch.tensor([1, -2, 7]))),
    "index_put": (lambda x, i, v: x.index_put((i,), v), (X3, torch.tensor([1, -1]), _randn(2, 5, 8))),
    "index_put_pair_scalar": (
        lambda x, j: x.clone().index_put_((torch.arange(2), j), torch.tensor(7.0)),
        (X3, torch.tensor([4, 0])),
    ),
    "index_put_repeated_index": (
        lambda x, i, v: x.index_put((i,), v),
        (_randn(5, 3), torch.tensor([0, 2, 0]), _randn(3, 3)),
    ),
    "index_put_accumulate": (
        lambda x, i, v: x.index_put((i,), v, accumulate=True),
        (_randn(5, 3), torch.tensor([0, 2, 0]), _randn(3, 3)),
    ),
    "index_put_int64_mask": (
        lambda n: torch.zeros(2, 6, dtype=torch.long).index_put((torch.arange(2), n - 1), torch.tensor(1)),
        (torch.tensor([3, 6]),),
    ),
    "index_put_bool_mask": (lambda x: x.clone().index_put_((~(x > 0),), torch.tensor(0.0)), (X3,)),
    # Integer ops onert 0.1.0 has no kernel for (SLICE, PAD, TILE, FLOOR_DIV of int64 / bool):
    # rewritten on int32 (legalize_integer_ops). Wav2Vec2 builds its mask with these.
    "integer_cumsum_pad_slice": (lambda i: F.pad(i.cumsum(-1), (1, 2))[:, 1:4], (torch.arange(10).reshape(2, 5),)),
    "integer_floor_div_repeat": (
        lambda i: (torch.div(i - 3, 2, rounding_mode="floor") + 1).unsqueeze(-1).repeat(1, 1, 3) > 0,
        (torch.arange(-4, 6).reshape(2, 5),),
    ),
    # MAXIMUM / MINIMUM / SELECT_V2 / ABS of integers: comparisons and products; SUM, REDUCE_MAX /
    # MIN and ARG_MAX of int64 (and a count of bools): on int32. Values past int32 in the elementwise
    # ones check that those stay exact.
    "integer_select_abs_max_min": (
        lambda i, j, x: torch.where(x > 0, torch.maximum(i, j).abs(), torch.minimum(i, j - 3)) * 3,
        (
            torch.tensor([[-(2**40), 5, -7, 0, 9], [3, -1, 2**35, -4, 8]]),
            torch.tensor([[2, 5, -9, 1, -(2**33)], [-6, 0, 1, 7, 8]]),
            _randn(2, 5),
        ),
    ),
    "integer_reductions": (
        lambda i, x: torch.stack([i.sum(1), i.amax(1), i.amin(1), i.max(1)[0], i.argmax(1), (x > 0).sum(1)], 1),
        (torch.tensor([[4, -9, 7, 2, 0], [-3, 11, 5, -8, 6]]), _randn(2, 5)),
    ),
    "stack": (lambda x: torch.stack([x, x * 2, x + 1], 1), (X3,)),
    "integer_abs_int32": (lambda i: i.abs() * 2, (torch.tensor([[-5, 3], [0, -(2**30)]], dtype=torch.int32),)),
    # One case per Circle op no other case writes (tests/python/op_coverage.py checks the table).
    "sin_cos": (lambda x: torch.sin(x) * torch.cos(x), (X3,)),
    "floor_divide": (lambda x: torch.div(x * 4, 0.75, rounding_mode="floor"), (X3,)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), (X3,)),
    "log_softmax": (lambda x: F.log_softmax(x, -1), (X3,)),
    "not_equal": (lambda x: torch.where(x.round() != 0, x, 0.0), (X3,)),
    "logical_not_or": (lambda x: torch.where(torch.logical_not(x > 0) | (x > 1), x, -x), (X3,)),
    "relu6_of_an_input": (F.relu6, (X3 * 4,)),
    "hardtanh_of_an_input": (F.hardtanh, (X3 * 2,)),
    "squeeze_copy": (lambda x: torch.squeeze_copy(x, (0, 2)) * 2, (_randn(1, 5, 1, 8),)),
    "unsqueeze_copy": (lambda x: torch.unsqueeze_copy(x, 1) + 1, (X3,)),
    "cat_with_an_empty_input": (lambda x, e: torch.cat([e, x * 2, e], 0), (X3, torch.zeros(0, 5, 8))),
    "cat_with_an_empty_constant": (lambda x: torch.cat([x, x.new_zeros(2, 0, 8), x + 1], 1), (X3,)),
    # onert 0.1.0 has no integer MAXIMUM, no int64 MINIMUM: integer clamps are comparisons and
    # products, exact beyond int32 (values of 2^40 would wrap in a cast to int32).
    "clamp_int64": (lambda i: torch.clamp(i, -2, 3), (torch.tensor([[-(2**40), -3, -2, 0, 3, 4, 2**40]]),)),
    "clamp_min_max_int32": (lambda i: torch.clamp_max(torch.clamp_min(i, -1), 2), (INTS,)),
    "clamp_int_by_tensors": (
        lambda i, lo, hi: torch.clamp(i, lo, hi),
        (torch.arange(-6, 6).reshape(2, 6), torch.tensor([-4, -1, 0, 1, 2, -6]), torch.tensor(3)),
    ),
    "clamp_int_by_floats": (lambda i: torch.clamp(i, -2.5, 100.0), (torch.arange(-6, 6).reshape(2, 6),)),
    "linspace_of_inputs": (lambda a, b: torch.linspace(a, b, 7), (torch.tensor(-1.5), torch.tensor(2.75))),
    "linspace_int_endpoints": (
        lambda a, b: torch.linspace(a, b, 4) * 2,
        (torch.tensor(3, dtype=torch.int32), torch.tensor(-9, dtype=torch.int32)),
    ),
    "linspace_one_end_input": (lambda a: torch.linspace(a, 4.5, 5), (torch.tensor(-2.0),)),
    "fake_quantize_per_tensor": (lambda x: torch.fake_quantize_per_tensor_affine(x, 0.1, 3, 0, 255), (X3 * 5,)),
    "fake_quantize_per_tensor_qparams": (
        lambda x: torch.fake_quantize_per_tensor_affine(
            x, torch.tensor(0.05), torch.tensor(-3, dtype=torch.int32), -128, 127
        ),
        (X3 * 5,),
    ),
    "fake_quantize_per_channel": (
        lambda x: torch.fake_quantize_per_channel_affine(
            x,
            torch.tensor([0.1, 0.02, 0.3, 0.05, 0.01]),
            torch.tensor([0, 1, -2, 5, 0], dtype=torch.int32),
            1,
            -128,
            127,
        ),
        (X3 * 3,),
    ),
}

# Valid files the onert 0.1.0 runtime cannot run.
LITERT_ONLY = {
    "where_int": "onert 0.1.0's SELECT_V2 has no int32 kernel",
    # "ElementwiseActivationLayer: only ReLU(0-inf) and ReLU6(0-6)"; fused into a conv,
    # fully connected or add it runs.
    "hardtanh_of_an_input": "onert 0.1.0 has no standalone RELU_N1_TO_1 kernel",
}


def _as_list(outputs):
    return [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)


def _expect_match(cm, model, inputs):
    expected = _as_list(model(*inputs))
    actual = cm.run(*inputs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        e = e.detach().numpy()
        assert a.shape == e.shape and a.dtype == e.dtype, (a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


# Every case in both formats, except where onert lacks the kernel (LITERT_ONLY says which):
# those run in LiteRT only.
FLOAT_RUNS = [
    (name, fmt) for name in FLOAT_CASES for fmt in ("circle", "tflite") if not (fmt == "circle" and name in LITERT_ONLY)
]


@pytest.mark.parametrize("name,fmt", FLOAT_RUNS)
def test_float_op_matches_pytorch(name, fmt):
    fn, inputs = FLOAT_CASES[name]
    model = Fn(fn).eval()
    _expect_match(torch_circle.export(model, inputs, format=fmt), model, inputs)


def test_hardsigmoid_is_written_as_add_relu6_div():
    cm = torch_circle.export(Fn(F.hardsigmoid), (X4,))
    assert cm.operators == ["ADD", "DIV"]  # ADD with RELU6 fused; no op onert cannot run


def test_padding_modes_and_indexing_become_gathers():
    cm = torch_circle.export(Fn(lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect")), (X4,))
    assert cm.operators == ["GATHER", "GATHER"]  # one per padded dim; onert has no MIRROR_PAD
    cm = torch_circle.export(Fn(lambda x, i: torch.gather(x, 1, i)), FLOAT_CASES["gather"][1])
    assert cm.operators[-1] == "GATHER"


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(stride=2, padding=1, output_padding=1),
        dict(stride=2, padding=1, output_padding=1, bias=False),
        dict(stride=3, padding=1, output_padding=2),
        dict(stride=2, padding=0),
    ],
)
@pytest.mark.parametrize("fmt", ["circle", "tflite"])
def test_conv_transpose_with_output_padding(kwargs, fmt):
    model = models.seeded(nn.ConvTranspose2d(4, 3, 3, **kwargs)).eval()
    x = _randn(1, 4, 5, 5)
    if fmt == "tflite" and kwargs.get("output_padding", 0) > kwargs["padding"]:
        # TRANSPOSE_CONV's output is cropped, never grown: rows past it would hold only the bias.
        with pytest.raises(torch_circle.ExportError, match="output_padding larger than padding"):
            torch_circle.export(model, (x,), format=fmt)
        return
    _expect_match(torch_circle.export(model, (x,), format=fmt), model, (x,))


def _resize_bilinear_op():
    """TICO's circle_custom.resize_bilinear (what tico.ops.ResizeBilinear2d traces to): from tico
    when it is installed, else registered here with its schema for PyTorch's two coordinate modes."""
    try:
        import tico.ops  # noqa: F401  registers the op
    except ImportError:
        if not hasattr(torch.ops.circle_custom, "resize_bilinear"):

            @torch.library.custom_op("circle_custom::resize_bilinear", mutates_args=())
            def resize(x: torch.Tensor, size: list[int], align_corners: bool, half_pixel_centers: bool) -> torch.Tensor:
                assert align_corners != half_pixel_centers, "PyTorch has no asymmetric mode"
                nchw = F.interpolate(x.permute(0, 3, 1, 2), size=size, mode="bilinear", align_corners=align_corners)
                return nchw.permute(0, 2, 3, 1).contiguous()

            @resize.register_fake
            def _(x, size, align_corners, half_pixel_centers):
                return x.new_empty(x.shape[0], size[0], size[1], x.shape[3])

    return torch.ops.circle_custom.resize_bilinear.default


@pytest.mark.parametrize("align_corners", [False, True])
def test_ticos_resize_bilinear_op_is_one_resize_bilinear(align_corners):
    op = _resize_bilinear_op()
    model = Fn(lambda x: op(x.permute(0, 2, 3, 1), [7, 9], align_corners, not align_corners).permute(0, 3, 1, 2))
    cm = torch_circle.export(model, (X4,))
    assert cm.operators == ["TRANSPOSE", "RESIZE_BILINEAR", "TRANSPOSE"]
    (actual,) = cm.run(X4, runtime="onert")
    expected = F.interpolate(X4, size=(7, 9), mode="bilinear", align_corners=align_corners)
    np.testing.assert_allclose(actual, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_broadcast_to_is_written_with_a_version_litert_registers():
    from circle_schema import circle as C

    model = Fn(FLOAT_CASES["expand"][0])
    cm = torch_circle.export(model, (X3,), format="tflite")
    parsed = C.Model.ModelT.InitFromPackedBuf(cm.data, 0)
    versions = {code.builtinCode: code.version for code in parsed.operatorCodes}
    # LiteRT registers BROADCAST_TO (130) for versions 2-3 only; every other op from version 1.
    assert versions[C.BuiltinOperator.BuiltinOperator.BROADCAST_TO] == 2
    assert all(v == 1 for code, v in versions.items() if code != C.BuiltinOperator.BuiltinOperator.BROADCAST_TO)
    _expect_match(cm, model, (X3,))


def test_index_put_and_several_index_tensors_need_no_scatter_or_gather_nd():
    # onert 0.1.0 has no SCATTER_ND / GATHER_ND kernel: flat positions and one GATHER each.
    for name in ("index_put", "index_several_tensors"):
        fn, inputs = FLOAT_CASES[name]
        operators = torch_circle.export(Fn(fn), inputs).operators
        assert "GATHER" in operators and not {"SCATTER_ND", "GATHER_ND"} & set(operators), operators


def test_unsupported_indexing_gives_a_clear_error():
    with pytest.raises(torch_circle.ExportError, match="depends on the data"):
        x = X3[0, 0]  # one value per masked element: as many as x has positives
        torch_circle.export(Fn(lambda x, v: x.clone().index_put_((x > 0,), v)), (x, _randn(int((x > 0).sum()))))
    with pytest.raises(torch_circle.ExportError, match="repeats a label"):
        torch_circle.export(Fn(lambda x: torch.einsum("ii->i", x)), (_randn(3, 3),))
    with pytest.raises(torch_circle.ExportError, match="not adjacent"):
        torch_circle.export(Fn(lambda x: x[torch.tensor([0, 1]), :, torch.tensor([1, 2])]), (X3,))


# --- quantized ---------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """MobileNetV3's block: hardswish convs, a squeeze-excite gate through hardsigmoid."""

    def __init__(self, c=8):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.BatchNorm2d(c), nn.Hardswish())
        self.fc1, self.fc2 = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c // 2, c, 1)
        self.head = nn.Linear(c, 5)

    def forward(self, x):
        y = self.dw(self.conv(x))
        gate = F.hardsigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(y, 1)))))
        return self.head((y * gate).mean((2, 3)))


class GatherHead(nn.Module):
    """Quantized activations through the indexing and padding lowerings."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3)

    def forward(self, x, index, positions):
        y = self.conv(F.pad(x, (1, 1, 1, 1), mode="reflect"))
        a, b = y.chunk(2, dim=1)
        picked = torch.index_select(a + b, 3, index)
        return torch.gather(picked, 2, positions) * 2


class PoolResizeRoll(nn.Module):
    """Quantized activations through padded average pooling (zeros counted), bilinear upsampling,
    roll (which the quantizer leaves in float) and repeat that adds a dim."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = F.avg_pool2d(self.conv(x), 3, 1, 1)
        y = F.interpolate(y, scale_factor=2, mode="bilinear")
        return torch.roll(y, shifts=3, dims=3).repeat(2, 1, 1, 1, 1)


class FlipBetweenConvs(nn.Module):
    """Quantized activations through flip (REVERSE_V2: integer in LiteRT, float between
    DEQUANTIZE and QUANTIZE in onert, which reverses float32 only)."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        return self.b(torch.flip(self.a(x), [3, 1]))


QUANT_CASES = {
    "mobilenet_v3_block": (SqueezeExcite(), (_randn(2, 3, 12, 12),)),
    "flip_between_convs": (FlipBetweenConvs(), (_randn(1, 3, 6, 6),)),
    "pool_resize_roll": (PoolResizeRoll(), (_randn(1, 3, 6, 6),)),
    "gather_pad_chunk": (GatherHead(), (X4, torch.tensor([5, 0, 3]), torch.randint(0, 6, (2, 2, 4, 3)))),
}


@pytest.mark.parametrize("name", list(QUANT_CASES))
@pytest.mark.parametrize("preset,fmt", [("uint8", "circle"), ("int8", "tflite"), ("int16", "tflite")])
def test_quantized_ops_within_one_step_of_converted_model(name, preset, fmt):
    model, inputs = QUANT_CASES[name]
    model = models.seeded(model).eval()
    prepared = prepare_pt2e(torch.export.export(model, inputs).module(), CircleQuantizer(preset=preset))
    for seed in range(4):  # calibrate on more than the test input
        prepared(*[_randn(*t.shape) * (1 + seed / 4) if t.is_floating_point() else t for t in inputs])
    prepared(*inputs)
    converted = convert_pt2e(prepared)
    cm = torch_circle.export(converted, inputs, format=fmt)
    steps = cm.output_steps(cm.run(*inputs)[0], converted(*inputs).detach().numpy())
    # int16 steps are 256 times finer: a near-tie in fixed-point requantization shows as one more
    # (as in test_exporter.py's bounds).
    max_steps = 2 if preset == "int16" else 1
    assert steps.max() <= max_steps, f"{steps.max()} steps"


def test_quantizer_annotates_hardsigmoid():
    model, inputs = QUANT_CASES["mobilenet_v3_block"]
    quantizer = CircleQuantizer(preset="uint8")
    prepare_pt2e(torch.export.export(models.seeded(model).eval(), inputs).module(), quantizer)
    assert not any("hardsigmoid" in op for op in quantizer.left_in_float), quantizer.left_in_float


# --- forward arguments and outputs that are not tensors -----------------------------------------


class NonTensorArguments(nn.Module):
    def forward(self, x, n, pair, nothing, f):
        assert nothing is None
        return x * n + pair[1] - f, None


def test_number_list_and_none_arguments_are_baked_and_none_outputs_left_out():
    model = NonTensorArguments()
    cm = torch_circle.export(model, (X3, 3, [1, 2], None, 0.5))
    assert len(cm.info["subgraphs"][0]["inputs"]) == 1  # the numbers are in the graph, not inputs
    (actual,) = cm.run(X3)
    np.testing.assert_allclose(actual, model(X3, 3, [1, 2], None, 0.5)[0].numpy(), rtol=1e-6)


class SizeOutput(nn.Module):
    def forward(self, x):
        return x + 1, x.shape[1]


def test_symbolic_size_as_an_output():
    model = SizeOutput()
    ep = torch.export.export(model, (X3,), dynamic_shapes=({1: torch.export.Dim("n", max=64)},))
    cm = torch_circle.export(ep)
    for n in (5, 11):
        x = _randn(2, n, 8)
        out, size = cm.run(x)
        np.testing.assert_allclose(out, (x + 1).numpy(), rtol=1e-6)
        assert size.shape == () and int(size) == n


class NumberOutputs(nn.Module):
    def forward(self, x):
        return x + 1, x.shape[0], 0.25, True


@pytest.mark.parametrize("fmt", ["circle", "tflite"])
def test_numbers_known_at_export_time_are_constant_outputs(fmt):
    cm = torch_circle.export(NumberOutputs(), (X3,), format=fmt)
    out, size, number, flag = cm.run(X3)
    np.testing.assert_allclose(out, (X3 + 1).numpy(), rtol=1e-6)
    assert (size.dtype, size.shape, size.item()) == (np.int64, (), 2)
    assert (number.dtype, number.item()) == (np.float32, 0.25)
    assert (flag.dtype, flag.item()) == (np.bool_, True)


@pytest.mark.parametrize("fmt", ["circle", "tflite"])
def test_fake_quantize_is_bit_exact_with_pytorch_at_rounding_halves(fmt):
    # x / scale lands on .5 for half of these: PyTorch rounds half to even after scaling, then
    # adds the zero point (an odd zero point changes which way a half goes if added first).
    x = (torch.arange(-40, 41, dtype=torch.float32) * 0.05).reshape(1, 81)
    model = Fn(lambda t: torch.fake_quantize_per_tensor_affine(t, 0.1, 3, -10, 20)).eval()
    (actual,) = torch_circle.export(model, (x,), format=fmt).run(x)
    np.testing.assert_array_equal(actual, model(x).numpy())


def test_fake_quantize_with_float_zero_points_is_refused():
    model = Fn(lambda t: torch.fake_quantize_per_channel_affine(t, torch.ones(5), torch.zeros(5), 1, 0, 255))
    with pytest.raises(torch_circle.ExportError, match="fake_quantize_per_channel_affine.*float zero points"):
        torch_circle.export(model, (X3,))


def test_pow_by_an_integer_tensor_is_computed_in_float():
    # onert 0.1.0 loads POW(FLOAT32, INT32) and returns inf / NaN: the exponent must be cast.
    fn, inputs = FLOAT_CASES["promote_pow_int_exponent"]
    cm = torch_circle.export(Fn(fn), inputs)
    sg = cm.info["subgraphs"][0]
    pow_op = next(op for op in sg["operators"] if op["op"] == "POW")
    assert {sg["tensors"][i]["dtype"] for i in pow_op["inputs"]} == {"FLOAT32"}
    assert np.isfinite(cm.run(*inputs)[0]).all()


class OutputAlsoRead(nn.Module):
    """A graph output that later ops also read (as a decoder's grown key / value cache is)."""

    def forward(self, x):
        y = x * 3
        return (y * 2).sum(), y


def test_an_output_other_ops_read_is_returned_intact():
    # onert 0.1.0 reuses such an output's memory once its last reader ran: y came back garbage.
    x = _randn(2, 2, 6, 8)
    cm = torch_circle.export(OutputAlsoRead(), (x,))
    total, y = cm.run(x)
    np.testing.assert_allclose(y, (x * 3).numpy(), rtol=1e-6)
    np.testing.assert_allclose(total, (x * 6).sum().numpy(), rtol=1e-5)
    assert cm.operators.count("RESHAPE") == 2  # the sum's to a scalar, and y's own copy


class SliceAssignedMask(nn.Module):
    """A mask built by writing into slices of a zeros tensor, as torchvision's Swin builds its
    shifted-window attention mask (fill_ on views of new_zeros)."""

    def forward(self, x):
        mask = x.new_zeros(x.shape[-2], x.shape[-1])
        mask[1:3, :2] = 1.0
        mask[3:, 2:] = torch.tensor(2.0)
        return x + mask


def test_writes_into_views_are_exported_functionally():
    # Exported as their out-of-place twins, the writes were lost and the mask stayed zeros.
    x = _randn(2, 4, 5)
    model = SliceAssignedMask()
    (actual,) = torch_circle.export(model, (x,)).run(x)
    np.testing.assert_allclose(actual, model(x).numpy(), rtol=1e-6)


def test_a_graph_module_that_writes_into_a_view_is_refused():
    x = _randn(2, 4, 5)
    gm = torch.export.export(SliceAssignedMask(), (x,)).module()
    with pytest.raises(torch_circle.ExportError, match=r"writes into a view.*run_decompositions"):
        torch_circle.export(gm, (x,))
    cm = torch_circle.export(torch.export.export(SliceAssignedMask(), (x,)).run_decompositions({}).module(), (x,))
    np.testing.assert_allclose(cm.run(x)[0], SliceAssignedMask()(x).numpy(), rtol=1e-6)
