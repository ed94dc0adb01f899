// The FX graph walker: turns the handed-over FX nodes into the exporter's IR, one importer
// function per op target. Importers emit Circle ops with PyTorch semantics (NCHW, OIHW weights);
// passes legalize them afterwards.
#pragma once

#include "exporter/import/fx_graph.h"
#include "exporter/ir/graph.h"

#include <functional>
#include <string>
#include <vector>

namespace torch_circle::exporter {

class ImportContext {
 public:
  ImportContext(Graph& graph, const FxGraph& fx) : graph_(graph), fx_(fx) {}

  Graph& graph() { return graph_; }
  const FxNode& node() const { return *node_; }
  std::string origin() const;  // "node conv2d_3 (aten.conv2d.default) at model.py:12"

  // Arguments of the current node, positional index or keyword, with defaults.
  const FxArg* arg(size_t index, const char* keyword) const;
  bool has_arg(size_t index, const char* keyword) const;
  Tensor* tensor(size_t index, const char* keyword);          // a node argument; throws if absent
  Tensor* tensor_or_null(size_t index, const char* keyword);  // None → nullptr
  int64_t int_arg(size_t index, const char* keyword, std::optional<int64_t> fallback = {}) const;
  double float_arg(size_t index, const char* keyword, std::optional<double> fallback = {}) const;
  bool bool_arg(size_t index, const char* keyword, std::optional<bool> fallback = {}) const;
  std::vector<int64_t> ints_arg(size_t index, const char* keyword,
                                std::optional<std::vector<int64_t>> fallback = {}) const;
  at::ScalarType dtype_arg(size_t index, const char* keyword, std::optional<at::ScalarType> fallback = {}) const;
  // A tensor argument, or a Python number turned into a rank-0 constant of `scalar_dtype`.
  Tensor* tensor_or_scalar(size_t index, const char* keyword, DType scalar_dtype = DType::kFloat32);

  // The node's output tensor(s), shaped from its FX metadata (`shape_from` when it has none),
  // bound as what the node produces.
  Tensor* output(size_t index = 0);
  Tensor* output_like(const Tensor* shape_from, DType dtype);
  // A tensor in the middle of a decomposition.
  Tensor* temp(const std::vector<int64_t>& shape, DType dtype, const std::string& suffix);
  Tensor* constant(const at::Tensor& value, const std::string& suffix);

  // `t` * factor (MUL by a float constant); `t` itself when factor is 1.
  Tensor* times(Tensor* t, double factor, const std::string& suffix);
  // RESHAPE of `x` to `shape` into `out` (a new tensor named after the node when null).
  Tensor* reshape(Tensor* x, const std::vector<int64_t>& shape, const std::string& suffix, Tensor* out = nullptr);
  // TRANSPOSE of `x` by `perm` (out[i] = x's dim perm[i]) into `out` (a new tensor when null).
  Tensor* transpose(Tensor* x, const std::vector<int64_t>& perm, const std::string& suffix, Tensor* out = nullptr);

  // Adds an op tagged with the current node as its origin.
  Op* emit(std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs);
  // The current node produces `tensor` instead (identity-like nodes, decompositions).
  void alias(Tensor* tensor, size_t index = 0);
  void bind(std::vector<Tensor*> outputs);  // node outputs, for multi-output nodes

  [[noreturn]] void fail(const std::string& message) const;

  // Used by the walker.
  void begin(size_t node_index);
  std::vector<Tensor*>& values(size_t node_index) { return values_.at(node_index); }
  void resize(size_t nodes) { values_.resize(nodes); }

 private:
  const FxArg& require(size_t index, const char* keyword) const;
  // The argument if given (not None); nullptr when absent and the caller has a fallback.
  const FxArg* given(size_t index, const char* keyword, bool has_fallback) const;
  Tensor* node_tensor(const FxArg& arg);

  Graph& graph_;
  const FxGraph& fx_;
  const FxNode* node_ = nullptr;
  size_t node_index_ = 0;
  std::vector<std::vector<Tensor*>> values_;  // the IR tensors each FX node produced
};

using ImportFn = std::function<void(ImportContext&)>;

// Importers register themselves by target name ("aten.relu.default").
struct ImportRegistration {
  ImportRegistration(std::initializer_list<const char*> targets, ImportFn fn);
};
const ImportFn* find_importer(const std::string& target);

// Builds the IR for `fx`. Throws one ExportError listing every node it cannot import.
void import_fx_graph(const FxGraph& fx, Graph& graph);

}  // namespace torch_circle::exporter

#define TORCH_CIRCLE_CONCAT_INNER(a, b) a##b
#define TORCH_CIRCLE_CONCAT(a, b) TORCH_CIRCLE_CONCAT_INNER(a, b)
// IMPORT_OP({"aten.relu.default"}, [](ImportContext& ctx) { ... });
// __COUNTER__, not __LINE__: unique when files are compiled together (unity build).
#define IMPORT_OP(...) \
  static ::torch_circle::exporter::ImportRegistration TORCH_CIRCLE_CONCAT(import_reg_, __COUNTER__)(__VA_ARGS__)
