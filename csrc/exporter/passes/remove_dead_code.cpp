// Drops ops whose outputs nobody reads (and are not model outputs), last to first so whole dead
// chains go in one sweep, then the tensors left without a reader or producer.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {

void remove_dead_code(Graph& graph) {
  std::vector<Op*> ops = graph.live_ops();
  for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
    Op* op = *it;
    bool used = false;
    for (const Tensor* out : op->outputs) used |= !out->users.empty() || is_graph_output(graph, out);
    if (!used) graph.remove_op(op);
  }
  graph.compact();
}

}  // namespace torch_circle::exporter
