// PyTorch promotes mixed operand dtypes implicitly (float32 tensor + int64 constant is float32,
// int32 / int32 is float32, where(c, int32, float32) is float32); Circle's ops do not: onert
// refuses ADD(FLOAT32, INT64) and, worse, computes POW(FLOAT32, INT32) as inf / NaN. This pass
// writes the promotion out: every operand of an elementwise op whose dtype is not the one the
// op computes in gets a CAST in front (folded away for constants by fold_constants).
//
// The dtype an op computes in is its output's, which the importer took from PyTorch's own
// metadata, for arithmetic, select and concatenation. Comparisons output bool, so their
// operands are promoted with PyTorch's rule: the higher category (bool < integer < float) wins;
// within a category a tensor with dims outranks a rank-0 one (a scalar), then the wider dtype.
#include "exporter/passes/passes.h"

#include <set>

namespace torch_circle::exporter {
namespace {

const std::set<std::string> kArithmetic{
    "ADD", "SUB", "MUL", "DIV", "POW", "MAXIMUM", "MINIMUM", "FLOOR_DIV", "SQUARED_DIFFERENCE", "CONCATENATION"};
const std::set<std::string> kComparisons{"EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL"};
// Float math on an integer input (torch.exp(int_tensor) is float).
const std::set<std::string> kFloatMath{"EXP", "LOG", "SQRT", "RSQRT", "SIN", "COS", "LOGISTIC", "TANH"};
const std::set<std::string> kLogical{"LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT"};

int category(DType dtype) {
  if (dtype == DType::kBool) return 0;
  return is_integer(dtype) ? 1 : 2;
}

int width(DType dtype) {
  switch (dtype) {
    case DType::kBool: return 1;
    case DType::kUInt8:
    case DType::kInt8: return 8;
    case DType::kInt16:
    case DType::kFloat16: return 16;
    case DType::kInt32:
    case DType::kFloat32: return 32;
    case DType::kInt64: return 64;
  }
  return 0;
}

DType promote(const Tensor* a, const Tensor* b) {
  if (category(a->dtype) != category(b->dtype)) return category(a->dtype) > category(b->dtype) ? a->dtype : b->dtype;
  bool a_dims = a->rank() > 0, b_dims = b->rank() > 0;
  if (a_dims != b_dims) return a_dims ? a->dtype : b->dtype;
  return width(a->dtype) >= width(b->dtype) ? a->dtype : b->dtype;
}

void cast_input(Graph& graph, Op* op, size_t slot, DType dtype) {
  Tensor* in = op->inputs[slot];
  if (!in || in->dtype == dtype) return;
  Tensor* cast = graph.add_tensor(in->name + "_as_" + dtype_name(dtype), in->shape, dtype);
  graph.insert_before(op, "CAST", {in}, {cast})->origin = op->origin;
  graph.set_input(op, slot, cast);
}

}  // namespace

void promote_operand_types(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->outputs.empty()) continue;
    bool quantized = op->outputs[0]->is_quantized();
    for (const Tensor* in : op->inputs) quantized |= in && in->is_quantized();
    if (quantized) continue;  // integer ops with quantization parameters compute in their own domain
    const std::string& t = op->type;
    DType out = op->outputs[0]->dtype;
    if (kArithmetic.count(t) || kFloatMath.count(t)) {
      for (size_t i = 0; i < op->inputs.size(); ++i) cast_input(graph, op, i, out);
    } else if (kComparisons.count(t) && op->inputs.size() == 2) {
      DType common = promote(op->inputs[0], op->inputs[1]);
      cast_input(graph, op, 0, common);
      cast_input(graph, op, 1, common);
    } else if (t == "SELECT_V2") {
      cast_input(graph, op, 0, DType::kBool);
      cast_input(graph, op, 1, out);
      cast_input(graph, op, 2, out);
    } else if (kLogical.count(t)) {
      for (size_t i = 0; i < op->inputs.size(); ++i) cast_input(graph, op, i, DType::kBool);
    }
  }
}

// The ops above must read operands of one dtype when written: a runtime that loads a mixed op
// may compute it wrongly (onert's POW(FLOAT32, INT32) returns inf / NaN), so it is refused.
std::string mixed_operand_types(const Op& op) {
  const std::string& t = op.type;
  size_t first = t == "SELECT_V2" ? 1 : 0;
  if (!kArithmetic.count(t) && !kComparisons.count(t) && t != "SELECT_V2" && !kLogical.count(t)) return "";
  const Tensor* reference = nullptr;
  for (size_t i = first; i < op.inputs.size(); ++i) {
    const Tensor* in = op.inputs[i];
    if (!in) continue;
    if (!reference) {
      reference = in;
    } else if (in->dtype != reference->dtype) {
      return std::string(dtype_name(reference->dtype)) + " and " + dtype_name(in->dtype);
    }
  }
  return "";
}

}  // namespace torch_circle::exporter
