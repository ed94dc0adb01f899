// Scalar reference of one quantized softmax row (docs/numerics.md, "Quantized softmax"): the
// largest byte, each element's exp read from the table of byte distances, their sum in sixteen
// running sums combined pairwise, and the probabilities. Every SIMD path gives the same bits.
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

void q8_softmax_scalar(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p) {
  if (n == 0) return;
  // Restrict copies: p's float stores could otherwise alias the table and be reloaded.
  const uint8_t* __restrict in = x;
  const float* __restrict table = exp_of_distance;
  float* __restrict out = p;
  uint8_t top = 0;
  for (size_t i = 0; i < n; ++i)
    top = static_cast<uint8_t>(in[i] ^ flip) > top ? static_cast<uint8_t>(in[i] ^ flip) : top;
  float partial[16] = {};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {  // blocks of 16: sum j is lane j, kept in registers
    for (size_t j = 0; j < 16; ++j) {
      out[i + j] = table[top - static_cast<uint8_t>(in[i + j] ^ flip)];
      partial[j] += out[i + j];
    }
  }
  for (; i < n; ++i) {
    out[i] = table[top - static_cast<uint8_t>(in[i] ^ flip)];
    partial[i % 16] += out[i];
  }
  const float inverse = 1.f / softmax_combine_partial_sums(partial);
  for (i = 0; i < n; ++i) out[i] *= inverse;
}

}  // namespace ukernels
}  // namespace circle_quant
