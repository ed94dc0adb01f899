// onert 0.1.0 (with its internally allocated outputs, the only way its Python API returns them)
// can hand back a graph output that another op also reads overwritten: once that reader has run,
// the output's memory is reused by later ops (`y = x * 3; return (y * 2).sum(), y` returns
// garbage for y; LiteRT is right). A Llama step returns its grown key / value cache, which the
// attention also reads, so every cache output came back wrong. Such an output gets a tensor of its
// own: a RESHAPE to the same shape that nothing else reads.
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {

void separate_graph_outputs(Graph& graph) {
  for (Tensor*& output : graph.outputs) {
    if (!output->producer || output->users.empty()) continue;  // inputs and constants: nothing reuses them
    // A RESHAPE takes one unknown dim at most (its shape is written as a constant).
    if (std::count(output->shape.begin(), output->shape.end(), -1) > 1) continue;
    Tensor* own = graph.add_tensor_like(output, "_out");
    graph.insert_after(output->producer, "RESHAPE", {output}, {own})->attrs["shape"] = output->shape;
    std::swap(own->name, output->name);  // the graph output keeps the model's name
    output = own;
  }
}

}  // namespace torch_circle::exporter
