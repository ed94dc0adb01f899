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

namespace {

bool is_8bit(DType dtype) { return dtype == DType::kUInt8 || dtype == DType::kInt8; }

bool is_integer_activation(const Tensor* t) {
  return t && !t->is_constant() && t->is_quantized() && (is_8bit(t->dtype) || t->dtype == DType::kInt16);
}

// onert (0.1.0, the runtime of .circle files) has no QUANTIZE to or from int16, so a file whose
// activations mix 8-bit and int16 integers (CircleQuantizer("uint8").set_operator_type(softmax,
// "int16")) fails to load ("OperationValidator failed"). Such a file is refused, naming the ops
// where the integer types meet; a float region in a uint8 model (set_operator_type(op, None))
// runs, and so does an int8 / int16 mix in a .tflite file for LiteRT. One problem line, or "".
std::string int16_mix_problem(const Graph& graph) {
  if (graph.format != FileFormat::kCircle) return "";
  bool has_8bit = false, has_int16 = false;
  for (const Op* op : graph.live_ops())
    for (const Tensor* t : op->outputs)
      if (is_integer_activation(t)) (t->dtype == DType::kInt16 ? has_int16 : has_8bit) = true;
  if (!has_8bit || !has_int16) return "";
  std::vector<std::string> meetings;   // ops that read one integer width and write the other
  std::vector<std::string> int16_ops;  // the ops computed in int16 (what the user chose int16 for)
  for (const Op* op : graph.live_ops()) {
    const Tensor* out = op->outputs.empty() ? nullptr : op->outputs[0];
    if (!is_integer_activation(out)) continue;
    if (out->dtype == DType::kInt16 && op->type != "QUANTIZE")
      int16_ops.push_back(fmt::format("{} ({})", op->origin, op->type));
    for (const Tensor* in : op->inputs)
      if (is_integer_activation(in) && (in->dtype == DType::kInt16) != (out->dtype == DType::kInt16)) {
        meetings.push_back(
            fmt::format("{} ({} {} -> {})", op->origin, op->type, dtype_name(in->dtype), dtype_name(out->dtype)));
        break;
      }
  }
  if (meetings.empty())  // the int16 part starts from float: name the ops that write int16
    for (const Op* op : graph.live_ops())
      if (!op->outputs.empty() && is_integer_activation(op->outputs[0]) && op->outputs[0]->dtype == DType::kInt16)
        meetings.push_back(fmt::format("{} ({} -> int16)", op->origin, op->type));
  auto listed = [](const std::vector<std::string>& lines) {
    constexpr size_t kShown = 8;
    std::string text;
    for (size_t i = 0; i < std::min(lines.size(), kShown); ++i) text += "\n      " + lines[i];
    if (lines.size() > kShown) text += fmt::format("\n      ... and {} more", lines.size() - kShown);
    return text.empty() ? std::string("\n      (none)") : text;
  };
  return fmt::format(
      "the activations mix 8-bit and int16 integers, which onert cannot load (it has no QUANTIZE "
      "to or from int16); the types meet at:{}\n    computed in int16:{}\n    keep those ops in float "
      "(CircleQuantizer(...).set_operator_type(op, None)), quantize the whole model with one preset, "
      "or quantize with CircleQuantizer(\"int8\") and export format='tflite' for LiteRT, which runs the mix",
      listed(meetings), listed(int16_ops));
}

}  // namespace

void check_exportable(const Graph& graph) {
  std::vector<std::string> problems;
  if (std::string mix = int16_mix_problem(graph); !mix.empty()) problems.push_back(mix);
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
