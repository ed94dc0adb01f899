// The avxvnni tile (gemm_avxvnni_tile.h) with EVEX-encoded vpdpbusd ymm (AVX512-VNNI + VL):
// the same code and results as qu8-gemm-6x16c4-avxvnni, runnable on AVX-512 VNNI machines without
// AVX-VNNI, so the tests exercise the avxvnni kernel's logic everywhere AVX-512 VNNI exists.
// Not used by the dispatcher (the zmm kernel is faster wherever this one runs).
#include "gemm_avxvnni_tile.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct EvexDot {
  static __m256i dpbusd(__m256i acc, __m256i a, __m256i b) { return _mm256_dpbusd_epi32(acc, a, b); }
};

}  // namespace

extern constexpr GemmMicrokernel qu8_gemm_6x16c4_evex_avx512vnni = {"qu8-gemm-6x16c4-evex-avx512vnni",
                                                                    &AvxVnniKernel<EvexDot>::accumulate,
                                                                    &qs32_requantize_avx2,
                                                                    kAvxVnniMr,
                                                                    kAvxVnniBlocks,
                                                                    false,
                                                                    &q8_vadd_avx2};

}  // namespace ukernels
}  // namespace circle_quant
