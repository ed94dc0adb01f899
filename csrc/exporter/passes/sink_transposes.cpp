// After legalize_layout every NHWC op sits between two TRANSPOSEs. This pass moves transposes
// down through ops that do not care about layout (elementwise ops, quantize, concat, reductions,
// pad: each op's OpLayout in the op table) and removes pairs that cancel, so a chain of NHWC ops
// runs without transposes in between and only the model's edges keep them.
//   - TRANSPOSE(p2) of TRANSPOSE(p1)           → one TRANSPOSE (none when the two cancel)
//   - TRANSPOSE that only moves size-1 dims     → RESHAPE; RESHAPE of RESHAPE → one RESHAPE
//   - op(TRANSPOSE_p(x), ...)                   → TRANSPOSE_p(op'(x, ...)), op' with remapped axes
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <algorithm>

namespace torch_circle::exporter {
namespace {

OpLayout layout_of(const Op& op) {
  const OpInfo* info = find_op(op.type);
  return info ? info->layout : OpLayout::kFixedFrame;
}

Op* transpose_producer(const Tensor* t) {
  Op* p = t ? t->producer : nullptr;
  return p && p->type == "TRANSPOSE" ? p : nullptr;
}

// TRANSPOSE(p2) reading TRANSPOSE(p1): read p1's input with the composed permutation.
bool compose_transposes(Graph& graph, Op* t2) {
  Op* t1 = transpose_producer(t2->inputs[0]);
  if (!t1) return false;
  std::vector<int64_t> composed = permute(t1->ints("perm"), t2->ints("perm"));
  Tensor* source = t1->inputs[0];
  if (is_identity(composed) && !(is_graph_output(graph, t2->outputs[0]) &&
                                 std::find(graph.inputs.begin(), graph.inputs.end(), source) != graph.inputs.end())) {
    graph.remove_op(t2);
    graph.replace_all_uses(t2->outputs[0], source);
    return true;
  }
  graph.set_input(t2, 0, source);
  t2->attrs["perm"] = composed;
  return true;
}

// A transpose that keeps the order of every dim larger than 1 moves no data.
bool transpose_to_reshape(Op* t) {
  const Tensor* x = t->inputs[0];
  std::vector<int64_t> order;
  for (int64_t d : t->ints("perm"))
    if (x->shape[d] != 1) order.push_back(d);
  if (!std::is_sorted(order.begin(), order.end())) return false;
  if (std::count(t->outputs[0]->shape.begin(), t->outputs[0]->shape.end(), -1) > 1) return false;
  t->type = "RESHAPE";
  t->attrs = {{"shape", t->outputs[0]->shape}};
  return true;
}

bool merge_reshapes(Graph& graph, Op* r2) {
  Op* r1 = r2->inputs[0]->producer;
  if (!r1 || r1->type != "RESHAPE" || r1->dead) return false;
  graph.set_input(r2, 0, r1->inputs[0]);
  if (r2->inputs[0]->shape == r2->outputs[0]->shape && !is_graph_output(graph, r2->outputs[0])) {
    graph.remove_op(r2);
    graph.replace_all_uses(r2->outputs[0], r2->inputs[0]);
  }
  return true;
}

// A constant operand of an elementwise op, moved into the transposed op's frame: broadcast
// rank first (numpy rules align from the right), then permuted like the data.
Tensor* move_constant(Graph& graph, Tensor* c, const std::vector<int64_t>& perm) {
  if (c->data.numel() <= 1 && c->rank() <= static_cast<int64_t>(perm.size())) return c;
  at::Tensor data = c->data;
  std::vector<int64_t> shape(perm.size() - std::min(perm.size(), static_cast<size_t>(c->rank())), 1);
  shape.insert(shape.end(), c->shape.begin(), c->shape.end());
  data = data.reshape(shape).permute(inverse_perm(perm)).contiguous();
  Tensor* moved = graph.add_constant(c->name + "_permuted", data);
  moved->dtype = c->dtype;
  moved->quant = c->quant;  // per-tensor: elementwise constants carry one scale
  return moved;
}

// Rewires `op` to read the transposes' inputs and re-applies `perm` to each of its outputs.
void sink(Graph& graph, Op* op, const std::vector<int64_t>& perm, const std::vector<int64_t>& out_perm) {
  for (size_t slot = 0; slot < op->inputs.size(); ++slot) {
    Tensor* in = op->inputs[slot];
    if (!in) continue;
    if (Op* t = transpose_producer(in)) {
      graph.set_input(op, slot, t->inputs[0]);
    } else if (in->is_constant()) {
      graph.set_input(op, slot, move_constant(graph, in, perm));
    }
  }
  for (size_t k = 0; k < op->outputs.size(); ++k) {
    Tensor* out = op->outputs[k];
    Tensor* pre = graph.add_tensor(out->name + "_pre", permute(out->shape, inverse_perm(out_perm)), out->dtype);
    pre->quant = permute_quant(out->quant, inverse_perm(out_perm));
    op->outputs[k] = pre;
    pre->producer = op;
    out->producer = nullptr;
    Op* t = graph.insert_after(op, "TRANSPOSE", {pre}, {out});
    t->attrs["perm"] = out_perm;
  }
}

// The permutation every transposed input shares, when each non-constant input is transposed
// by it (and at least one is); constants must broadcast.
std::optional<std::vector<int64_t>> shared_perm(const Op& op, size_t rank) {
  std::optional<std::vector<int64_t>> perm;
  for (const Tensor* in : op.inputs) {
    if (!in) continue;
    if (Op* t = transpose_producer(in)) {
      if (perm && *perm != t->ints("perm")) return std::nullopt;
      perm = t->ints("perm");
    } else if (!in->is_constant() || static_cast<size_t>(in->rank()) > rank) {
      return std::nullopt;
    }
  }
  if (perm && perm->size() != rank) return std::nullopt;
  return perm;
}

bool try_sink(Graph& graph, Op* op) {
  if (op->outputs.empty() || op->outputs[0]->rank() == 0) return false;
  size_t rank = static_cast<size_t>(op->outputs[0]->rank());
  OpLayout layout = layout_of(*op);
  if (layout == OpLayout::kElementwise) {
    if (op->outputs.size() != 1) return false;
    // Past a model output's DEQUANTIZE a transpose would move floats instead of integers and
    // meet nothing to cancel with.
    if (op->type == "DEQUANTIZE" && is_graph_output(graph, op->outputs[0])) return false;
    auto perm = shared_perm(*op, rank);
    if (!perm) return false;
    if (op->outputs[0]->quant && op->outputs[0]->quant->per_channel()) return false;
    sink(graph, op, *perm, *perm);
    return true;
  }
  if (layout == OpLayout::kConcat) {
    auto perm = shared_perm(*op, rank);
    if (!perm) return false;
    for (const Tensor* in : op->inputs)
      if (in->is_constant()) return false;
    op->attrs["axis"] = (*perm)[op->i("axis")];
    sink(graph, op, *perm, *perm);
    return true;
  }
  if (layout == OpLayout::kPad) {
    Op* t = transpose_producer(op->inputs[0]);
    if (!t) return false;
    const std::vector<int64_t>& perm = t->ints("perm");
    std::vector<int64_t> paddings = op->ints("paddings"), moved(paddings.size());
    for (size_t i = 0; i < perm.size(); ++i) {
      moved[2 * perm[i]] = paddings[2 * i];
      moved[2 * perm[i] + 1] = paddings[2 * i + 1];
    }
    op->attrs["paddings"] = moved;
    sink(graph, op, perm, perm);
    return true;
  }
  if (layout == OpLayout::kPerDim) {
    Op* t = transpose_producer(op->inputs[0]);
    if (!t) return false;
    const std::vector<int64_t>& perm = t->ints("perm");
    for (const char* key : {"begin", "size", "multiples"}) {
      if (!op->has(key)) continue;
      std::vector<int64_t> values = op->ints(key), moved(values.size());
      for (size_t i = 0; i < perm.size(); ++i) moved[perm[i]] = values[i];
      op->attrs[key] = moved;
    }
    sink(graph, op, perm, perm);
    return true;
  }
  if (layout == OpLayout::kReduce) {
    Op* t = transpose_producer(op->inputs[0]);
    if (!t) return false;
    const std::vector<int64_t>& perm = t->ints("perm");
    std::vector<int64_t> axes = op->ints("axes"), moved;
    for (int64_t a : axes) moved.push_back(perm[a]);
    std::sort(moved.begin(), moved.end());
    op->attrs["axes"] = moved;
    if (op->i("keep_dims")) {
      sink(graph, op, perm, perm);
      return true;
    }
    // Without keep_dims the output keeps the unreduced dims: transposed order vs source order.
    std::vector<int64_t> kept_source;
    for (size_t d = 0; d < perm.size(); ++d)
      if (!std::count(moved.begin(), moved.end(), static_cast<int64_t>(d)))
        kept_source.push_back(static_cast<int64_t>(d));
    std::vector<int64_t> out_perm;
    for (size_t i = 0; i < perm.size(); ++i)
      if (!std::count(axes.begin(), axes.end(), static_cast<int64_t>(i)))
        out_perm.push_back(std::find(kept_source.begin(), kept_source.end(), perm[i]) - kept_source.begin());
    graph.set_input(op, 0, t->inputs[0]);
    if (!is_identity(out_perm)) {
      Tensor* out = op->outputs[0];
      Tensor* pre = graph.add_tensor(out->name + "_pre", permute(out->shape, inverse_perm(out_perm)), out->dtype);
      pre->quant = out->quant;
      op->outputs[0] = pre;
      pre->producer = op;
      out->producer = nullptr;
      graph.insert_after(op, "TRANSPOSE", {pre}, {out})->attrs["perm"] = out_perm;
    }
    return true;
  }
  return false;
}

}  // namespace

void sink_transposes(Graph& graph) {
  for (int round = 0; round < 64; ++round) {
    bool changed = false;
    for (Op* op : graph.live_ops()) {
      if (op->dead) continue;
      if (op->type == "TRANSPOSE") {
        if (is_identity(op->ints("perm")) && !is_graph_output(graph, op->outputs[0])) {
          graph.remove_op(op);
          graph.replace_all_uses(op->outputs[0], op->inputs[0]);
          changed = true;
        } else {
          changed |= compose_transposes(graph, op) || transpose_to_reshape(op);
        }
      } else if (op->type == "RESHAPE") {
        changed |= merge_reshapes(graph, op);
      } else {
        changed |= try_sink(graph, op);
      }
    }
    remove_dead_code(graph);
    if (!changed) break;
  }
}

}  // namespace torch_circle::exporter
