// NEON: y[i] = table[x[i]] over bytes, 16 per step. tbl looks up 64 entries (four registers) and
// returns 0 past them; tbx leaves a lane unchanged past them, so the four 64-entry quarters chain
// on x, x - 64, x - 128, x - 192 (wrapping: lanes below a quarter land past it too).
#include <arm_neon.h>

#include <cstring>

#include "ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

inline uint8x16_t lookup16(uint8x16_t x, const uint8x16x4_t* quarters) {
  const uint8x16_t step = vdupq_n_u8(64);
  uint8x16_t r = vqtbl4q_u8(quarters[0], x);
  x = vsubq_u8(x, step);
  r = vqtbx4q_u8(r, quarters[1], x);
  x = vsubq_u8(x, step);
  r = vqtbx4q_u8(r, quarters[2], x);
  x = vsubq_u8(x, step);
  return vqtbx4q_u8(r, quarters[3], x);
}

}  // namespace

void x8_lut_neon(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table) {
  uint8x16x4_t quarters[4];
  for (int q = 0; q < 4; ++q) quarters[q] = vld1q_u8_x4(table + 64 * q);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_u8(y + i, lookup16(vld1q_u8(x + i), quarters));
  if (i < n) {  // the tail through a buffer: no access past the caller's arrays
    uint8_t buffer[16] = {};
    std::memcpy(buffer, x + i, n - i);
    vst1q_u8(buffer, lookup16(vld1q_u8(buffer), quarters));
    std::memcpy(y + i, buffer, n - i);
  }
}

}  // namespace ukernels
}  // namespace circle_quant
