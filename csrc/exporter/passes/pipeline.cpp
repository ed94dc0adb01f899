// The order the passes run in, and the final check before serialization.
#include "exporter/passes/passes.h"

#include <fmt/format.h>

#include <cstdio>

namespace torch_circle::exporter {

const std::vector<std::pair<std::string, std::function<void(Graph&)>>>& pass_pipeline() {
  static const std::vector<std::pair<std::string, std::function<void(Graph&)>>> passes{
      {"promote_operand_types", promote_operand_types},
      {"legalize_batch_matmul", legalize_batch_matmul},
      {"legalize_integer_ops", legalize_integer_ops},
      {"fuse_batch_norm", fuse_batch_norm},
      {"decompose_norms", decompose_norms},
      {"fuse_activation", fuse_activation},
      {"propagate_qparams", propagate_qparams},
      {"fold_constants", fold_constants},
      {"fold_quantization", fold_quantization},
      {"quantize_bias", quantize_bias},
      {"legalize_weight_signedness", legalize_weight_signedness},
      {"legalize_layout", legalize_layout},
      {"legalize_fully_connected", legalize_fully_connected},
      {"sink_transposes", sink_transposes},
      {"fold_constants", fold_constants},
      {"insert_requantize", insert_requantize},
      {"fold_constant_dequantize", fold_constant_dequantize},
      {"merge_duplicate_ops", merge_duplicate_ops},
      {"remove_dead_code", remove_dead_code},
      {"separate_graph_outputs", separate_graph_outputs},
      {"materialize_operands", materialize_operands},
  };
  return passes;
}

void run_passes(Graph& graph, const PassOptions& options) {
  validate(graph);
  for (const auto& [name, pass] : pass_pipeline()) {
    pass(graph);
    validate(graph);
    if (options.verbose) std::fprintf(stderr, "[torch-circle] %-26s %zu ops\n", name.c_str(), graph.live_ops().size());
    if (options.verbose > 1) std::fprintf(stderr, "%s", dump(graph).c_str());
  }
  check_exportable(graph);
}

}  // namespace torch_circle::exporter
