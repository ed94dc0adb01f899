// Elementwise microkernel declarations. One file per kernel family and ISA, named
// <input>-<operation>-<isa>.cpp (f32-quantize, q-dequantize, ...; docs/contributing-kernels.md),
// each listed in registry.cpp; the quantize / dequantize ones are templates over the quantized type Q. The scalar
// kernels are the reference every other path is tested against, bit for bit.
//
// Kernels handle any n (including 0) and unaligned pointers. They are single-threaded; the
// PyTorch layer splits work across threads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../observe.h"
#include "../quantize.h"

namespace circle_quant {
namespace ukernels {

#define CIRCLE_QUANT_DECLARE_ISA(isa)                                                                                  \
  template <typename Q>                                                                                                \
  bool f32_quantize_##isa(const float* x, Q* y, size_t n, const QuantizeParams& p);                                    \
  template <typename Q>                                                                                                \
  bool f32_quantize_channelwise_##isa(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point, \
                                      float qmin, float qmax);                                                         \
  template <typename Q>                                                                                                \
  void q_dequantize_##isa(const Q* x, float* y, size_t n, const DequantizeParams& p);                                  \
  template <typename Q>                                                                                                \
  void q_dequantize_channelwise_##isa(const Q* x, float* y, size_t n, const float* scale, const float* zero_point);    \
  bool f32_fake_quantize_##isa(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p,             \
                               float scale);                                                                           \
  bool f32_fake_quantize_channelwise_##isa(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,  \
                                           const float* zero_point, const float* scale, float qmin, float qmax);       \
  MinMax f32_minmax_##isa(const float* x, size_t n);                                                                   \
  /* Adds 1 to counts[bin(x[i])] for every x[i] in [lo, hi] (histc's binning, see */                                   \
  /* docs/numerics.md). counts has `bins` entries. Returns the number of NaNs seen. */                                 \
  size_t f32_histogram_##isa(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts);

CIRCLE_QUANT_DECLARE_ISA(scalar)
#if defined(__x86_64__)
CIRCLE_QUANT_DECLARE_ISA(avx2)
CIRCLE_QUANT_DECLARE_ISA(avx512)
#endif

#undef CIRCLE_QUANT_DECLARE_ISA

// x8-lut-<isa>: y[i] = table[x[i]] for n bytes, table 256 entries indexed by the raw byte (int8
// callers rotate theirs by 128). Any n, unaligned pointers, y may equal x.
void x8_lut_scalar(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);
#if defined(__x86_64__)
void x8_lut_avx2(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);
void x8_lut_avx512(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);
#endif
#if defined(__aarch64__)
void x8_lut_neon(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);
#endif

// q8-softmax-<isa>: one softmax row of n 8-bit values (docs/numerics.md, "Quantized softmax"):
// p[i] = e[i] / Σ e with e[i] = exp_of_distance[max - x[i]] over the bytes x ^ flip (flip 0x80
// reads int8 as order-preserving uint8). The sum is sixteen running sums (element i into sum
// i % 16, in row order) combined by softmax_combine_partial_sums().
void q8_softmax_scalar(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p);
#if defined(__x86_64__)
void q8_softmax_avx2(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p);
void q8_softmax_avx512(const uint8_t* x, size_t n, uint8_t flip, const float* exp_of_distance, float* p);
#endif
// ((S0 + S1) + (S2 + S3)) + ... : pairwise, neighbours first, four levels.
inline float softmax_combine_partial_sums(const float* s) {
  const float a0 = s[0] + s[1], a1 = s[2] + s[3], a2 = s[4] + s[5], a3 = s[6] + s[7];
  const float a4 = s[8] + s[9], a5 = s[10] + s[11], a6 = s[12] + s[13], a7 = s[14] + s[15];
  return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}

// Every quantized type the kernels are instantiated for. Keep in step with the explicit
// instantiations at the end of each kernel file (CIRCLE_QUANT_FOR_EACH_QTYPE).
#define CIRCLE_QUANT_FOR_EACH_QTYPE(M) M(uint8_t) M(int8_t) M(uint16_t) M(int16_t) M(int32_t)

}  // namespace ukernels
}  // namespace circle_quant
