// onert 0.1.0 refuses a BATCH_MATMUL whose left operand is a constant (`w @ x` with a weight on
// the left). A @ B = (B^T @ A^T)^T over the last two dims, so the constant moves to the right:
// TRANSPOSE(B), BATCH_MATMUL(B^T, A^T), TRANSPOSE back. A^T of a constant is folded by
// fold_constants; sink_transposes cancels the others where it can.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

#include <numeric>

namespace torch_circle::exporter {
namespace {

// A constant, or a DEQUANTIZE of one (a quantized weight).
bool is_constant_operand(const Tensor* t) {
  if (t->is_constant()) return true;
  return t->producer && t->producer->type == "DEQUANTIZE" && t->producer->inputs[0]->is_constant();
}

// The permutation swapping the last two of `rank` dims.
std::vector<int64_t> swap_last_two(int64_t rank) {
  std::vector<int64_t> perm(static_cast<size_t>(rank));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[rank - 1], perm[rank - 2]);
  return perm;
}

}  // namespace

void legalize_batch_matmul(Graph& graph) {
  for (Op* op : graph.live_ops()) {
    if (op->type != "BATCH_MATMUL" || op->i("adj_x", 0) || op->i("adj_y", 0)) continue;
    Tensor* a = op->inputs[0];
    Tensor* b = op->inputs[1];
    if (!is_constant_operand(a) || is_constant_operand(b)) continue;  // all-constant ops are folded
    Tensor* out = op->outputs[0];
    Tensor* b_t = insert_transpose(graph, op, b, swap_last_two(b->rank()), "_t");
    Tensor* a_t = insert_transpose(graph, op, a, swap_last_two(a->rank()), "_t");
    Tensor* product = graph.add_tensor(out->name + "_t", permute(out->shape, swap_last_two(out->rank())), out->dtype);
    product->quant = out->quant;
    Op* matmul = graph.insert_before(op, "BATCH_MATMUL", {b_t, a_t}, {product});
    matmul->attrs = op->attrs;
    matmul->origin = op->origin;
    graph.remove_op(op);
    graph.insert_after(matmul, "TRANSPOSE", {product}, {out})->attrs["perm"] = swap_last_two(out->rank());
  }
}

}  // namespace torch_circle::exporter
