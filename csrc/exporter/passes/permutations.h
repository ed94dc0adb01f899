// Permutations between PyTorch's NCHW and Circle's NHWC, and the TRANSPOSEs that apply them.
#pragma once

#include "exporter/ir/graph.h"

#include <optional>
#include <string>
#include <vector>

namespace torch_circle::exporter {

// Layout permutations between PyTorch's NCHW and Circle's NHWC.
inline const std::vector<int64_t> kNchwToNhwc{0, 2, 3, 1};
inline const std::vector<int64_t> kNhwcToNchw{0, 3, 1, 2};

std::vector<int64_t> inverse_perm(const std::vector<int64_t>& perm);
// out[i] = in[perm[i]]
std::vector<int64_t> permute(const std::vector<int64_t>& values, const std::vector<int64_t>& perm);
bool is_identity(const std::vector<int64_t>& perm);
// Per-channel parameters follow their axis through a permutation.
std::optional<QuantParams> permute_quant(const std::optional<QuantParams>& quant, const std::vector<int64_t>& perm);

// A new TRANSPOSE of `input` placed before `anchor`; returns its output.
Tensor* insert_transpose(Graph& graph, const Op* anchor, Tensor* input, const std::vector<int64_t>& perm,
                         const std::string& suffix);

}  // namespace torch_circle::exporter
