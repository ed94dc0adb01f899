// Scalar reference: y[i] = table[x[i]] over bytes, the kernel every other x8-lut path must equal.
#include "ukernels.h"

namespace circle_quant {
namespace ukernels {

void x8_lut_scalar(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table) {
  // Local restrict copies: a byte store may alias anything, so the table and pointers would
  // otherwise be reloaded from memory on every element.
  const uint8_t* __restrict in = x;
  uint8_t* __restrict out = y;
  const uint8_t* __restrict entries = table;
  for (size_t i = 0; i < n; ++i) out[i] = entries[in[i]];
}

}  // namespace ukernels
}  // namespace circle_quant
