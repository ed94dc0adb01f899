// Scalar reference depthwise microkernel: one channel at a time, plain loops over the packed
// tap pairs (qdwconv_ukernels.h). SIMD variants must produce the same int32 sums.
#include "qdwconv_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <typename X>
void accumulate_scalar(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input, size_t input_stride,
                       const DwConvWeights& weights, int32_t* acc, size_t acc_stride) {
  for (size_t p = 0; p < pixels; ++p) {
    const size_t offset = p * input_stride;
    for (size_t c = 0; c < channels; ++c) {
      // Wraps modulo 2^32 like the SIMD sums (exact within kMaxGemmK taps).
      uint32_t sum = 0;
      for (size_t t = 0; t < taps; ++t) {
        const int32_t x = static_cast<int32_t>(reinterpret_cast<const X*>(input[t] + offset)[c]);
        const int32_t w = dwconv_weight(weights, t, c);
        sum += static_cast<uint32_t>(x * w);
      }
      acc[p * acc_stride + c] = static_cast<int32_t>(sum);
    }
  }
}

}  // namespace

extern constexpr DwConvMicrokernel q8_dwconv_c1_scalar = {"q8-dwconv-c1-scalar", &accumulate_scalar<uint8_t>,
                                                          &accumulate_scalar<int8_t>};

}  // namespace ukernels
}  // namespace circle_quant
