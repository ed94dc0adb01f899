// scaled_dot_product_attention written out as the ops it stands for (Circle has no fused
// attention op that runtimes share): softmax(q @ kᵀ · scale + mask) @ v.
#include "exporter/import/fx_importer.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

namespace torch_circle::exporter {
namespace {

// Grouped-query attention: each of kv's H_kv heads serves `group` query heads (head h reads kv
// head h / group). [B, H_kv, S, E] becomes [B, H_kv * group, S, E] with RESHAPE and
// CONCATENATION of copies, at most 3-D (runtimes handle those everywhere).
Tensor* repeat_heads(ImportContext& ctx, Tensor* kv, int64_t group, const char* suffix) {
  if (group == 1) return kv;
  if (kv->rank() != 4 || numel(kv->shape) < 0) ctx.fail("grouped-query attention needs static 4-D key / value");
  int64_t b = kv->shape[0], h = kv->shape[1], s = kv->shape[2], e = kv->shape[3];
  Tensor* rows = ctx.reshape(kv, {b * h, 1, s * e}, suffix);
  Tensor* copies = ctx.temp({b * h, group, s * e}, kv->dtype, suffix);
  ctx.emit("CONCATENATION", std::vector<Tensor*>(static_cast<size_t>(group), rows), {copies})->attrs["axis"] =
      int64_t{1};
  return ctx.reshape(copies, {b, h * group, s, e}, suffix);
}

IMPORT_OP({"aten.scaled_dot_product_attention.default"}, [](ImportContext& ctx) {
  Tensor* q = ctx.tensor(0, "query");
  Tensor* k = ctx.tensor(1, "key");
  Tensor* v = ctx.tensor(2, "value");
  Tensor* mask = ctx.tensor_or_null(3, "attn_mask");
  if (ctx.float_arg(4, "dropout_p", 0.0) != 0.0) ctx.fail("attention dropout must be 0 for export (model.eval())");
  bool causal = ctx.bool_arg(5, "is_causal", false);
  int64_t rank = q->rank();
  if (rank < 2 || k->rank() != rank || v->rank() != rank) ctx.fail("query, key and value must have the same rank");
  if (ctx.bool_arg(7, "enable_gqa", false) && rank >= 3 && q->shape[rank - 3] != k->shape[rank - 3]) {
    int64_t heads = q->shape[rank - 3], kv_heads = k->shape[rank - 3];
    if (heads < 0 || kv_heads <= 0 || heads % kv_heads)
      ctx.fail(fmt::format("{} query heads do not share {} key / value heads evenly", heads, kv_heads));
    k = repeat_heads(ctx, k, heads / kv_heads, "key_heads");
    v = repeat_heads(ctx, v, heads / kv_heads, "value_heads");
  }
  int64_t L = q->shape[rank - 2], S = k->shape[rank - 2], E = q->shape[rank - 1];
  double scale = ctx.has_arg(6, "scale") ? ctx.float_arg(6, "scale") : 1.0 / std::sqrt(static_cast<double>(E));

  std::vector<int64_t> perm(rank);
  for (int64_t i = 0; i < rank; ++i) perm[i] = i;
  std::swap(perm[rank - 1], perm[rank - 2]);
  std::vector<int64_t> kt_shape = k->shape;
  std::swap(kt_shape[rank - 1], kt_shape[rank - 2]);
  Tensor* kt = ctx.temp(kt_shape, k->dtype, "key_t");
  ctx.emit("TRANSPOSE", {k}, {kt})->attrs["perm"] = perm;

  std::vector<int64_t> score_shape = q->shape;
  score_shape[rank - 1] = S;
  Tensor* scores = ctx.temp(score_shape, DType::kFloat32, "scores");
  ctx.emit("BATCH_MATMUL", {q, kt}, {scores})->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
  Tensor* scaled = ctx.temp(score_shape, DType::kFloat32, "scaled");
  ctx.emit("MUL", {scores, ctx.constant(at::scalar_tensor(scale, at::kFloat), "scale")}, {scaled});

  // Masks become additive: 0 where attention is allowed, -inf where it is not.
  float neg_inf = -std::numeric_limits<float>::infinity();
  at::Tensor additive;
  if (causal) {
    if (L < 0 || S < 0) ctx.fail("is_causal with dynamic sequence lengths is not supported");
    additive = at::full({L, S}, neg_inf, at::kFloat).triu(1);
  }
  Tensor* mask_tensor = nullptr;
  if (mask) {
    if (mask->dtype == DType::kBool && !mask->is_constant()) {
      // Built from the model's input (a padding mask): where(mask, 0, -inf) at run time.
      mask_tensor = ctx.temp(mask->shape, DType::kFloat32, "additive_mask");
      ctx.emit("SELECT_V2",
               {mask, ctx.constant(at::zeros({}, at::kFloat), "allowed"),
                ctx.constant(at::full({}, neg_inf, at::kFloat), "masked")},
               {mask_tensor});
    } else if (mask->dtype == DType::kBool) {
      at::Tensor m = at::where(mask->data, at::zeros({}, at::kFloat), at::full({}, neg_inf, at::kFloat));
      additive = additive.defined() ? additive + m : m;
    } else if (mask->is_constant()) {
      additive = additive.defined() ? additive + mask->data.to(at::kFloat) : mask->data.to(at::kFloat);
    } else {
      mask_tensor = mask;
    }
  }
  Tensor* logits = scaled;
  for (Tensor* addend : {additive.defined() ? ctx.constant(additive, "mask") : nullptr, mask_tensor}) {
    if (!addend) continue;
    Tensor* sum = ctx.temp(score_shape, DType::kFloat32, "masked");
    ctx.emit("ADD", {logits, addend}, {sum});
    logits = sum;
  }
  Tensor* probs = ctx.temp(score_shape, DType::kFloat32, "probs");
  ctx.emit("SOFTMAX", {logits}, {probs})->attrs["beta"] = 1.0;
  Tensor* out = ctx.output();
  ctx.emit("BATCH_MATMUL", {probs, v}, {out})->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
});

}  // namespace
}  // namespace torch_circle::exporter
