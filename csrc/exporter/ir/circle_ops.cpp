#include "exporter/ir/circle_ops.h"

#include <circle_schema_generated.h>

#include <unordered_map>

namespace torch_circle::exporter {

const std::vector<OpInfo>& op_table() {
  static const std::vector<OpInfo> table{
#define CIRCLE_OP(NAME, LAYOUT, QUANT, FLAGS, MIN_INPUTS, MAX_INPUTS, OPERANDS, OPTIONS, ...) \
  {#NAME, circle::BuiltinOperator_##NAME, OpLayout::LAYOUT, QuantRule::QUANT, FLAGS, MIN_INPUTS, MAX_INPUTS, OPERANDS},
#define IMPORTER_OP(TYPE, LAYOUT, QUANT, FLAGS, MIN_INPUTS, MAX_INPUTS) \
  {TYPE, kNotABuiltin, OpLayout::LAYOUT, QuantRule::QUANT, FLAGS, MIN_INPUTS, MAX_INPUTS, ""},
#include "exporter/ir/circle_ops.lst"
  };
  return table;
}

const OpInfo* find_op(std::string_view type) {
  static const std::unordered_map<std::string_view, const OpInfo*> by_type = [] {
    std::unordered_map<std::string_view, const OpInfo*> index;
    for (const OpInfo& info : op_table()) index.emplace(info.type, &info);
    return index;
  }();
  auto it = by_type.find(type);
  return it == by_type.end() ? nullptr : it->second;
}

const OpInfo* find_builtin(int builtin) {
  static const std::unordered_map<int, const OpInfo*> by_code = [] {
    std::unordered_map<int, const OpInfo*> index;
    for (const OpInfo& info : op_table())
      if (info.builtin != kNotABuiltin) index.emplace(info.builtin, &info);
    return index;
  }();
  auto it = by_code.find(builtin);
  return it == by_code.end() ? nullptr : it->second;
}

const std::vector<std::string_view>& fusable_activations() {
  static const std::vector<std::string_view> activations{"RELU", "RELU6", "RELU_N1_TO_1"};
  return activations;
}

}  // namespace torch_circle::exporter
