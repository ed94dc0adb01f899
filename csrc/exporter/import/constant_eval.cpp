// Nodes that depend on no model input (masks built with full / triu / arange, arithmetic on
// weights) are evaluated at export time by calling the aten op through the dispatcher, and
// become constants. This covers every aten op without an importer of its own for that case.
#include "exporter/import/constant_eval.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <fmt/format.h>

namespace torch_circle::exporter {
namespace {

// The tensor behind a node argument, when it is a constant.
const at::Tensor* constant_of(ImportContext& ctx, const FxArg& a) {
  if (a.kind != FxArg::Kind::kNode) return nullptr;
  const auto& produced = ctx.values(a.node);
  if (produced.size() != 1 || !produced[0] || !produced[0]->is_constant()) return nullptr;
  return &produced[0]->data;
}

bool all_inputs_constant(ImportContext& ctx, const FxArg& a) {
  if (a.kind == FxArg::Kind::kNode) return constant_of(ctx, a) != nullptr;
  for (const FxArg& item : a.list)
    if (!all_inputs_constant(ctx, item)) return false;
  return true;
}

// FxArg → IValue for a schema argument of type `type`.
std::optional<c10::IValue> to_ivalue(ImportContext& ctx, const FxArg& a, const c10::TypePtr& type) {
  c10::TypePtr base = type;
  if (auto opt = type->cast<c10::OptionalType>()) {
    if (a.kind == FxArg::Kind::kNone) return c10::IValue();
    base = opt->getElementType();
  }
  bool number = a.kind == FxArg::Kind::kBool || a.kind == FxArg::Kind::kInt || a.kind == FxArg::Kind::kFloat;
  if (number && base->kind() == c10::TypeKind::TensorType) {
    // A Python number where the op takes a tensor (add.Tensor(t, 1)): a wrapped number, which
    // takes part in type promotion the way PyTorch's own call does (int64 arange + 1.5 is float).
    c10::Scalar scalar = a.kind == FxArg::Kind::kFloat ? c10::Scalar(a.f)
                         : a.kind == FxArg::Kind::kInt ? c10::Scalar(a.i)
                                                       : c10::Scalar(a.b);
    at::Tensor wrapped = at::scalar_to_tensor(scalar);
    wrapped.unsafeGetTensorImpl()->set_wrapped_number(true);
    return c10::IValue(wrapped);
  }
  switch (a.kind) {
    case FxArg::Kind::kNone: return c10::IValue();
    case FxArg::Kind::kBool: return c10::IValue(a.b);
    case FxArg::Kind::kInt:
      if (base->kind() == c10::TypeKind::FloatType) return c10::IValue(static_cast<double>(a.i));
      return c10::IValue(a.i);
    case FxArg::Kind::kFloat: return c10::IValue(a.f);
    case FxArg::Kind::kDtype: return c10::IValue(static_cast<int64_t>(a.i));
    case FxArg::Kind::kString:
      if (a.s.size() > 1 && a.s.front() == '<') {  // a device / layout / memory format: use the default
        if (type->cast<c10::OptionalType>()) return c10::IValue();
        return std::nullopt;
      }
      return c10::IValue(a.s);
    case FxArg::Kind::kNode: {
      const at::Tensor* t = constant_of(ctx, a);
      if (!t) return std::nullopt;
      return c10::IValue(*t);
    }
    case FxArg::Kind::kList: {
      bool tensors = base->kind() == c10::TypeKind::ListType &&
                     base->expectRef<c10::ListType>().getElementType()->kind() == c10::TypeKind::TensorType;
      if (tensors) {
        std::vector<at::Tensor> items;
        for (const FxArg& item : a.list) {
          const at::Tensor* t = constant_of(ctx, item);
          if (!t) return std::nullopt;
          items.push_back(*t);
        }
        return c10::IValue(items);
      }
      bool floats = base->kind() == c10::TypeKind::ListType &&
                    base->expectRef<c10::ListType>().getElementType()->kind() == c10::TypeKind::FloatType;
      if (floats) {
        std::vector<double> items;
        for (const FxArg& item : a.list)
          items.push_back(item.kind == FxArg::Kind::kFloat ? item.f : static_cast<double>(item.i));
        return c10::IValue(items);
      }
      std::vector<int64_t> items;
      for (const FxArg& item : a.list) {
        if (item.kind != FxArg::Kind::kInt) return std::nullopt;
        items.push_back(item.i);
      }
      return c10::IValue(items);
    }
  }
  return std::nullopt;
}

}  // namespace

bool try_evaluate_constant(ImportContext& ctx) {
  const FxNode& node = ctx.node();
  // Quantize / dequantize of a constant marks a quantized weight: the passes need to see it.
  if (node.target.rfind("aten.", 0) != 0) return false;
  for (const FxArg& a : node.args)
    if (!all_inputs_constant(ctx, a)) return false;
  for (const auto& [key, a] : node.kwargs)
    if (!all_inputs_constant(ctx, a)) return false;
  if (node.meta.empty()) return false;

  // "aten.full.default" → aten::full, overload "" ("default" is the unnamed overload).
  std::string rest = node.target.substr(5);
  size_t dot = rest.find('.');
  std::string name = "aten::" + rest.substr(0, dot);
  std::string overload = dot == std::string::npos ? "" : rest.substr(dot + 1);
  if (overload == "default") overload = "";
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle) return false;
  const c10::FunctionSchema& schema = handle->schema();
  if (schema.is_mutable()) return false;

  torch::jit::Stack stack;
  const auto& arguments = schema.arguments();
  for (size_t i = 0; i < arguments.size(); ++i) {
    const c10::Argument& argument = arguments[i];
    const FxArg* a = i < node.args.size() ? &node.args[i] : node.kwarg(argument.name());
    if (!a) {
      if (!argument.default_value()) return false;
      stack.push_back(*argument.default_value());
      continue;
    }
    std::optional<c10::IValue> value = to_ivalue(ctx, *a, argument.type());
    if (!value) return false;
    stack.push_back(std::move(*value));
  }
  handle->callBoxed(stack);
  // One tensor, several (native_layer_norm's three) or a list of them (split): one constant each.
  std::vector<at::Tensor> results;
  for (const c10::IValue& value : stack) {
    if (value.isTensor()) {
      results.push_back(value.toTensor());
    } else if (value.isTensorList()) {
      for (const at::Tensor& t : value.toTensorVector()) results.push_back(t);
    } else {
      return false;
    }
  }
  if (results.size() != node.meta.size()) return false;
  std::vector<Tensor*> constants;
  for (size_t i = 0; i < results.size(); ++i) {
    at::Tensor result = results[i];
    if (result.scalar_type() == at::kDouble) result = result.to(at::kFloat);
    std::string name = results.size() == 1 ? node.name : fmt::format("{}_{}", node.name, i);
    constants.push_back(ctx.graph().add_constant(name, result));
  }
  ctx.bind(constants);
  return true;
}

}  // namespace torch_circle::exporter
