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
IMPORT_OP({"aten.view.default", "aten.reshape.default", "aten._unsafe_view.default", "aten.flatten.using_ints",
           "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.unsqueeze.default",
           "aten.squeeze_copy.dim", "aten.squeeze_copy.dims", "aten.squeeze_copy.default",
           "aten.unsqueeze_copy.default", "aten.view_copy.default", "aten.unflatten.int"},
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
IMPORT_OP({"aten.permute.default", "aten.permute_copy.default"},
          [](ImportContext& ctx) { transpose(ctx, ctx.tensor(0, "input"), ctx.ints_arg(1, "dims")); });
IMPORT_OP({"aten.transpose.int", "aten.swapaxes.default", "aten.swapdims.default"}, [](ImportContext& ctx) {
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
    // An input with no elements adds nothing (torch.cat also skips empty 1-D tensors of any
    // other rank); Circle runtimes cannot run zero-size tensors, so it is left out.
    if (numel(t->shape) == 0) continue;
    inputs.push_back(t);
  }
  if (inputs.empty()) ctx.fail("every input of cat is empty: the result has no elements");
  if (inputs.size() == 1) return ctx.alias(inputs[0]);
  Op* op = ctx.emit("CONCATENATION", inputs, {out});
  op->attrs["axis"] = wrap_dim(ctx, ctx.int_arg(1, "dim", 0), out->rank());
});

// stack: each input gets a size-1 dim at `dim` (RESHAPE), then one CONCATENATION along it.
IMPORT_OP({"aten.stack.default"}, [](ImportContext& ctx) {
  const FxArg* list = ctx.arg(0, "tensors");
  if (!list || list->kind != FxArg::Kind::kList || list->list.empty()) ctx.fail("stack expects a list of tensors");
  Tensor* out = ctx.output();
  if (numel(out->shape) == 0) ctx.fail("stack of empty tensors: the result has no elements");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim", 0), out->rank());
  std::vector<Tensor*> inputs;
  for (const FxArg& item : list->list) {
    Tensor* t =
        item.kind == FxArg::Kind::kNode && ctx.values(item.node).size() == 1 ? ctx.values(item.node)[0] : nullptr;
    if (!t) ctx.fail("stack inputs must be tensors");
    std::vector<int64_t> shape = t->shape;
    shape.insert(shape.begin() + dim, 1);
    inputs.push_back(ctx.reshape(t, shape, "stacked"));
  }
  if (inputs.size() == 1) return ctx.alias(inputs[0]);
  ctx.emit("CONCATENATION", inputs, {out})->attrs["axis"] = dim;
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
IMPORT_OP({"aten.split_with_sizes.default", "aten.split_with_sizes_copy.default"},
          [](ImportContext& ctx) { split(ctx, true); });

IMPORT_OP({"getitem"}, [](ImportContext& ctx) {
  const FxArg* source = ctx.arg(0, nullptr);
  int64_t index = ctx.int_arg(1, nullptr);
  if (!source || source->kind != FxArg::Kind::kNode) ctx.fail("getitem of a non-node value");
  const auto& produced = ctx.values(source->node);
  if (index < 0 || static_cast<size_t>(index) >= produced.size() || !produced[index])
    ctx.fail(fmt::format("getitem reads output {} that is not exported", index));
  ctx.alias(produced[index]);
});

// sym_size(x, dim): a size only known at run time, as an int32 scalar read from SHAPE. Reshapes
// and slices read symbolic sizes as -1 instead, so this is computed only when something else
// (a graph output) reads it; dead-code removal drops it otherwise.
IMPORT_OP({"aten.sym_size.int"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = wrap_dim(ctx, ctx.int_arg(1, "dim"), x->rank());
  Tensor* shape = ctx.temp({x->rank()}, DType::kInt32, "shape");
  ctx.emit("SHAPE", {x}, {shape});
  Tensor* size = ctx.temp({1}, DType::kInt32, "size");  // GATHER: onert 0.1.0 has no int32 SLICE
  Tensor* position = ctx.constant(at::tensor({static_cast<int32_t>(dim)}, at::kInt), "dim");
  ctx.emit("GATHER", {shape, position}, {size})->attrs = {{"axis", int64_t{0}}, {"batch_dims", int64_t{0}}};
  Tensor* out = ctx.temp({}, DType::kInt32, "scalar");
  ctx.reshape(size, {}, "", out);
  ctx.alias(out);
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
      if (mode == "reflect")
        j = i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
      else if (mode == "replicate")
        j = std::clamp<int64_t>(i, 0, n - 1);
      else
        j = (i % n + n) % n;  // circular
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

IMPORT_OP({"aten.constant_pad_nd.default"},
          [](ImportContext& ctx) { constant_pad(ctx, ctx.float_arg(2, "value", 0.0)); });
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

// The index tensors of an index / index_put node's `indices` list: the first indexed dim and
// the tensors, which must sit on adjacent dims (None entries before them are whole dims).
std::pair<int64_t, std::vector<Tensor*>> index_tensors(ImportContext& ctx) {
  const FxArg* list = ctx.arg(1, "indices");
  if (!list || list->kind != FxArg::Kind::kList) ctx.fail("expects a list of indices");
  std::vector<Tensor*> indices;
  int64_t first = -1;
  for (size_t d = 0; d < list->list.size(); ++d) {
    const FxArg& item = list->list[d];
    if (item.kind == FxArg::Kind::kNone) continue;
    if (item.kind != FxArg::Kind::kNode || ctx.values(item.node).size() != 1) ctx.fail("index with a non-tensor index");
    if (first >= 0 && static_cast<size_t>(first) + indices.size() != d)
      ctx.fail("indexing with index tensors on dims that are not adjacent is not supported");
    if (first < 0) first = static_cast<int64_t>(d);
    indices.push_back(ctx.values(item.node)[0]);
  }
  if (indices.empty()) ctx.fail("index without an index tensor");
  return {first, indices};
}

// The product of x's dims [from, to); fails when one is dynamic.
int64_t dims_product(ImportContext& ctx, const Tensor* x, int64_t from, int64_t to) {
  int64_t p = 1;
  for (int64_t d = from; d < to; ++d) {
    if (x->shape[d] < 0) ctx.fail("indexing a tensor with dynamic dims is not supported");
    p *= x->shape[d];
  }
  return p;
}

// The flat positions sum(i_d * stride_d) that index tensors on x's dims [first, first + k) pick
// in those dims flattened (row-major), negative indices wrapped, as int32 of the indices'
// broadcast shape: computed at export time for constant indices (and checked against the
// sizes), else with CAST / LESS / MUL / ADD.
Tensor* flat_positions(ImportContext& ctx, const Tensor* x, int64_t first, const std::vector<Tensor*>& indices) {
  int64_t k = static_cast<int64_t>(indices.size());
  int64_t stride = dims_product(ctx, x, first, first + k);
  auto int32_scalar = [&](int64_t v, const char* suffix) {
    return ctx.constant(at::scalar_tensor(v, at::kInt), suffix);
  };
  at::Tensor constant_part = at::zeros({}, at::kLong);  // the constant indices' terms
  Tensor* computed = nullptr;                           // the sum of the others'
  for (int64_t i = 0; i < k; ++i) {
    Tensor* index = indices[i];
    int64_t size = x->shape[first + i];
    stride /= size;
    if (index->is_constant()) {
      at::Tensor value = index->data.to(at::kLong);
      if ((value < -size).any().item<bool>() || (value >= size).any().item<bool>())
        ctx.fail(fmt::format("index out of range for dim {} of size {}", first + i, size));
      constant_part = constant_part + at::remainder(value, size) * stride;
      continue;
    }
    if (numel(index->shape) < 0) ctx.fail("index tensors with dynamic shapes are not supported");
    Tensor* index32 = index;
    if (index->dtype != DType::kInt32) {
      index32 = ctx.temp(index->shape, DType::kInt32, "index_i32");
      ctx.emit("CAST", {index}, {index32});
    }
    // index + size * (index < 0)
    Tensor* negative = ctx.temp(index->shape, DType::kBool, "negative");
    ctx.emit("LESS", {index32, int32_scalar(0, "zero")}, {negative});
    Tensor* wraps = ctx.temp(index->shape, DType::kInt32, "wraps");
    ctx.emit("CAST", {negative}, {wraps});
    Tensor* offset = ctx.temp(index->shape, DType::kInt32, "wrap_offset");
    ctx.emit("MUL", {wraps, int32_scalar(size, "size")}, {offset});
    Tensor* term = ctx.temp(index->shape, DType::kInt32, "wrapped");
    ctx.emit("ADD", {index32, offset}, {term});
    if (stride != 1) {
      Tensor* scaled = ctx.temp(index->shape, DType::kInt32, "scaled");
      ctx.emit("MUL", {term, int32_scalar(stride, "stride")}, {scaled});
      term = scaled;
    }
    if (computed) {
      Tensor* sum = ctx.temp(at::infer_size(computed->shape, term->shape), DType::kInt32, "positions");
      ctx.emit("ADD", {computed, term}, {sum});
      term = sum;
    }
    computed = term;
  }
  at::Tensor constant = constant_part.to(at::kInt).contiguous();
  if (!computed) return ctx.constant(constant, "positions");
  std::vector<int64_t> shape = at::infer_size(computed->shape, constant.sizes());
  if (shape == computed->shape && constant.eq(0).all().item<bool>()) return computed;
  Tensor* sum = ctx.temp(shape, DType::kInt32, "positions");
  ctx.emit("ADD", {computed, ctx.constant(constant, "constant_positions")}, {sum});
  return sum;
}

// x[:, idx] (aten.index.Tensor with one index tensor, the others None): GATHER along that dim;
// the result's shape is x's with that dim replaced by idx's shape, as in PyTorch.
// x[i, j] with index tensors on adjacent dims (transformers' masks index with aranges): those
// dims are flattened into one and a single GATHER reads the flat positions (flat_positions).
IMPORT_OP({"aten.index.Tensor"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  auto [first, indices] = index_tensors(ctx);
  for (Tensor* index : indices)
    if (index->dtype == DType::kBool)
      ctx.fail("indexing with a boolean mask is not supported (its output size depends on the data)");
  Tensor* out = ctx.output();
  if (indices.size() == 1)
    return (void)(ctx.emit("GATHER", {x, indices[0]}, {out})->attrs = {{"axis", first}, {"batch_dims", int64_t{0}}});
  int64_t k = static_cast<int64_t>(indices.size());
  std::vector<int64_t> flat_shape(x->shape.begin(), x->shape.begin() + first);
  flat_shape.push_back(dims_product(ctx, x, first, first + k));
  flat_shape.insert(flat_shape.end(), x->shape.begin() + first + k, x->shape.end());
  Tensor* positions = flat_positions(ctx, x, first, indices);
  Tensor* flattened = ctx.reshape(x, flat_shape, "flat");
  ctx.emit("GATHER", {flattened, positions}, {out})->attrs = {{"axis", first}, {"batch_dims", int64_t{0}}};
});

// x[mask] = v (index_put with one boolean mask over dims [first, first + m)) when v is the same
// for every masked element (v broadcasts over the dims after the mask): SELECT_V2. A v with one
// row per masked element has a size that depends on the data: refused.
void masked_put(ImportContext& ctx, Tensor* x, int64_t first, Tensor* mask, Tensor* values, bool accumulate) {
  Tensor* out = ctx.output();
  int64_t m = mask->rank(), after = x->rank() - first - m;
  if (after < 0 || !std::equal(mask->shape.begin(), mask->shape.end(), x->shape.begin() + first))
    ctx.fail("the boolean mask's shape must match the dims it indexes");
  if (numel(values->shape) == 1 && values->rank() > 0) values = ctx.reshape(values, {}, "value");
  if (values->rank() > after)
    ctx.fail(
        "x[mask] = v with one value per masked element (a size that depends on the data) is not supported; "
        "use torch.where");
  std::vector<int64_t> aligned(static_cast<size_t>(first), 1);
  aligned.insert(aligned.end(), mask->shape.begin(), mask->shape.end());
  aligned.resize(static_cast<size_t>(x->rank()), 1);
  Tensor* cond = ctx.reshape(mask, aligned, "mask_aligned");
  if (!accumulate) return (void)ctx.emit("SELECT_V2", {cond, values, x}, {out});
  // x + where(mask, v, 0)
  Tensor* added = ctx.temp(x->shape, x->dtype, "masked_values");
  ctx.emit("SELECT_V2", {cond, values, ctx.constant(at::zeros({}, dtype_to_torch(x->dtype)), "zero")}, {added});
  ctx.emit("ADD", {x, added}, {out});
}

// index_put(x, indices, v, accumulate): x with the elements the indices pick replaced by v
// (added to, with accumulate). onert 0.1.0 has no SCATTER_ND, so the indexed dims are flattened
// to F positions, x to [P, F, Q] and v (broadcast to what x[indices] would be) to [P, K, Q], and
// the K flat positions compared with every f (EQUAL: a [K, F] one-hot). Without accumulate each f
// reads from concat(x, v) at position f, or F + k for the last k that writes it (REDUCE_MAX over
// k of f + hit * (F + k - f)): one GATHER, exact for every dtype, the last write winning for
// repeated indices as in PyTorch's CPU kernel. With accumulate, x + sum_k one_hot[k] * v[k].
void index_put(ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* values = ctx.tensor(2, "values");
  bool accumulate = ctx.bool_arg(3, "accumulate", false);
  auto [first, indices] = index_tensors(ctx);
  if (numel(x->shape) < 0 || numel(values->shape) < 0) ctx.fail("index_put needs static shapes");
  if (indices.size() == 1 && indices[0]->dtype == DType::kBool)
    return masked_put(ctx, x, first, indices[0], values, accumulate);
  for (Tensor* index : indices)
    if (index->dtype == DType::kBool) ctx.fail("index_put with a boolean mask among other indices is not supported");
  if (accumulate && x->dtype == DType::kBool) ctx.fail("index_put with accumulate=True on a bool tensor");
  Tensor* out = ctx.output();
  int64_t k_dims = static_cast<int64_t>(indices.size());
  Tensor* positions = flat_positions(ctx, x, first, indices);
  int64_t p = dims_product(ctx, x, 0, first), f = dims_product(ctx, x, first, first + k_dims);
  int64_t q = dims_product(ctx, x, first + k_dims, x->rank()), k = numel(positions->shape);
  // v as x[indices] is shaped: [pre..., index shape..., post...], in x's dtype.
  std::vector<int64_t> picked(x->shape.begin(), x->shape.begin() + first);
  picked.insert(picked.end(), positions->shape.begin(), positions->shape.end());
  picked.insert(picked.end(), x->shape.begin() + first + k_dims, x->shape.end());
  Tensor* v = values;
  if (v->dtype != x->dtype) {
    Tensor* cast = ctx.temp(v->shape, x->dtype, "values_cast");
    ctx.emit("CAST", {v}, {cast});
    v = cast;
  }
  if (v->shape != picked) {
    Tensor* broadcast = ctx.temp(picked, x->dtype, "values_broadcast");
    ctx.emit("BROADCAST_TO", {v}, {broadcast})->attrs["shape"] = picked;
    v = broadcast;
  }
  Tensor* x3 = ctx.reshape(x, {p, f, q}, "flat");
  Tensor* v3 = ctx.reshape(v, {p, k, q}, "values_flat");
  Tensor* column = ctx.reshape(positions, {k, 1}, "positions_column");
  Tensor* hit = ctx.temp({k, f}, DType::kBool, "one_hot");
  ctx.emit("EQUAL", {column, ctx.constant(at::arange(f, at::kInt).reshape({1, f}), "flat_range")}, {hit});
  Tensor* result3 = ctx.temp({p, f, q}, x->dtype, "result_flat");
  if (accumulate) {
    Tensor* one_hot = ctx.temp({k, f}, x->dtype, "one_hot_values");
    ctx.emit("CAST", {hit}, {one_hot});
    Tensor* terms = ctx.temp({p, k, f, q}, x->dtype, "terms");
    ctx.emit("MUL", {ctx.reshape(one_hot, {1, k, f, 1}, "one_hot_4d"), ctx.reshape(v3, {p, k, 1, q}, "values_4d")},
             {terms});
    Tensor* total = ctx.temp({p, 1, f, q}, x->dtype, "added");
    ctx.emit("SUM", {terms}, {total})->attrs = {{"axes", std::vector<int64_t>{1}}, {"keep_dims", int64_t{1}}};
    ctx.emit("ADD", {x3, ctx.reshape(total, {p, f, q}, "added_flat")}, {result3});
  } else {
    // In float32 (exact below 2^24): onert 0.1.0 has no int32 REDUCE_MAX.
    if (f + k > (int64_t{1} << 24)) ctx.fail("index_put into more than 2^24 positions is not supported");
    Tensor* hit_f = ctx.temp({k, f}, DType::kFloat32, "one_hot_f32");
    ctx.emit("CAST", {hit}, {hit_f});
    at::Tensor ks = at::arange(k, at::kFloat).reshape({k, 1}), fs = at::arange(f, at::kFloat).reshape({1, f});
    Tensor* jump = ctx.temp({k, f}, DType::kFloat32, "jump");
    ctx.emit("MUL", {hit_f, ctx.constant((ks - fs + static_cast<float>(f)).contiguous(), "jump_table")}, {jump});
    Tensor* candidates = ctx.temp({k, f}, DType::kFloat32, "candidates");
    ctx.emit("ADD", {jump, ctx.constant(fs, "own_position")}, {candidates});
    Tensor* highest = ctx.temp({1, f}, DType::kFloat32, "source_f32");
    ctx.emit("REDUCE_MAX", {candidates}, {highest})->attrs = {{"axes", std::vector<int64_t>{0}},
                                                              {"keep_dims", int64_t{1}}};
    Tensor* source = ctx.temp({1, f}, DType::kInt32, "source");
    ctx.emit("CAST", {highest}, {source});
    Tensor* joined = ctx.temp({p, f + k, q}, x->dtype, "with_values");
    ctx.emit("CONCATENATION", {x3, v3}, {joined})->attrs["axis"] = int64_t{1};
    ctx.emit("GATHER", {joined, ctx.reshape(source, {f}, "source_flat")}, {result3})->attrs = {
        {"axis", int64_t{1}}, {"batch_dims", int64_t{0}}};
  }
  ctx.reshape(result3, x->shape, "", out);
}
IMPORT_OP({"aten.index_put.default"}, [](ImportContext& ctx) { index_put(ctx); });

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
           "aten.lift_fresh_copy.default", "aten.identity.default", "aten.alias_copy.default"},
          [](ImportContext& ctx) { ctx.alias(ctx.tensor(0, "input")); });
IMPORT_OP({"aten.dropout.default", "aten.feature_dropout.default", "aten.alpha_dropout.default",
           "aten.native_dropout.default"},
          [](ImportContext& ctx) {
            if (ctx.bool_arg(2, "train", false))
              ctx.fail("dropout in training mode; call model.eval() before exporting");
            ctx.alias(ctx.tensor(0, "input"));
          });

// repeat(x, reps): TILE; more reps than dims add leading dims of size 1 first (a RESHAPE).
IMPORT_OP({"aten.repeat.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> reps = ctx.ints_arg(1, "repeats");
  if (static_cast<int64_t>(reps.size()) < x->rank()) ctx.fail("repeat needs at least one count per dimension");
  if (static_cast<int64_t>(reps.size()) > x->rank()) {
    std::vector<int64_t> shape(reps.size() - static_cast<size_t>(x->rank()), 1);
    shape.insert(shape.end(), x->shape.begin(), x->shape.end());
    x = ctx.reshape(x, shape, "with_new_dims");
  }
  Op* op = ctx.emit("TILE", {x}, {ctx.output()});
  op->attrs["multiples"] = reps;
});

// --- tensors made from a shape: full_like, new_zeros, fill, copy -----------------------------

// The node's output filled with `value` (its shape and dtype from the FX metadata), a constant.
void filled(ImportContext& ctx, double value) {
  Tensor* out = ctx.output();
  if (numel(out->shape) < 0) ctx.fail("a filled tensor with a dynamic shape is not supported");
  ctx.alias(ctx.constant(at::full(out->shape, value, at::TensorOptions().dtype(dtype_to_torch(out->dtype))), "filled"));
}
IMPORT_OP({"aten.full_like.default", "aten.new_full.default", "aten.fill.Scalar"}, [](ImportContext& ctx) {
  const std::string& target = ctx.node().target;
  if (target == "aten.fill.Scalar") return filled(ctx, ctx.float_arg(1, "value"));
  filled(ctx, ctx.float_arg(target == "aten.new_full.default" ? 2 : 1, "fill_value"));
});
// empty_like's contents are unspecified: zeros, as for zeros_like.
IMPORT_OP({"aten.zeros_like.default", "aten.empty_like.default", "aten.new_zeros.default", "aten.new_empty.default",
           "aten.zero.default"},
          [](ImportContext& ctx) { filled(ctx, 0.0); });
IMPORT_OP({"aten.ones_like.default", "aten.new_ones.default"}, [](ImportContext& ctx) { filled(ctx, 1.0); });

// `value` broadcast to the node's output shape and cast to its dtype.
void broadcast_into_output(ImportContext& ctx, Tensor* value) {
  Tensor* out = ctx.output();
  Tensor* typed = value;
  if (value->dtype != out->dtype) {
    typed = out->shape == value->shape ? out : ctx.temp(value->shape, out->dtype, "cast");
    ctx.emit("CAST", {value}, {typed});
  }
  if (typed == out) return;
  if (typed->shape == out->shape) return ctx.alias(typed);
  ctx.emit("BROADCAST_TO", {typed}, {out})->attrs["shape"] = out->shape;
}
// fill(x, value_tensor) and copy(x, src) (fill_ / copy_ when nothing reads x again): x's shape
// and dtype with the other tensor's values.
IMPORT_OP({"aten.fill.Tensor"}, [](ImportContext& ctx) { broadcast_into_output(ctx, ctx.tensor(1, "value")); });
IMPORT_OP({"aten.copy.default"}, [](ImportContext& ctx) { broadcast_into_output(ctx, ctx.tensor(1, "src")); });

// --- data movement along one dim: slice_scatter, roll, diff, cumsum --------------------------

// x[dim][start:end] of a static dim, written to a new tensor (x itself when it is the whole dim).
Tensor* slice_of(ImportContext& ctx, Tensor* x, int64_t dim, int64_t start, int64_t end, const char* suffix) {
  if (start == 0 && end == x->shape[dim]) return x;
  std::vector<int64_t> shape = x->shape;
  shape[dim] = end - start;
  Tensor* out = ctx.temp(shape, x->dtype, suffix);
  out->quant = x->quant;
  slice_along(ctx, x, dim, start, end, 1, out);
  return out;
}

// CONCATENATION of the non-empty `pieces` along `dim` into `out` (an alias for a single piece).
void concat_into(ImportContext& ctx, std::vector<Tensor*> pieces, int64_t dim, Tensor* out) {
  pieces.erase(std::remove_if(pieces.begin(), pieces.end(), [&](Tensor* t) { return t->shape[dim] == 0; }),
               pieces.end());
  if (pieces.size() == 1) return ctx.alias(pieces[0]);
  ctx.emit("CONCATENATION", pieces, {out})->attrs["axis"] = dim;
}

// A static dim of x, wrapped; fails for dynamic sizes (the pieces' sizes must be known).
int64_t static_dim(ImportContext& ctx, Tensor* x, int64_t dim, const char* what) {
  dim = wrap_dim(ctx, dim, x->rank());
  if (x->shape[dim] < 0) ctx.fail(fmt::format("{} along a dynamic dimension is not supported", what));
  return dim;
}

// flip(x, dims): one REVERSE_V2 per dim of size > 1 (onert 0.1.0 reverses one axis per op, and
// float32 only: other dtypes are a GATHER of the reversed positions, which needs a static dim).
IMPORT_OP({"aten.flip.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> dims;
  for (int64_t dim : ctx.ints_arg(1, "dims")) {
    dim = wrap_dim(ctx, dim, x->rank());
    if (std::find(dims.begin(), dims.end(), dim) != dims.end()) ctx.fail(fmt::format("dim {} appears twice", dim));
    if (x->shape[dim] != 1) dims.push_back(dim);
  }
  if (dims.empty()) return ctx.alias(x);
  Tensor* out = ctx.output();
  Tensor* current = x;
  for (size_t i = 0; i < dims.size(); ++i) {
    Tensor* next = i + 1 == dims.size() ? out : ctx.temp(x->shape, x->dtype, "flipped");
    next->quant = x->quant;
    if (x->dtype == DType::kFloat32) {
      ctx.emit("REVERSE_V2", {current}, {next})->attrs["axis"] = std::vector<int64_t>{dims[i]};
    } else {
      int64_t n = x->shape[static_dim(ctx, x, dims[i], "flip of a non-float tensor")];
      ctx.emit("GATHER", {current, ctx.constant(at::arange(n, at::kInt).flip(0).contiguous(), "reversed")}, {next})
          ->attrs = {{"axis", dims[i]}, {"batch_dims", int64_t{0}}};
    }
    current = next;
  }
});

// slice_scatter(x, src, dim, start, end, 1): x's slices before and after with src between.
IMPORT_OP({"aten.slice_scatter.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  Tensor* src = ctx.tensor(1, "src");
  int64_t dim = static_dim(ctx, x, ctx.int_arg(2, "dim", 0), "slice_scatter");
  int64_t n = x->shape[dim];
  int64_t start = ctx.int_arg(3, "start", 0), end = ctx.int_arg(4, "end", n);
  if (ctx.int_arg(5, "step", 1) != 1) ctx.fail("slice_scatter with a step other than 1 is not supported");
  start = std::clamp<int64_t>(start < 0 ? start + n : start, 0, n);
  end = std::clamp<int64_t>(end < 0 ? end + n : end, start, n);
  Tensor* out = ctx.output();
  concat_into(ctx, {slice_of(ctx, x, dim, 0, start, "before"), src, slice_of(ctx, x, dim, end, n, "after")}, dim, out);
});

// roll(x, shifts, dims): per dim, the last `shift` elements move to the front (two slices, one
// concatenation); without dims, x is rolled flattened.
IMPORT_OP({"aten.roll.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  std::vector<int64_t> shifts = ctx.ints_arg(1, "shifts");
  std::vector<int64_t> dims = ctx.ints_arg(2, "dims", std::vector<int64_t>{});
  Tensor* out = ctx.output();
  if (numel(x->shape) < 0) ctx.fail("roll of a tensor with a dynamic shape is not supported");
  Tensor* current = x;
  if (dims.empty()) {
    if (shifts.size() != 1) ctx.fail("roll without dims takes one shift");
    current = ctx.reshape(x, {numel(x->shape)}, "flat");
    dims = {0};
  }
  if (shifts.size() != dims.size()) ctx.fail("roll needs one shift per dim");
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t dim = static_dim(ctx, current, dims[i], "roll");
    int64_t n = current->shape[dim];
    int64_t shift = n ? ((shifts[i] % n) + n) % n : 0;
    if (shift == 0) continue;
    bool last = i + 1 == dims.size() && current->shape == out->shape;
    Tensor* next = last ? out : ctx.temp(current->shape, current->dtype, "rolled");
    next->quant = current->quant;
    concat_into(ctx,
                {slice_of(ctx, current, dim, n - shift, n, "tail"), slice_of(ctx, current, dim, 0, n - shift, "head")},
                dim, next);
    current = next;
  }
  if (current == out) return;
  if (current->shape != out->shape) return (void)ctx.reshape(current, out->shape, "", out);
  ctx.alias(current);
});

// diff(x, n, dim, prepend, append): x[1:] - x[:-1] along dim, n times, after concatenating
// prepend / append; bool tensors give x[1:] != x[:-1], as in PyTorch.
IMPORT_OP({"aten.diff.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t times = ctx.int_arg(1, "n", 1);
  int64_t dim = static_dim(ctx, x, ctx.int_arg(2, "dim", -1), "diff");
  Tensor* prepend = ctx.tensor_or_null(3, "prepend");
  Tensor* append = ctx.tensor_or_null(4, "append");
  Tensor* out = ctx.output();
  Tensor* current = x;
  if (prepend || append) {
    std::vector<Tensor*> pieces;
    int64_t total = 0;
    for (Tensor* t : {prepend, x, append})
      if (t) {
        if (t->rank() != x->rank() || t->shape[dim] < 0)
          ctx.fail("diff's prepend / append must match the input's rank");
        pieces.push_back(t);
        total += t->shape[dim];
      }
    std::vector<int64_t> shape = x->shape;
    shape[dim] = total;
    current = ctx.temp(shape, x->dtype, "extended");
    concat_into(ctx, pieces, dim, current);
  }
  for (int64_t k = 0; k < times; ++k) {
    int64_t n = current->shape[dim];
    if (n <= 0) break;
    std::vector<int64_t> shape = current->shape;
    shape[dim] = n - 1;
    Tensor* next = k + 1 == times ? out : ctx.temp(shape, current->dtype, "diff");
    Tensor* later = slice_of(ctx, current, dim, 1, n, "later");
    Tensor* earlier = slice_of(ctx, current, dim, 0, n - 1, "earlier");
    ctx.emit(current->dtype == DType::kBool ? "NOT_EQUAL" : "SUB", {later, earlier}, {next});
    current = next;
  }
  if (current != out) ctx.alias(current);
});

// cumsum(x, dim): onert has no CUMSUM, so the prefix sums are built in log2(n) steps (Hillis and
// Steele): x += x shifted by 1, 2, 4, ... along dim (SLICE, then PAD with zeros in front). Any
// dtype ADD runs in; the input is first cast to the output's (cumsum of int32 / bool is int64).
IMPORT_OP({"aten.cumsum.default"}, [](ImportContext& ctx) {
  Tensor* x = ctx.tensor(0, "input");
  int64_t dim = static_dim(ctx, x, ctx.int_arg(1, "dim"), "cumsum");
  Tensor* out = ctx.output();
  Tensor* current = x;
  if (x->dtype != out->dtype) {
    current = ctx.temp(x->shape, out->dtype, "cast");
    ctx.emit("CAST", {x}, {current});
  }
  int64_t n = x->shape[dim];
  if (n <= 1) return ctx.alias(current);
  for (int64_t shift = 1; shift < n; shift *= 2) {
    Tensor* head = slice_of(ctx, current, dim, 0, n - shift, "head");
    Tensor* shifted = ctx.temp(current->shape, current->dtype, "shifted");
    std::vector<int64_t> paddings(2 * current->rank(), 0);
    paddings[2 * dim] = shift;
    ctx.emit("PAD", {head}, {shifted})->attrs["paddings"] = paddings;
    Tensor* next = shift * 2 >= n ? out : ctx.temp(current->shape, current->dtype, "prefix");
    ctx.emit("ADD", {current, shifted}, {next});
    current = next;
  }
});

}  // namespace
}  // namespace torch_circle::exporter
