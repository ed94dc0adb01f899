#include "exporter/reader/circle_reader.h"

#include "exporter/ir/circle_ops.h"

#include <circle_schema_generated.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>

namespace torch_circle::reader {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& message) {
  throw ReadError(fmt::format("{}: {}", source, message));
}

uint64_t element_size(circle::TensorType type) {
  switch (type) {
    case circle::TensorType_FLOAT32:
    case circle::TensorType_INT32:
    case circle::TensorType_UINT32: return 4;
    case circle::TensorType_FLOAT16:
    case circle::TensorType_INT16:
    case circle::TensorType_UINT16: return 2;
    case circle::TensorType_UINT8:
    case circle::TensorType_INT8:
    case circle::TensorType_BOOL: return 1;
    case circle::TensorType_INT64:
    case circle::TensorType_FLOAT64:
    case circle::TensorType_UINT64: return 8;
    default: return 0;  // packed, block or variable-size types: no size check
  }
}

// A name from the file, safe to put in an error message (which must be valid text).
std::string printable(const flatbuffers::String* name) {
  std::string out = name ? name->str() : "";
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 32 || static_cast<unsigned char>(c) > 126) c = '?';
  return out.size() > 80 ? out.substr(0, 80) + "..." : out;
}

// flatbuffers 2.0.8's Verifier checks only a vector's 4-byte length field, so the elements of an
// 8-byte vector ([long] zero_point) may be misaligned in a hostile file: copy them bytewise.
template <typename T>
std::vector<T> to_vector(const flatbuffers::Vector<T>* v) {
  std::vector<T> out(v ? v->size() : 0);
  for (size_t i = 0; i < out.size(); ++i) {
    T x;
    std::memcpy(&x, v->Data() + i * sizeof(T), sizeof(T));
    out[i] = flatbuffers::EndianScalar(x);
  }
  return out;
}

// The fewest inputs an operator can run with: runtimes index these inputs without checking
// (a one-input CONV_2D reads a filter that is not there). The exporter's op table states it for
// the ops it writes; the few others files commonly hold are listed here. Ops in neither are not
// checked.
size_t minimum_inputs(int32_t builtin) {
  if (const exporter::OpInfo* info = exporter::find_builtin(builtin)) return static_cast<size_t>(info->min_inputs);
  switch (builtin) {
    case circle::BuiltinOperator_SQUARED_DIFFERENCE:
    case circle::BuiltinOperator_MIRROR_PAD:
    case circle::BuiltinOperator_PRELU: return 2;
    default: return 1;
  }
}

// Dataflow a runtime relies on without checking it: operators run in file order, so every input
// must be a subgraph input, constant data, or the output of an earlier operator (an operator
// reading its own output, or a filter whose data was removed, crashes runtimes); a tensor has one
// writer.
void check_dataflow(const SubgraphInfo& sub, const std::string& where, const std::string& source) {
  std::vector<char> available(sub.tensors.size(), 0), written(sub.tensors.size(), 0);
  for (size_t t = 0; t < sub.tensors.size(); ++t) {
    const TensorInfo& tensor = sub.tensors[t];
    bool empty = std::find(tensor.shape.begin(), tensor.shape.end(), 0) != tensor.shape.end();
    available[t] = tensor.is_constant() || tensor.is_variable || (empty && tensor.shape_signature.empty());
  }
  for (int32_t i : sub.inputs) {
    if (sub.tensors[i].is_constant())
      fail(source,
           fmt::format("{}: subgraph input tensor {} ('{}') also holds constant data", where, i, sub.tensors[i].name));
    available[i] = written[i] = 1;
  }
  for (size_t o = 0; o < sub.operators.size(); ++o) {
    const OperatorInfo& op = sub.operators[o];
    size_t present = std::count_if(op.inputs.begin(), op.inputs.end(), [](int32_t i) { return i >= 0; });
    if (present < minimum_inputs(op.builtin_code))
      fail(source, fmt::format("{}: operator {} ({}) has {} input(s); {} needs at least {}", where, o, op.op, present,
                               op.op, minimum_inputs(op.builtin_code)));
    if (op.outputs.empty()) fail(source, fmt::format("{}: operator {} ({}) has no output", where, o, op.op));
    for (size_t k = 0; k < op.inputs.size(); ++k) {
      int32_t i = op.inputs[k];
      if (i >= 0 && !available[i])
        fail(source, fmt::format("{}: operator {} ({}) input {} reads tensor {} ('{}'), which holds no data and "
                                 "no earlier operator writes",
                                 where, o, op.op, k, i, sub.tensors[i].name));
    }
    for (int32_t i : op.outputs) {
      if (written[i] || sub.tensors[i].is_constant())
        fail(source,
             fmt::format("{}: operator {} ({}) writes tensor {} ('{}'), which is {}", where, o, op.op, i,
                         sub.tensors[i].name, sub.tensors[i].is_constant() ? "constant data" : "already written"));
      available[i] = written[i] = 1;
    }
  }
  for (int32_t i : sub.outputs)
    if (!available[i])
      fail(source, fmt::format("{}: subgraph output tensor {} ('{}') is never written", where, i, sub.tensors[i].name));
}

}  // namespace

ModelInfo read_model(const uint8_t* data, size_t size, const std::string& source) {
  if (size < 8) fail(source, fmt::format("{} bytes is too small to be a Circle file", size));
  ModelInfo info;
  info.file_size = size;
  info.identifier.assign(reinterpret_cast<const char*>(data) + 4, 4);
  if (info.identifier != "CIR0" && info.identifier != "TFL3") {
    std::string shown = info.identifier;
    for (char& c : shown)
      if (c < 32 || c > 126) c = '?';
    fail(source, fmt::format("not a Circle or TFLite file (file identifier '{}', expected 'CIR0')", shown));
  }
  // The flatbuffer proper never exceeds 2 GB; data of extended buffers may follow it.
  size_t flatbuffer_size = std::min<size_t>(size, std::numeric_limits<int32_t>::max() - 1);
  flatbuffers::Verifier verifier(data, flatbuffer_size, /*max_depth=*/64, /*max_tables=*/10'000'000);
  if (!verifier.VerifyBuffer<circle::Model>(nullptr))
    fail(source, "corrupt file: the flatbuffers verifier rejects its structure (truncated or damaged)");

  const circle::Model* model = circle::GetModel(data);
  info.version = model->version();
  info.description = model->description() ? model->description()->str() : "";
  const auto* codes = model->operator_codes();
  const auto* buffers = model->buffers();
  const auto* subgraphs = model->subgraphs();
  info.buffer_count = buffers ? buffers->size() : 0;
  if (!subgraphs || subgraphs->size() == 0) fail(source, "the model has no subgraph");

  // Buffer sizes, checking extended (offset/size) buffers lie inside the file.
  std::vector<uint64_t> buffer_bytes(info.buffer_count, 0);
  for (size_t i = 0; i < info.buffer_count; ++i) {
    const circle::Buffer* buffer = buffers->Get(static_cast<flatbuffers::uoffset_t>(i));
    if (!buffer) fail(source, fmt::format("buffer {} is missing", i));
    if (buffer->data()) {
      buffer_bytes[i] = buffer->data()->size();
    } else if (buffer->offset() > 1 || buffer->size() > 0) {
      if (buffer->offset() > size || buffer->size() > size - buffer->offset())
        fail(source, fmt::format("buffer {} points at bytes {}..{} past the end of the {}-byte file", i,
                                 buffer->offset(), buffer->offset() + buffer->size(), size));
      buffer_bytes[i] = buffer->size();
      info.extended_buffers = true;
    }
  }

  // Operator codes: the builtin code comes from the old byte unless it says 127.
  std::vector<std::pair<int32_t, std::string>> opcode_names;
  for (size_t i = 0; codes && i < codes->size(); ++i) {
    const circle::OperatorCode* code = codes->Get(static_cast<flatbuffers::uoffset_t>(i));
    const int32_t builtin = code->deprecated_builtin_code() == 127 ? static_cast<int32_t>(code->builtin_code())
                                                                   : code->deprecated_builtin_code();
    if (builtin < circle::BuiltinOperator_MIN || builtin > circle::BuiltinOperator_MAX)
      fail(source, fmt::format("operator code {} has unknown builtin code {}", i, builtin));
    const char* name = circle::EnumNameBuiltinOperator(static_cast<circle::BuiltinOperator>(builtin));
    std::string label = name && *name ? name : fmt::format("BUILTIN_{}", builtin);
    if (builtin == circle::BuiltinOperator_CUSTOM && code->custom_code())
      label = "CUSTOM(" + printable(code->custom_code()) + ")";
    opcode_names.emplace_back(builtin, label);
  }

  for (size_t s = 0; s < subgraphs->size(); ++s) {
    const circle::SubGraph* sg = subgraphs->Get(static_cast<flatbuffers::uoffset_t>(s));
    SubgraphInfo sub;
    sub.name = sg->name() ? sg->name()->str() : "";
    size_t tensor_count = sg->tensors() ? sg->tensors()->size() : 0;
    std::string where = fmt::format("subgraph {}", s);
    auto check_index = [&](int32_t index, bool optional, const std::string& what) {
      if ((optional && index == -1) || (index >= 0 && static_cast<size_t>(index) < tensor_count)) return;
      fail(source,
           fmt::format("{}: {} refers to tensor {} but the subgraph has {} tensors", where, what, index, tensor_count));
    };
    for (size_t t = 0; t < tensor_count; ++t) {
      const circle::Tensor* tensor = sg->tensors()->Get(static_cast<flatbuffers::uoffset_t>(t));
      TensorInfo ti;
      ti.name = tensor->name() ? tensor->name()->str() : "";
      const std::string shown = printable(tensor->name());
      ti.shape = to_vector(tensor->shape());
      ti.shape_signature = to_vector(tensor->shape_signature());
      ti.dtype_code = tensor->type();
      const char* type_name = circle::EnumNameTensorType(tensor->type());
      if (tensor->type() < circle::TensorType_MIN || tensor->type() > circle::TensorType_MAX || !type_name ||
          !*type_name)
        fail(source, fmt::format("{}: tensor {} ('{}') has unknown type {}", where, t, shown, int(tensor->type())));
      ti.dtype = type_name;
      ti.is_variable = tensor->is_variable();
      ti.buffer = tensor->buffer();
      if (ti.buffer >= info.buffer_count && !(ti.buffer == 0 && info.buffer_count == 0))
        fail(source, fmt::format("{}: tensor {} ('{}') refers to buffer {} but the model has {} buffers", where, t,
                                 shown, ti.buffer, info.buffer_count));
      ti.data_bytes = ti.buffer < buffer_bytes.size() ? buffer_bytes[ti.buffer] : 0;
      uint64_t elements = 1;
      for (int32_t d : ti.shape) {
        if (d < 0) fail(source, fmt::format("{}: tensor {} ('{}') has negative dimension {}", where, t, shown, d));
        elements =
            d == 0 ? 0
                   : (elements > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d) ? 0 : elements * d);
      }
      uint64_t esize = element_size(tensor->type());
      if (ti.data_bytes && esize && ti.data_bytes != elements * esize)
        fail(source, fmt::format("{}: tensor {} ('{}') has {} bytes of data for shape [{}] of {} ({} expected)", where,
                                 t, shown, ti.data_bytes, fmt::join(ti.shape, ", "), ti.dtype, elements * esize));
      if (const circle::QuantizationParameters* q = tensor->quantization()) {
        ti.scale = to_vector(q->scale());
        ti.zero_point = to_vector(q->zero_point());
        ti.quantized_dimension = q->quantized_dimension();
        if (ti.scale.size() > 1) {
          if (ti.quantized_dimension < 0 || static_cast<size_t>(ti.quantized_dimension) >= ti.shape.size() ||
              static_cast<size_t>(ti.shape[ti.quantized_dimension]) != ti.scale.size())
            fail(source,
                 fmt::format("{}: tensor {} ('{}') has {} scales that do not match dimension {} of shape [{}]", where,
                             t, shown, ti.scale.size(), ti.quantized_dimension, fmt::join(ti.shape, ", ")));
        }
        if (!ti.zero_point.empty() && ti.zero_point.size() != ti.scale.size())
          fail(source, fmt::format("{}: tensor {} ('{}') has {} scales but {} zero points", where, t, shown,
                                   ti.scale.size(), ti.zero_point.size()));
      }
      sub.tensors.push_back(std::move(ti));
    }
    sub.inputs = to_vector(sg->inputs());
    sub.outputs = to_vector(sg->outputs());
    for (int32_t i : sub.inputs) check_index(i, false, "a subgraph input");
    for (int32_t o : sub.outputs) check_index(o, false, "a subgraph output");
    size_t op_count = sg->operators() ? sg->operators()->size() : 0;
    for (size_t o = 0; o < op_count; ++o) {
      const circle::Operator* op = sg->operators()->Get(static_cast<flatbuffers::uoffset_t>(o));
      OperatorInfo oi;
      if (op->opcode_index() >= opcode_names.size())
        fail(source, fmt::format("{}: operator {} uses operator code {} but the model has {}", where, o,
                                 op->opcode_index(), opcode_names.size()));
      oi.builtin_code = opcode_names[op->opcode_index()].first;
      oi.op = opcode_names[op->opcode_index()].second;
      oi.inputs = to_vector(op->inputs());
      oi.outputs = to_vector(op->outputs());
      std::string label = fmt::format("operator {} ({}) ", o, oi.op);
      for (size_t k = 0; k < oi.inputs.size(); ++k) check_index(oi.inputs[k], true, label + fmt::format("input {}", k));
      for (size_t k = 0; k < oi.outputs.size(); ++k)
        check_index(oi.outputs[k], false, label + fmt::format("output {}", k));
      if (op->builtin_options_type() != circle::BuiltinOptions_NONE) {
        const char* options = circle::EnumNameBuiltinOptions(op->builtin_options_type());
        oi.options = options && *options ? options : fmt::format("options#{}", int(op->builtin_options_type()));
      }
      sub.operators.push_back(std::move(oi));
    }
    check_dataflow(sub, where, source);
    info.subgraphs.push_back(std::move(sub));
  }
  return info;
}

ModelInfo read_model_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) throw ReadError(fmt::format("{}: cannot open the file", path));
  std::streamsize size = file.tellg();
  file.seekg(0);
  std::string bytes(static_cast<size_t>(std::max<std::streamsize>(size, 0)), '\0');
  if (!file.read(bytes.data(), size)) throw ReadError(fmt::format("{}: cannot read the file", path));
  return read_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), path);
}

}  // namespace torch_circle::reader
