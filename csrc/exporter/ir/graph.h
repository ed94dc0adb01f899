// The exporter's graph IR: what the FX importer builds, what every pass rewrites and what the
// serializer writes. Ops are Circle builtin operators named as in the schema ("CONV_2D"), plus a
// few importer-only ops ("torch.batch_norm", ...) that passes must rewrite before serialization.
//
// Until the layout pass runs, ops keep PyTorch's semantics: activations NCHW, conv weights OIHW.
// After it, every op has Circle's semantics.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace torch_circle::exporter {

// Tensor element types the exporter writes; values are Circle's TensorType numbers.
enum class DType : int8_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kInt32 = 2,
  kUInt8 = 3,
  kInt64 = 4,
  kBool = 6,
  kInt16 = 7,
  kInt8 = 9,
};
const char* dtype_name(DType dtype);        // "float32", "uint8", ...
DType dtype_from_torch(at::ScalarType st);  // throws ExportError for dtypes Circle cannot hold
at::ScalarType dtype_to_torch(DType dtype);
bool is_integer(DType dtype);

// real = scale * (q - zero_point). One entry per tensor, or one per channel along `axis`.
struct QuantParams {
  std::vector<float> scale;
  std::vector<int64_t> zero_point;
  int32_t axis = 0;  // Circle's quantized_dimension; meaningful when per channel
  bool per_channel() const { return scale.size() > 1; }
  bool operator==(const QuantParams& other) const;
  bool operator!=(const QuantParams& other) const { return !(*this == other); }
};

struct Op;

struct Tensor {
  int id = 0;
  std::string name;
  std::vector<int64_t> shape;  // -1 marks a dynamic dimension (written as shape_signature -1)
  DType dtype = DType::kFloat32;
  std::optional<QuantParams> quant;
  at::Tensor data;  // defined for constants
  Op* producer = nullptr;
  std::vector<Op*> users;  // one entry per input slot that reads this tensor

  bool is_constant() const { return data.defined(); }
  bool is_quantized() const { return quant.has_value(); }
  int64_t rank() const { return static_cast<int64_t>(shape.size()); }
};

// Op attributes: integers, floats, strings and lists of them.
using Attr = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

struct Op {
  std::string type;             // "CONV_2D", or an importer-only "torch.*" op
  std::vector<Tensor*> inputs;  // nullptr: an optional input left out (Circle writes -1)
  std::vector<Tensor*> outputs;
  std::map<std::string, Attr> attrs;
  std::string origin;  // the FX node (and user source line) this op came from, for errors
  bool dead = false;

  bool has(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t i(const std::string& key) const;
  int64_t i(const std::string& key, int64_t fallback) const;
  double f(const std::string& key) const;
  const std::string& s(const std::string& key) const;
  const std::vector<int64_t>& ints(const std::string& key) const;
};

// Thrown for everything that stops an export: unsupported ops, malformed graphs, bad files.
struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The file format being written, and with it the runtime whose integer kernels decide which
// ops may run quantized: Circle files target ONE's onert, TFLite files LiteRT.
enum class FileFormat { kCircle, kTflite };

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Tensor* add_tensor(std::string name, std::vector<int64_t> shape, DType dtype);
  Tensor* add_constant(std::string name, const at::Tensor& data);
  // A new tensor shaped and typed like `like` (quantization included), named after it.
  Tensor* add_tensor_like(const Tensor* like, const std::string& suffix);

  // Appends an op at the end of the order; insert_before places it ahead of `anchor`.
  Op* add_op(std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs, std::string origin = "");
  Op* insert_before(const Op* anchor, std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs);
  Op* insert_after(const Op* anchor, std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs);

  void set_input(Op* op, size_t slot, Tensor* tensor);
  // Points every reader of `from` (ops and graph outputs) at `to`.
  void replace_all_uses(Tensor* from, Tensor* to);
  // Marks the op dead and detaches it from its inputs; compact() drops it.
  void remove_op(Op* op);
  // Drops dead ops and tensors nothing refers to any more.
  void compact();

  // Ops in execution order (topological: the importer appends in FX order and passes insert
  // new ops next to the ones they replace).
  const std::list<std::unique_ptr<Op>>& ops() const { return ops_; }
  std::vector<Op*> live_ops() const;
  const std::vector<std::unique_ptr<Tensor>>& tensors() const { return tensors_; }

  std::vector<Tensor*> inputs;
  std::vector<Tensor*> outputs;
  FileFormat format = FileFormat::kCircle;

 private:
  std::string unique_name(const std::string& base);
  std::list<std::unique_ptr<Op>> ops_;
  std::vector<std::unique_ptr<Tensor>> tensors_;
  std::set<std::string> names_;
  int next_id_ = 0;
};

// Helpers the passes share.
bool is_graph_output(const Graph& graph, const Tensor* tensor);
int64_t numel(const std::vector<int64_t>& shape);  // -1 when a dim is dynamic
std::string shape_str(const std::vector<int64_t>& shape);
// One line per op ("CONV_2D(x_nhwc, w) -> y [1, 8, 8, 16] uint8"), for debugging.
std::string dump(const Graph& graph);
// Checks the graph is well formed (producers / users agree, ops in topological order).
void validate(const Graph& graph);

}  // namespace torch_circle::exporter
