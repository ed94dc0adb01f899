// Serializes the legalized IR into a .circle (or .tflite) flatbuffer.
#pragma once

#include "exporter/ir/graph.h"

#include <cstdint>
#include <functional>
#include <string>

namespace torch_circle::exporter {

struct WriteOptions {
  FileFormat format = FileFormat::kCircle;
  std::string description = "torch-circle";
  // Constant data past this many bytes goes after the flatbuffer (ONE's extended buffer
  // layout), because a flatbuffer cannot address more than 2 GB. Lowered by tests.
  uint64_t extended_buffer_threshold = (uint64_t{1} << 31) - (uint64_t{64} << 20);
};

// Receives the file's bytes, in order.
using ByteSink = std::function<void(const void* data, size_t size)>;

// Writes the file to `sink` and returns its size. Constant data goes from each tensor's memory
// straight to the sink (past 2 GB, after the flatbuffer), so with a file as the sink a big
// model's weights are never copied in memory. Throws ExportError when an op or dtype cannot be
// written in `format`.
uint64_t write_model(const Graph& graph, const WriteOptions& options, const ByteSink& sink);
// A sink appending to `file`.
ByteSink append_to(std::string& file);
// The file's bytes.
std::string write_model(const Graph& graph, const WriteOptions& options = {});

}  // namespace torch_circle::exporter
