#include "exporter/serialize/circle_writer.h"

#include "exporter/serialize/op_writers.h"

#include <fmt/format.h>

#include <cstring>
#include <map>
#include <unordered_map>

namespace torch_circle::exporter {
namespace {

using Builder = flatbuffers::FlatBufferBuilder;
constexpr size_t kBufferAlignment = 16;

struct ConstantBytes {
  const uint8_t* data;
  size_t size;
};

ConstantBytes bytes_of(const Tensor& t) {
  const at::Tensor& data = t.data;
  return {static_cast<const uint8_t*>(data.data_ptr()), static_cast<size_t>(data.nbytes())};
}

flatbuffers::Offset<circle::QuantizationParameters> write_quant(Builder& b, const Tensor& t) {
  if (!t.quant) return 0;
  const QuantParams& q = *t.quant;
  return circle::CreateQuantizationParameters(b, 0, 0, b.CreateVector(q.scale), b.CreateVector(q.zero_point),
                                              circle::QuantizationDetails_NONE, 0, q.per_channel() ? q.axis : 0);
}

class ModelWriter {
 public:
  ModelWriter(const Graph& graph, const WriteOptions& options) : graph_(graph), options_(options) {}

  uint64_t write(const ByteSink& sink) {
    uint64_t constant_bytes = 0;
    for (const auto& t : graph_.tensors())
      if (t->is_constant()) constant_bytes += t->data.nbytes();
    extended_ = constant_bytes > options_.extended_buffer_threshold;

    buffers_.push_back(circle::CreateBuffer(b_));  // buffers[0]: the empty sentinel
    std::vector<flatbuffers::Offset<circle::Tensor>> tensors;
    for (const auto& t : graph_.tensors()) {
      tensor_index_[t.get()] = static_cast<int32_t>(tensors.size());
      tensors.push_back(write_tensor(*t));
    }
    std::vector<flatbuffers::Offset<circle::Operator>> operators;
    for (const Op* op : graph_.live_ops()) operators.push_back(write_operator(*op));

    auto indices = [&](const std::vector<Tensor*>& list) {
      std::vector<int32_t> out;
      for (const Tensor* t : list) out.push_back(tensor_index_.at(t));
      return out;
    };
    auto subgraph = circle::CreateSubGraph(b_, b_.CreateVector(tensors), b_.CreateVector(indices(graph_.inputs)),
                                           b_.CreateVector(indices(graph_.outputs)), b_.CreateVector(operators),
                                           b_.CreateString("main"));
    bool tflite = options_.format == FileFormat::kTflite;
    auto model = circle::CreateModel(b_, tflite ? 3 : 0, b_.CreateVector(opcodes_),
                                     b_.CreateVector(std::vector<decltype(subgraph)>{subgraph}),
                                     b_.CreateString(options_.description), b_.CreateVector(buffers_));
    b_.Finish(model, tflite ? "TFL3" : "CIR0");
    if (!extended_) {
      sink(b_.GetBufferPointer(), b_.GetSize());
      return b_.GetSize();
    }
    return write_extended(sink);
  }

 private:
  uint32_t write_buffer(const Tensor& t) {
    ConstantBytes bytes = bytes_of(t);
    if (extended_) {
      // Offset and size are patched once the flatbuffer's size is known (non-zero placeholders
      // so the fields are stored and can be mutated in place).
      extended_tensors_.push_back({static_cast<uint32_t>(buffers_.size()), bytes});
      buffers_.push_back(circle::CreateBuffer(b_, 0, 1, 1));
    } else {
      b_.ForceVectorAlignment(bytes.size, 1, kBufferAlignment);
      buffers_.push_back(circle::CreateBuffer(b_, b_.CreateVector(bytes.data, bytes.size)));
    }
    return static_cast<uint32_t>(buffers_.size() - 1);
  }

  flatbuffers::Offset<circle::Tensor> write_tensor(const Tensor& t) {
    if (options_.format == FileFormat::kTflite && t.dtype == DType::kUInt8 && t.quant && t.quant->per_channel())
      throw ExportError(
          fmt::format("tensor '{}': TFLite has no kernels for uint8 weights with per-channel parameters (ONE's "
                      "uint8 convention); quantize with the int8 preset for TFLite, or export format='circle'",
                      t.name));
    std::vector<int32_t> shape, signature;
    bool dynamic = false;
    for (int64_t d : t.shape) {
      dynamic |= d < 0;
      shape.push_back(d < 0 ? 1 : static_cast<int32_t>(d));
      signature.push_back(static_cast<int32_t>(d));
    }
    uint32_t buffer = t.is_constant() ? write_buffer(t) : 0;
    auto name = b_.CreateString(t.name);
    auto quant = write_quant(b_, t);
    auto shape_vec = b_.CreateVector(shape);
    auto signature_vec = dynamic ? b_.CreateVector(signature) : 0;
    circle::TensorBuilder tb(b_);
    tb.add_shape(shape_vec);
    tb.add_type(static_cast<circle::TensorType>(t.dtype));
    tb.add_buffer(buffer);
    tb.add_name(name);
    if (!quant.IsNull()) tb.add_quantization(quant);
    if (dynamic) tb.add_shape_signature(signature_vec);
    tb.add_has_rank(true);
    return tb.Finish();
  }

  // OperatorCode.version: LiteRT looks each (code, version) pair up in its op resolver and
  // refuses a model whose version is outside the registered range. Every builtin the exporter
  // writes is registered from version 1, except BROADCAST_TO: its version 1 was withdrawn (the
  // op's code was renumbered), so LiteRT registers versions 2 and 3 only. onert ignores versions.
  static int32_t opcode_version(circle::BuiltinOperator code) {
    return code == circle::BuiltinOperator_BROADCAST_TO ? 2 : 1;
  }

  uint32_t opcode_index(circle::BuiltinOperator code) {
    auto it = opcode_index_.find(code);
    if (it != opcode_index_.end()) return it->second;
    if (options_.format == FileFormat::kTflite && code < 0)
      throw ExportError(
          fmt::format("{} is a Circle-only op; it cannot be written as TFLite", circle::EnumNameBuiltinOperator(code)));
    // Readers take builtin_code when the old byte says 127 (the byte cannot hold newer codes);
    // Circle-only negative codes fit the byte as they are.
    int8_t deprecated = static_cast<int8_t>(std::min<int32_t>(code, 127));
    opcodes_.push_back(circle::CreateOperatorCode(b_, deprecated, 0, opcode_version(code), code));
    uint32_t index = static_cast<uint32_t>(opcodes_.size() - 1);
    opcode_index_.emplace(code, index);
    return index;
  }

  flatbuffers::Offset<circle::Operator> write_operator(const Op& op) {
    const OpWriter* writer = find_op_writer(op.type);
    if (!writer) throw ExportError(fmt::format("internal: {} ({}) is not a Circle op", op.type, op.origin));
    std::vector<int32_t> inputs, outputs;
    for (const Tensor* t : op.inputs) inputs.push_back(t ? tensor_index_.at(t) : -1);
    for (const Tensor* t : op.outputs) outputs.push_back(tensor_index_.at(t));
    OptionsRef options = writer->options ? writer->options(b_, op) : OptionsRef{};
    return circle::CreateOperator(b_, opcode_index(writer->code), b_.CreateVector(inputs), b_.CreateVector(outputs),
                                  options.type, options.table);
  }

  // ONE's layout for files past 2 GB: each buffer's bytes follow the flatbuffer, 16-byte
  // aligned, and Buffer.offset / Buffer.size (from the start of the file) locate them. The
  // offsets are known before anything is written, so the flatbuffer is patched first and the
  // tensors' bytes then go to the sink as they are.
  uint64_t write_extended(const ByteSink& sink) {
    uint8_t* head = b_.GetBufferPointer();
    std::vector<uint64_t> offsets;
    uint64_t end = b_.GetSize();
    for (const auto& entry : extended_tensors_) {
      end = (end + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
      offsets.push_back(end);
      end += entry.second.size;
    }
    auto* buffers = circle::GetMutableModel(head)->mutable_buffers();
    for (size_t i = 0; i < extended_tensors_.size(); ++i) {
      auto* buffer = buffers->GetMutableObject(extended_tensors_[i].first);
      if (!buffer->mutate_offset(offsets[i]) || !buffer->mutate_size(extended_tensors_[i].second.size))
        throw ExportError("internal: could not place an extended buffer");
    }
    sink(head, b_.GetSize());
    static constexpr uint8_t kPadding[kBufferAlignment] = {};
    uint64_t at = b_.GetSize();
    for (size_t i = 0; i < extended_tensors_.size(); ++i) {
      sink(kPadding, offsets[i] - at);
      const ConstantBytes& bytes = extended_tensors_[i].second;
      sink(bytes.data, bytes.size);
      at = offsets[i] + bytes.size;
    }
    return at;
  }

  const Graph& graph_;
  const WriteOptions& options_;
  Builder b_{1 << 16};
  bool extended_ = false;
  std::vector<flatbuffers::Offset<circle::Buffer>> buffers_;
  std::vector<std::pair<uint32_t, ConstantBytes>> extended_tensors_;
  std::vector<flatbuffers::Offset<circle::OperatorCode>> opcodes_;
  std::map<circle::BuiltinOperator, uint32_t> opcode_index_;
  std::unordered_map<const Tensor*, int32_t> tensor_index_;
};

}  // namespace

uint64_t write_model(const Graph& graph, const WriteOptions& options, const ByteSink& sink) {
  return ModelWriter(graph, options).write(sink);
}

ByteSink append_to(std::string& file) {
  return [&file](const void* data, size_t size) { file.append(static_cast<const char*>(data), size); };
}

std::string write_model(const Graph& graph, const WriteOptions& options) {
  std::string file;
  write_model(graph, options, append_to(file));
  return file;
}

}  // namespace torch_circle::exporter
