#include "exporter/ir/graph.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

namespace torch_circle::exporter {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
    case DType::kInt64: return "int64";
    case DType::kBool: return "bool";
    case DType::kInt16: return "int16";
    case DType::kInt8: return "int8";
  }
  return "?";
}

DType dtype_from_torch(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return DType::kFloat32;
    case at::kHalf: return DType::kFloat16;
    case at::kInt: return DType::kInt32;
    case at::kByte: return DType::kUInt8;
    case at::kLong: return DType::kInt64;
    case at::kBool: return DType::kBool;
    case at::kShort: return DType::kInt16;
    case at::kChar: return DType::kInt8;
    default: throw ExportError(fmt::format("dtype {} has no Circle tensor type", c10::toString(st)));
  }
}

at::ScalarType dtype_to_torch(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat16: return at::kHalf;
    case DType::kInt32: return at::kInt;
    case DType::kUInt8: return at::kByte;
    case DType::kInt64: return at::kLong;
    case DType::kBool: return at::kBool;
    case DType::kInt16: return at::kShort;
    case DType::kInt8: return at::kChar;
  }
  return at::kFloat;
}

bool is_integer(DType dtype) { return dtype != DType::kFloat32 && dtype != DType::kFloat16 && dtype != DType::kBool; }

bool QuantParams::operator==(const QuantParams& other) const {
  return scale == other.scale && zero_point == other.zero_point && (!per_channel() || axis == other.axis);
}

// --- Op attributes ----------------------------------------------------------------------------

namespace {
template <typename T>
const T& attr_as(const Op& op, const std::string& key) {
  auto it = op.attrs.find(key);
  if (it == op.attrs.end()) throw ExportError(fmt::format("{} ({}): missing attribute '{}'", op.type, op.origin, key));
  if (auto* value = std::get_if<T>(&it->second)) return *value;
  throw ExportError(fmt::format("{} ({}): attribute '{}' has the wrong kind", op.type, op.origin, key));
}
}  // namespace

int64_t Op::i(const std::string& key) const { return attr_as<int64_t>(*this, key); }
int64_t Op::i(const std::string& key, int64_t fallback) const { return has(key) ? i(key) : fallback; }
double Op::f(const std::string& key) const {
  auto it = attrs.find(key);
  if (it != attrs.end())
    if (auto* whole = std::get_if<int64_t>(&it->second)) return static_cast<double>(*whole);
  return attr_as<double>(*this, key);
}
const std::string& Op::s(const std::string& key) const { return attr_as<std::string>(*this, key); }
const std::vector<int64_t>& Op::ints(const std::string& key) const { return attr_as<std::vector<int64_t>>(*this, key); }

// --- Graph ------------------------------------------------------------------------------------

std::string Graph::unique_name(const std::string& base) {
  std::string name = base.empty() ? "t" : base;
  for (int n = 1; names_.count(name); ++n) name = fmt::format("{}_{}", base, n);
  names_.insert(name);
  return name;
}

Tensor* Graph::add_tensor(std::string name, std::vector<int64_t> shape, DType dtype) {
  auto tensor = std::make_unique<Tensor>();
  tensor->id = next_id_++;
  tensor->name = unique_name(name);
  tensor->shape = std::move(shape);
  tensor->dtype = dtype;
  tensors_.push_back(std::move(tensor));
  return tensors_.back().get();
}

Tensor* Graph::add_constant(std::string name, const at::Tensor& data) {
  at::Tensor dense = data.detach().contiguous();
  Tensor* tensor = add_tensor(std::move(name), dense.sizes().vec(), dtype_from_torch(dense.scalar_type()));
  tensor->data = dense;
  return tensor;
}

Tensor* Graph::add_tensor_like(const Tensor* like, const std::string& suffix) {
  Tensor* tensor = add_tensor(like->name + suffix, like->shape, like->dtype);
  tensor->quant = like->quant;
  return tensor;
}

namespace {
void attach(Op* op) {
  for (Tensor* input : op->inputs)
    if (input) input->users.push_back(op);
  for (Tensor* output : op->outputs) {
    if (output->producer && output->producer != op && !output->producer->dead)
      throw ExportError(
          fmt::format("{}: tensor '{}' already has a producer ({})", op->type, output->name, output->producer->type));
    output->producer = op;
  }
}

void detach_user(Tensor* tensor, const Op* op) {
  auto it = std::find(tensor->users.begin(), tensor->users.end(), op);
  if (it != tensor->users.end()) tensor->users.erase(it);
}
}  // namespace

Op* Graph::add_op(std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs, std::string origin) {
  auto op = std::make_unique<Op>();
  op->type = std::move(type);
  op->inputs = std::move(inputs);
  op->outputs = std::move(outputs);
  op->origin = std::move(origin);
  attach(op.get());
  ops_.push_back(std::move(op));
  return ops_.back().get();
}

namespace {
std::unique_ptr<Op> make_op(std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs,
                            const Op* anchor) {
  auto op = std::make_unique<Op>();
  op->type = std::move(type);
  op->inputs = std::move(inputs);
  op->outputs = std::move(outputs);
  op->origin = anchor ? anchor->origin : "";
  attach(op.get());
  return op;
}
}  // namespace

Op* Graph::insert_before(const Op* anchor, std::string type, std::vector<Tensor*> inputs,
                         std::vector<Tensor*> outputs) {
  auto pos = std::find_if(ops_.begin(), ops_.end(), [&](const auto& o) { return o.get() == anchor; });
  return ops_.insert(pos, make_op(std::move(type), std::move(inputs), std::move(outputs), anchor))->get();
}

Op* Graph::insert_after(const Op* anchor, std::string type, std::vector<Tensor*> inputs, std::vector<Tensor*> outputs) {
  auto pos = std::find_if(ops_.begin(), ops_.end(), [&](const auto& o) { return o.get() == anchor; });
  if (pos != ops_.end()) ++pos;
  return ops_.insert(pos, make_op(std::move(type), std::move(inputs), std::move(outputs), anchor))->get();
}

void Graph::set_input(Op* op, size_t slot, Tensor* tensor) {
  if (Tensor* old = op->inputs.at(slot)) detach_user(old, op);
  op->inputs[slot] = tensor;
  if (tensor) tensor->users.push_back(op);
}

void Graph::replace_all_uses(Tensor* from, Tensor* to) {
  if (from == to) return;
  std::vector<Op*> users = from->users;
  for (Op* user : users)
    for (size_t slot = 0; slot < user->inputs.size(); ++slot)
      if (user->inputs[slot] == from) set_input(user, slot, to);
  for (Tensor*& output : outputs)
    if (output == from) output = to;
}

void Graph::remove_op(Op* op) {
  if (op->dead) return;
  op->dead = true;
  for (Tensor* input : op->inputs)
    if (input) detach_user(input, op);
  for (Tensor* output : op->outputs)
    if (output->producer == op) output->producer = nullptr;
}

void Graph::compact() {
  ops_.remove_if([](const auto& op) { return op->dead; });
  std::set<const Tensor*> referenced(inputs.begin(), inputs.end());
  referenced.insert(outputs.begin(), outputs.end());
  for (const auto& op : ops_) {
    referenced.insert(op->inputs.begin(), op->inputs.end());
    referenced.insert(op->outputs.begin(), op->outputs.end());
  }
  tensors_.erase(
      std::remove_if(tensors_.begin(), tensors_.end(), [&](const auto& t) { return !referenced.count(t.get()); }),
      tensors_.end());
}

std::vector<Op*> Graph::live_ops() const {
  std::vector<Op*> live;
  for (const auto& op : ops_)
    if (!op->dead) live.push_back(op.get());
  return live;
}

bool is_graph_output(const Graph& graph, const Tensor* tensor) {
  return std::find(graph.outputs.begin(), graph.outputs.end(), tensor) != graph.outputs.end();
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    n *= d;
  }
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string dump(const Graph& graph) {
  std::string text;
  for (const Op* op : graph.live_ops()) {
    std::vector<std::string> ins;
    for (const Tensor* t : op->inputs) ins.push_back(t ? t->name : "-");
    text += fmt::format("  {}({})", op->type, fmt::join(ins, ", "));
    for (const Tensor* t : op->outputs)
      text += fmt::format(" -> {} {} {}{}", t->name, shape_str(t->shape), dtype_name(t->dtype), t->quant ? " q" : "");
    text += "\n";
  }
  return text;
}

void validate(const Graph& graph) {
  std::set<const Tensor*> available(graph.inputs.begin(), graph.inputs.end());
  for (const auto& tensor : graph.tensors())
    if (tensor->is_constant()) available.insert(tensor.get());
  for (const auto& op : graph.ops()) {
    if (op->dead) continue;
    for (const Tensor* input : op->inputs) {
      if (!input) continue;
      if (!available.count(input))
        throw ExportError(
            fmt::format("internal: {} ({}) reads '{}' before it is produced", op->type, op->origin, input->name));
      if (std::count(input->users.begin(), input->users.end(), op.get()) == 0)
        throw ExportError(fmt::format("internal: {} ({}) is not a user of '{}'", op->type, op->origin, input->name));
    }
    for (const Tensor* output : op->outputs) {
      if (output->producer != op.get())
        throw ExportError(fmt::format("internal: '{}' does not name {} as its producer", output->name, op->type));
      available.insert(output);
    }
  }
  for (const Tensor* output : graph.outputs)
    if (!available.count(output))
      throw ExportError(fmt::format("internal: graph output '{}' is never produced", output->name));
}

}  // namespace torch_circle::exporter
