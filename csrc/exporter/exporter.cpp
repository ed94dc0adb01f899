#include "exporter/exporter.h"

#include "exporter/import/fx_importer.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {

uint64_t export_fx_graph(const FxGraph& fx, const ExportOptions& options, const ByteSink& sink) {
  Graph graph;
  graph.format = options.write.format;
  import_fx_graph(fx, graph);
  run_passes(graph, PassOptions{options.verbose});
  return write_model(graph, options.write, sink);
}

std::string export_fx_graph(const FxGraph& fx, const ExportOptions& options) {
  std::string file;
  export_fx_graph(fx, options, append_to(file));
  return file;
}

}  // namespace torch_circle::exporter
