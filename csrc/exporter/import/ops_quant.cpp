// Importers for the quantize / dequantize nodes of a PT2E-converted graph (quantized_decomposed,
// and the circle_quant ops torch_circle.lower() puts in their place). They become QUANTIZE /
// DEQUANTIZE ops whose integer side carries the quantization parameters; the fold passes then
// turn q → dq pairs into tensor quantization.
#include "exporter/import/fx_importer.h"

#include <fmt/format.h>

#include <cmath>

namespace torch_circle::exporter {
namespace {

struct PerTensor {
  double scale;
  int64_t zero_point;
};

// scale / zero point as numbers (.default) or as one-element constant tensors (.tensor).
PerTensor per_tensor_args(ImportContext& ctx) {
  const FxArg* scale = ctx.arg(1, "scale");
  if (scale && scale->kind == FxArg::Kind::kNode) {
    Tensor* s = ctx.tensor(1, "scale");
    Tensor* z = ctx.tensor(2, "zero_point");
    if (!s->is_constant() || !z->is_constant() || s->data.numel() != 1 || z->data.numel() != 1)
      ctx.fail("scale and zero point must be constants (dynamic quantization is not supported)");
    return {s->data.item<double>(), z->data.item<int64_t>()};
  }
  return {ctx.float_arg(1, "scale"), ctx.int_arg(2, "zero_point")};
}

void check_range(ImportContext& ctx, at::ScalarType dtype, int64_t qmin, int64_t qmax) {
  DType d = dtype_from_torch(dtype);
  if (d != DType::kUInt8 && d != DType::kInt8 && d != DType::kInt16 && d != DType::kInt32)
    ctx.fail(fmt::format("quantized dtype {} is not supported by Circle (uint8, int8, int16, int32)", dtype_name(d)));
  if (qmin > qmax) ctx.fail("quant_min > quant_max");
}

QuantParams per_tensor_params(const PerTensor& p) {
  QuantParams q;
  q.scale = {static_cast<float>(p.scale)};
  q.zero_point = {p.zero_point};
  return q;
}

QuantParams per_channel_params(ImportContext& ctx, Tensor* input) {
  Tensor* scales = ctx.tensor(1, "scales");
  Tensor* zero_points = ctx.tensor_or_null(2, "zero_points");
  int64_t axis = ctx.int_arg(3, "axis");
  if (!scales->is_constant() || (zero_points && !zero_points->is_constant()))
    ctx.fail("per-channel scales and zero points must be constants");
  if (axis < 0) axis += input->rank();
  if (axis < 0 || axis >= input->rank()) ctx.fail("per-channel axis out of range");
  QuantParams q;
  at::Tensor s = scales->data.to(at::kFloat).contiguous();
  q.scale.assign(s.data_ptr<float>(), s.data_ptr<float>() + s.numel());
  if (zero_points) {
    at::Tensor z = zero_points->data.to(at::kLong).contiguous();
    q.zero_point.assign(z.data_ptr<int64_t>(), z.data_ptr<int64_t>() + z.numel());
  } else {
    q.zero_point.assign(q.scale.size(), 0);
  }
  if (static_cast<int64_t>(q.scale.size()) != input->shape[axis] || q.zero_point.size() != q.scale.size())
    ctx.fail(fmt::format("{} scales for {} channels", q.scale.size(), input->shape[axis]));
  q.axis = static_cast<int32_t>(axis);
  return q;
}

// The scales as the file stores them (float32): a NaN, zero or negative one (a tampered or
// broken converted graph) would give a file that runs and computes garbage.
void check_scales(ImportContext& ctx, const QuantParams& params) {
  for (size_t i = 0; i < params.scale.size(); ++i) {
    const float s = params.scale[i];
    if (!(s > 0) || !std::isfinite(s)) {
      ctx.fail(params.per_channel() ? fmt::format("scales[{}] = {} must be finite and > 0 (as float32)", i, s)
                                    : fmt::format("scale {} must be finite and > 0 (as float32)", s));
    }
  }
}

void quantize(ImportContext& ctx, const QuantParams& params, int64_t qmin, int64_t qmax, at::ScalarType dtype) {
  Tensor* x = ctx.tensor(0, "input");
  check_range(ctx, dtype, qmin, qmax);
  check_scales(ctx, params);
  Tensor* out = ctx.output_like(x, dtype_from_torch(dtype));
  out->quant = params;
  Op* op = ctx.emit("QUANTIZE", {x}, {out});
  op->attrs = {{"quant_min", qmin}, {"quant_max", qmax}};
}

// The integer input takes the parameters; a q → dq pair must agree on them.
void dequantize(ImportContext& ctx, const QuantParams& params, at::ScalarType dtype, size_t out_dtype_index) {
  Tensor* q = ctx.tensor(0, "input");
  check_scales(ctx, params);
  if (q->dtype != dtype_from_torch(dtype))
    ctx.fail(
        fmt::format("input is {} but the node says {}", dtype_name(q->dtype), dtype_name(dtype_from_torch(dtype))));
  if (!q->quant) {
    q->quant = params;
  } else if (*q->quant != params) {
    ctx.fail("dequantizes with other parameters than the quantize that produced its input");
  }
  at::ScalarType out_dtype = ctx.dtype_arg(out_dtype_index, "out_dtype", at::kFloat);
  ctx.emit("DEQUANTIZE", {q}, {ctx.output_like(q, dtype_from_torch(out_dtype))});
}

IMPORT_OP({"quantized_decomposed.quantize_per_tensor.default", "quantized_decomposed.quantize_per_tensor.tensor",
           "circle_quant.quantize_per_tensor.default"},
          [](ImportContext& ctx) {
            quantize(ctx, per_tensor_params(per_tensor_args(ctx)), ctx.int_arg(3, "quant_min"),
                     ctx.int_arg(4, "quant_max"), ctx.dtype_arg(5, "dtype"));
          });

IMPORT_OP({"quantized_decomposed.dequantize_per_tensor.default", "quantized_decomposed.dequantize_per_tensor.tensor",
           "circle_quant.dequantize_per_tensor.default"},
          [](ImportContext& ctx) {
            at::ScalarType dtype = ctx.dtype_arg(5, "dtype");
            check_range(ctx, dtype, ctx.int_arg(3, "quant_min"), ctx.int_arg(4, "quant_max"));
            dequantize(ctx, per_tensor_params(per_tensor_args(ctx)), dtype, 6);
          });

IMPORT_OP({"quantized_decomposed.quantize_per_channel.default", "circle_quant.quantize_per_channel.default"},
          [](ImportContext& ctx) {
            Tensor* x = ctx.tensor(0, "input");
            quantize(ctx, per_channel_params(ctx, x), ctx.int_arg(4, "quant_min"), ctx.int_arg(5, "quant_max"),
                     ctx.dtype_arg(6, "dtype"));
          });

IMPORT_OP({"quantized_decomposed.dequantize_per_channel.default", "circle_quant.dequantize_per_channel.default"},
          [](ImportContext& ctx) {
            Tensor* q = ctx.tensor(0, "input");
            at::ScalarType dtype = ctx.dtype_arg(6, "dtype");
            check_range(ctx, dtype, ctx.int_arg(4, "quant_min"), ctx.int_arg(5, "quant_max"));
            dequantize(ctx, per_channel_params(ctx, q), dtype, 7);
          });

// aten.fake_quantize_* in a float graph (QAT models, or a quantizer's simulated rounding): float
// arithmetic with PyTorch's CPU numerics, so the result is the same bits:
//   (min(max(zero_point + nearbyint(x * (1.0f / scale)), quant_min), quant_max) - zero_point) * scale
// ROUND rounds half to even like nearbyint, and every value between the multiplications is a
// whole number held exactly in float32. The zero point is added after rounding, as PyTorch does
// (round(a + 1) is not round(a) + 1 for halves). `scale` / `zero_point` are per-tensor numbers or
// per-channel constant tensors (already shaped to broadcast along the channel axis).
void fake_quantize(ImportContext& ctx, const at::Tensor& scale, const at::Tensor& zero_point, int64_t qmin,
                   int64_t qmax) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (x->dtype != DType::kFloat32) ctx.fail(fmt::format("input is {}, not float32", dtype_name(x->dtype)));
  if (qmin > qmax) ctx.fail("quant_min > quant_max");
  at::Tensor scale32 = scale.to(at::kFloat);
  if (!(scale32 > 0).all().item<bool>()) ctx.fail("scale must be positive");
  auto step = [&](const char* type, Tensor* a, Tensor* b, const char* suffix, Tensor* into = nullptr) {
    Tensor* result = into ? into : ctx.temp(x->shape, DType::kFloat32, suffix);
    ctx.emit(type, b ? std::vector<Tensor*>{a, b} : std::vector<Tensor*>{a}, {result});
    return result;
  };
  auto number = [&](double value, const char* suffix) {
    return ctx.constant(at::scalar_tensor(value, at::kFloat), suffix);
  };
  Tensor* zp = ctx.constant(zero_point.to(at::kFloat), "zero_point");
  Tensor* t = step("MUL", x, ctx.constant(at::reciprocal(scale32), "inv_scale"), "scaled");
  t = step("ROUND", t, nullptr, "rounded");
  t = step("ADD", t, zp, "shifted");
  t = step("MAXIMUM", t, number(static_cast<double>(qmin), "quant_min"), "above_min");
  t = step("MINIMUM", t, number(static_cast<double>(qmax), "quant_max"), "q");
  t = step("SUB", t, zp, "centered");
  step("MUL", t, ctx.constant(scale32, "scale"), "", out);
}

IMPORT_OP({"aten.fake_quantize_per_tensor_affine.default", "aten.fake_quantize_per_tensor_affine.tensor_qparams"},
          [](ImportContext& ctx) {
            PerTensor p = per_tensor_args(ctx);
            fake_quantize(ctx, at::scalar_tensor(p.scale, at::kFloat), at::scalar_tensor(p.zero_point, at::kLong),
                          ctx.int_arg(3, "quant_min"), ctx.int_arg(4, "quant_max"));
          });

IMPORT_OP({"aten.fake_quantize_per_channel_affine.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* scale = ctx.tensor(1, "scale");
  Tensor* zero_point = ctx.tensor(2, "zero_point");
  if (!scale->is_constant() || !zero_point->is_constant())
    ctx.fail("scale and zero point must be constants (computed scales are not supported)");
  if (zero_point->data.is_floating_point())
    ctx.fail("float zero points are not supported (PyTorch rounds them differently); use integer zero points");
  int64_t axis = ctx.int_arg(3, "axis");
  if (axis < 0) axis += x->rank();
  if (axis < 0 || axis >= x->rank()) ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, x->rank()));
  int64_t channels = x->shape[axis];
  if (scale->data.numel() != channels || zero_point->data.numel() != channels)
    ctx.fail(fmt::format("scale and zero point need {} entries (dim {} of the input), got {} and {}", channels, axis,
                         scale->data.numel(), zero_point->data.numel()));
  std::vector<int64_t> along(x->rank(), 1);
  along[axis] = channels;
  fake_quantize(ctx, scale->data.reshape(along), zero_point->data.reshape(along), ctx.int_arg(4, "quant_min"),
                ctx.int_arg(5, "quant_max"));
});

}  // namespace
}  // namespace torch_circle::exporter
