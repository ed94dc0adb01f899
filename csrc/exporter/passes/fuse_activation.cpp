// An op whose options take a fused activation (kFusesActivation in the op table: conv, fully
// connected, add ...) followed by one of fusable_activations() (RELU, RELU6, RELU_N1_TO_1) becomes one op with a
// fused activation: fewer ops, and in a quantized graph the clamp happens in the requantization
// instead of costing an op and a rounding of its own.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {

void fuse_activation(Graph& graph) {
  const std::vector<std::string_view>& activations = fusable_activations();
  for (Op* act : graph.live_ops()) {
    if (act->dead || std::find(activations.begin(), activations.end(), act->type) == activations.end()) continue;
    Tensor* x = act->inputs[0];
    Op* producer = x->producer;
    const OpInfo* info = producer ? find_op(producer->type) : nullptr;
    if (!producer || producer->dead || !info || !info->has(kFusesActivation) || producer->outputs.size() != 1 ||
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
