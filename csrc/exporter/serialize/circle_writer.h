// Serializes the legalized IR into a .circle (or .tflite) flatbuffer.
#pragma once

#include "exporter/ir/graph.h"

#include <cstdint>
#include <string>

namespace torch_circle::exporter {

struct WriteOptions {
  FileFormat format = FileFormat::kCircle;
  std::string description = "torch-circle";
  // Constant data past this many bytes goes after the flatbuffer (ONE's extended buffer
  // layout), because a flatbuffer cannot address more than 2 GB. Lowered by tests.
  uint64_t extended_buffer_threshold = (uint64_t{1} << 31) - (uint64_t{64} << 20);
};

// The file's bytes. Throws ExportError when an op or dtype cannot be written in `format`.
std::string write_model(const Graph& graph, const WriteOptions& options = {});

}  // namespace torch_circle::exporter
