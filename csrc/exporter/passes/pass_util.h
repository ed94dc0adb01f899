// Small helpers the passes share: permutations, transposes, constant quantization.
#pragma once

#include "exporter/ir/circle_ops.h"
#include "exporter/ir/graph.h"

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
std::optional<QuantParams> permute_quant(const std::optional<QuantParams>& quant,
                                         const std::vector<int64_t>& perm);

// A new TRANSPOSE of `input` placed before `anchor`; returns its output.
Tensor* insert_transpose(Graph& graph, const Op* anchor, Tensor* input, const std::vector<int64_t>& perm,
                         const std::string& suffix);

// The only op reading `tensor`, when it has exactly one reader and is not a graph output.
Op* sole_user(const Graph& graph, const Tensor* tensor);

// Whether the runtime the graph targets has an integer kernel for `type` (an op type before or
// after legalization: "torch.conv2d" and "CONV_2D" alike), from the op table's kOnertInt /
// kLitertInt. onert 0.1.0 runs far fewer ops on integers than LiteRT; an op without a kernel
// stays in float between DEQUANTIZE and QUANTIZE.
bool runs_quantized(const Graph& graph, const std::string& type);

// Integer range of a quantized dtype.
std::pair<int64_t, int64_t> quant_range(DType dtype);
// round-half-even(x / scale) + zero_point, clamped, as `dtype`: the numerics spec's quantize.
at::Tensor quantize_constant(const at::Tensor& real, const QuantParams& quant, DType dtype);
at::Tensor dequantize_constant(const at::Tensor& q, const QuantParams& quant);
// Per-tensor parameters covering a float constant's range (and 0), for `dtype`; symmetric when
// the dtype's activations are (int16).
QuantParams choose_constant_quant(const at::Tensor& real, DType dtype);

}  // namespace torch_circle::exporter
