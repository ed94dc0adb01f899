// AVX-VNNI: vpdpbusd on ymm (VEX encoded), 6 rows × 16 channels per tile; the tile itself is in
// gemm_avxvnni_tile.h (shared with an EVEX build that tests it on AVX-512 machines).
#include "gemm_avxvnni_tile.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct VexDot {
  static __m256i dpbusd(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_avx_epi32(acc, a, b); }
};

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_6x16c4_avxvnni = {"qu8-gemm-6x16c4-avxvnni",
                                                            &AvxVnniKernel<VexDot>::accumulate,
                                                            &qs32_requantize_avx2,
                                                            kAvxVnniMr,
                                                            kAvxVnniBlocks,
                                                            false,
                                                            &q8_vadd_avx2};

}  // namespace ukernels
}  // namespace circle_quant
