#include "exporter/passes/permutations.h"

namespace torch_circle::exporter {

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[perm[i]] = static_cast<int64_t>(i);
  return inverse;
}

std::vector<int64_t> permute(const std::vector<int64_t>& values, const std::vector<int64_t>& perm) {
  std::vector<int64_t> out(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) out[i] = values.at(perm[i]);
  return out;
}

bool is_identity(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

std::optional<QuantParams> permute_quant(const std::optional<QuantParams>& quant, const std::vector<int64_t>& perm) {
  if (!quant || !quant->per_channel()) return quant;
  QuantParams moved = *quant;
  moved.axis = static_cast<int32_t>(inverse_perm(perm).at(quant->axis));
  return moved;
}

Tensor* insert_transpose(Graph& graph, const Op* anchor, Tensor* input, const std::vector<int64_t>& perm,
                         const std::string& suffix) {
  Tensor* out = graph.add_tensor(input->name + suffix, permute(input->shape, perm), input->dtype);
  out->quant = permute_quant(input->quant, perm);
  Op* op = graph.insert_before(anchor, "TRANSPOSE", {input}, {out});
  op->attrs["perm"] = perm;
  return out;
}

}  // namespace torch_circle::exporter
