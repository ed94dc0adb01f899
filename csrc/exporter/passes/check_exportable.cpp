// The last check before serialization: every op is a Circle op of the op table with as many
// inputs as its row allows, and the integer ops read integers. Lists every problem at once, each with the node it came
// from.
#include "exporter/ir/circle_ops.h"
#include "exporter/passes/passes.h"
#include "exporter/serialize/op_writers.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

namespace torch_circle::exporter {

void check_exportable(const Graph& graph) {
  std::vector<std::string> problems;
  for (const Op* op : graph.live_ops()) {
    if (!find_op_writer(op->type)) {
      problems.push_back(fmt::format("{}: no Circle op for '{}' was produced", op->origin, op->type));
      continue;
    }
    const OpInfo* info = find_op(op->type);
    int present =
        static_cast<int>(std::count_if(op->inputs.begin(), op->inputs.end(), [](const Tensor* t) { return t; }));
    int slots = static_cast<int>(op->inputs.size());
    if (present < info->min_inputs || (info->max_inputs != kAnyInputs && slots > info->max_inputs))
      problems.push_back(fmt::format("{}: internal: {} has {} input(s) ({} present); the op table says {} to {}",
                                     op->origin, op->type, slots, present, info->min_inputs, info->max_inputs));
    std::string mixed = mixed_operand_types(*op);
    if (!mixed.empty())
      problems.push_back(
          fmt::format("{}: {} reads operands of different types ({}), which runtimes refuse or "
                      "compute wrongly",
                      op->origin, op->type, mixed));
    // Zero-size activations (nn.Linear(0, n)'s [batch, 0] input) crash the runtimes' kernels.
    // Constants may be empty: RESHAPE to a 0-d tensor takes the shape [].
    for (const auto& tensors : {op->inputs, op->outputs})
      for (const Tensor* t : tensors)
        if (t && !t->is_constant() && std::find(t->shape.begin(), t->shape.end(), 0) != t->shape.end())
          problems.push_back(
              fmt::format("{}: {} tensor '{}' has shape [{}], which holds no elements; "
                          "Circle runtimes cannot run zero-size tensors",
                          op->origin, op->type, t->name, fmt::join(t->shape, ", ")));
    if (op->type == "QUANTIZE" || op->type == "DEQUANTIZE" || op->type == "CAST") continue;
    const Tensor* out = op->outputs.empty() ? nullptr : op->outputs[0];
    if (!out || !out->is_quantized()) continue;
    for (const Tensor* in : op->inputs)
      if (in && in->dtype == DType::kFloat32)
        problems.push_back(fmt::format("{}: {} writes {} but reads float tensor '{}'", op->origin, op->type,
                                       dtype_name(out->dtype), in->name));
  }
  if (problems.empty()) return;
  std::string message = "the graph cannot be written as Circle:";
  for (const auto& p : problems) message += "\n  - " + p;
  throw ExportError(message);
}

}  // namespace torch_circle::exporter
