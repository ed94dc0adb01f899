// Reads a .circle / .tflite file that may come from anywhere: the flatbuffers Verifier first,
// then a bounds check of every index the format stores (operator codes, tensors, buffers,
// subgraphs), and of the dataflow runtimes assume (inputs written before they are read, one
// writer per tensor, the fewest inputs an operator indexes). A malformed file raises ReadError naming the file and the
// broken element; it never crashes. torch-free, so the fuzzer builds it alone.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace torch_circle::reader {

struct ReadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorInfo {
  std::string name;
  std::vector<int32_t> shape;
  std::vector<int32_t> shape_signature;  // empty when the file has none
  std::string dtype;                     // "FLOAT32", "UINT8", ...
  int8_t dtype_code = 0;
  uint32_t buffer = 0;
  uint64_t data_bytes = 0;  // constant data size (0 for activations)
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int32_t quantized_dimension = 0;
  bool is_variable = false;  // state a runtime keeps between runs (written by no operator)
  bool is_constant() const { return data_bytes > 0; }
};

struct OperatorInfo {
  std::string op;  // "CONV_2D", or the custom code for CUSTOM ops
  int32_t builtin_code = 0;
  std::vector<int32_t> inputs;  // -1: an omitted optional input
  std::vector<int32_t> outputs;
  std::string options;  // the options table's name, "" when none
};

struct SubgraphInfo {
  std::string name;
  std::vector<TensorInfo> tensors;
  std::vector<OperatorInfo> operators;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
};

struct ModelInfo {
  std::string identifier;  // "CIR0" or "TFL3"
  uint32_t version = 0;
  std::string description;
  uint64_t file_size = 0;
  size_t buffer_count = 0;
  bool extended_buffers = false;  // data stored after the flatbuffer (files past 2 GB)
  std::vector<SubgraphInfo> subgraphs;
};

// `source` names the file in error messages.
ModelInfo read_model(const uint8_t* data, size_t size, const std::string& source);
ModelInfo read_model_file(const std::string& path);

}  // namespace torch_circle::reader
