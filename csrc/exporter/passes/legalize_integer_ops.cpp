// onert 0.1.0 lacks integer kernels for some ops that models use when they build position ids,
// lengths and masks from their inputs (Wav2Vec2's feature mask uses all of these):
// - GATHER and BROADCAST_TO of int64 or bool, FLOOR_DIV of int64 (LiteRT lacks that one too)
//   run on int32: CAST in, the op, CAST back. That is exact for every int64 that fits in int32
//   (positions, counts, masks; PyTorch's int64 default dtype rarely holds more) and for bool.
// - SLICE and PAD of int32, int64 or bool have no kernel at all: a SLICE becomes one GATHER of
//   the kept positions per sliced dim, a PAD a CONCATENATION with zeros per padded dim, and a
//   TILE of size-1 dims a BROADCAST_TO.
// - SUM (of int64 or bool: a count), REDUCE_MAX / REDUCE_MIN and ARG_MAX of int64 run on int32 too
//   (same caveat; SUM and ARG_MAX in .tflite files too, and ABS of int64 as below: LiteRT fails
//   on them).
// - MAXIMUM, MINIMUM, SELECT_V2 and ABS have no kernel for int32 or int64: they become
//   comparisons and products of 0 / 1 (max(x, y) = x·(x >= y) + y·(x < y)), exact for every value.
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {
namespace {

struct NarrowedOp {
  const char* type;
  size_t data_inputs;  // the leading inputs that carry the op's dtype (the rest are indices, shapes)
  bool bool_too;
  bool tflite_too;  // LiteRT lacks the int64 kernel as well
};
constexpr NarrowedOp kNarrowed[] = {{"GATHER", 1, true, false},       {"FLOOR_DIV", 2, false, true},
                                    {"BROADCAST_TO", 1, true, false}, {"SUM", 1, true, true},
                                    {"REDUCE_MAX", 1, false, false},  {"REDUCE_MIN", 1, false, false},
                                    {"ARG_MAX", 1, false, true}};

Tensor* as_int32(Graph& graph, Op* op, Tensor* t) {
  if (t->is_constant()) return graph.add_constant(t->name + "_i32", t->data.to(at::kInt));
  Tensor* t32 = graph.add_tensor(t->name + "_i32", t->shape, DType::kInt32);
  graph.insert_before(op, "CAST", {t}, {t32})->origin = op->origin;
  return t32;
}

// onert 0.1.0's SLICE has no integer or bool kernel ("Slice: unsupported data type"): such a
// SLICE becomes one GATHER of the kept positions per sliced dim (narrowed below when int64 / bool).
void slice_as_gathers(Graph& graph, Op* op) {
  Tensor* current = op->inputs[0];
  Tensor* out = op->outputs[0];
  std::vector<int64_t> begin = op->ints("begin"), size = op->ints("size");
  std::vector<int64_t> dims;
  for (size_t d = 0; d < begin.size(); ++d)
    if (begin[d] != 0 || size[d] != current->shape[d]) dims.push_back(static_cast<int64_t>(d));
  graph.remove_op(op);
  if (dims.empty()) {
    graph.insert_before(op, "RESHAPE", {current}, {out})->attrs["shape"] = out->shape;
    return;
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = dims[i];
    std::vector<int64_t> shape = current->shape;
    shape[d] = size[d];
    Tensor* next = i + 1 == dims.size() ? out : graph.add_tensor(out->name + "_part", shape, out->dtype);
    Tensor* positions =
        graph.add_constant(out->name + "_positions", at::arange(begin[d], begin[d] + size[d], at::kInt));
    Op* gather = graph.insert_before(op, "GATHER", {current, positions}, {next});
    gather->attrs = {{"axis", d}, {"batch_dims", int64_t{0}}};
    gather->origin = op->origin;
    current = next;
  }
}

// Nor has its PAD: an integer or bool PAD (zeros) becomes a CONCATENATION with zeros per padded dim.
void pad_as_concats(Graph& graph, Op* op) {
  Tensor* current = op->inputs[0];
  Tensor* out = op->outputs[0];
  std::vector<int64_t> paddings = op->ints("paddings");
  graph.remove_op(op);
  std::vector<int64_t> dims;
  for (size_t d = 0; d < paddings.size() / 2; ++d)
    if (paddings[2 * d] || paddings[2 * d + 1]) dims.push_back(static_cast<int64_t>(d));
  if (dims.empty()) {
    graph.insert_before(op, "RESHAPE", {current}, {out})->attrs["shape"] = out->shape;
    return;
  }
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = dims[i];
    std::vector<Tensor*> pieces;
    for (int64_t amount : {paddings[2 * d], int64_t{-1}, paddings[2 * d + 1]}) {
      if (amount < 0) {
        pieces.push_back(current);
      } else if (amount > 0) {
        std::vector<int64_t> zeros_shape = current->shape;
        zeros_shape[d] = amount;
        pieces.push_back(graph.add_constant(out->name + "_zeros", at::zeros(zeros_shape, dtype_to_torch(out->dtype))));
      }
    }
    std::vector<int64_t> shape = current->shape;
    shape[d] += paddings[2 * d] + paddings[2 * d + 1];
    Tensor* next = i + 1 == dims.size() ? out : graph.add_tensor(out->name + "_part", shape, out->dtype);
    Op* concat = graph.insert_before(op, "CONCATENATION", pieces, {next});
    concat->attrs["axis"] = d;
    concat->origin = op->origin;
    current = next;
  }
}

// Nor TILE: an integer TILE that repeats only size-1 dims (x.unsqueeze(-1).repeat(1, 1, n), how
// Wav2Vec2 widens its mask) is a BROADCAST_TO, which runs on int32.
void tile_as_broadcast(Op* op) {
  const Tensor* x = op->inputs[0];
  std::vector<int64_t> multiples = op->ints("multiples");
  for (size_t d = 0; d < multiples.size(); ++d)
    if (multiples[d] != 1 && x->shape[d] != 1) return;
  op->type = "BROADCAST_TO";
  op->attrs = {{"shape", op->outputs[0]->shape}};
}

// An integer MAXIMUM / MINIMUM / SELECT_V2 / ABS as comparisons and products of 0 / 1 in the
// op's own dtype: ADD, MUL, CAST and the comparisons run on int32 and int64 in onert.
void select_by_products(Graph& graph, Op* op) {
  Tensor* out = op->outputs[0];
  const std::string type = op->type;
  std::vector<Tensor*> in = op->inputs;
  graph.remove_op(op);
  // A new tensor of the result's shape (the comparisons broadcast as the op did), or of `like`'s.
  auto emit = [&](const char* op_type, std::vector<Tensor*> inputs, DType dtype, const Tensor* like = nullptr) {
    Tensor* t = graph.add_tensor(out->name + "_" + op_type, (like ? like : out)->shape, dtype);
    graph.insert_before(op, op_type, std::move(inputs), {t})->origin = op->origin;
    return t;
  };
  auto as_number = [&](Tensor* flag) { return emit("CAST", {flag}, out->dtype, flag); };
  auto finish = [&](const char* op_type, std::vector<Tensor*> inputs) {
    graph.insert_before(op, op_type, std::move(inputs), {out})->origin = op->origin;
  };
  auto picked = [&](Tensor* value, Tensor* flag) { return emit("MUL", {value, as_number(flag)}, out->dtype); };
  if (type == "MAXIMUM" || type == "MINIMUM") {
    bool max = type == "MAXIMUM";
    Tensor* x_wins = emit(max ? "GREATER_EQUAL" : "LESS_EQUAL", {in[0], in[1]}, DType::kBool);
    Tensor* y_wins = emit(max ? "LESS" : "GREATER", {in[0], in[1]}, DType::kBool);
    finish("ADD", {picked(in[0], x_wins), picked(in[1], y_wins)});
  } else if (type == "SELECT_V2") {
    Tensor* otherwise = emit("LOGICAL_NOT", {in[0]}, DType::kBool, in[0]);
    finish("ADD", {picked(in[1], in[0]), picked(in[2], otherwise)});
  } else {  // ABS: x · (1 - 2·(x < 0))
    at::Tensor zero = at::zeros({}, dtype_to_torch(out->dtype));
    Tensor* negative = as_number(emit("LESS", {in[0], graph.add_constant(out->name + "_zero", zero)}, DType::kBool));
    Tensor* twice = emit("MUL", {negative, graph.add_constant(out->name + "_minus_two", zero - 2)}, out->dtype);
    Tensor* sign = emit("ADD", {twice, graph.add_constant(out->name + "_one", zero + 1)}, out->dtype);
    finish("MUL", {in[0], sign});
  }
}

bool is_plain_integer(DType dtype) { return dtype == DType::kInt64 || dtype == DType::kInt32; }

}  // namespace

void legalize_integer_ops(Graph& graph) {
  bool circle = graph.format == FileFormat::kCircle;
  for (Op* op : graph.live_ops()) {
    if (!circle) break;
    DType dtype = op->inputs.empty() ? DType::kFloat32 : op->inputs[0]->dtype;
    bool integer = dtype == DType::kInt64 || dtype == DType::kInt32 || dtype == DType::kBool;
    if (!integer || numel(op->inputs[0]->shape) < 0) continue;
    if (op->type == "SLICE") slice_as_gathers(graph, op);
    if (op->type == "PAD") pad_as_concats(graph, op);
    if (op->type == "TILE") tile_as_broadcast(op);
  }
  for (Op* op : graph.live_ops()) {
    const Tensor* out = op->outputs.empty() ? nullptr : op->outputs[0];
    if (!out || out->is_quantized() || !is_plain_integer(out->dtype)) continue;
    bool selects = op->type == "MAXIMUM" || op->type == "MINIMUM" || op->type == "SELECT_V2" || op->type == "ABS";
    bool litert_lacks = op->type == "ABS" && out->dtype == DType::kInt64;  // LiteRT: "INT64 is unsupported by op Abs"
    if (selects && (circle || litert_lacks)) select_by_products(graph, op);
  }
  for (Op* op : graph.live_ops()) {
    auto row = std::find_if(std::begin(kNarrowed), std::end(kNarrowed),
                            [&](const NarrowedOp& n) { return op->type == n.type; });
    if (row == std::end(kNarrowed) || !(circle || row->tflite_too)) continue;
    DType dtype = op->inputs[0]->dtype;
    if (dtype != DType::kInt64 && !(row->bool_too && dtype == DType::kBool)) continue;
    for (size_t i = 0; i < row->data_inputs && i < op->inputs.size(); ++i)
      graph.set_input(op, i, as_int32(graph, op, op->inputs[i]));
    Tensor* out = op->outputs[0];
    Tensor* out32 = graph.add_tensor(out->name + "_i32", out->shape, DType::kInt32);
    op->outputs[0] = out32;
    out32->producer = op;
    out->producer = nullptr;
    graph.insert_after(op, "CAST", {out32}, {out})->origin = op->origin;
  }
}

}  // namespace torch_circle::exporter
