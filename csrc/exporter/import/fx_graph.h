// What Python hands the exporter: an FX graph copied node by node into plain C++ values, so the
// walker and the GoogleTest suites need no Python. Targets are spelled as str(node.target) prints
// them ("aten.conv2d.default", "quantized_decomposed.quantize_per_tensor.default").
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch_circle::exporter {

// One argument of an FX node: a Python value or a reference to an earlier node's output.
struct FxArg {
  enum class Kind { kNone, kBool, kInt, kFloat, kString, kDtype, kNode, kList };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;  // kInt; kDtype holds an at::ScalarType
  double f = 0.0;
  std::string s;
  int node = -1;  // kNode: index into FxGraph::nodes (getitem nodes pick one output of another)
  std::vector<FxArg> list;

  static FxArg none() { return {}; }
  static FxArg of_bool(bool v) {
    FxArg a;
    a.kind = Kind::kBool;
    a.b = v;
    return a;
  }
  static FxArg of_int(int64_t v) {
    FxArg a;
    a.kind = Kind::kInt;
    a.i = v;
    return a;
  }
  static FxArg of_float(double v) {
    FxArg a;
    a.kind = Kind::kFloat;
    a.f = v;
    return a;
  }
  static FxArg of_string(std::string v) {
    FxArg a;
    a.kind = Kind::kString;
    a.s = std::move(v);
    return a;
  }
  static FxArg of_dtype(at::ScalarType v) {
    FxArg a;
    a.kind = Kind::kDtype;
    a.i = static_cast<int64_t>(v);
    return a;
  }
  static FxArg of_node(int index) {
    FxArg a;
    a.kind = Kind::kNode;
    a.node = index;
    return a;
  }
  static FxArg of_list(std::vector<FxArg> v) {
    FxArg a;
    a.kind = Kind::kList;
    a.list = std::move(v);
    return a;
  }
};

// Shape and dtype of one output, from node.meta["val"]; dims that are symbolic are -1.
struct FxTensorMeta {
  std::vector<int64_t> shape;
  at::ScalarType dtype = at::kFloat;
};

struct FxNode {
  std::string name;
  std::string op;      // "placeholder", "get_attr", "call_function", "output"
  std::string target;  // call_function: the op's name ("getitem" for operator.getitem)
  std::vector<FxArg> args;
  std::map<std::string, FxArg> kwargs;
  std::vector<FxTensorMeta> meta;  // one per tensor output (empty for non-tensor values)
  at::Tensor constant;             // get_attr: the tensor it reads
  std::string source;              // "model.py:42 in forward: return self.fc(x)" when known
  bool baked = false;              // placeholder: a number or None torch.export specialized the graph on; not an input

  const FxArg* kwarg(const std::string& key) const {
    auto it = kwargs.find(key);
    return it == kwargs.end() ? nullptr : &it->second;
  }
};

struct FxGraph {
  std::vector<FxNode> nodes;
};

}  // namespace torch_circle::exporter
