// Scalar reference GEMM microkernel: plain loops over the packed layout (qgemm.h). It reads A as
// uint8, like the x86 kernels; final outputs, not accumulators, are what every path must share.
#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

void accumulate_scalar(size_t mr, size_t blocks, size_t k, const uint8_t* a, size_t a_stride, const int8_t* b,
                       size_t block_stride, int32_t* acc, size_t acc_stride) {
  for (size_t i = 0; i < mr; ++i) {
    for (size_t nb = 0; nb < blocks; ++nb) {
      const int8_t* block = b + nb * block_stride;
      for (size_t j = 0; j < kGemmNr; ++j) {
        // Wraps modulo 2^32 like the SIMD sums (exact within kMaxGemmK).
        uint32_t sum = 0;
        for (size_t kk = 0; kk < k; ++kk) {
          const int8_t w = block[(kk / kGemmKr) * kGemmNr * kGemmKr + j * kGemmKr + kk % kGemmKr];
          sum += static_cast<uint32_t>(static_cast<int32_t>(a[i * a_stride + kk]) * w);
        }
        acc[i * acc_stride + nb * kGemmNr + j] = static_cast<int32_t>(sum);
      }
    }
  }
}

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_4x16c4_scalar = {
    "qu8-gemm-4x16c4-scalar", &accumulate_scalar, &qs32_requantize_scalar, 4, 1, false, &q8_vadd_scalar};

}  // namespace ukernels
}  // namespace circle_quant
