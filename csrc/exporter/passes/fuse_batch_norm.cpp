// Eval-mode batch norm is an affine map per channel: y = x * a + b with
// a = gamma / sqrt(var + eps) and b = beta - mean * a. After a float convolution it folds into
// the conv's weights and bias; anywhere else it becomes a MUL and an ADD.
#include "exporter/passes/pass_util.h"
#include "exporter/passes/passes.h"

namespace torch_circle::exporter {
namespace {

std::pair<at::Tensor, at::Tensor> affine(const Op& bn) {
  const at::Tensor mean = bn.inputs[3]->data.to(at::kDouble);
  const at::Tensor var = bn.inputs[4]->data.to(at::kDouble);
  at::Tensor gamma = bn.inputs[1] ? bn.inputs[1]->data.to(at::kDouble) : at::ones_like(mean);
  at::Tensor beta = bn.inputs[2] ? bn.inputs[2]->data.to(at::kDouble) : at::zeros_like(mean);
  at::Tensor a = gamma / at::sqrt(var + bn.f("eps"));
  return {a, beta - mean * a};
}

// The conv producing `x`, when its weights are float constants only this conv reads.
Op* foldable_conv(const Graph& graph, const Tensor* x) {
  Op* conv = x->producer;
  if (!conv || conv->type != "torch.conv2d" || !sole_user(graph, x)) return nullptr;
  const Tensor* weight = conv->inputs[1];
  const Tensor* bias = conv->inputs.size() > 2 ? conv->inputs[2] : nullptr;
  if (!weight->is_constant() || weight->dtype != DType::kFloat32 || weight->users.size() != 1) return nullptr;
  if (bias && (!bias->is_constant() || bias->users.size() != 1)) return nullptr;
  return conv;
}

}  // namespace

void fuse_batch_norm(Graph& graph) {
  for (Op* bn : graph.live_ops()) {
    if (bn->type != "torch.batch_norm") continue;
    Tensor* x = bn->inputs[0];
    Tensor* y = bn->outputs[0];
    auto [a, b] = affine(*bn);
    if (Op* conv = foldable_conv(graph, x)) {
      Tensor* weight = conv->inputs[1];
      at::Tensor w = weight->data.to(at::kDouble) * a.reshape({-1, 1, 1, 1});
      Tensor* bias = conv->inputs.size() > 2 ? conv->inputs[2] : nullptr;
      at::Tensor old_bias = bias ? bias->data.to(at::kDouble) : at::zeros_like(a);
      graph.set_input(conv, 1, graph.add_constant(weight->name + "_bn", w.to(at::kFloat)));
      if (conv->inputs.size() < 3) conv->inputs.resize(3, nullptr);
      graph.set_input(conv, 2,
                      graph.add_constant(conv->outputs[0]->name + "_bias_bn", (old_bias * a + b).to(at::kFloat)));
      graph.remove_op(bn);
      graph.replace_all_uses(y, x);
      x->name = y->name;  // keep the user-visible name of the block's output
      continue;
    }
    // Broadcast over dim 1 of an N-D input: shape [C, 1, ..., 1].
    std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(x->rank() - 1, 1)), 1);
    shape[0] = a.numel();
    Tensor* scaled = graph.add_tensor(y->name + "_scaled", x->shape, x->dtype);
    graph.insert_before(bn, "MUL", {x, graph.add_constant(y->name + "_scale", a.to(at::kFloat).reshape(shape))},
                        {scaled});
    graph.remove_op(bn);
    graph.insert_before(bn, "ADD", {scaled, graph.add_constant(y->name + "_shift", b.to(at::kFloat).reshape(shape))},
                        {y});
  }
  graph.compact();
}

}  // namespace torch_circle::exporter
