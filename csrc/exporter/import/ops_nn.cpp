// Importers for network layers: convolution, linear, pooling, normalization, embedding, softmax.
// Ops that need a layout change are emitted as "torch.*" ops (NCHW semantics) for the
// legalize_layout pass.
#include "exporter/import/fx_importer.h"

#include <fmt/format.h>

#include <cctype>
#include <limits>
#include <map>

namespace torch_circle::exporter {
namespace {

std::vector<int64_t> pair_arg(ImportContext& ctx, size_t index, const char* keyword, int64_t fallback, size_t spatial) {
  std::vector<int64_t> values = ctx.ints_arg(index, keyword, std::vector<int64_t>{fallback});
  if (values.size() == 1) values.assign(spatial, values[0]);
  if (values.size() != spatial) ctx.fail(fmt::format("'{}' must have {} values", keyword, spatial));
  for (int64_t v : values)
    if (v < 0) ctx.fail(fmt::format("'{}' must be static", keyword));
  return values;
}

// [top, left, bottom, right] from PyTorch's symmetric padding, or from padding="same"/"valid".
std::vector<int64_t> conv_padding(ImportContext& ctx, size_t index, const Tensor* weight,
                                  const std::vector<int64_t>& dilation, size_t spatial) {
  const FxArg* a = ctx.arg(index, "padding");
  if (a && a->kind == FxArg::Kind::kString) {
    if (a->s == "valid") return std::vector<int64_t>(2 * spatial, 0);
    if (a->s != "same") ctx.fail(fmt::format("padding='{}' is not supported", a->s));
    std::vector<int64_t> pads(2 * spatial);
    for (size_t d = 0; d < spatial; ++d) {
      int64_t total = dilation[d] * (weight->shape[2 + d] - 1);
      pads[d] = total / 2;  // PyTorch puts the odd element at the end
      pads[spatial + d] = total - total / 2;
    }
    return pads;
  }
  std::vector<int64_t> sym = pair_arg(ctx, index, "padding", 0, spatial);
  std::vector<int64_t> pads(sym);
  pads.insert(pads.end(), sym.begin(), sym.end());
  return pads;
}

// conv1d is a conv2d over [N, C, 1, L]: reshape in, convolve, reshape out.
Tensor* to_2d(ImportContext& ctx, Tensor* x, const std::string& suffix) {
  std::vector<int64_t> shape = x->shape;
  shape.insert(shape.begin() + 2, 1);
  return ctx.reshape(x, shape, suffix);
}

// conv3d over [N, C, D, H, W]. onert 0.1.0 has no CONV_3D kernel, so the depth taps become
// channels of one conv2d: the input is zero-padded in depth, one GATHER picks for each output
// depth its KD input depths ([N, D_out * KD, C*H*W] → [N * D_out, KD * C, H, W]), and the weight
// [O, C, KD, KH, KW] is rearranged to [O, KD * C, KH, KW] (folded at export time for a
// constant). The conv2d's [N * D_out, O, H', W'] goes back to [N, O, D_out, H', W'].
// Grouped: the taps' channels are ordered group-major ([G, KD, C / G]), so each group of the
// conv2d holds its own channels of every tap, as the weight's [KD * C / G] in-channels expect.
// pads: [front, top, left, back, bottom, right].
void import_conv3d(ImportContext& ctx, Tensor* x, Tensor* weight, Tensor* bias, const std::vector<int64_t>& stride,
                   const std::vector<int64_t>& dilation, const std::vector<int64_t>& pads, int64_t groups,
                   Tensor* out) {
  if (x->rank() != 5 || numel(x->shape) < 0 || numel(weight->shape) < 0 || numel(out->shape) < 0)
    ctx.fail("conv3d needs static 5-D shapes");
  int64_t n = x->shape[0], c = x->shape[1], d = x->shape[2], h = x->shape[3], w = x->shape[4];
  int64_t o = weight->shape[0], kd = weight->shape[2], kh = weight->shape[3], kw = weight->shape[4];
  int64_t d_out = out->shape[2];
  // [N, C, D, H*W] → [N, D, C, H*W] → [N, D, C*H*W] (4-D at most: what every runtime transposes).
  Tensor* depth_major = ctx.transpose(ctx.reshape(x, {n, c, d, h * w}, "ncd_hw"), {0, 2, 1, 3}, "depth_major");
  Tensor* rows = ctx.reshape(depth_major, {n, d, c * h * w}, "depth_rows");
  if (pads[0] || pads[3]) {
    Tensor* padded = ctx.temp({n, d + pads[0] + pads[3], c * h * w}, x->dtype, "depth_padded");
    ctx.emit("PAD", {rows}, {padded})->attrs["paddings"] = std::vector<int64_t>{0, 0, pads[0], pads[3], 0, 0};
    rows = padded;
  }
  at::Tensor taps = at::arange(d_out, at::kInt).reshape({d_out, 1}) * static_cast<int32_t>(stride[0]) +
                    at::arange(kd, at::kInt).reshape({1, kd}) * static_cast<int32_t>(dilation[0]);
  Tensor* gathered = ctx.temp({n, d_out * kd, c * h * w}, x->dtype, "depth_taps");
  ctx.emit("GATHER", {rows, ctx.constant(taps.reshape({-1}).contiguous(), "tap_positions")}, {gathered})->attrs = {
      {"axis", int64_t{1}}, {"batch_dims", int64_t{0}}};
  Tensor* x2 = gathered;
  if (groups > 1) {  // [N * D_out, KD, G, C/G * H*W] → [N * D_out, G, KD, C/G * H*W]
    Tensor* by_group = ctx.reshape(gathered, {n * d_out, kd, groups, c / groups * h * w}, "taps_by_group");
    x2 = ctx.transpose(by_group, {0, 2, 1, 3}, "group_major");
  }
  x2 = ctx.reshape(x2, {n * d_out, kd * c, h, w}, "taps_as_channels");
  // [O, C/G, KD, KH*KW] → [O, KD, C/G, KH*KW] → [O, KD*C/G, KH, KW]
  const int64_t wc = weight->shape[1];
  Tensor* w_taps = ctx.transpose(ctx.reshape(weight, {o, wc, kd, kh * kw}, "weight_ockd"), {0, 2, 1, 3}, "weight_taps");
  Tensor* w2 = ctx.reshape(w_taps, {o, kd * wc, kh, kw}, "weight_2d");
  Tensor* y2 = ctx.temp({n * d_out, o, out->shape[3], out->shape[4]}, out->dtype, "out_2d");
  Op* conv = ctx.emit("torch.conv2d", {x2, w2, bias}, {y2});
  conv->attrs = {{"stride", std::vector<int64_t>{stride[1], stride[2]}},
                 {"dilation", std::vector<int64_t>{dilation[1], dilation[2]}},
                 {"padding", std::vector<int64_t>{pads[1], pads[2], pads[4], pads[5]}},
                 {"groups", groups}};
  int64_t plane = out->shape[3] * out->shape[4];
  Tensor* per_depth = ctx.reshape(y2, {n, d_out, o, plane}, "per_depth");
  ctx.reshape(ctx.transpose(per_depth, {0, 2, 1, 3}, "channel_major"), out->shape, "", out);
}

void import_conv(ImportContext& ctx, size_t spatial, bool convolution_overload) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* weight = ctx.tensor(1, "weight");
  Tensor* bias = ctx.tensor_or_null(2, "bias");
  if (weight->rank() != static_cast<int64_t>(spatial) + 2) ctx.fail("unexpected weight rank");
  std::vector<int64_t> stride = pair_arg(ctx, 3, "stride", 1, spatial);
  std::vector<int64_t> dilation = pair_arg(ctx, 5, "dilation", 1, spatial);
  std::vector<int64_t> pads = conv_padding(ctx, 4, weight, dilation, spatial);
  int64_t groups;
  if (convolution_overload) {
    if (ctx.bool_arg(6, "transposed")) ctx.fail("transposed convolution via aten.convolution is not supported");
    groups = ctx.int_arg(8, "groups");
  } else {
    groups = ctx.int_arg(6, "groups", 1);
  }
  Tensor* out = ctx.output();
  // Circle runtimes (onert, TFLite) reject CONV_2D without a bias tensor: give it zeros.
  if (!bias) bias = ctx.constant(at::zeros({weight->shape[0]}, at::kFloat), "zero_bias");

  if (spatial == 3) return import_conv3d(ctx, x, weight, bias, stride, dilation, pads, groups, out);
  if (spatial == 1) {  // as 2-D with a height of 1
    Tensor* x2 = to_2d(ctx, x, "as_2d");
    Tensor* w2 = to_2d(ctx, weight, "weight_2d");
    Tensor* y2 = ctx.temp({out->shape[0], out->shape[1], 1, out->shape[2]}, out->dtype, "out_2d");
    Op* conv = ctx.emit("torch.conv2d", {x2, w2, bias}, {y2});
    conv->attrs = {{"stride", std::vector<int64_t>{1, stride[0]}},
                   {"dilation", std::vector<int64_t>{1, dilation[0]}},
                   {"padding", std::vector<int64_t>{0, pads[0], 0, pads[1]}},
                   {"groups", groups}};
    ctx.reshape(y2, out->shape, "", out);
    return;
  }
  Op* conv = ctx.emit("torch.conv2d", {x, weight, bias}, {out});
  conv->attrs = {{"stride", stride}, {"dilation", dilation}, {"padding", pads}, {"groups", groups}};
}

IMPORT_OP({"aten.conv2d.default", "aten.conv2d.padding"}, [](ImportContext& ctx) { import_conv(ctx, 2, false); });
IMPORT_OP({"aten.conv1d.default", "aten.conv1d.padding"}, [](ImportContext& ctx) { import_conv(ctx, 1, false); });
IMPORT_OP({"aten.conv3d.default", "aten.conv3d.padding"}, [](ImportContext& ctx) { import_conv(ctx, 3, false); });
IMPORT_OP({"aten.convolution.default"}, [](ImportContext& ctx) {
  Tensor* weight = ctx.tensor(1, "weight");
  import_conv(ctx, static_cast<size_t>(weight->rank() - 2), true);
});

IMPORT_OP({"aten.conv_transpose2d.input"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* weight = ctx.tensor(1, "weight");
  Tensor* bias = ctx.tensor_or_null(2, "bias");
  std::vector<int64_t> stride = pair_arg(ctx, 3, "stride", 1, 2);
  std::vector<int64_t> padding = pair_arg(ctx, 4, "padding", 0, 2);
  std::vector<int64_t> output_padding = pair_arg(ctx, 5, "output_padding", 0, 2);
  int64_t groups = ctx.int_arg(6, "groups", 1);
  std::vector<int64_t> dilation = pair_arg(ctx, 7, "dilation", 1, 2);
  if (groups != 1) ctx.fail("grouped transposed convolution is not supported");
  if (dilation[0] != 1 || dilation[1] != 1) ctx.fail("dilated transposed convolution is not supported");
  Op* op = ctx.emit("torch.conv_transpose2d", {x, weight, bias}, {ctx.output()});
  op->attrs = {{"stride", stride}, {"padding", padding}, {"output_padding", output_padding}};
});

// linear: FULLY_CONNECTED keeps PyTorch's [out, in] weight.
IMPORT_OP({"aten.linear.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* weight = ctx.tensor(1, "weight");
  Tensor* bias = ctx.tensor_or_null(2, "bias");
  Tensor* out = ctx.output();
  Op* fc = ctx.emit("FULLY_CONNECTED", {x, weight, bias}, {out});
  fc->attrs["keep_num_dims"] = int64_t{x->rank() > 2};
});

// A transposed copy of a 2-D tensor (folded away when it is a constant).
Tensor* transposed_2d(ImportContext& ctx, Tensor* t, const std::string& suffix) {
  Tensor* out = ctx.temp({t->shape[1], t->shape[0]}, t->dtype, suffix);
  out->quant = t->quant;
  Op* op = ctx.emit("TRANSPOSE", {t}, {out});
  op->attrs["perm"] = std::vector<int64_t>{1, 0};
  return out;
}

// A constant, or a DEQUANTIZE (of a quantized weight).
bool is_weight(const Tensor* t) { return t->is_constant() || (t->producer && t->producer->type == "DEQUANTIZE"); }

// x @ w_t into `out`: FULLY_CONNECTED on w_t's transpose (plus `bias`) when w_t is a weight,
// else BATCH_MATMUL (then bias is null).
void matmul_into(ImportContext& ctx, Tensor* x, Tensor* w_t, Tensor* bias, Tensor* out) {
  if (!is_weight(w_t)) {
    Op* op = ctx.emit("BATCH_MATMUL", {x, w_t}, {out});
    op->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
    if (bias) ctx.fail("internal: BATCH_MATMUL with a bias");
    return;
  }
  Tensor* weight = transposed_2d(ctx, w_t, "weight");
  Op* fc = ctx.emit("FULLY_CONNECTED", {x, weight, bias}, {out});
  fc->attrs["keep_num_dims"] = int64_t{0};
}

// addmm(bias, x, w_t) = beta * bias + alpha * (x @ w_t); mm(x, w_t) has no bias. With beta and
// alpha 1 and a weight, one FULLY_CONNECTED with the bias; otherwise the product, then MUL / ADD.
void import_mm(ImportContext& ctx, size_t x_index, Tensor* bias, double beta, double alpha) {
  Tensor* x = ctx.tensor(x_index, "mat1");
  Tensor* w_t = ctx.tensor(x_index + 1, "mat2");
  Tensor* out = ctx.output();
  if (!bias || (beta == 1.0 && alpha == 1.0 && is_weight(w_t))) return matmul_into(ctx, x, w_t, bias, out);
  bool add_bias = beta != 0.0;  // PyTorch ignores the bias when beta is 0 (NaNs in it included)
  Tensor* product = add_bias || alpha != 1.0 ? ctx.temp(out->shape, out->dtype, "product") : out;
  matmul_into(ctx, x, w_t, nullptr, product);
  if (add_bias) {
    ctx.emit("ADD", {ctx.times(product, alpha, "alpha"), ctx.times(bias, beta, "beta")}, {out});
  } else if (product != out) {
    ctx.emit("MUL", {product, ctx.constant(at::scalar_tensor(alpha, at::kFloat), "alpha")}, {out});
  }
}

IMPORT_OP({"aten.addmm.default"}, [](ImportContext& ctx) {
  import_mm(ctx, 1, ctx.tensor(0, "input"), ctx.float_arg(3, "beta", 1.0), ctx.float_arg(4, "alpha", 1.0));
});
IMPORT_OP({"aten.mm.default"}, [](ImportContext& ctx) { import_mm(ctx, 0, nullptr, 1.0, 1.0); });

IMPORT_OP({"aten.matmul.default", "aten.bmm.default"}, [](ImportContext& ctx) {
  Tensor* a = ctx.tensor(0, "input");
  Tensor* b = ctx.tensor(1, "other");
  if (a->rank() < 2 || b->rank() < 2) ctx.fail("matmul of vectors is not supported; reshape to 2-D");
  Op* op = ctx.emit("BATCH_MATMUL", {a, b}, {ctx.output()});
  op->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
});

// --- einsum --------------------------------------------------------------------------------------

// An einsum operand during the decomposition: a tensor and one label per dim.
struct Labeled {
  Tensor* t;
  std::string labels;
};

// `op` with `labels` reordered to `order` (a TRANSPOSE when that moves anything).
Labeled reordered(ImportContext& ctx, const Labeled& op, const std::string& order) {
  std::vector<int64_t> perm;
  for (char l : order) perm.push_back(static_cast<int64_t>(op.labels.find(l)));
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == static_cast<int64_t>(i);
  return {identity ? op.t : ctx.transpose(op.t, perm, "einsum_perm"), order};
}

// `op` summed over the labels not in `keep` (SUM keeping dims, then RESHAPE: onert 0.1.0 refuses
// reductions that drop dims).
Labeled summed_out(ImportContext& ctx, const Labeled& op, const std::string& keep) {
  std::vector<int64_t> axes, kept_shape;
  std::string kept;
  for (size_t d = 0; d < op.labels.size(); ++d) {
    if (keep.find(op.labels[d]) == std::string::npos) {
      axes.push_back(static_cast<int64_t>(d));
    } else {
      kept += op.labels[d];
      kept_shape.push_back(op.t->shape[d]);
    }
  }
  if (axes.empty()) return op;
  std::vector<int64_t> shape = op.t->shape;
  for (int64_t a : axes) shape[a] = 1;
  Tensor* sum = ctx.temp(shape, op.t->dtype, "einsum_sum");
  ctx.emit("SUM", {op.t}, {sum})->attrs = {{"axes", axes}, {"keep_dims", int64_t{1}}};
  return {ctx.reshape(sum, kept_shape, "einsum_summed"), kept};
}

// a x b over their shared labels, as one BATCH_MATMUL: [batch, a's own, contracted] @
// [batch, contracted, b's own] → labels batch + a's own + b's own. `later` holds the labels the
// output or the remaining operands still need (shared labels in it are batch dims).
Labeled contract(ImportContext& ctx, Labeled a, Labeled b, const std::string& later) {
  a = summed_out(ctx, a, later + b.labels);
  b = summed_out(ctx, b, later + a.labels);
  std::string batch, contracted, a_own, b_own;
  std::map<char, int64_t> size;
  for (size_t d = 0; d < a.labels.size(); ++d) size[a.labels[d]] = a.t->shape[d];
  for (size_t d = 0; d < b.labels.size(); ++d) {
    char l = b.labels[d];
    if (size.count(l) && size[l] != b.t->shape[d])
      ctx.fail(fmt::format("einsum label '{}' has sizes {} and {} (broadcasting is not supported)", l, size[l],
                           b.t->shape[d]));
    size[l] = b.t->shape[d];
  }
  for (char l : a.labels) {
    bool shared = b.labels.find(l) != std::string::npos;
    (shared ? (later.find(l) != std::string::npos ? batch : contracted) : a_own) += l;
  }
  for (char l : b.labels)
    if (a.labels.find(l) == std::string::npos) b_own += l;
  auto product = [&](const std::string& labels) {
    int64_t p = 1;
    for (char l : labels) p *= size[l];
    return p;
  };
  for (const auto& [label, n] : size)
    if (n < 0) ctx.fail("einsum over dynamic sizes is not supported");
  int64_t nb = product(batch), m = product(a_own), k = product(contracted), n = product(b_own);
  Labeled a3 = reordered(ctx, a, batch + a_own + contracted);
  Labeled b3 = reordered(ctx, b, batch + contracted + b_own);
  Tensor* lhs = ctx.reshape(a3.t, {nb, m, k}, "einsum_lhs");
  Tensor* rhs = ctx.reshape(b3.t, {nb, k, n}, "einsum_rhs");
  Tensor* prod = ctx.temp({nb, m, n}, a.t->dtype, "einsum_product");
  ctx.emit("BATCH_MATMUL", {lhs, rhs}, {prod})->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
  std::string labels = batch + a_own + b_own;
  std::vector<int64_t> shape;
  for (char l : labels) shape.push_back(size[l]);
  return {ctx.reshape(prod, shape, "einsum_unflat"), labels};
}

// einsum(equation, operands): every operand's labels summed out where nothing else needs them,
// then contracted pairwise, left to right, each pair as one BATCH_MATMUL; a final TRANSPOSE puts
// the labels in the output's order. "..." stands for the same unnamed labels in every operand
// (right-aligned). Repeated labels in one operand (diagonals) are refused.
IMPORT_OP({"aten.einsum.default"}, [](ImportContext& ctx) {
  const FxArg* eq = ctx.arg(0, "equation");
  const FxArg* list = ctx.arg(1, "tensors");
  if (!eq || eq->kind != FxArg::Kind::kString || !list || list->kind != FxArg::Kind::kList)
    ctx.fail("einsum expects an equation and a list of tensors");
  std::vector<Labeled> operands;
  for (const FxArg& item : list->list) {
    if (item.kind != FxArg::Kind::kNode || ctx.values(item.node).size() != 1)
      ctx.fail("einsum with a non-tensor operand");
    operands.push_back({ctx.values(item.node)[0], ""});
  }
  std::string equation;
  for (char ch : eq->s)
    if (ch != ' ') equation += ch;
  size_t arrow = equation.find("->");
  std::string inputs = equation.substr(0, arrow);
  std::vector<std::string> terms{""};
  for (char ch : inputs) {
    if (ch == ',')
      terms.emplace_back();
    else
      terms.back() += ch;
  }
  if (terms.size() != operands.size())
    ctx.fail(fmt::format("einsum equation '{}' names {} operands, {} given", eq->s, terms.size(), operands.size()));
  // "..." → labels '0', '1', ... (einsum's own labels are letters), right-aligned across operands.
  const std::string ellipsis_labels = "0123456789";
  size_t ellipsis_rank = 0;
  auto expand = [&](const std::string& term, size_t covered) {
    size_t at = term.find("...");
    if (at == std::string::npos) return term;
    return term.substr(0, at) + ellipsis_labels.substr(ellipsis_labels.size() - covered) + term.substr(at + 3);
  };
  for (size_t i = 0; i < terms.size(); ++i) {
    size_t named = terms[i].size() - (terms[i].find("...") != std::string::npos ? 3 : 0);
    if (operands[i].t->rank() < static_cast<int64_t>(named) ||
        (terms[i].find("...") == std::string::npos && operands[i].t->rank() != static_cast<int64_t>(named)))
      ctx.fail(fmt::format("einsum term '{}' does not match operand {}'s rank {}", terms[i], i, operands[i].t->rank()));
    size_t covered = static_cast<size_t>(operands[i].t->rank()) - named;
    if (covered > ellipsis_labels.size()) ctx.fail("einsum '...' over more than 10 dims");
    ellipsis_rank = std::max(ellipsis_rank, covered);
    operands[i].labels = expand(terms[i], covered);
    for (char l : operands[i].labels)
      if (std::count(operands[i].labels.begin(), operands[i].labels.end(), l) > 1)
        ctx.fail(fmt::format("einsum term '{}' repeats a label (a diagonal): not supported", terms[i]));
  }
  std::string output;
  if (arrow != std::string::npos) {
    output = expand(equation.substr(arrow + 2), ellipsis_rank);
  } else {  // implicit output: "..." then the labels used once, alphabetically
    std::map<char, int> uses;
    for (const Labeled& op : operands)
      for (char l : op.labels) ++uses[l];
    output = ellipsis_labels.substr(ellipsis_labels.size() - ellipsis_rank);
    for (const auto& [l, count] : uses)
      if (count == 1 && !std::isdigit(static_cast<unsigned char>(l))) output += l;
  }
  // Labels still needed after operand i: the output's and those of operands after i.
  auto later_than = [&](size_t i) {
    std::string later = output;
    for (size_t j = i + 1; j < operands.size(); ++j) later += operands[j].labels;
    return later;
  };
  Labeled result = operands[0];
  for (size_t i = 1; i < operands.size(); ++i) result = contract(ctx, result, operands[i], later_than(i));
  result = summed_out(ctx, result, output);
  if (result.labels.size() != output.size())
    ctx.fail(fmt::format("einsum output '{}' names labels no operand has", output));
  Tensor* out = ctx.output();
  Labeled ordered = reordered(ctx, result, output);
  if (ordered.t->shape != out->shape)
    ctx.fail(fmt::format("einsum broadcasting ({} vs {}) is not supported", shape_str(ordered.t->shape),
                         shape_str(out->shape)));
  ctx.alias(ordered.t);
});

// baddbmm(input, b1, b2, beta, alpha) = beta * input + alpha * (b1 @ b2).
IMPORT_OP({"aten.baddbmm.default"}, [](ImportContext& ctx) {
  Tensor* input = ctx.tensor(0, "input");
  Tensor* b1 = ctx.tensor(1, "batch1");
  Tensor* b2 = ctx.tensor(2, "batch2");
  double beta = ctx.float_arg(3, "beta", 1.0), alpha = ctx.float_arg(4, "alpha", 1.0);
  Tensor* out = ctx.output();
  bool add_input = beta != 0.0;  // PyTorch ignores input when beta is 0 (NaNs in it included)
  Tensor* product = add_input || alpha != 1.0 ? ctx.temp(out->shape, out->dtype, "product") : out;
  ctx.emit("BATCH_MATMUL", {b1, b2}, {product})->attrs = {{"adj_x", int64_t{0}}, {"adj_y", int64_t{0}}};
  if (add_input) {
    ctx.emit("ADD", {ctx.times(input, beta, "beta"), ctx.times(product, alpha, "alpha")}, {out});
  } else if (product != out) {
    ctx.emit("MUL", {product, ctx.constant(at::scalar_tensor(alpha, at::kFloat), "alpha")}, {out});
  }
});

// --- pooling -----------------------------------------------------------------------------------

void import_pool(ImportContext& ctx, const char* type, bool has_dilation) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> kernel = pair_arg(ctx, 1, "kernel_size", 1, 2);
  std::vector<int64_t> stride = ctx.ints_arg(2, "stride", std::vector<int64_t>{});
  if (stride.empty()) stride = kernel;
  if (stride.size() == 1) stride.assign(2, stride[0]);
  std::vector<int64_t> padding = pair_arg(ctx, 3, "padding", 0, 2);
  bool ceil_mode;
  if (has_dilation) {
    std::vector<int64_t> dilation = pair_arg(ctx, 4, "dilation", 1, 2);
    if (dilation[0] != 1 || dilation[1] != 1) ctx.fail("dilated pooling is not supported");
    ceil_mode = ctx.bool_arg(5, "ceil_mode", false);
  } else {
    ceil_mode = ctx.bool_arg(4, "ceil_mode", false);
    bool count_include_pad = ctx.bool_arg(5, "count_include_pad", true);
    if (ctx.has_arg(6, "divisor_override")) ctx.fail("avg_pool2d divisor_override is not supported");
    if (count_include_pad && (padding[0] || padding[1])) {
      // Circle's AVERAGE_POOL_2D averages only real elements; counting the padded zeros is the
      // same as pooling over an explicitly zero-padded input. ceil_mode's extra windows would
      // then count zeros PyTorch does not, so that combination is refused.
      if (ceil_mode) ctx.fail("avg_pool2d with padding, count_include_pad=True and ceil_mode=True is not supported");
      std::vector<int64_t> shape = x->shape;
      shape[2] += 2 * padding[0];
      shape[3] += 2 * padding[1];
      Tensor* padded = ctx.temp(shape, x->dtype, "zero_padded");
      padded->quant = x->quant;
      ctx.emit("PAD", {x}, {padded})->attrs["paddings"] =
          std::vector<int64_t>{0, 0, 0, 0, padding[0], padding[0], padding[1], padding[1]};
      x = padded;
      padding = {0, 0};
    }
  }
  Tensor* out = ctx.output();
  // [top, left, bottom, right]. ceil_mode adds windows that run past the bottom / right edge:
  // they become extra padding there, which legalize_layout fills with the lowest value (max pool)
  // or expresses as SAME (average pool, whose partial windows average only real elements then).
  std::vector<int64_t> pads{padding[0], padding[1], padding[0], padding[1]};
  if (ceil_mode) {
    for (int d = 0; d < 2; ++d) {
      int64_t in = x->shape[2 + d];
      if (in < 0 || out->shape[2 + d] < 0) ctx.fail("ceil_mode=True pooling over a dynamic size is not supported");
      pads[2 + d] += std::max<int64_t>((out->shape[2 + d] - 1) * stride[d] + kernel[d] - (in + 2 * padding[d]), 0);
    }
  }
  Op* op = ctx.emit(type, {x}, {out});
  op->attrs = {{"kernel", kernel}, {"stride", stride}, {"padding", pads}};
}

IMPORT_OP({"aten.max_pool2d.default", "aten.max_pool2d_with_indices.default"},
          [](ImportContext& ctx) { import_pool(ctx, "torch.max_pool2d", true); });
IMPORT_OP({"aten.avg_pool2d.default"}, [](ImportContext& ctx) { import_pool(ctx, "torch.avg_pool2d", false); });

// Adaptive average pooling: a MEAN when the output is 1x1, else a pool whose windows tile the
// input exactly.
IMPORT_OP({"aten.adaptive_avg_pool2d.default", "aten._adaptive_avg_pool2d.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> size = pair_arg(ctx, 1, "output_size", 1, 2);
  Tensor* out = ctx.output();
  int64_t h = x->shape[x->rank() - 2], w = x->shape[x->rank() - 1];
  if (size[0] == 1 && size[1] == 1) {
    Op* op = ctx.emit("MEAN", {x}, {out});
    op->attrs = {{"axes", std::vector<int64_t>{x->rank() - 2, x->rank() - 1}}, {"keep_dims", int64_t{1}}};
    return;
  }
  if (h == 1 && w == 1) {  // every window is the one pixel (VGG's and AlexNet's pool on small images)
    ctx.emit("BROADCAST_TO", {x}, {out})->attrs["shape"] = out->shape;
    return;
  }
  if (h < 0 || w < 0 || h % size[0] || w % size[1])
    ctx.fail(fmt::format("adaptive_avg_pool2d from {}x{} to {}x{} has uneven windows", h, w, size[0], size[1]));
  Op* op = ctx.emit("torch.avg_pool2d", {x}, {out});
  std::vector<int64_t> window{h / size[0], w / size[1]};
  op->attrs = {{"kernel", window}, {"stride", window}, {"padding", std::vector<int64_t>{0, 0, 0, 0}}};
});

// --- normalization -----------------------------------------------------------------------------

// Eval-mode batch norm: fused into the producing conv by fuse_batch_norm, else MUL + ADD.
void import_batch_norm(ImportContext& ctx, size_t eps_index, bool check_training) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* weight = ctx.tensor_or_null(1, "weight");
  Tensor* bias = ctx.tensor_or_null(2, "bias");
  Tensor* mean = ctx.tensor(3, "running_mean");
  Tensor* var = ctx.tensor(4, "running_var");
  if (check_training && ctx.bool_arg(5, "training"))
    ctx.fail("batch norm in training mode; call model.eval() before exporting");
  double eps = ctx.float_arg(eps_index, "eps");
  for (Tensor* t : {weight, bias, mean, var})
    if (t && !t->is_constant()) ctx.fail("batch norm parameters must be constants");
  Op* op = ctx.emit("torch.batch_norm", {x, weight, bias, mean, var}, {ctx.output(0)});
  op->attrs["eps"] = eps;
  // The native forms also return (save_mean, save_invstd), empty outside training.
  for (size_t i = 1; i < ctx.node().meta.size(); ++i) {
    if (numel(ctx.node().meta[i].shape) != 0) ctx.fail("batch norm statistics outputs are only empty in eval mode");
    ctx.alias(ctx.constant(at::empty({0}, at::kFloat), fmt::format("empty{}", i)), i);
  }
}
IMPORT_OP({"aten.batch_norm.default"}, [](ImportContext& ctx) { import_batch_norm(ctx, 7, true); });
IMPORT_OP({"aten.native_batch_norm.default"}, [](ImportContext& ctx) { import_batch_norm(ctx, 7, true); });
IMPORT_OP({"aten._native_batch_norm_legit_no_training.default"},
          [](ImportContext& ctx) { import_batch_norm(ctx, 6, false); });

// layer_norm over the last dims: decomposed into MEAN / SUB / MUL / RSQRT ops, which every
// runtime runs in float.
// native_layer_norm also returns (mean, rstd); only the normalized output is exported.
IMPORT_OP({"aten.layer_norm.default", "aten.native_layer_norm.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> normalized = ctx.ints_arg(1, "normalized_shape");
  Tensor* weight = ctx.tensor_or_null(2, "weight");
  Tensor* bias = ctx.tensor_or_null(3, "bias");
  double eps = ctx.float_arg(4, "eps", 1e-5);
  Op* op = ctx.emit("torch.layer_norm", {x, weight, bias}, {ctx.output(0)});
  op->attrs = {{"eps", eps}, {"dims", static_cast<int64_t>(normalized.size())}};
});

IMPORT_OP({"aten.rms_norm.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> normalized = ctx.ints_arg(1, "normalized_shape");
  Tensor* weight = ctx.tensor_or_null(2, "weight");
  std::optional<double> eps;
  if (ctx.has_arg(3, "eps")) eps = ctx.float_arg(3, "eps");
  if (normalized.size() != 1) ctx.fail("rms_norm over more than the last dimension is not supported");
  Op* op = ctx.emit("torch.rms_norm", {x, weight}, {ctx.output()});
  op->attrs["eps"] = eps ? *eps : static_cast<double>(std::numeric_limits<float>::epsilon());
});

// Group norm: statistics over [N, G, C/G * spatial], written out as RESHAPE / MEAN / SUB / MUL /
// RSQRT, then the per-channel affine. Instance norm is the case G = C.
void group_norm(ImportContext& ctx, Tensor* x, int64_t groups, Tensor* weight, Tensor* bias, double eps) {
  if (numel(x->shape) < 0 || x->rank() < 2) ctx.fail("group_norm needs a static input of rank >= 2");
  int64_t n = x->shape[0], c = x->shape[1];
  if (c % groups) ctx.fail(fmt::format("{} channels do not split into {} groups", c, groups));
  int64_t per_group = numel(x->shape) / (n * groups);
  Tensor* grouped = ctx.reshape(x, {n, groups, per_group}, "grouped");
  auto mean_of = [&](Tensor* t, const char* suffix) {
    Tensor* m = ctx.temp({n, groups, 1}, DType::kFloat32, suffix);
    ctx.emit("MEAN", {t}, {m})->attrs = {{"axes", std::vector<int64_t>{2}}, {"keep_dims", int64_t{1}}};
    return m;
  };
  Tensor* mean = mean_of(grouped, "mean");
  Tensor* centered = ctx.temp(grouped->shape, DType::kFloat32, "centered");
  ctx.emit("SUB", {grouped, mean}, {centered});
  Tensor* squared = ctx.temp(grouped->shape, DType::kFloat32, "squared");
  ctx.emit("MUL", {centered, centered}, {squared});
  Tensor* var = mean_of(squared, "var");
  Tensor* var_eps = ctx.temp(var->shape, DType::kFloat32, "var_eps");
  ctx.emit("ADD", {var, ctx.constant(at::scalar_tensor(eps, at::kFloat), "eps")}, {var_eps});
  Tensor* inv_std = ctx.temp(var->shape, DType::kFloat32, "inv_std");
  ctx.emit("RSQRT", {var_eps}, {inv_std});
  Tensor* normed = ctx.temp(grouped->shape, DType::kFloat32, "normed");
  ctx.emit("MUL", {centered, inv_std}, {normed});
  Tensor* out = ctx.output(0);
  Tensor* result = ctx.reshape(normed, x->shape, "normed_nchw", (weight || bias) ? nullptr : out);
  std::vector<int64_t> per_channel(static_cast<size_t>(x->rank() - 1), 1);
  per_channel[0] = c;
  for (auto [param, type] : {std::pair{weight, "MUL"}, std::pair{bias, "ADD"}}) {
    if (!param) continue;
    if (!param->is_constant()) ctx.fail("group_norm weight and bias must be constants");
    bool last = param == bias || !bias;
    Tensor* next = last ? out : ctx.temp(x->shape, DType::kFloat32, "scaled");
    ctx.emit(type, {result, ctx.constant(param->data.reshape(per_channel), "affine")}, {next});
    result = next;
  }
}
IMPORT_OP({"aten.group_norm.default"}, [](ImportContext& ctx) {
  group_norm(ctx, ctx.tensor(0, "input"), ctx.int_arg(1, "num_groups"), ctx.tensor_or_null(2, "weight"),
             ctx.tensor_or_null(3, "bias"), ctx.float_arg(4, "eps", 1e-5));
});
// native_group_norm(x, weight, bias, N, C, HxW, G, eps) also returns (mean, rstd); only the
// normalized output is exported.
IMPORT_OP({"aten.native_group_norm.default"}, [](ImportContext& ctx) {
  group_norm(ctx, ctx.tensor(0, "input"), ctx.int_arg(6, "group"), ctx.tensor_or_null(1, "weight"),
             ctx.tensor_or_null(2, "bias"), ctx.float_arg(7, "eps"));
});
// instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, ...):
// with the input's own statistics, a group norm with one group per channel; with running
// statistics, an eval-mode batch norm.
IMPORT_OP({"aten.instance_norm.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  if (!ctx.bool_arg(5, "use_input_stats")) return import_batch_norm(ctx, 7, false);
  if (x->rank() < 2 || x->shape[1] < 0) ctx.fail("instance_norm needs a static channel dimension");
  group_norm(ctx, x, x->shape[1], ctx.tensor_or_null(1, "weight"), ctx.tensor_or_null(2, "bias"),
             ctx.float_arg(7, "eps", 1e-5));
});

// Nearest upsampling by whole factors, written as copies: [..., W] → [..., W, s] → [..., W * s],
// with RESHAPE and CONCATENATION only (no layout change, at most 4-D, runs in every runtime;
// onert 0.1.0 has no RESIZE_NEAREST_NEIGHBOR kernel).
IMPORT_OP({"aten.upsample_nearest2d.vec", "aten.upsample_nearest2d.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (x->rank() != 4 || numel(x->shape) < 0) ctx.fail("nearest upsampling needs a static 4-D input");
  int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], w = x->shape[3];
  if (out->shape[2] % h || out->shape[3] % w)
    ctx.fail(fmt::format("nearest upsampling from {}x{} to {}x{} is not by whole factors", h, w, out->shape[2],
                         out->shape[3]));
  int64_t sh = out->shape[2] / h, sw = out->shape[3] / w;
  // `times` copies of t along a new axis 2: [rows, cols, 1] x times → [rows, cols, times].
  auto copies = [&](Tensor* t, std::vector<int64_t> column_shape, int64_t times, const char* suffix) {
    Tensor* column = ctx.reshape(t, column_shape, suffix);
    std::vector<int64_t> shape = column_shape;
    shape[2] = times;
    Tensor* repeated = ctx.temp(shape, t->dtype, suffix);
    repeated->quant = t->quant;
    ctx.emit("CONCATENATION", std::vector<Tensor*>(static_cast<size_t>(times), column), {repeated})->attrs["axis"] =
        int64_t{2};
    return repeated;
  };
  Tensor* current = x;
  if (sw > 1) current = copies(current, {n * c * h, w, 1}, sw, "wide");      // [N*C*H, W, sw]
  if (sh > 1) current = copies(current, {n * c, h, 1, w * sw}, sh, "tall");  // [N*C, H, sh, W*sw]
  ctx.reshape(current, out->shape, "", out);
});

// Bilinear upsampling: RESIZE_BILINEAR, which is NHWC, between transposes (sink_transposes
// removes them between NHWC neighbours). PyTorch maps output pixels with half-pixel centers
// unless align_corners; a scale factor whose product is not the output size maps differently,
// so that is refused.
IMPORT_OP({"aten.upsample_bilinear2d.vec", "aten.upsample_bilinear2d.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (x->rank() != 4 || numel(x->shape) < 0) ctx.fail("bilinear upsampling needs a static 4-D input");
  bool align_corners = ctx.bool_arg(2, "align_corners");
  std::vector<double> scales;
  if (ctx.node().target == "aten.upsample_bilinear2d.vec") {
    const FxArg* factors = ctx.arg(3, "scale_factors");
    if (factors && factors->kind == FxArg::Kind::kList)
      for (const FxArg& f : factors->list)
        scales.push_back(f.kind == FxArg::Kind::kFloat ? f.f : static_cast<double>(f.i));
  } else {
    for (size_t i : {3, 4})
      if (ctx.has_arg(i, i == 3 ? "scales_h" : "scales_w"))
        scales.push_back(ctx.float_arg(i, i == 3 ? "scales_h" : "scales_w"));
  }
  for (size_t d = 0; d < scales.size() && d < 2; ++d)
    if (!align_corners && static_cast<double>(x->shape[2 + d]) * scales[d] != static_cast<double>(out->shape[2 + d]))
      ctx.fail(
          fmt::format("bilinear upsampling by a scale factor {} that does not give the output size exactly "
                      "(pass size= or recompute_scale_factor=True)",
                      scales[d]));
  Tensor* x_nhwc = ctx.temp(std::vector<int64_t>{x->shape[0], x->shape[2], x->shape[3], x->shape[1]}, x->dtype, "nhwc");
  ctx.emit("TRANSPOSE", {x}, {x_nhwc})->attrs["perm"] = std::vector<int64_t>{0, 2, 3, 1};
  Tensor* y_nhwc = ctx.temp({out->shape[0], out->shape[2], out->shape[3], out->shape[1]}, out->dtype, "resized");
  Op* resize = ctx.emit("RESIZE_BILINEAR", {x_nhwc}, {y_nhwc});
  resize->attrs = {{"size", std::vector<int64_t>{out->shape[2], out->shape[3]}},
                   {"align_corners", int64_t{align_corners}},
                   {"half_pixel_centers", int64_t{!align_corners}}};
  ctx.emit("TRANSPOSE", {y_nhwc}, {out})->attrs["perm"] = std::vector<int64_t>{0, 3, 1, 2};
});

// TICO's `tico.ops.ResizeBilinear2d` traces to its custom op circle_custom.resize_bilinear(input
// NHWC, [H, W], align_corners, half_pixel_centers), which is Circle's RESIZE_BILINEAR itself.
IMPORT_OP({"circle_custom.resize_bilinear.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  if (x->rank() != 4 || numel(x->shape) < 0) ctx.fail("RESIZE_BILINEAR needs a static 4-D NHWC input");
  std::vector<int64_t> size = ctx.ints_arg(1, "size");
  if (size.size() != 2) ctx.fail("size must hold two values (height, width)");
  bool align_corners = ctx.bool_arg(2, "align_corners", false);
  bool half_pixel_centers = ctx.bool_arg(3, "half_pixel_centers", false);
  if (align_corners && half_pixel_centers) ctx.fail("align_corners and half_pixel_centers cannot both be set");
  Op* resize = ctx.emit("RESIZE_BILINEAR", {x}, {ctx.output()});
  resize->attrs = {
      {"size", size}, {"align_corners", int64_t{align_corners}}, {"half_pixel_centers", int64_t{half_pixel_centers}}};
});

// --- others ------------------------------------------------------------------------------------

IMPORT_OP({"aten.softmax.int", "aten._softmax.default", "aten._safe_softmax.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = ctx.int_arg(1, "dim");
  if (dim < 0) dim += x->rank();
  if (dim != x->rank() - 1) {
    ctx.fail("softmax over a dimension other than the last is not supported");
  }
  Op* op = ctx.emit("SOFTMAX", {x}, {ctx.output()});
  op->attrs["beta"] = 1.0;
});

IMPORT_OP({"aten.log_softmax.int", "aten._log_softmax.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = ctx.int_arg(1, "dim");
  if (dim < 0) dim += x->rank();
  if (dim != x->rank() - 1) ctx.fail("log_softmax over a dimension other than the last is not supported");
  ctx.emit("LOG_SOFTMAX", {x}, {ctx.output()});
});

// embedding(weight, indices): GATHER along axis 0.
IMPORT_OP({"aten.embedding.default"}, [](ImportContext& ctx) {
  Tensor* weight = ctx.tensor(0, "weight");
  Tensor* indices = ctx.tensor(1, "indices");
  Op* op = ctx.emit("GATHER", {weight, indices}, {ctx.output()});
  op->attrs = {{"axis", int64_t{0}}, {"batch_dims", int64_t{0}}};
});

}  // namespace
}  // namespace torch_circle::exporter
