#include "exporter/passes/pass_util.h"

namespace torch_circle::exporter {

Op* sole_user(const Graph& graph, const Tensor* tensor) {
  if (tensor->users.size() != 1 || is_graph_output(graph, tensor)) return nullptr;
  return tensor->users[0];
}

bool runs_quantized(const Graph& graph, const std::string& type) {
  const OpInfo* info = find_op(type);
  return info && info->has(graph.format == FileFormat::kTflite ? kLitertInt : kOnertInt);
}

}  // namespace torch_circle::exporter
