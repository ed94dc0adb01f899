#include "exporter/exporter.h"

#include "exporter/import/fx_importer.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {

std::string export_fx_graph(const FxGraph& fx, const ExportOptions& options) {
  Graph graph;
  graph.format = options.write.format;
  import_fx_graph(fx, graph);
  run_passes(graph, PassOptions{options.verbose});
  return write_model(graph, options.write);
}

}  // namespace torch_circle::exporter
