#include "exporter/serialize/op_writers.h"

#include <fmt/format.h>

#include <map>

namespace torch_circle::exporter {
namespace {

using Builder = flatbuffers::FlatBufferBuilder;

circle::ActivationFunctionType activation(const Op& op) {
  if (!op.has("fused_activation")) return circle::ActivationFunctionType_NONE;
  const std::string& name = op.s("fused_activation");
  if (name == "RELU") return circle::ActivationFunctionType_RELU;
  if (name == "RELU6") return circle::ActivationFunctionType_RELU6;
  if (name == "RELU_N1_TO_1") return circle::ActivationFunctionType_RELU_N1_TO_1;
  throw ExportError(fmt::format("{} ({}): unknown fused activation {}", op.type, op.origin, name));
}

circle::Padding padding(const Op& op) {
  const std::string& name = op.s("padding");
  if (name == "SAME") return circle::Padding_SAME;
  if (name == "VALID") return circle::Padding_VALID;
  throw ExportError(fmt::format("{} ({}): padding must be SAME or VALID, not {}", op.type, op.origin, name));
}

int32_t i32(int64_t v) { return static_cast<int32_t>(v); }

int32_t stride_h(const Op& op) { return i32(op.ints("stride")[0]); }
int32_t stride_w(const Op& op) { return i32(op.ints("stride")[1]); }
int32_t dilation_h(const Op& op) { return i32(op.ints("dilation")[0]); }
int32_t dilation_w(const Op& op) { return i32(op.ints("dilation")[1]); }

std::vector<int32_t> int32s(const std::vector<int64_t>& values) {
  std::vector<int32_t> out;
  for (int64_t v : values) out.push_back(i32(v));
  return out;
}

circle::TensorType tensor_type(const Tensor* t) { return static_cast<circle::TensorType>(t->dtype); }

flatbuffers::Offset<circle::Pool2DOptions> pool_options(Builder& b, const Op& op) {
  auto s = op.ints("stride"), k = op.ints("kernel");
  return circle::CreatePool2DOptions(b, padding(op), i32(s[1]), i32(s[0]), i32(k[1]), i32(k[0]), activation(op));
}

flatbuffers::Offset<circle::ReducerOptions> reducer_options(Builder& b, const Op& op) {
  return circle::CreateReducerOptions(b, op.i("keep_dims") != 0);
}

template <typename T>
flatbuffers::Offset<void> to_union(flatbuffers::Offset<T> table) {
  return table.Union();
}
flatbuffers::Offset<void> to_union(std::nullptr_t) { return {}; }

}  // namespace

// One writer per row of the op table: the builtin code and the row's options expression.
const OpWriter* find_op_writer(const std::string& type) {
  static const std::map<std::string, OpWriter> writers{
#define CIRCLE_OP(NAME, LAYOUT, QUANT, FLAGS, MIN_INPUTS, MAX_INPUTS, OPERANDS, OPTIONS, ...)    \
  {#NAME, OpWriter{circle::BuiltinOperator_##NAME, [](Builder& b, const Op& op) {                \
                     (void)b, (void)op;                                                          \
                     return OptionsRef{circle::BuiltinOptions_##OPTIONS, to_union(__VA_ARGS__)}; \
                   }}},
#include "exporter/ir/circle_ops.lst"
  };
  auto it = writers.find(type);
  return it == writers.end() ? nullptr : &it->second;
}

}  // namespace torch_circle::exporter
