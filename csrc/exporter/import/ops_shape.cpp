// Importers for ops that move data without computing: reshapes, transposes, slices, concat,
// split, pad, and the identity-like nodes an exported graph carries.
#include "exporter/import/fx_importer.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace torch_circle::exporter {
namespace {

int64_t wrap_dim(ImportContext& ctx, int64_t dim, int64_t rank) {
  int64_t wrapped = dim < 0 ? dim + rank : dim;
  if (wrapped < 0 || wrapped >= std::max<int64_t>(rank, 1))
    ctx.fail(fmt::format("dimension {} is out of range for rank {}", dim, rank));
  return wrapped;
}

// Every reshape-like node becomes RESHAPE to the node's output shape (-1 for a dynamic dim).
void reshape(ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (std::count(out->shape.begin(), out->shape.end(), -1) > 1)
    ctx.fail(fmt::format("reshape to {} has more than one dynamic dimension", shape_str(out->shape)));
  Op* op = ctx.emit("RESHAPE", {x}, {out});
  op->attrs["shape"] = out->shape;
}
IMPORT_OP({"aten.view.default", "aten.reshape.default", "aten._unsafe_view.default",
           "aten.flatten.using_ints", "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default",
           "aten.unsqueeze.default", "aten.view_copy.default", "aten.unflatten.int"},
          [](ImportContext& ctx) { reshape(ctx); });

void transpose(ImportContext& ctx, Tensor* x, std::vector<int64_t> perm) {
  if (perm.size() != static_cast<size_t>(x->rank())) ctx.fail("permutation rank mismatch");
  for (int64_t& p : perm) p = wrap_dim(ctx, p, x->rank());
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == static_cast<int64_t>(i);
  if (identity) return ctx.alias(x);
  Op* op = ctx.emit("TRANSPOSE", {x}, {ctx.output()});
  op->attrs["perm"] = perm;
}
IMPORT_OP({"aten.permute.default", "aten.permute_copy.default"}, [](ImportContext& ctx) {
  transpose(ctx, ctx.tensor(0, "input"), ctx.ints_arg(1, "dims"));
});
IMPORT_OP({"aten.transpose.int"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> perm(x->rank());
  for (int64_t i = 0; i < x->rank(); ++i) perm[i] = i;
  std::swap(perm[wrap_dim(ctx, ctx.int_arg(1, "dim0"), x->rank())],
            perm[wrap_dim(ctx, ctx.int_arg(2, "dim1"), x->rank())]);
  transpose(ctx, x, perm);
});
IMPORT_OP({"aten.t.default", "aten.numpy_T.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  if (x->rank() < 2) return ctx.alias(x);
  transpose(ctx, x, {1, 0});
});

// A SLICE (or STRIDED_SLICE when step > 1) of `x` along `dim`, written to `out`.
void slice_along(ImportContext& ctx, Tensor* x, int64_t dim, int64_t start, int64_t end, int64_t step, Tensor* out) {
  if (x->rank() > 4 && numel(x->shape) >= 0) {
    // Runtimes slice up to 4-D (onert 0.1.0 silently miscomputes 5-D): slice [before, n, after].
    int64_t before = 1, after = 1;
    for (int64_t d = 0; d < dim; ++d) before *= x->shape[d];
    for (int64_t d = dim + 1; d < x->rank(); ++d) after *= x->shape[d];
    Tensor* flat = ctx.reshape(x, {before, x->shape[dim], after}, "as_3d");
    int64_t n = (end - start + step - 1) / step;
    Tensor* piece = ctx.temp({before, n, after}, x->dtype, "slice_3d");
    slice_along(ctx, flat, 1, start, end, step, piece);
    ctx.reshape(piece, out->shape, "", out);
    return;
  }
  std::vector<int64_t> begin(x->rank(), 0);
  begin[dim] = start;
  if (step == 1) {
    // Whole dims keep their size; -1 ("to the end") only where the size is dynamic: onert 0.1.0
    // misreads -1 sizes.
    std::vector<int64_t> size(x->shape);
    size[dim] = end - start;
    Op* op = ctx.emit("SLICE", {x}, {out});
    op->attrs = {{"begin", begin}, {"size", size}};
    return;
  }
  std::vector<int64_t> stop(x->shape), strides(x->rank(), 1);
  stop[dim] = end;
  strides[dim] = step;
  for (int64_t& s : stop)
    if (s < 0) ctx.fail("strided slicing of a tensor with dynamic dims is not supported");
  Op* op = ctx.emit("STRIDED_SLICE", {x}, {out});
  op->attrs = {{"begin", begin}, {"end", stop}, {"strides", strides}, {"shrink_axis_mask", int64_t{0}}};
}

// slice(x, dim, start, end, step): SLICE (or STRIDED_SLICE for step > 1).
IMPORT_OP({"aten.slice.Tensor", "aten.slice_copy.Tensor"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim", 0), x->rank());
  int64_t size = x->shape[dim];
  int64_t start = ctx.int_arg(2, "start", 0);
  int64_t end = ctx.int_arg(3, "end", std::numeric_limits<int64_t>::max());
  int64_t step = ctx.int_arg(4, "step", 1);
  if (size < 0) ctx.fail("slicing a dynamic dimension is not supported");
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  if (start == 0 && end == size && step == 1) return ctx.alias(x);
  slice_along(ctx, x, dim, start, end, step, ctx.output());
});

IMPORT_OP({"aten.narrow.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim"), x->rank());
  int64_t start = ctx.int_arg(2, "start");
  if (start < 0) start += x->shape[dim];
  slice_along(ctx, x, dim, start, start + ctx.int_arg(3, "length"), 1, ctx.output());
});

// select(x, dim, i): a one-element SLICE, then a RESHAPE that drops the axis.
IMPORT_OP({"aten.select.int", "aten.select_copy.int"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim"), x->rank());
  int64_t index = ctx.int_arg(2, "index");
  if (x->shape[dim] < 0) ctx.fail("selecting along a dynamic dimension is not supported");
  if (index < 0) index += x->shape[dim];
  std::vector<int64_t> kept = x->shape;
  kept[dim] = 1;
  Tensor* piece = ctx.temp(kept, x->dtype, "slice");
  slice_along(ctx, x, dim, index, index + 1, 1, piece);
  Tensor* out = ctx.output();
  ctx.reshape(piece, out->shape, "", out);
});

// unbind(x, dim): one SLICE + RESHAPE per index.
IMPORT_OP({"aten.unbind.int"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim", 0), x->rank());
  if (x->shape[dim] < 0) ctx.fail("unbinding a dynamic dimension is not supported");
  std::vector<int64_t> kept = x->shape;
  kept[dim] = 1;
  std::vector<Tensor*> outputs;
  for (int64_t i = 0; i < x->shape[dim]; ++i) {
    Tensor* piece = ctx.temp(kept, x->dtype, "slice");
    slice_along(ctx, x, dim, i, i + 1, 1, piece);
    Tensor* out = ctx.output(static_cast<size_t>(i));
    ctx.reshape(piece, out->shape, "", out);
    outputs.push_back(out);
  }
  ctx.bind(outputs);
});

IMPORT_OP({"aten.cat.default", "aten.concat.default"}, [](ImportContext& ctx) {
  const FxArg* list = ctx.arg(0, "tensors");
  if (!list || list->kind != FxArg::Kind::kList) ctx.fail("cat expects a list of tensors");
  std::vector<Tensor*> inputs;
  Tensor* out = ctx.output();
  for (const FxArg& item : list->list) {
    if (item.kind != FxArg::Kind::kNode) ctx.fail("cat inputs must be tensors");
    Tensor* t = ctx.values(item.node).size() == 1 ? ctx.values(item.node)[0] : nullptr;
    if (!t) ctx.fail("cat input is not a single tensor");
    if (numel(t->shape) == 0 && t->rank() == 1) continue;  // torch.cat skips empty 1-D tensors
    inputs.push_back(t);
  }
  if (inputs.size() == 1) return ctx.alias(inputs[0]);
  Op* op = ctx.emit("CONCATENATION", inputs, {out});
  op->attrs["axis"] = wrap_dim(ctx, ctx.int_arg(1, "dim", 0), out->rank());
});

// split / split_with_sizes / chunk → one SLICE per piece (onert 0.1.0's SPLIT_V returns zeros).
// `piece` is the size of every piece but the last; `sizes` (when given) lists them all.
void split_into(ImportContext& ctx, Tensor* x, int64_t piece, std::vector<int64_t> sizes = {}) {
  int64_t dim = wrap_dim(ctx, ctx.int_arg(2, "dim", 0), x->rank());
  if (x->shape[dim] < 0) ctx.fail("splitting a dynamic dimension is not supported");
  if (sizes.empty() && piece < 1) ctx.fail("split size must be positive");
  if (sizes.empty())
    for (int64_t left = x->shape[dim]; left > 0; left -= piece) sizes.push_back(std::min(piece, left));
  std::vector<Tensor*> outputs;
  int64_t start = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Tensor* out = ctx.output(i);
    slice_along(ctx, x, dim, start, start + sizes[i], 1, out);
    outputs.push_back(out);
    start += sizes[i];
  }
  ctx.bind(outputs);
}
void split(ImportContext& ctx, bool sizes_given) {
  Tensor* x = ctx.tensor(0, "input");
  if (sizes_given) return split_into(ctx, x, 0, ctx.ints_arg(1, "split_sizes"));
  split_into(ctx, x, ctx.int_arg(1, "split_size"));
}
IMPORT_OP({"aten.split.Tensor"}, [](ImportContext& ctx) { split(ctx, false); });
// chunk(x, n, dim) is a split into pieces of ceil(size / n) (fewer than n when they run out).
IMPORT_OP({"aten.chunk.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t chunks = ctx.int_arg(1, "chunks");
  int64_t size = x->shape[wrap_dim(ctx, ctx.int_arg(2, "dim", 0), x->rank())];
  if (chunks < 1) ctx.fail("chunk count must be positive");
  split_into(ctx, x, std::max<int64_t>((size + chunks - 1) / chunks, 1));
});
IMPORT_OP({"aten.split_with_sizes.default"}, [](ImportContext& ctx) { split(ctx, true); });

IMPORT_OP({"getitem"}, [](ImportContext& ctx) {
  const FxArg* source = ctx.arg(0, nullptr);
  int64_t index = ctx.int_arg(1, nullptr);
  if (!source || source->kind != FxArg::Kind::kNode) ctx.fail("getitem of a non-node value");
  const auto& produced = ctx.values(source->node);
  if (index < 0 || static_cast<size_t>(index) >= produced.size() || !produced[index])
    ctx.fail(fmt::format("getitem reads output {} that is not exported", index));
  ctx.alias(produced[index]);
});

// pad's list runs from the last dimension backwards: (left, right, top, bottom, ...). Returns
// [before0, after0, before1, after1, ...] over every dim of x.
std::vector<int64_t> paddings_per_dim(ImportContext& ctx, const Tensor* x, const std::vector<int64_t>& pad) {
  if (pad.size() % 2 || static_cast<int64_t>(pad.size() / 2) > x->rank()) ctx.fail("bad pad list");
  std::vector<int64_t> paddings(2 * x->rank(), 0);
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    int64_t dim = x->rank() - 1 - static_cast<int64_t>(i);
    if (pad[2 * i] < 0 || pad[2 * i + 1] < 0) ctx.fail("negative padding (cropping) is not supported");
    paddings[2 * dim] = pad[2 * i];
    paddings[2 * dim + 1] = pad[2 * i + 1];
  }
  return paddings;
}

void constant_pad(ImportContext& ctx, double value) {
  Tensor* x = ctx.tensor(0, "input");
  Op* op = ctx.emit(value == 0.0 ? "PAD" : "PADV2", {x}, {ctx.output()});
  op->attrs["paddings"] = paddings_per_dim(ctx, x, ctx.ints_arg(1, "pad"));
  if (value != 0.0) op->attrs["value"] = value;
}

// Reflect, replicate and circular padding copy elements of x: each padded dim is one GATHER with
// constant source positions, e.g. reflect by 2 on [a b c d] reads positions [2 1 0 1 2 3 2 1].
// GATHER runs in every runtime, float and quantized (onert 0.1.0 has no MIRROR_PAD kernel).
void copying_pad(ImportContext& ctx, const std::string& mode, const std::vector<int64_t>& pad) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  std::vector<int64_t> paddings = paddings_per_dim(ctx, x, pad);
  std::vector<int64_t> padded_dims;
  for (int64_t d = 0; d < x->rank(); ++d)
    if (paddings[2 * d] || paddings[2 * d + 1]) padded_dims.push_back(d);
  if (padded_dims.empty()) return ctx.alias(x);
  Tensor* current = x;
  for (int64_t d : padded_dims) {
    int64_t n = x->shape[d], before = paddings[2 * d], after = paddings[2 * d + 1];
    if (n < 0) ctx.fail(fmt::format("{} padding of a dynamic dimension is not supported", mode));
    int64_t limit = mode == "reflect" ? n - 1 : mode == "circular" ? n : std::numeric_limits<int64_t>::max();
    if (before > limit || after > limit)
      ctx.fail(fmt::format("{} padding by {} / {} of a dimension of size {} is not supported", mode, before, after, n));
    std::vector<int32_t> positions;
    for (int64_t i = -before; i < n + after; ++i) {
      int64_t j = i;
      if (mode == "reflect") j = i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
      else if (mode == "replicate") j = std::clamp<int64_t>(i, 0, n - 1);
      else j = (i % n + n) % n;  // circular
      positions.push_back(static_cast<int32_t>(j));
    }
    std::vector<int64_t> shape = current->shape;
    shape[d] = n + before + after;
    Tensor* next = d == padded_dims.back() ? out : ctx.temp(shape, x->dtype, "padded");
    next->quant = x->quant;
    Tensor* index = ctx.constant(at::tensor(positions, at::kInt), "positions");
    ctx.emit("GATHER", {current, index}, {next})->attrs = {{"axis", d}, {"batch_dims", int64_t{0}}};
    current = next;
  }
}

IMPORT_OP({"aten.constant_pad_nd.default"}, [](ImportContext& ctx) { constant_pad(ctx, ctx.float_arg(2, "value", 0.0)); });
IMPORT_OP({"aten.pad.default"}, [](ImportContext& ctx) {
  const FxArg* mode = ctx.arg(2, "mode");
  std::string name = mode && mode->kind == FxArg::Kind::kString ? mode->s : "constant";
  if (name == "constant") return constant_pad(ctx, ctx.float_arg(3, "value", 0.0));
  if (name != "reflect" && name != "replicate" && name != "circular")
    ctx.fail(fmt::format("pad mode '{}' is not supported", name));
  copying_pad(ctx, name, ctx.ints_arg(1, "pad"));
});
IMPORT_OP({"aten.reflection_pad1d.default", "aten.reflection_pad2d.default", "aten.reflection_pad3d.default"},
          [](ImportContext& ctx) { copying_pad(ctx, "reflect", ctx.ints_arg(1, "padding")); });
IMPORT_OP({"aten.replication_pad1d.default", "aten.replication_pad2d.default", "aten.replication_pad3d.default"},
          [](ImportContext& ctx) { copying_pad(ctx, "replicate", ctx.ints_arg(1, "padding")); });

// --- indexing: everything becomes GATHER (float and quantized in every runtime) ---------------

// index_select(x, dim, index): GATHER along dim.
IMPORT_OP({"aten.index_select.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim"), x->rank());
  Tensor* index = ctx.tensor(2, "index");
  ctx.emit("GATHER", {x, index}, {ctx.output()})->attrs = {{"axis", dim}, {"batch_dims", int64_t{0}}};
});

// x[:, idx] (aten.index.Tensor with one index tensor, the others None): GATHER along that dim;
// the result's shape is x's with that dim replaced by idx's shape, as in PyTorch.
IMPORT_OP({"aten.index.Tensor"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  const FxArg* list = ctx.arg(1, "indices");
  if (!list || list->kind != FxArg::Kind::kList) ctx.fail("index expects a list of indices");
  int64_t dim = -1;
  Tensor* index = nullptr;
  for (size_t d = 0; d < list->list.size(); ++d) {
    const FxArg& item = list->list[d];
    if (item.kind == FxArg::Kind::kNone) continue;
    if (index || item.kind != FxArg::Kind::kNode)
      ctx.fail("indexing with more than one index tensor is not supported; index one dim at a time");
    index = ctx.values(item.node).size() == 1 ? ctx.values(item.node)[0] : nullptr;
    dim = static_cast<int64_t>(d);
  }
  if (!index) ctx.fail("index without an index tensor");
  if (index->dtype == DType::kBool) ctx.fail("indexing with a boolean mask is not supported (its output size depends on the data)");
  ctx.emit("GATHER", {x, index}, {ctx.output()})->attrs = {{"axis", dim}, {"batch_dims", int64_t{0}}};
});

// gather(x, dim, index): out[i][j][k] = x[i][index[i][j][k]][k] (dim 1). Circle's GATHER takes
// whole slices, so x is flattened and each output element's flat position is computed:
// index * stride(dim) plus a constant for its position in the other dims. The position
// arithmetic is int32 (folded away when the index is a constant).
IMPORT_OP({"aten.gather.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim"), x->rank());
  Tensor* index = ctx.tensor(2, "index");
  if (numel(x->shape) < 0 || numel(index->shape) < 0) ctx.fail("gather needs static shapes");
  if (index->rank() != x->rank()) ctx.fail("gather's index must have the input's rank");
  if (numel(x->shape) > std::numeric_limits<int32_t>::max()) ctx.fail("gather from more than 2^31 elements");
  std::vector<int64_t> strides(x->rank(), 1);
  for (int64_t d = x->rank() - 2; d >= 0; --d) strides[d] = strides[d + 1] * x->shape[d + 1];
  at::Tensor offsets = at::zeros(index->shape, at::kLong);
  for (int64_t d = 0; d < x->rank(); ++d) {
    if (d == dim) continue;
    std::vector<int64_t> along(x->rank(), 1);
    along[d] = index->shape[d];
    offsets = offsets + at::arange(index->shape[d], at::kLong).reshape(along) * strides[d];
  }
  Tensor* flat = ctx.reshape(x, {numel(x->shape)}, "flat");
  Tensor* positions;
  if (index->is_constant()) {
    positions = ctx.constant((index->data.to(at::kLong) * strides[dim] + offsets).to(at::kInt), "positions");
  } else {
    Tensor* index32 = index;
    if (index->dtype != DType::kInt32) {
      index32 = ctx.temp(index->shape, DType::kInt32, "index_i32");
      ctx.emit("CAST", {index}, {index32});
    }
    Tensor* scaled = index32;
    if (strides[dim] != 1) {
      scaled = ctx.temp(index->shape, DType::kInt32, "index_scaled");
      ctx.emit("MUL", {index32, ctx.constant(at::scalar_tensor(strides[dim], at::kInt), "stride")}, {scaled});
    }
    positions = ctx.temp(index->shape, DType::kInt32, "positions");
    ctx.emit("ADD", {scaled, ctx.constant(offsets.to(at::kInt), "offsets")}, {positions});
  }
  ctx.emit("GATHER", {flat, positions}, {ctx.output()})->attrs = {{"axis", int64_t{0}}, {"batch_dims", int64_t{0}}};
});

IMPORT_OP({"aten.expand.default", "aten.expand_copy.default", "aten.expand_as.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* out = ctx.output();
  if (out->shape == x->shape) return ctx.alias(x);
  Op* op = ctx.emit("BROADCAST_TO", {x}, {out});
  op->attrs["shape"] = out->shape;
});

// Nodes that only change metadata or do nothing in eval mode.
IMPORT_OP({"aten.clone.default", "aten.contiguous.default", "aten.alias.default", "aten.detach.default",
           "aten.lift_fresh_copy.default", "aten.identity.default"},
          [](ImportContext& ctx) { ctx.alias(ctx.tensor(0, "input")); });
IMPORT_OP({"aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
           "aten.native_dropout.default"},
          [](ImportContext& ctx) {
            if (ctx.bool_arg(2, "train", false)) ctx.fail("dropout in training mode; call model.eval() before exporting");
            ctx.alias(ctx.tensor(0, "input"));
          });

// repeat(x, reps): TILE (a leading rep for each new leading dim becomes a RESHAPE first).
IMPORT_OP({"aten.repeat.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> reps = ctx.ints_arg(1, "repeats");
  if (static_cast<int64_t>(reps.size()) != x->rank()) ctx.fail("repeat that adds dimensions is not supported");
  Op* op = ctx.emit("TILE", {x}, {ctx.output()});
  op->attrs["multiples"] = reps;
});

}  // namespace
}  // namespace torch_circle::exporter
