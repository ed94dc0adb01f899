// Routes every kernel family to the microkernel of the active ISA (isa.h).
#include "quantize.h"

#include <cmath>
#include <limits>

#include "isa.h"
#include "observe.h"
#include "ukernels/ukernels.h"

namespace circle_quant {

namespace {

// The float nearest to v on the inside of the range: int32 bounds past 2^24 are not all floats,
// and rounding them outward would let results leave [quant_min, quant_max] (or, for 2^31 - 1,
// overflow the conversion).
float float_at_or_above(int64_t v) {
  const float f = static_cast<float>(v);
  return static_cast<double>(f) < static_cast<double>(v) ? std::nextafter(f, INFINITY) : f;
}
float float_at_or_below(int64_t v) {
  const float f = static_cast<float>(v);
  return static_cast<double>(f) > static_cast<double>(v) ? std::nextafter(f, -INFINITY) : f;
}

}  // namespace

QuantizeParams make_quantize_params(double scale, int64_t zero_point, int64_t qmin, int64_t qmax) {
  QuantizeParams p;
  // Round the reciprocal once, from double: equal to float(1)/float(scale) whenever scale is a
  // float32 value (double rounding is innocuous for division), and to quantized_decomposed's
  // `1.0 / scale` for any double scale.
  p.inv_scale = static_cast<float>(1.0 / scale);
  p.zero_point = static_cast<float>(zero_point);
  p.qmin = float_at_or_above(qmin);
  p.qmax = float_at_or_below(qmax);
  return p;
}

#if defined(__x86_64__)
#define CIRCLE_QUANT_X86_CASES(name, ...)                                  \
  case Isa::kAvx512: return ukernels::name##_avx512(__VA_ARGS__);          \
  case Isa::kAvx2: return ukernels::name##_avx2(__VA_ARGS__);
#else
#define CIRCLE_QUANT_X86_CASES(name, ...)
#endif

// The elementwise families have scalar, avx2 and avx512 variants; other levels use the one below
// (isa.h).
Isa elementwise_isa(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni: return Isa::kAvx512;
    case Isa::kAvxVnni: return Isa::kAvx2;
    case Isa::kNeon:
    case Isa::kNeonDot: return Isa::kScalar;
    default: return isa;
  }
}

// Calls the microkernel family `name` for the active ISA.
#define CIRCLE_QUANT_DISPATCH(name, ...)                                   \
  switch (elementwise_isa(active_isa())) {                                                  \
    CIRCLE_QUANT_X86_CASES(name, __VA_ARGS__)                              \
    default: return ukernels::name##_scalar(__VA_ARGS__);                  \
  }

template <typename Q>
bool quantize(const float* x, Q* y, size_t n, const QuantizeParams& p) {
  CIRCLE_QUANT_DISPATCH(f32_quantize, x, y, n, p)
}

template <typename Q>
bool quantize_channelwise(const float* x, Q* y, size_t n, const float* inv_scale,
                          const float* zero_point, float qmin, float qmax) {
  CIRCLE_QUANT_DISPATCH(f32_quantize_channelwise, x, y, n, inv_scale, zero_point, qmin, qmax)
}

template <typename Q>
void dequantize(const Q* x, float* y, size_t n, const DequantizeParams& p) {
  CIRCLE_QUANT_DISPATCH(dequantize_f32, x, y, n, p)
}

template <typename Q>
void dequantize_channelwise(const Q* x, float* y, size_t n, const float* scale,
                            const float* zero_point) {
  CIRCLE_QUANT_DISPATCH(dequantize_channelwise_f32, x, y, n, scale, zero_point)
}

bool fake_quantize(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p,
                   float scale) {
  CIRCLE_QUANT_DISPATCH(f32_fake_quantize, x, y, mask, n, p, scale)
}

bool fake_quantize_channelwise(const float* x, float* y, uint8_t* mask, size_t n,
                               const float* inv_scale, const float* zero_point, const float* scale,
                               float qmin, float qmax) {
  CIRCLE_QUANT_DISPATCH(f32_fake_quantize_channelwise, x, y, mask, n, inv_scale, zero_point, scale,
                        qmin, qmax)
}

MinMax minmax(const float* x, size_t n) { CIRCLE_QUANT_DISPATCH(f32_minmax, x, n) }

size_t histogram_count(const float* x, size_t n, float lo, float hi, int64_t bins,
                       uint32_t* counts) {
  CIRCLE_QUANT_DISPATCH(f32_histogram, x, n, lo, hi, bins, counts)
}

#undef CIRCLE_QUANT_DISPATCH
#undef CIRCLE_QUANT_X86_CASES

#define INSTANTIATE(Q)                                                                        \
  template bool quantize<Q>(const float*, Q*, size_t, const QuantizeParams&);                \
  template bool quantize_channelwise<Q>(const float*, Q*, size_t, const float*, const float*, \
                                        float, float);                                       \
  template void dequantize<Q>(const Q*, float*, size_t, const DequantizeParams&);            \
  template void dequantize_channelwise<Q>(const Q*, float*, size_t, const float*, const float*);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace circle_quant
