// Importers for elementwise ops: arithmetic, activations, math functions, comparisons, casts.
#include "exporter/import/fx_importer.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace torch_circle::exporter {
namespace {

// An argument index past every positional one: the argument is looked up by keyword only.
constexpr size_t kKeywordOnly = 99;

void unary(ImportContext& ctx, const char* type) { ctx.emit(type, {ctx.tensor(0, "input")}, {ctx.output()}); }

// The two operands of a binary op, a number turned into a constant of the other operand's
// dtype (i > 3 on an int32 tensor compares int32s; runtimes reject mixed operand types). A
// fractional number next to an integer tensor stays float32, as PyTorch promotes it.
std::pair<Tensor*, Tensor*> binary_operands(ImportContext& ctx) {
  const FxArg* a = ctx.arg(0, "input");
  const FxArg* b = ctx.arg(1, "other");
  auto is_tensor = [](const FxArg* arg) { return arg && arg->kind == FxArg::Kind::kNode; };
  auto number_dtype = [](const FxArg* number, const Tensor* other) {
    bool fractional = number && number->kind == FxArg::Kind::kFloat;
    return fractional && is_integer(other->dtype) ? DType::kFloat32 : other->dtype;
  };
  if (is_tensor(a) && !is_tensor(b)) {
    Tensor* ta = ctx.tensor(0, "input");
    return {ta, ctx.tensor_or_scalar(1, "other", number_dtype(b, ta))};
  }
  if (!is_tensor(a) && is_tensor(b)) {
    Tensor* tb = ctx.tensor(1, "other");
    return {ctx.tensor_or_scalar(0, "input", number_dtype(a, tb)), tb};
  }
  return {ctx.tensor_or_scalar(0, "input"), ctx.tensor_or_scalar(1, "other")};
}

// a <op> b with numbers turned into constants; `alpha` scales b first (add / sub's alpha=).
void binary(ImportContext& ctx, const char* type, bool has_alpha = false) {
  auto [a, b] = binary_operands(ctx);
  if (has_alpha) {
    double alpha = ctx.float_arg(2, "alpha", 1.0);
    if (alpha != 1.0) {
      Tensor* scaled = ctx.temp(b->shape, b->dtype, "alpha_scaled");
      ctx.emit("MUL", {b, ctx.constant(at::scalar_tensor(alpha, at::kFloat), "alpha")}, {scaled});
      b = scaled;
    }
  }
  ctx.emit(type, {a, b}, {ctx.output()});
}

#define UNARY(target, type) IMPORT_OP({target}, [](ImportContext& ctx) { unary(ctx, type); })
UNARY("aten.relu.default", "RELU");
UNARY("aten.sigmoid.default", "LOGISTIC");
UNARY("aten.tanh.default", "TANH");
UNARY("aten.exp.default", "EXP");
UNARY("aten.log.default", "LOG");
UNARY("aten.sqrt.default", "SQRT");
UNARY("aten.rsqrt.default", "RSQRT");
UNARY("aten.neg.default", "NEG");
UNARY("aten.abs.default", "ABS");
UNARY("aten.sin.default", "SIN");
UNARY("aten.cos.default", "COS");
UNARY("aten.logical_not.default", "LOGICAL_NOT");
UNARY("aten.round.default", "ROUND");  // half to even, as PyTorch rounds
#undef UNARY

// log1p(x) = log(1 + x): Circle has no LOG1P (the sum loses nothing at float32's 1e-5 tolerance
// unless |x| < 1e-7, where log1p(x) ~ x).
IMPORT_OP({"aten.log1p.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* shifted = ctx.temp(x->shape, x->dtype, "plus1");
  ctx.emit("ADD", {x, ctx.constant(at::scalar_tensor(1.0, at::kFloat), "one")}, {shifted});
  ctx.emit("LOG", {shifted}, {ctx.output()});
});

// elu(x, alpha, scale, input_scale) = scale * (x > 0 ? x : alpha * (exp(input_scale * x) - 1)):
// Circle's ELU for the plain form, else written out with SELECT_V2. selu is elu with fixed
// alpha and scale (PyTorch's constants).
IMPORT_OP({"aten.elu.default", "aten.selu.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  bool selu = ctx.node().target == "aten.selu.default";
  double alpha = selu ? 1.6732632423543772848170429916717 : ctx.float_arg(1, "alpha", 1.0);
  double scale = selu ? 1.0507009873554804934193349852946 : ctx.float_arg(2, "scale", 1.0);
  double input_scale = selu ? 1.0 : ctx.float_arg(3, "input_scale", 1.0);
  Tensor* out = ctx.output();
  if (alpha == 1.0 && scale == 1.0 && input_scale == 1.0) return (void)ctx.emit("ELU", {x}, {out});
  Tensor* e = ctx.temp(x->shape, x->dtype, "exp");
  ctx.emit("EXP", {ctx.times(x, input_scale, "input_scale")}, {e});
  Tensor* em1 = ctx.temp(x->shape, x->dtype, "expm1");
  ctx.emit("SUB", {e, ctx.constant(at::scalar_tensor(1.0, at::kFloat), "one")}, {em1});
  Tensor* positive = ctx.temp(x->shape, DType::kBool, "positive");
  ctx.emit("GREATER", {x, ctx.constant(at::scalar_tensor(0.0, at::kFloat), "zero")}, {positive});
  Tensor* selected = scale == 1.0 ? out : ctx.temp(x->shape, x->dtype, "unscaled");
  ctx.emit("SELECT_V2", {positive, x, ctx.times(em1, alpha, "alpha")}, {selected});
  if (selected != out) ctx.emit("MUL", {selected, ctx.constant(at::scalar_tensor(scale, at::kFloat), "scale")}, {out});
});

// Logical and / or; & and | on bool tensors are the same (bitwise on integers is not supported).
void logical(ImportContext& ctx, const char* type) {
  auto [a, b] = binary_operands(ctx);
  const std::string& target = ctx.node().target;
  if (target.find("logical_") == std::string::npos && (a->dtype != DType::kBool || b->dtype != DType::kBool))
    ctx.fail(
        fmt::format("bitwise {} of {} tensors is not supported (only of bool tensors)", type, dtype_name(a->dtype)));
  ctx.emit(type, {a, b}, {ctx.output()});
}
IMPORT_OP({"aten.logical_and.default", "aten.__and__.Tensor", "aten.bitwise_and.Tensor"},
          [](ImportContext& ctx) { logical(ctx, "LOGICAL_AND"); });
IMPORT_OP({"aten.logical_or.default", "aten.__or__.Tensor", "aten.bitwise_or.Tensor"},
          [](ImportContext& ctx) { logical(ctx, "LOGICAL_OR"); });
// ~mask on a bool tensor (x[~mask] = 0): LOGICAL_NOT; on integers it would be -x - 1.
IMPORT_OP({"aten.bitwise_not.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  if (x->dtype != DType::kBool)
    ctx.fail(fmt::format("bitwise not of a {} tensor is not supported (only of bool tensors)", dtype_name(x->dtype)));
  ctx.emit("LOGICAL_NOT", {x}, {ctx.output()});
});

IMPORT_OP({"aten.add.Tensor", "aten.add.Scalar"}, [](ImportContext& ctx) { binary(ctx, "ADD", true); });
IMPORT_OP({"aten.sub.Tensor", "aten.sub.Scalar"}, [](ImportContext& ctx) { binary(ctx, "SUB", true); });
IMPORT_OP({"aten.mul.Tensor", "aten.mul.Scalar"}, [](ImportContext& ctx) { binary(ctx, "MUL"); });
IMPORT_OP({"aten.div.Tensor", "aten.div.Scalar"}, [](ImportContext& ctx) { binary(ctx, "DIV"); });
IMPORT_OP({"aten.div.Tensor_mode"}, [](ImportContext& ctx) {
  const FxArg* mode = ctx.arg(2, "rounding_mode");
  if (mode && mode->kind == FxArg::Kind::kString) {
    if (mode->s != "floor") ctx.fail(fmt::format("div with rounding_mode='{}' is not supported", mode->s));
    auto [a, b] = binary_operands(ctx);
    ctx.emit("FLOOR_DIV", {a, b}, {ctx.output()});
    return;
  }
  binary(ctx, "DIV");
});
IMPORT_OP({"aten.rsub.Scalar", "aten.rsub.Tensor"}, [](ImportContext& ctx) {
  auto [a, b] = binary_operands(ctx);
  if (ctx.float_arg(2, "alpha", 1.0) != 1.0) ctx.fail("rsub with alpha other than 1 is not supported");
  ctx.emit("SUB", {b, a}, {ctx.output()});
});
IMPORT_OP({"aten.maximum.default"}, [](ImportContext& ctx) { binary(ctx, "MAXIMUM"); });
IMPORT_OP({"aten.minimum.default"}, [](ImportContext& ctx) { binary(ctx, "MINIMUM"); });
IMPORT_OP({"aten.eq.Tensor", "aten.eq.Scalar"}, [](ImportContext& ctx) { binary(ctx, "EQUAL"); });
IMPORT_OP({"aten.ne.Tensor", "aten.ne.Scalar"}, [](ImportContext& ctx) { binary(ctx, "NOT_EQUAL"); });
IMPORT_OP({"aten.lt.Tensor", "aten.lt.Scalar"}, [](ImportContext& ctx) { binary(ctx, "LESS"); });
IMPORT_OP({"aten.le.Tensor", "aten.le.Scalar"}, [](ImportContext& ctx) { binary(ctx, "LESS_EQUAL"); });
IMPORT_OP({"aten.gt.Tensor", "aten.gt.Scalar"}, [](ImportContext& ctx) { binary(ctx, "GREATER"); });
IMPORT_OP({"aten.ge.Tensor", "aten.ge.Scalar"}, [](ImportContext& ctx) { binary(ctx, "GREATER_EQUAL"); });

IMPORT_OP({"aten.pow.Tensor_Scalar"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  double exponent = ctx.float_arg(1, "exponent");
  if (exponent == 2.0) {
    ctx.emit("MUL", {x, x}, {ctx.output()});  // exact, and quantizes like any MUL
  } else if (exponent == 0.5) {
    ctx.emit("SQRT", {x}, {ctx.output()});
  } else if (exponent == 1.0) {
    ctx.alias(x);
  } else {
    ctx.emit("POW", {x, ctx.constant(at::scalar_tensor(exponent, at::kFloat), "exponent")}, {ctx.output()});
  }
});
IMPORT_OP({"aten.pow.Tensor_Tensor"}, [](ImportContext& ctx) { binary(ctx, "POW"); });

// clamp by tensors (nullptr: no bound): MAXIMUM, then MINIMUM (for integers in .circle files,
// legalize_integer_ops rewrites them: onert has no integer kernels for either).
void clamp_by(ImportContext& ctx, Tensor* x, Tensor* lo, Tensor* hi) {
  Tensor* out = ctx.output();
  if (!lo && !hi) return ctx.alias(x);  // clamp() without bounds is the identity
  Tensor* current = x;
  if (lo) {
    // The intermediate has the result's dtype: an integer input clamped by floats is float.
    Tensor* next = hi ? ctx.temp(out->shape, out->dtype, "clamp_min") : out;
    ctx.emit("MAXIMUM", {current, lo}, {next});
    current = next;
  }
  if (hi) ctx.emit("MINIMUM", {current, hi}, {out});
}

// hardtanh / clamp: a RELU flavour when the bounds match one (float results), else clamp_by.
void clamp(ImportContext& ctx, std::optional<double> lo, std::optional<double> hi) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (!is_integer(out->dtype)) {
    if (lo == 0.0 && hi == 6.0) return (void)ctx.emit("RELU6", {x}, {out});
    if (lo == -1.0 && hi == 1.0) return (void)ctx.emit("RELU_N1_TO_1", {x}, {out});
    if (lo == 0.0 && !hi) return (void)ctx.emit("RELU", {x}, {out});
  }
  // Bounds in the result's dtype: PyTorch clamps an integer tensor by integer bounds exactly.
  auto bound = [&](std::optional<double> value, const char* name) -> Tensor* {
    return value ? ctx.constant(at::scalar_tensor(*value, dtype_to_torch(out->dtype)), name) : nullptr;
  };
  clamp_by(ctx, x, bound(lo, "min"), bound(hi, "max"));
}
IMPORT_OP({"aten.hardtanh.default"},
          [](ImportContext& ctx) { clamp(ctx, ctx.float_arg(1, "min_val", -1.0), ctx.float_arg(2, "max_val", 1.0)); });
IMPORT_OP({"aten.relu6.default"}, [](ImportContext& ctx) { clamp(ctx, 0.0, 6.0); });
// clamp with tensor bounds (either may be None).
IMPORT_OP({"aten.clamp.Tensor", "aten.clamp_min.Tensor", "aten.clamp_max.Tensor"}, [](ImportContext& ctx) {
  const std::string& target = ctx.node().target;
  Tensor* x = ctx.tensor(0, "input");
  Tensor* lo = target.find("clamp_max") == std::string::npos ? ctx.tensor_or_null(1, "min") : nullptr;
  Tensor* hi = target.find("clamp_max") != std::string::npos   ? ctx.tensor_or_null(1, "max")
               : target.find("clamp_min") != std::string::npos ? nullptr
                                                               : ctx.tensor_or_null(2, "max");
  clamp_by(ctx, x, lo, hi);
});
IMPORT_OP({"aten.clamp_max.default"}, [](ImportContext& ctx) { clamp(ctx, std::nullopt, ctx.float_arg(1, "max")); });
IMPORT_OP({"aten.clamp.default"}, [](ImportContext& ctx) {
  std::optional<double> lo, hi;
  if (ctx.has_arg(1, "min")) lo = ctx.float_arg(1, "min");
  if (ctx.has_arg(2, "max")) hi = ctx.float_arg(2, "max");
  clamp(ctx, lo, hi);
});
// clamp_min(x, 0) is a RELU, which the quantizer and the backend fuse like relu (torch_circle/activations.py).
IMPORT_OP({"aten.clamp_min.default"}, [](ImportContext& ctx) { clamp(ctx, ctx.float_arg(1, "min"), std::nullopt); });

IMPORT_OP({"aten.gelu.default"}, [](ImportContext& ctx) {
  const FxArg* approximate = ctx.arg(1, "approximate");
  bool tanh = approximate && approximate->kind == FxArg::Kind::kString && approximate->s == "tanh";
  Op* op = ctx.emit("GELU", {ctx.tensor(0, "input")}, {ctx.output()});
  op->attrs["approximate"] = int64_t{tanh};
});

// silu(x) = x * sigmoid(x): Circle has no SiLU op.
IMPORT_OP({"aten.silu.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* sig = ctx.temp(x->shape, x->dtype, "sigmoid");
  ctx.emit("LOGISTIC", {x}, {sig});
  Tensor* out = ctx.output();
  ctx.emit("MUL", {x, sig}, {out});
});

// relu6(x + 3), the gate of hardsigmoid and hardswish. Circle has HARD_SWISH but onert 0.1.0 has
// no kernel for it, and no hard sigmoid op at all, so both are written out. In a quantized graph
// these ops run in float between the DEQUANTIZE / QUANTIZE that PyTorch's reference graph has
// around the activation too.
Tensor* relu6_of_x_plus_3(ImportContext& ctx, Tensor* x) {
  Tensor* shifted = ctx.temp(x->shape, x->dtype, "plus3");
  ctx.emit("ADD", {x, ctx.constant(at::scalar_tensor(3.0, at::kFloat), "three")}, {shifted});
  Tensor* gate = ctx.temp(x->shape, x->dtype, "relu6");
  ctx.emit("RELU6", {shifted}, {gate});
  return gate;
}

// `numerator` / 6 as a division, the way PyTorch's kernels compute both activations, so the float
// results are the same bits (a multiplication by 1/6 can round differently).
void divide_by_six(ImportContext& ctx, Tensor* numerator) {
  ctx.emit("DIV", {numerator, ctx.constant(at::scalar_tensor(6.0, at::kFloat), "six")}, {ctx.output()});
}

IMPORT_OP({"aten.hardsigmoid.default"},
          [](ImportContext& ctx) { divide_by_six(ctx, relu6_of_x_plus_3(ctx, ctx.tensor(0, "input"))); });
IMPORT_OP({"aten.hardswish.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* gate = relu6_of_x_plus_3(ctx, x);
  Tensor* product = ctx.temp(x->shape, x->dtype, "gated");
  ctx.emit("MUL", {x, gate}, {product});
  divide_by_six(ctx, product);
});

IMPORT_OP({"aten.leaky_relu.default"}, [](ImportContext& ctx) {
  Op* op = ctx.emit("LEAKY_RELU", {ctx.tensor(0, "input")}, {ctx.output()});
  op->attrs["alpha"] = ctx.float_arg(1, "negative_slope", 0.01);
});

// prelu(x) = relu(x) + alpha * min(x, 0), written out: onert has no PRELU kernel. The weight
// has one slope per channel (dim 1); Circle broadcasts from the right, so it becomes [C, 1, ...].
IMPORT_OP({"aten.prelu.default", "aten._prelu_kernel.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* weight = ctx.tensor(1, "weight");
  if (!weight->is_constant()) ctx.fail("prelu weight must be a constant");
  at::Tensor alpha = weight->data;
  if (alpha.numel() > 1 && x->rank() > 2) {
    std::vector<int64_t> shape(static_cast<size_t>(x->rank() - 1), 1);
    shape[0] = alpha.numel();
    alpha = alpha.reshape(shape);
  }
  Tensor* positive = ctx.temp(x->shape, x->dtype, "positive");
  ctx.emit("RELU", {x}, {positive});
  Tensor* negative = ctx.temp(x->shape, x->dtype, "negative");
  ctx.emit("MINIMUM", {x, ctx.constant(at::scalar_tensor(0.0, at::kFloat), "zero")}, {negative});
  Tensor* scaled = ctx.temp(x->shape, x->dtype, "scaled");
  ctx.emit("MUL", {negative, ctx.constant(alpha, "alpha")}, {scaled});
  Tensor* out = ctx.output();
  ctx.emit("ADD", {positive, scaled}, {out});
});

// where(cond, a, b): SELECT_V2, which broadcasts like torch.where. Numbers (where(c, x, 0.0))
// become constants of the output's dtype.
IMPORT_OP({"aten.where.self", "aten.where.ScalarOther", "aten.where.ScalarSelf", "aten.where.Scalar"},
          [](ImportContext& ctx) {
            Tensor* cond = ctx.tensor(0, "condition");
            Tensor* out = ctx.output();
            Tensor* a = ctx.tensor_or_scalar(1, "self", out->dtype);
            Tensor* b = ctx.tensor_or_scalar(2, "other", out->dtype);
            ctx.emit("SELECT_V2", {cond, a, b}, {out});
          });

// masked_fill(x, mask, value) = where(mask, value, x).
IMPORT_OP({"aten.masked_fill.Scalar", "aten.masked_fill.Tensor"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* mask = ctx.tensor(1, "mask");
  Tensor* value = ctx.tensor_or_scalar(2, "value", x->dtype);
  ctx.emit("SELECT_V2", {mask, value, x}, {ctx.output()});
});

// square(x) = x * x; reciprocal(x) = 1 / x (as PyTorch computes it).
IMPORT_OP({"aten.square.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  ctx.emit("MUL", {x, x}, {ctx.output()});
});
IMPORT_OP({"aten.reciprocal.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  ctx.emit("DIV", {ctx.constant(at::scalar_tensor(1.0, at::kFloat), "one"), x}, {ctx.output()});
});

// Casts: nothing to do when the dtype does not change.
void cast(ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (out->dtype == x->dtype) return ctx.alias(x);
  ctx.emit("CAST", {x}, {out});
}
IMPORT_OP({"aten._to_copy.default", "aten.to.dtype", "aten.to.dtype_layout", "aten.type_as.default", "aten.to.device",
           "aten.to.other"},
          [](ImportContext& ctx) { cast(ctx); });

// --- reductions --------------------------------------------------------------------------------

// Reductions keep the reduced dims and a RESHAPE drops them when asked: onert 0.1.0's shape
// checks reject several reductions without keep_dims.
Tensor* reduce_into(ImportContext& ctx, const char* type, Tensor* x, std::vector<int64_t> dims, bool keepdim,
                    Tensor* out) {
  if (std::string(type) == "REDUCE_MIN" && ctx.graph().format == FileFormat::kCircle) {
    // onert 0.1.0 cannot load REDUCE_MIN (it reports an unsupported LOGICAL_NOT): write
    // min(x) = -max(-x), exact in float.
    Tensor* negated = ctx.temp(x->shape, x->dtype, "negated");
    ctx.emit("NEG", {x}, {negated});
    Tensor* max_of_negated = ctx.temp(out->shape, out->dtype, "max_of_negated");
    reduce_into(ctx, "REDUCE_MAX", negated, dims, keepdim, max_of_negated);
    ctx.emit("NEG", {max_of_negated}, {out});
    return out;
  }
  std::vector<int64_t> kept = x->shape;
  for (int64_t d : dims) kept[d] = 1;
  Tensor* reduced = keepdim ? out : ctx.temp(kept, out->dtype, "kept");
  ctx.emit(type, {x}, {reduced})->attrs = {{"axes", dims}, {"keep_dims", int64_t{1}}};
  if (!keepdim) ctx.reshape(reduced, out->shape, "", out);
  return out;
}

void reduce(ImportContext& ctx, const char* type, size_t keepdim_index) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> dims = ctx.ints_arg(1, "dim", std::vector<int64_t>{});
  if (dims.empty())
    for (int64_t d = 0; d < x->rank(); ++d) dims.push_back(d);
  for (int64_t& d : dims)
    if (d < 0) d += x->rank();
  reduce_into(ctx, type, x, dims, ctx.bool_arg(keepdim_index, "keepdim", false), ctx.output());
}
IMPORT_OP({"aten.mean.dim"}, [](ImportContext& ctx) { reduce(ctx, "MEAN", 2); });
IMPORT_OP({"aten.sum.dim_IntList"}, [](ImportContext& ctx) { reduce(ctx, "SUM", 2); });
IMPORT_OP({"aten.amax.default"}, [](ImportContext& ctx) { reduce(ctx, "REDUCE_MAX", 2); });
IMPORT_OP({"aten.amin.default"}, [](ImportContext& ctx) { reduce(ctx, "REDUCE_MIN", 2); });
// Reductions over every dim (x.sum(), x.max()): no dim and no keepdim arguments.
IMPORT_OP({"aten.mean.default"}, [](ImportContext& ctx) { reduce(ctx, "MEAN", kKeywordOnly); });
IMPORT_OP({"aten.sum.default"}, [](ImportContext& ctx) { reduce(ctx, "SUM", kKeywordOnly); });
IMPORT_OP({"aten.max.default"}, [](ImportContext& ctx) { reduce(ctx, "REDUCE_MAX", kKeywordOnly); });
IMPORT_OP({"aten.min.default"}, [](ImportContext& ctx) { reduce(ctx, "REDUCE_MIN", kKeywordOnly); });

// linalg_vector_norm(x, ord, dim, keepdim): sqrt(sum(x * x)) for ord 2 (Swin V2's cosine
// attention), sum(|x|) for 1, max(|x|) for inf, over `dim` (every dim when None).
IMPORT_OP({"aten.linalg_vector_norm.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  double ord = ctx.float_arg(1, "ord", 2.0);
  std::vector<int64_t> dims = ctx.has_arg(2, "dim") ? ctx.ints_arg(2, "dim") : std::vector<int64_t>{};
  if (dims.empty())
    for (int64_t d = 0; d < x->rank(); ++d) dims.push_back(d);
  for (int64_t& d : dims)
    if (d < 0) d += x->rank();
  bool keepdim = ctx.bool_arg(3, "keepdim", false);
  Tensor* out = ctx.output();
  if (x->dtype != out->dtype) ctx.fail("linalg_vector_norm with a dtype= other than the input's is not supported");
  Tensor* terms = ctx.temp(x->shape, x->dtype, ord == 2.0 ? "squares" : "magnitudes");
  if (ord == 2.0) {
    ctx.emit("MUL", {x, x}, {terms});
    Tensor* sum = ctx.temp(out->shape, out->dtype, "sum_of_squares");
    reduce_into(ctx, "SUM", terms, dims, keepdim, sum);
    ctx.emit("SQRT", {sum}, {out});
  } else if (ord == 1.0 || (std::isinf(ord) && ord > 0)) {
    ctx.emit("ABS", {x}, {terms});
    reduce_into(ctx, ord == 1.0 ? "SUM" : "REDUCE_MAX", terms, dims, keepdim, out);
  } else {
    ctx.fail(fmt::format("linalg_vector_norm of order {} is not supported (only 1, 2 and inf)", ord));
  }
});

// any(x, dims): REDUCE_ANY over a bool view of x (nonzero is true, as in PyTorch).
IMPORT_OP({"aten.any.default", "aten.any.dim", "aten.any.dims"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  bool whole = ctx.node().target == "aten.any.default";
  std::vector<int64_t> dims = whole ? std::vector<int64_t>{} : ctx.ints_arg(1, "dim", std::vector<int64_t>{});
  if (dims.empty())
    for (int64_t d = 0; d < x->rank(); ++d) dims.push_back(d);
  for (int64_t& d : dims)
    if (d < 0) d += x->rank();
  Tensor* truth = x;
  if (x->dtype != DType::kBool) {
    truth = ctx.temp(x->shape, DType::kBool, "nonzero");
    ctx.emit("NOT_EQUAL", {x, ctx.constant(at::zeros({}, dtype_to_torch(x->dtype)), "zero")}, {truth});
  }
  reduce_into(ctx, "REDUCE_ANY", truth, dims, whole ? false : ctx.bool_arg(2, "keepdim", false), ctx.output());
});

// var / std over `dim` with Bessel's `correction`: sum((x - mean)^2) / (N - correction), then
// SQRT for std. Every runtime runs these ops in float.
void variance(ImportContext& ctx, bool standard_deviation) {
  Tensor* x = ctx.tensor(0, "input");
  const std::string& target = ctx.node().target;
  std::vector<int64_t> dims = ctx.ints_arg(1, "dim", std::vector<int64_t>{});
  if (dims.empty())
    for (int64_t d = 0; d < x->rank(); ++d) dims.push_back(d);
  int64_t count = 1;
  for (int64_t& d : dims) {
    if (d < 0) d += x->rank();
    if (x->shape[d] < 0) ctx.fail("variance over a dynamic dimension is not supported");
    count *= x->shape[d];
  }
  double correction;
  bool keepdim;
  if (target.find(".correction") != std::string::npos) {
    correction = ctx.float_arg(kKeywordOnly, "correction", 1.0);
    keepdim = ctx.bool_arg(kKeywordOnly, "keepdim", false);
  } else {  // var.dim(x, dim, unbiased, keepdim)
    correction = ctx.bool_arg(2, "unbiased", true) ? 1.0 : 0.0;
    keepdim = ctx.bool_arg(3, "keepdim", false);
  }
  std::vector<int64_t> kept = x->shape;
  for (int64_t d : dims) kept[d] = 1;
  Tensor* mean = ctx.temp(kept, x->dtype, "mean");
  reduce_into(ctx, "MEAN", x, dims, true, mean);
  Tensor* centered = ctx.temp(x->shape, x->dtype, "centered");
  ctx.emit("SUB", {x, mean}, {centered});
  Tensor* squared = ctx.temp(x->shape, x->dtype, "squared");
  ctx.emit("MUL", {centered, centered}, {squared});
  Tensor* out = ctx.output();
  Tensor* total = ctx.temp(out->shape, x->dtype, "sum_squares");
  reduce_into(ctx, "SUM", squared, dims, keepdim, total);
  Tensor* divisor =
      ctx.constant(at::scalar_tensor(std::max(static_cast<double>(count) - correction, 0.0), at::kFloat), "count");
  if (!standard_deviation) return (void)ctx.emit("DIV", {total, divisor}, {out});
  Tensor* var = ctx.temp(out->shape, x->dtype, "var");
  ctx.emit("DIV", {total, divisor}, {var});
  ctx.emit("SQRT", {var}, {out});
}
IMPORT_OP({"aten.var.dim", "aten.var.correction"}, [](ImportContext& ctx) { variance(ctx, false); });
IMPORT_OP({"aten.std.dim", "aten.std.correction"}, [](ImportContext& ctx) { variance(ctx, true); });

// argmax(x, dim, keepdim): ARG_MAX (int64 indices, as PyTorch returns).
IMPORT_OP({"aten.argmax.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  if (!ctx.has_arg(1, "dim")) ctx.fail("argmax over the flattened tensor is not supported; give dim");
  int64_t dim = ctx.int_arg(1, "dim");
  if (dim < 0) dim += x->rank();
  Tensor* out = ctx.output();
  Tensor* indices = out;
  bool keepdim = ctx.bool_arg(2, "keepdim", false);
  if (keepdim) {
    std::vector<int64_t> reduced = x->shape;
    reduced.erase(reduced.begin() + dim);
    indices = ctx.temp(reduced, out->dtype, "indices");
  }
  ctx.emit("ARG_MAX", {x}, {indices})->attrs["axis"] = dim;
  if (keepdim) ctx.reshape(indices, out->shape, "", out);
});

// max(x, dim, keepdim) → (values, indices): REDUCE_MAX, and ARG_MAX only if the indices are read.
IMPORT_OP({"aten.max.dim"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = ctx.int_arg(1, "dim");
  if (dim < 0) dim += x->rank();
  bool keepdim = ctx.bool_arg(2, "keepdim", false);
  reduce_into(ctx, "REDUCE_MAX", x, {dim}, keepdim, ctx.output(0));
  Tensor* indices = ctx.output(1);
  if (keepdim) {
    std::vector<int64_t> reduced = x->shape;
    reduced.erase(reduced.begin() + dim);
    Tensor* flat = ctx.temp(reduced, indices->dtype, "indices");
    ctx.emit("ARG_MAX", {x}, {flat})->attrs["axis"] = dim;
    ctx.reshape(flat, indices->shape, "", indices);
  } else {
    ctx.emit("ARG_MAX", {x}, {indices})->attrs["axis"] = dim;  // dropped by dead-code removal if unread
  }
});

// torch.linspace with a tensor endpoint (a model input; constant ones are evaluated at export time).
// PyTorch's CPU formula in float32: step = (end - start) / (steps - 1); the first steps / 2
// values are start + step * i, the others end - step * (steps - 1 - i), written as
// end + step * -(steps - 1 - i) (the same bits). PyTorch's kernel is compiled with fused
// multiply-adds and steps by `step` within a SIMD chunk, so its last bit can differ.
IMPORT_OP({"aten.linspace.Tensor_Tensor", "aten.linspace.Tensor_Scalar", "aten.linspace.Scalar_Tensor"},
          [](ImportContext& ctx) {
            Tensor* out = ctx.output();
            if (out->dtype != DType::kFloat32)
              ctx.fail(fmt::format("a {} result is not supported (float32 only)", dtype_name(out->dtype)));
            int64_t steps = ctx.int_arg(2, "steps");
            if (steps < 1) ctx.fail("steps must be at least 1 (the result would be empty)");
            auto endpoint = [&](size_t index, const char* name) {
              const FxArg* arg = ctx.arg(index, name);
              if (!arg || arg->kind != FxArg::Kind::kNode)
                return ctx.constant(at::full({1}, ctx.float_arg(index, name), at::kFloat), name);
              Tensor* t = ctx.tensor(index, name);
              if (numel(t->shape) != 1) ctx.fail(fmt::format("{} must hold one value", name));
              Tensor* value = ctx.reshape(t, {1}, name);
              if (value->dtype == DType::kFloat32) return value;
              Tensor* as_float = ctx.temp({1}, DType::kFloat32, std::string(name) + "_float");
              ctx.emit("CAST", {value}, {as_float});
              return as_float;
            };
            Tensor* start = endpoint(0, "start");
            if (steps == 1) return ctx.reshape(start, out->shape, "", out), void();
            Tensor* end = endpoint(1, "end");
            Tensor* diff = ctx.temp({1}, DType::kFloat32, "range");
            ctx.emit("SUB", {end, start}, {diff});
            Tensor* step = ctx.temp({1}, DType::kFloat32, "step");
            ctx.emit("DIV", {diff, ctx.constant(at::full({1}, static_cast<float>(steps - 1)), "steps")}, {step});
            int64_t halfway = steps / 2;
            auto half = [&](Tensor* base, const at::Tensor& multiples, const char* suffix) {
              Tensor* offsets = ctx.temp({multiples.numel()}, DType::kFloat32, suffix);
              ctx.emit("MUL", {step, ctx.constant(multiples, suffix)}, {offsets});
              Tensor* values = ctx.temp({multiples.numel()}, DType::kFloat32, suffix);
              ctx.emit("ADD", {base, offsets}, {values});
              return values;
            };
            Tensor* low = half(start, at::arange(halfway, at::kFloat), "first_half");
            Tensor* high = half(end, at::arange(halfway - steps + 1, 1, at::kFloat), "second_half");
            ctx.emit("CONCATENATION", {low, high}, {out})->attrs["axis"] = int64_t{0};
          });

}  // namespace
}  // namespace torch_circle::exporter
