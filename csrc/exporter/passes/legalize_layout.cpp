// PyTorch convolves and pools NCHW tensors with OIHW weights; Circle's builtin ops are NHWC with
// OHWI (conv), 1HWO (depthwise) or OHWI (transpose conv) weights and only SAME / VALID padding.
// This pass rewrites each "torch.*" layout op into its Circle op between two TRANSPOSEs
// (NCHW → NHWC in front, back behind), transposes the weights (folded later for constants, with
// per-channel axes remapped) and turns explicit padding into SAME, VALID or a PAD op.
// sink_transposes then removes the transposes between consecutive NHWC ops.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <fmt/format.h>

#include <limits>

namespace torch_circle::exporter {
namespace {

[[noreturn]] void fail(const Op& op, const std::string& message) {
  throw ExportError(fmt::format("{} ({}): {}", op.type, op.origin, message));
}

// SAME, VALID, or "" when PyTorch's padding [top, left, bottom, right] matches neither.
std::string circle_padding(const std::vector<int64_t>& in_hw, const std::vector<int64_t>& out_hw,
                           const std::vector<int64_t>& effective_kernel, const std::vector<int64_t>& stride,
                           const std::vector<int64_t>& pads) {
  bool zero = true;
  for (int64_t p : pads) zero &= p == 0;
  if (zero) return "VALID";
  for (int d = 0; d < 2; ++d) {
    if (in_hw[d] < 0) return "";
    int64_t same_out = (in_hw[d] + stride[d] - 1) / stride[d];
    int64_t total = std::max<int64_t>((same_out - 1) * stride[d] + effective_kernel[d] - in_hw[d], 0);
    if (out_hw[d] != same_out || pads[d] != total / 2 || pads[2 + d] != total - total / 2) return "";
  }
  return "SAME";
}

// Inserts PAD (or PADV2 with `value`) on an NHWC tensor, for paddings no Circle op expresses.
Tensor* pad_nhwc(Graph& graph, const Op* anchor, Tensor* x, const std::vector<int64_t>& pads,
                 std::optional<double> value) {
  std::vector<int64_t> shape = x->shape;
  shape[1] += pads[0] + pads[2];
  shape[2] += pads[1] + pads[3];
  Tensor* out = graph.add_tensor(x->name + "_padded", shape, x->dtype);
  out->quant = x->quant;
  Op* pad = graph.insert_before(anchor, value ? "PADV2" : "PAD", {x}, {out});
  pad->attrs["paddings"] = std::vector<int64_t>{0, 0, pads[0], pads[2], pads[1], pads[3], 0, 0};
  if (value) pad->attrs["value"] = *value;
  return out;
}

// Rewrites `op` (NCHW input 0 and output 0) as `type` on NHWC tensors. Returns the new op.
Op* to_nhwc(Graph& graph, Op* op, const std::string& type, std::vector<Tensor*> extra_inputs, Tensor* x_nhwc) {
  Tensor* y = op->outputs[0];
  Tensor* y_nhwc = graph.add_tensor(y->name + "_nhwc", permute(y->shape, kNchwToNhwc), y->dtype);
  y_nhwc->quant = y->quant;
  std::vector<Tensor*> inputs{x_nhwc};
  inputs.insert(inputs.end(), extra_inputs.begin(), extra_inputs.end());
  graph.remove_op(op);
  Op* nhwc = graph.insert_before(op, type, inputs, {y_nhwc});
  nhwc->origin = op->origin;
  Op* back = graph.insert_before(op, "TRANSPOSE", {y_nhwc}, {y});
  back->attrs["perm"] = kNhwcToNchw;
  if (op->has("fused_activation")) nhwc->attrs["fused_activation"] = op->attrs.at("fused_activation");
  return nhwc;
}

std::vector<int64_t> hw(const std::vector<int64_t>& nchw) { return {nchw[2], nchw[3]}; }

// Rows [start, start + length) of a constant, with their per-channel parameters.
Tensor* constant_rows(Graph& graph, const Tensor* c, int64_t start, int64_t length, const std::string& suffix) {
  Tensor* rows = graph.add_constant(c->name + suffix, c->data.narrow(0, start, length));
  if (c->quant) {
    QuantParams q = *c->quant;
    if (q.per_channel() && q.axis == 0) {
      q.scale.assign(c->quant->scale.begin() + start, c->quant->scale.begin() + start + length);
      q.zero_point.assign(c->quant->zero_point.begin() + start, c->quant->zero_point.begin() + start + length);
    }
    rows->quant = q;
  }
  return rows;
}

// Rows [start, start + length) of a weight or bias: a constant's own rows, else a SLICE (a weight
// that is a model input, or computed).
Tensor* rows_of(Graph& graph, const Op* anchor, Tensor* t, int64_t start, int64_t length, const std::string& suffix) {
  if (t->is_constant()) return constant_rows(graph, t, start, length, suffix);
  if (t->quant && t->quant->per_channel()) fail(*anchor, "a per-channel quantized weight that is not a constant");
  std::vector<int64_t> begin(t->shape.size(), 0), size = t->shape;
  begin[0] = start;
  size[0] = length;
  Tensor* rows = graph.add_tensor(t->name + suffix, size, t->dtype);
  rows->quant = t->quant;
  graph.insert_before(anchor, "SLICE", {t}, {rows})->attrs = {{"begin", begin}, {"size", size}};
  return rows;
}

// A grouped convolution is `groups` convolutions side by side: each reads its slice of the
// input channels with its slice of the filters, and the outputs are concatenated.
void legalize_grouped_conv(Graph& graph, Op* op, Tensor* x_nhwc, const std::string& padding) {
  Tensor* w = op->inputs[1];
  Tensor* bias = op->inputs.size() > 2 ? op->inputs[2] : nullptr;
  Tensor* y = op->outputs[0];
  int64_t groups = op->i("groups");
  int64_t in_per_group = w->shape[1], out_per_group = w->shape[0] / groups;
  std::vector<int64_t> y_nhwc_shape = permute(y->shape, kNchwToNhwc);
  std::vector<Tensor*> pieces;
  for (int64_t g = 0; g < groups; ++g) {
    std::string suffix = fmt::format("_group{}", g);
    std::vector<int64_t> size = x_nhwc->shape;
    size[3] = in_per_group;
    Tensor* x_g = graph.add_tensor(x_nhwc->name + suffix, size, x_nhwc->dtype);
    x_g->quant = x_nhwc->quant;
    Op* slice = graph.insert_before(op, "SLICE", {x_nhwc}, {x_g});
    slice->attrs = {{"begin", std::vector<int64_t>{0, 0, 0, g * in_per_group}}, {"size", size}};
    Tensor* w_g = rows_of(graph, op, w, g * out_per_group, out_per_group, suffix);
    Tensor* w_ohwi = insert_transpose(graph, op, w_g, {0, 2, 3, 1}, "_ohwi");
    Tensor* b_g = bias ? rows_of(graph, op, bias, g * out_per_group, out_per_group, suffix) : nullptr;
    std::vector<int64_t> piece_shape = y_nhwc_shape;
    piece_shape[3] = out_per_group;
    Tensor* y_g = graph.add_tensor(y->name + suffix, piece_shape, y->dtype);
    y_g->quant = y->quant;
    Op* conv = graph.insert_before(op, "CONV_2D", {x_g, w_ohwi, b_g}, {y_g});
    conv->attrs = {{"stride", op->ints("stride")}, {"dilation", op->ints("dilation")}, {"padding", padding}};
    if (op->has("fused_activation")) conv->attrs["fused_activation"] = op->attrs.at("fused_activation");
    pieces.push_back(y_g);
  }
  Tensor* y_nhwc = graph.add_tensor(y->name + "_nhwc", y_nhwc_shape, y->dtype);
  y_nhwc->quant = y->quant;
  graph.insert_before(op, "CONCATENATION", pieces, {y_nhwc})->attrs["axis"] = int64_t{3};
  graph.remove_op(op);
  graph.insert_before(op, "TRANSPOSE", {y_nhwc}, {y})->attrs["perm"] = kNhwcToNchw;
}

void legalize_conv(Graph& graph, Op* op) {
  Tensor* x = op->inputs[0];
  Tensor* w = op->inputs[1];
  Tensor* bias = op->inputs.size() > 2 ? op->inputs[2] : nullptr;
  if (x->rank() != 4) fail(*op, "expects a 4-D NCHW input");
  int64_t groups = op->i("groups");
  int64_t channels = x->shape[1];
  int64_t out_channels = w->shape[0];
  std::vector<int64_t> stride = op->ints("stride"), dilation = op->ints("dilation"), pads = op->ints("padding");
  std::string type;
  std::vector<int64_t> weight_perm;
  if (groups == 1) {
    type = "CONV_2D";
    weight_perm = {0, 2, 3, 1};  // OIHW → OHWI
  } else if (groups == channels && w->shape[1] == 1) {
    type = "DEPTHWISE_CONV_2D";
    weight_perm = {1, 2, 3, 0};  // O1HW → 1HWO
  } else {
    type = "CONV_2D";  // grouped: one CONV_2D per group, concatenated (below)
    weight_perm = {0, 2, 3, 1};
  }
  std::vector<int64_t> effective{dilation[0] * (w->shape[2] - 1) + 1, dilation[1] * (w->shape[3] - 1) + 1};
  std::string padding = circle_padding(hw(x->shape), hw(op->outputs[0]->shape), effective, stride, pads);
  Tensor* x_nhwc = insert_transpose(graph, op, x, kNchwToNhwc, "_nhwc");
  if (padding.empty()) {
    x_nhwc = pad_nhwc(graph, op, x_nhwc, pads, std::nullopt);  // zeros (the zero point when quantized)
    padding = "VALID";
  }
  if (groups > 1 && type == "CONV_2D") return legalize_grouped_conv(graph, op, x_nhwc, padding);
  Tensor* w_circle = insert_transpose(graph, op, w, weight_perm, type == "CONV_2D" ? "_ohwi" : "_1hwo");
  Op* conv = to_nhwc(graph, op, type, {w_circle, bias}, x_nhwc);
  conv->attrs.insert({{"stride", stride}, {"dilation", dilation}, {"padding", padding}});
  if (type == "DEPTHWISE_CONV_2D") conv->attrs["depth_multiplier"] = out_channels / channels;
}

void legalize_pool(Graph& graph, Op* op) {
  Tensor* x = op->inputs[0];
  if (x->rank() != 4) fail(*op, "expects a 4-D NCHW input");
  bool max_pool = op->type == "torch.max_pool2d";
  std::vector<int64_t> kernel = op->ints("kernel"), stride = op->ints("stride"), pads = op->ints("padding");
  std::string padding = circle_padding(hw(x->shape), hw(op->outputs[0]->shape), kernel, stride, pads);
  Tensor* x_nhwc = insert_transpose(graph, op, x, kNchwToNhwc, "_nhwc");
  if (padding.empty()) {
    if (!max_pool)
      fail(*op,
           "average pooling with this padding has no Circle equivalent (Circle's SAME padding "
           "averages only the valid elements; PyTorch's window placement differs here)");
    // Max pooling pads with the lowest value so the padding never wins.
    double lowest =
        x->quant ? x->quant->scale[0] * (static_cast<double>(quant_range(x->dtype).first) - x->quant->zero_point[0])
                 : -std::numeric_limits<float>::max();
    x_nhwc = pad_nhwc(graph, op, x_nhwc, pads, lowest);
    padding = "VALID";
  }
  Op* pool = to_nhwc(graph, op, max_pool ? "MAX_POOL_2D" : "AVERAGE_POOL_2D", {}, x_nhwc);
  pool->attrs.insert({{"kernel", kernel}, {"stride", stride}, {"padding", padding}});
}

// Zeros in `like`'s domain (its zero point when quantized), as a constant of `shape`.
Tensor* zeros_like_domain(Graph& graph, const Tensor* like, const std::vector<int64_t>& shape) {
  at::Tensor zeros = at::zeros(shape, dtype_to_torch(like->dtype));
  if (like->quant) zeros.fill_(like->quant->zero_point[0]);
  Tensor* c = graph.add_constant(like->name + "_zeros", zeros);
  c->quant = like->quant;
  return c;
}

Tensor* emit_nhwc(Graph& graph, const Op* anchor, const char* type, std::vector<Tensor*> inputs, const Tensor* like,
                  const std::vector<int64_t>& shape, const std::string& suffix) {
  Tensor* out = graph.add_tensor(like->name + suffix, shape, like->dtype);
  out->quant = like->quant;
  graph.insert_before(anchor, type, std::move(inputs), {out});
  return out;
}

// onert 0.1.0 has no TRANSPOSE_CONV kernel. A transposed convolution is a stride-1 convolution,
// with the kernel flipped and its in/out channels swapped, over the input with (stride - 1) zeros
// inserted between pixels and (k - 1 - padding) zeros around. The zeros go in with RESHAPE +
// CONCATENATION (4-D only), then SLICE / PAD trim the borders.
void legalize_conv_transpose_as_conv(Graph& graph, Op* op) {
  Tensor* x = op->inputs[0];
  Tensor* w = op->inputs[1];
  Tensor* bias = op->inputs.size() > 2 ? op->inputs[2] : nullptr;
  Tensor* y = op->outputs[0];
  if (numel(x->shape) < 0) fail(*op, "needs a static input shape");
  at::Tensor weights;
  std::optional<QuantParams> weight_quant;
  if (w->is_constant()) {
    weights = w->data;
    weight_quant = w->quant;
  } else if (w->producer && w->producer->type == "DEQUANTIZE" && w->producer->inputs[0]->is_constant()) {
    const Tensor* q = w->producer->inputs[0];  // the op stays float: use the real weights
    weights = dequantize_constant(q->data, *q->quant);
  } else {
    fail(*op, "needs constant weights");
  }
  std::vector<int64_t> stride = op->ints("stride"), pads = op->ints("padding"), extra = op->ints("output_padding");
  int64_t n = x->shape[0], c = x->shape[1], h = x->shape[2], wd = x->shape[3];
  int64_t kh = w->shape[2], kw = w->shape[3];
  Tensor* cur = insert_transpose(graph, op, x, kNchwToNhwc, "_nhwc");
  // Zero insertion: width, then height (each leaves stride - 1 zeros after the last pixel too).
  if (stride[1] > 1) {
    Tensor* r = emit_nhwc(graph, op, "RESHAPE", {cur}, cur, {n * h, wd, 1, c}, "_cols");
    r->producer->attrs["shape"] = r->shape;
    Tensor* cat =
        emit_nhwc(graph, op, "CONCATENATION", {r, zeros_like_domain(graph, cur, {n * h, wd, stride[1] - 1, c})}, cur,
                  {n * h, wd, stride[1], c}, "_colzeros");
    cat->producer->attrs["axis"] = int64_t{2};
    cur = emit_nhwc(graph, op, "RESHAPE", {cat}, cur, {n, h, wd * stride[1], c}, "_wide");
    cur->producer->attrs["shape"] = cur->shape;
  }
  if (stride[0] > 1) {
    int64_t row = cur->shape[2] * c;
    Tensor* r = emit_nhwc(graph, op, "RESHAPE", {cur}, cur, {n, h, 1, row}, "_rows");
    r->producer->attrs["shape"] = r->shape;
    Tensor* cat = emit_nhwc(graph, op, "CONCATENATION", {r, zeros_like_domain(graph, cur, {n, h, stride[0] - 1, row})},
                            cur, {n, h, stride[0], row}, "_rowzeros");
    cat->producer->attrs["axis"] = int64_t{2};
    cur = emit_nhwc(graph, op, "RESHAPE", {cat}, cur, {n, h * stride[0], cur->shape[2], c}, "_tall");
    cur->producer->attrs["shape"] = cur->shape;
  }
  // Borders: k - 1 - padding zeros before; after, that plus output_padding, minus the stride - 1
  // zeros already there. Negative amounts crop.
  std::vector<int64_t> before{kh - 1 - pads[0], kw - 1 - pads[1]};
  std::vector<int64_t> after{kh - 1 - pads[0] + extra[0] - (stride[0] - 1),
                             kw - 1 - pads[1] + extra[1] - (stride[1] - 1)};
  std::vector<int64_t> begin{0, std::max<int64_t>(-before[0], 0), std::max<int64_t>(-before[1], 0), 0};
  std::vector<int64_t> size = cur->shape;
  for (int d = 0; d < 2; ++d) size[1 + d] -= begin[1 + d] + std::max<int64_t>(-after[d], 0);
  if (size != cur->shape) {
    cur = emit_nhwc(graph, op, "SLICE", {cur}, cur, size, "_cropped");
    cur->producer->attrs = {{"begin", begin}, {"size", size}};
  }
  std::vector<int64_t> pad{std::max<int64_t>(before[0], 0), std::max<int64_t>(before[1], 0),
                           std::max<int64_t>(after[0], 0), std::max<int64_t>(after[1], 0)};
  if (pad[0] || pad[1] || pad[2] || pad[3]) cur = pad_nhwc(graph, op, cur, pad, std::nullopt);
  // Kernel: [in, out, kh, kw] → flipped [out, kh, kw, in]; per-channel parameters move with `out`.
  at::Tensor kernel = weights.flip({2, 3}).permute({1, 2, 3, 0}).contiguous();
  Tensor* k = graph.add_constant(w->name + "_flipped", kernel);
  k->quant = weight_quant;
  if (k->quant && k->quant->per_channel()) k->quant->axis = k->quant->axis == 1 ? 0 : 3;
  if (!bias) bias = graph.add_constant(y->name + "_zero_bias", at::zeros({w->shape[1]}, at::kFloat));
  Op* conv = to_nhwc(graph, op, "CONV_2D", {k, bias}, cur);
  conv->attrs.insert({{"stride", std::vector<int64_t>{1, 1}},
                      {"dilation", std::vector<int64_t>{1, 1}},
                      {"padding", std::string("VALID")}});
}

// TRANSPOSE_CONV computes the VALID-padded full output, (H - 1) * s + k; PyTorch crops `padding`
// from each side and adds `output_padding` at the end. SAME covers the common case; otherwise a
// STRIDED_SLICE crops the VALID output.
void legalize_conv_transpose(Graph& graph, Op* op) {
  Tensor* x = op->inputs[0];
  Tensor* w = op->inputs[1];
  Tensor* bias = op->inputs.size() > 2 ? op->inputs[2] : nullptr;
  Tensor* y = op->outputs[0];
  if (x->rank() != 4 || x->shape[2] < 0 || x->shape[3] < 0) fail(*op, "expects a static 4-D NCHW input");
  std::vector<int64_t> stride = op->ints("stride"), pads = op->ints("padding");
  int64_t kh = w->shape[2], kw = w->shape[3];
  std::vector<int64_t> full{(x->shape[2] - 1) * stride[0] + kh, (x->shape[3] - 1) * stride[1] + kw};
  bool valid = pads[0] == 0 && pads[1] == 0 && y->shape[2] == full[0] && y->shape[3] == full[1];
  bool same = y->shape[2] == x->shape[2] * stride[0] && y->shape[3] == x->shape[3] * stride[1] &&
              pads[0] == std::max<int64_t>(kh - stride[0], 0) / 2 &&
              pads[1] == std::max<int64_t>(kw - stride[1], 0) / 2;
  if (valid || same) {
    Tensor* x_nhwc = insert_transpose(graph, op, x, kNchwToNhwc, "_nhwc");
    Tensor* w_circle = insert_transpose(graph, op, w, {1, 2, 3, 0}, "_ohwi");  // [I, O, H, W] → [O, H, W, I]
    Op* conv = to_nhwc(graph, op, "TRANSPOSE_CONV", {w_circle, bias}, x_nhwc);
    conv->attrs.insert({{"stride", stride},
                        {"padding", std::string(valid ? "VALID" : "SAME")},
                        {"output_shape", conv->outputs[0]->shape}});
    return;
  }
  if (pads[0] + y->shape[2] > full[0] || pads[1] + y->shape[3] > full[1])
    fail(*op, "output_padding larger than padding is not supported");
  // The uncropped (VALID) transposed convolution, then a crop back to y. `op` goes first so that
  // the crop can take over y as its output.
  Tensor* full_nchw = graph.add_tensor(y->name + "_uncropped", {y->shape[0], y->shape[1], full[0], full[1]}, y->dtype);
  full_nchw->quant = y->quant;
  Op* uncropped = graph.insert_before(op, "torch.conv_transpose2d", {x, w, bias}, {full_nchw});
  uncropped->attrs = {
      {"stride", stride}, {"padding", std::vector<int64_t>{0, 0}}, {"output_padding", std::vector<int64_t>{0, 0}}};
  uncropped->origin = op->origin;
  graph.remove_op(op);
  Op* crop = graph.insert_after(uncropped, "STRIDED_SLICE", {full_nchw}, {y});
  crop->attrs = {{"begin", std::vector<int64_t>{0, 0, pads[0], pads[1]}},
                 {"end", std::vector<int64_t>{y->shape[0], y->shape[1], pads[0] + y->shape[2], pads[1] + y->shape[3]}},
                 {"strides", std::vector<int64_t>{1, 1, 1, 1}},
                 {"shrink_axis_mask", int64_t{0}}};
  crop->origin = op->origin;
  legalize_conv_transpose(graph, uncropped);  // VALID now
}

}  // namespace

void legalize_layout(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->dead) continue;
    if (op->type == "torch.conv2d")
      legalize_conv(graph, op);
    else if (op->type == "torch.max_pool2d" || op->type == "torch.avg_pool2d")
      legalize_pool(graph, op);
    else if (op->type == "torch.conv_transpose2d" && graph.format == FileFormat::kCircle)
      legalize_conv_transpose_as_conv(graph, op);
    else if (op->type == "torch.conv_transpose2d")
      legalize_conv_transpose(graph, op);
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
