// Routes the elementwise kernel families to the registry's kernel for the active ISA (isa.h,
// ukernels/registry.h).
#include "quantize.h"

#include <cmath>
#include <limits>
#include <vector>

#include "isa.h"
#include "observe.h"
#include "ukernels/registry.h"

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

// Every family runs the registry's row for the active ISA (ukernels/registry.h).
template <typename Kernel>
const Kernel& active(const ukernels::KernelList<Kernel>& list) {
  return ukernels::kernel_for(list, active_isa()).kernel;
}

template <typename Q>
bool quantize(const float* x, Q* y, size_t n, const QuantizeParams& p) {
  return active(ukernels::quantize_kernels<Q>()).tensor(x, y, n, p);
}

template <typename Q>
bool quantize_channelwise(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point, float qmin,
                          float qmax) {
  return active(ukernels::quantize_kernels<Q>()).channelwise(x, y, n, inv_scale, zero_point, qmin, qmax);
}

template <typename Q>
void dequantize(const Q* x, float* y, size_t n, const DequantizeParams& p) {
  active(ukernels::dequantize_kernels<Q>()).tensor(x, y, n, p);
}

template <typename Q>
void dequantize_channelwise(const Q* x, float* y, size_t n, const float* scale, const float* zero_point) {
  active(ukernels::dequantize_kernels<Q>()).channelwise(x, y, n, scale, zero_point);
}

bool fake_quantize(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale) {
  return active(ukernels::fake_quantize_kernels()).tensor(x, y, mask, n, p, scale);
}

bool fake_quantize_channelwise(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                               const float* zero_point, const float* scale, float qmin, float qmax) {
  return active(ukernels::fake_quantize_kernels()).channelwise(x, y, mask, n, inv_scale, zero_point, scale, qmin, qmax);
}

MinMax minmax(const float* x, size_t n) { return active(ukernels::minmax_kernels())(x, n); }

size_t histogram_count(const float* x, size_t n, float lo, float hi, int64_t bins, uint32_t* counts) {
  return active(ukernels::histogram_kernels())(x, n, lo, hi, bins, counts);
}

void lookup_bytes(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table) {
  active(ukernels::lookup_kernels())(x, y, n, table);
}

void quantized_softmax(const uint8_t* x, bool x_signed, size_t rows, size_t length, const float* exp_of_distance,
                       const QuantizeParams& out, void* y, bool y_signed) {
  const ukernels::SoftmaxKernel row_kernel = active(ukernels::softmax_kernels());
  const auto quantize_u8 = active(ukernels::quantize_kernels<uint8_t>()).tensor;
  const auto quantize_s8 = active(ukernels::quantize_kernels<int8_t>()).tensor;
  thread_local std::vector<float> probabilities;
  probabilities.resize(length);
  for (size_t r = 0; r < rows; ++r) {
    row_kernel(x + r * length, length, x_signed ? 0x80 : 0, exp_of_distance, probabilities.data());
    if (y_signed) {
      quantize_s8(probabilities.data(), static_cast<int8_t*>(y) + r * length, length, out);
    } else {
      quantize_u8(probabilities.data(), static_cast<uint8_t*>(y) + r * length, length, out);
    }
  }
}

#define INSTANTIATE(Q)                                                                                       \
  template bool quantize<Q>(const float*, Q*, size_t, const QuantizeParams&);                                \
  template bool quantize_channelwise<Q>(const float*, Q*, size_t, const float*, const float*, float, float); \
  template void dequantize<Q>(const Q*, float*, size_t, const DequantizeParams&);                            \
  template void dequantize_channelwise<Q>(const Q*, float*, size_t, const float*, const float*);
CIRCLE_QUANT_FOR_EACH_QTYPE(INSTANTIATE)
#undef INSTANTIATE

}  // namespace circle_quant
