// The exporter's entry point: FX graph in, Circle file bytes out.
//   import_fx_graph (import/)  →  run_passes (passes/)  →  write_model (serialize/)
#pragma once

#include "exporter/import/fx_graph.h"
#include "exporter/ir/graph.h"
#include "exporter/serialize/circle_writer.h"

#include <string>

namespace torch_circle::exporter {

struct ExportOptions {
  WriteOptions write;
  int verbose = 0;  // 1: each pass's op count on stderr; 2: every op after every pass
};

std::string export_fx_graph(const FxGraph& fx, const ExportOptions& options = {});
// The same file written to `sink` (write_model); returns its size.
uint64_t export_fx_graph(const FxGraph& fx, const ExportOptions& options, const ByteSink& sink);

}  // namespace torch_circle::exporter
