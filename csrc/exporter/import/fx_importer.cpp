#include "exporter/import/fx_importer.h"

#include "exporter/import/constant_eval.h"

#include <fmt/format.h>

#include <map>

namespace torch_circle::exporter {

namespace {
std::map<std::string, ImportFn>& registry() {
  static std::map<std::string, ImportFn> importers;
  return importers;
}

// Nodes that carry no computation in an exported graph.
bool is_ignored(const FxNode& node) {
  return (node.op == "call_module" && node.target.rfind("_guards", 0) == 0) ||  // torch.export's guard check
         node.target.rfind("aten._assert", 0) == 0 || node.target == "aten.sym_constrain_range_for_size.default";
}
}  // namespace

ImportRegistration::ImportRegistration(std::initializer_list<const char*> targets, ImportFn fn) {
  for (const char* target : targets) registry()[target] = fn;
}

const ImportFn* find_importer(const std::string& target) {
  auto it = registry().find(target);
  return it == registry().end() ? nullptr : &it->second;
}

namespace {
// "aten.relu_.default" → "aten.relu.default": the out-of-place op of an in-place one, if any.
std::string out_of_place(const std::string& target) {
  size_t first = target.find('.'), second = target.find('.', first + 1);
  if (first == std::string::npos || second == std::string::npos || target[second - 1] != '_' ||
      target[second - 2] == '_')
    return "";
  return target.substr(0, second - 1) + target.substr(second);
}

bool reads_node(const FxArg& a, int node) {
  if (a.kind == FxArg::Kind::kNode) return a.node == node;
  for (const FxArg& item : a.list)
    if (reads_node(item, node)) return true;
  return false;
}

// Whether a node after `index` reads node `node`.
bool read_after(const FxGraph& fx, int node, size_t index) {
  for (size_t later = index + 1; later < fx.nodes.size(); ++later) {
    for (const FxArg& a : fx.nodes[later].args)
      if (reads_node(a, node)) return true;
    for (const auto& kv : fx.nodes[later].kwargs)
      if (reads_node(kv.second, node)) return true;
  }
  return false;
}

// An in-place op is its out-of-place twin when nothing after it reads the tensor it mutated.
bool mutated_input_read_later(const FxGraph& fx, size_t index) {
  const FxNode& node = fx.nodes[index];
  if (node.args.empty() || node.args[0].kind != FxArg::Kind::kNode) return false;
  return read_after(fx, node.args[0].node, index);
}
}  // namespace

// --- ImportContext ----------------------------------------------------------------------------

std::string ImportContext::origin() const {
  std::string text = fmt::format("node '{}' ({})", node_->name, node_->target);
  if (!node_->source.empty()) text += " at " + node_->source;
  return text;
}

void ImportContext::fail(const std::string& message) const {
  throw ExportError(fmt::format("{}: {}", origin(), message));
}

void ImportContext::begin(size_t node_index) {
  node_index_ = node_index;
  node_ = &fx_.nodes.at(node_index);
}

const FxArg* ImportContext::arg(size_t index, const char* keyword) const {
  if (index < node_->args.size()) return &node_->args[index];
  if (keyword) return node_->kwarg(keyword);
  return nullptr;
}

bool ImportContext::has_arg(size_t index, const char* keyword) const {
  const FxArg* a = arg(index, keyword);
  return a && a->kind != FxArg::Kind::kNone;
}

const FxArg& ImportContext::require(size_t index, const char* keyword) const {
  const FxArg* a = arg(index, keyword);
  if (!a) fail(fmt::format("argument {} ('{}') is missing", index, keyword ? keyword : "?"));
  return *a;
}

const FxArg* ImportContext::given(size_t index, const char* keyword, bool has_fallback) const {
  const FxArg* a = arg(index, keyword);
  if (a && a->kind != FxArg::Kind::kNone) return a;
  if (has_fallback) return nullptr;
  return &require(index, keyword);  // a None where a value is required fails in the caller's check
}

Tensor* ImportContext::node_tensor(const FxArg& a) {
  if (a.node < 0 || static_cast<size_t>(a.node) >= node_index_)
    fail(fmt::format("refers to node #{} that is not before it", a.node));
  const auto& produced = values_[a.node];
  if (produced.size() != 1 || !produced[0])
    fail(fmt::format("argument '{}' is not a single tensor", fx_.nodes[a.node].name));
  return produced[0];
}

Tensor* ImportContext::tensor(size_t index, const char* keyword) {
  const FxArg& a = require(index, keyword);
  if (a.kind != FxArg::Kind::kNode) fail(fmt::format("argument '{}' must be a tensor", keyword));
  return node_tensor(a);
}

Tensor* ImportContext::tensor_or_null(size_t index, const char* keyword) {
  const FxArg* a = arg(index, keyword);
  if (!a || a->kind == FxArg::Kind::kNone) return nullptr;
  return tensor(index, keyword);
}

Tensor* ImportContext::tensor_or_scalar(size_t index, const char* keyword, DType scalar_dtype) {
  const FxArg& a = require(index, keyword);
  switch (a.kind) {
    case FxArg::Kind::kNode: return node_tensor(a);
    case FxArg::Kind::kInt:
    case FxArg::Kind::kFloat:
    case FxArg::Kind::kBool: {
      double value = a.kind == FxArg::Kind::kFloat ? a.f : a.kind == FxArg::Kind::kInt ? a.i : a.b;
      return constant(at::scalar_tensor(value, dtype_to_torch(scalar_dtype)), "scalar");
    }
    default: fail(fmt::format("argument '{}' must be a tensor or a number", keyword));
  }
}

int64_t ImportContext::int_arg(size_t index, const char* keyword, std::optional<int64_t> fallback) const {
  const FxArg* a = given(index, keyword, fallback.has_value());
  if (!a) return *fallback;
  if (a->kind == FxArg::Kind::kInt) return a->i;
  if (a->kind == FxArg::Kind::kBool) return a->b;
  if (a->kind == FxArg::Kind::kNode)
    fail(
        fmt::format("argument '{}' is computed at run time (a symbolic size); only constant "
                    "values are supported here",
                    keyword));
  fail(fmt::format("argument '{}' must be an integer", keyword));
}

double ImportContext::float_arg(size_t index, const char* keyword, std::optional<double> fallback) const {
  const FxArg* a = given(index, keyword, fallback.has_value());
  if (!a) return *fallback;
  if (a->kind == FxArg::Kind::kFloat) return a->f;
  if (a->kind == FxArg::Kind::kInt) return static_cast<double>(a->i);
  fail(fmt::format("argument '{}' must be a number", keyword));
}

bool ImportContext::bool_arg(size_t index, const char* keyword, std::optional<bool> fallback) const {
  const FxArg* a = given(index, keyword, fallback.has_value());
  if (!a) return *fallback;
  if (a->kind == FxArg::Kind::kBool) return a->b;
  if (a->kind == FxArg::Kind::kInt) return a->i != 0;
  fail(fmt::format("argument '{}' must be a bool", keyword));
}

std::vector<int64_t> ImportContext::ints_arg(size_t index, const char* keyword,
                                             std::optional<std::vector<int64_t>> fallback) const {
  const FxArg* a = given(index, keyword, fallback.has_value());
  if (!a) return *fallback;
  if (a->kind == FxArg::Kind::kInt) return {a->i};
  if (a->kind != FxArg::Kind::kList) fail(fmt::format("argument '{}' must be a list of integers", keyword));
  std::vector<int64_t> values;
  for (const FxArg& item : a->list) {
    if (item.kind == FxArg::Kind::kInt) {
      values.push_back(item.i);
    } else if (item.kind == FxArg::Kind::kNode) {
      values.push_back(-1);  // a symbolic size: callers that cannot take -1 check for it
    } else {
      fail(fmt::format("argument '{}' must be a list of integers", keyword));
    }
  }
  return values;
}

at::ScalarType ImportContext::dtype_arg(size_t index, const char* keyword,
                                        std::optional<at::ScalarType> fallback) const {
  const FxArg* a = given(index, keyword, fallback.has_value());
  if (!a) return *fallback;
  if (a->kind != FxArg::Kind::kDtype) fail(fmt::format("argument '{}' must be a dtype", keyword));
  return static_cast<at::ScalarType>(a->i);
}

Tensor* ImportContext::output(size_t index) {
  if (index >= node_->meta.size())
    fail("has no shape metadata (node.meta['val']); run the graph through torch.export first");
  const FxTensorMeta& meta = node_->meta[index];
  DType dtype;
  try {
    dtype = dtype_from_torch(meta.dtype);
  } catch (const ExportError& e) {
    fail(e.what());
  }
  std::string name = node_->meta.size() == 1 ? node_->name : fmt::format("{}_{}", node_->name, index);
  Tensor* out = graph_.add_tensor(name, meta.shape, dtype);
  alias(out, index);
  return out;
}

Tensor* ImportContext::output_like(const Tensor* shape_from, DType dtype) {
  if (!node_->meta.empty()) {
    Tensor* out = output(0);
    out->dtype = dtype;
    return out;
  }
  Tensor* out = graph_.add_tensor(node_->name, shape_from->shape, dtype);
  alias(out);
  return out;
}

Tensor* ImportContext::temp(const std::vector<int64_t>& shape, DType dtype, const std::string& suffix) {
  return graph_.add_tensor(node_->name + "_" + suffix, shape, dtype);
}

Tensor* ImportContext::constant(const at::Tensor& value, const std::string& suffix) {
  return graph_.add_constant(node_->name + "_" + suffix, value);
}

Op* ImportContext::emit(std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs) {
  return graph_.add_op(std::move(type), std::move(inputs), std::move(outputs), origin());
}

Tensor* ImportContext::times(Tensor* t, double factor, const std::string& suffix) {
  if (factor == 1.0) return t;
  Tensor* result = temp(t->shape, t->dtype, suffix);
  emit("MUL", {t, constant(at::scalar_tensor(factor, at::kFloat), suffix)}, {result});
  return result;
}

Tensor* ImportContext::reshape(Tensor* x, const std::vector<int64_t>& shape, const std::string& suffix, Tensor* out) {
  if (!out) {
    out = temp(shape, x->dtype, suffix);
    out->quant = x->quant;
  }
  emit("RESHAPE", {x}, {out})->attrs["shape"] = shape;
  return out;
}

Tensor* ImportContext::transpose(Tensor* x, const std::vector<int64_t>& perm, const std::string& suffix, Tensor* out) {
  if (!out) {
    std::vector<int64_t> shape(perm.size());
    for (size_t i = 0; i < perm.size(); ++i) shape[i] = x->shape.at(static_cast<size_t>(perm[i]));
    out = temp(shape, x->dtype, suffix);
    out->quant = x->quant;
  }
  emit("TRANSPOSE", {x}, {out})->attrs["perm"] = perm;
  return out;
}

void ImportContext::alias(Tensor* tensor, size_t index) {
  auto& produced = values_[node_index_];
  if (produced.size() <= index) produced.resize(index + 1, nullptr);
  produced[index] = tensor;
}

void ImportContext::bind(std::vector<Tensor*> outputs) { values_[node_index_] = std::move(outputs); }

// --- the walker -------------------------------------------------------------------------------

void import_fx_graph(const FxGraph& fx, Graph& graph) {
  ImportContext ctx(graph, fx);
  ctx.resize(fx.nodes.size());
  std::vector<std::string> unsupported;
  std::vector<std::string> broken;
  bool saw_output = false;

  for (size_t index = 0; index < fx.nodes.size(); ++index) {
    const FxNode& node = fx.nodes[index];
    ctx.begin(index);
    if (node.op == "placeholder") {
      if (node.baked) continue;  // its value is already in the graph; readers get the literal
      if (node.meta.size() != 1) ctx.fail("graph input without tensor metadata");
      Tensor* input = ctx.output(0);
      graph.inputs.push_back(input);
      ctx.alias(input);
    } else if (node.op == "get_attr") {
      if (!node.constant.defined()) continue;  // a submodule or non-tensor attribute
      if (!node.constant.device().is_cpu())    // a meta tensor has no values to write
        ctx.fail(
            fmt::format("constant is on device '{}'; the exporter writes the weights' values, "
                        "so move the model to the CPU first (model.to('cpu'))",
                        node.constant.device().str()));
      ctx.alias(graph.add_constant(node.name, node.constant));
    } else if (node.op == "output") {
      saw_output = true;
      const FxArg* results = ctx.arg(0, nullptr);
      std::vector<const FxArg*> items;
      if (results && results->kind == FxArg::Kind::kList) {
        for (const FxArg& item : results->list) items.push_back(&item);
      } else if (results) {
        items.push_back(results);
      }
      for (const FxArg* item : items) {
        if (item->kind == FxArg::Kind::kNone) continue;  // a None output: nothing to compute or write
        if (item->kind == FxArg::Kind::kInt || item->kind == FxArg::Kind::kFloat || item->kind == FxArg::Kind::kBool) {
          // A number known at export time (`x.shape[0]` of a static dim): a constant scalar
          // output, int64 / float32 / bool as PyTorch would hold the number in a tensor.
          at::Tensor value = item->kind == FxArg::Kind::kInt     ? at::scalar_tensor(item->i, at::kLong)
                             : item->kind == FxArg::Kind::kFloat ? at::scalar_tensor(item->f, at::kFloat)
                                                                 : at::scalar_tensor(item->b, at::kBool);
          graph.outputs.push_back(graph.add_constant(fmt::format("output_{}", graph.outputs.size()), value));
          continue;
        }
        if (item->kind != FxArg::Kind::kNode)
          throw ExportError("the model returns a value that is neither a tensor nor a number; return tensors only");
        const auto& produced = ctx.values(item->node);
        if (produced.size() != 1 || !produced[0]) {
          if (!unsupported.empty() || !broken.empty()) continue;  // reported below
          throw ExportError(fmt::format("graph output '{}' is not a single tensor", fx.nodes[item->node].name));
        }
        graph.outputs.push_back(produced[0]);
      }
    } else if (is_ignored(node)) {
      continue;
    } else if (node.target == "getitem" && !read_after(fx, static_cast<int>(index), index)) {
      continue;  // an output nobody reads (native_layer_norm's mean): it need not be exported
    } else if (node.op == "call_function") {
      const ImportFn* importer = find_importer(node.target);
      if (!importer && !out_of_place(node.target).empty()) {
        importer = find_importer(out_of_place(node.target));
        if (importer && mutated_input_read_later(fx, index)) {
          broken.push_back(ctx.origin() +
                           ": an in-place op whose input is read again afterwards; "
                           "export a model without in-place ops on shared tensors");
          continue;
        }
      }
      // A node whose inputs failed to import is not imported (its own error would only repeat),
      // but an unsupported op is listed wherever it sits.
      bool inputs_ok = true;
      std::function<void(const FxArg&)> check = [&](const FxArg& a) {
        if (a.kind == FxArg::Kind::kNode && ctx.values(a.node).empty() && fx.nodes[a.node].op == "call_function" &&
            !is_ignored(fx.nodes[a.node]))
          inputs_ok = false;
        for (const FxArg& item : a.list) check(item);
      };
      for (const FxArg& a : node.args) check(a);
      for (const auto& kv : node.kwargs) check(kv.second);
      if (!inputs_ok) {
        if (!importer) unsupported.push_back(ctx.origin());
        continue;
      }
      try {
        if (try_evaluate_constant(ctx)) continue;
        if (!importer) {
          unsupported.push_back(ctx.origin());
          continue;
        }
        (*importer)(ctx);
      } catch (const ExportError& e) {
        broken.push_back(e.what());
      } catch (const c10::Error& e) {
        broken.push_back(fmt::format("{}: {}", ctx.origin(), e.what_without_backtrace()));
      }
    } else {
      throw ExportError(fmt::format("node '{}': FX op kind '{}' is not supported", node.name, node.op));
    }
  }

  if (!unsupported.empty() || !broken.empty()) {
    std::string message;
    if (!unsupported.empty()) {
      message += fmt::format("{} node(s) use ops the Circle exporter does not support:", unsupported.size());
      for (const auto& line : unsupported) message += "\n  - " + line;
    }
    if (!broken.empty()) {
      if (!message.empty()) message += "\n";
      message += fmt::format("{} node(s) could not be exported:", broken.size());
      for (const auto& line : broken) message += "\n  - " + line;
    }
    throw ExportError(message);
  }
  if (!saw_output) throw ExportError("the graph has no output node");
}

}  // namespace torch_circle::exporter
