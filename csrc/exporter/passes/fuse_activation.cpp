// conv / fully connected / add ... followed by RELU, RELU6 or RELU_N1_TO_1 become one op with a
// fused activation: fewer ops, and in a quantized graph the clamp happens in the requantization
// instead of costing an op and a rounding of its own.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <set>

namespace torch_circle::exporter {

void fuse_activation(Graph& graph) {
  static const std::set<std::string> producers{
      "torch.conv2d", "torch.conv_transpose2d", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV",
      "torch.avg_pool2d", "torch.max_pool2d", "CONCATENATION"};
  static const std::set<std::string> activations{"RELU", "RELU6", "RELU_N1_TO_1"};
  for (Op* act : graph.live_ops()) {
    if (act->dead || !activations.count(act->type)) continue;
    Tensor* x = act->inputs[0];
    Op* producer = x->producer;
    if (!producer || producer->dead || !producers.count(producer->type) || producer->outputs.size() != 1 ||
        producer->has("fused_activation") || !sole_user(graph, x) || x->is_quantized())
      continue;
    Tensor* y = act->outputs[0];
    graph.remove_op(act);
    producer->outputs[0] = y;
    y->producer = producer;
    x->producer = nullptr;
    producer->attrs["fused_activation"] = act->type;
  }
  graph.compact();
}

}  // namespace torch_circle::exporter
