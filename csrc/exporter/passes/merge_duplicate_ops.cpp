// Common subexpression elimination: two ops of the same type, reading the same inputs with the
// same attributes, compute the same tensor. Decompositions create such twins (a reshape of one
// input per slice, a transpose per consumer); the later one is dropped.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <map>
#include <tuple>

namespace torch_circle::exporter {

void merge_duplicate_ops(Graph& graph) {
  using Key = std::tuple<std::string, std::vector<const Tensor*>, std::map<std::string, Attr>>;
  std::map<Key, Op*> seen;
  for (Op* op : graph.live_ops()) {
    if (op->outputs.size() != 1) continue;
    Key key{op->type, std::vector<const Tensor*>(op->inputs.begin(), op->inputs.end()), op->attrs};
    auto [it, inserted] = seen.emplace(key, op);
    if (inserted) continue;
    Tensor* twin = it->second->outputs[0];
    Tensor* out = op->outputs[0];
    if (twin->dtype != out->dtype || twin->quant != out->quant || twin->shape != out->shape ||
        is_graph_output(graph, out))
      continue;
    graph.remove_op(op);
    graph.replace_all_uses(out, twin);
  }
  remove_dead_code(graph);
}

}  // namespace torch_circle::exporter
