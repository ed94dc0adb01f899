// AVX2 depthwise microkernel: vpmaddwd on tap pairs, then vpaddd, and a row form for 3x3 kernels
// (dwconv_avx2_impl.h).
#include "dwconv_avx2_impl.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct MaddAddAvx2 {
  static __m256i apply(__m256i acc, __m256i x, __m256i w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)); }
};

}  // namespace

extern constexpr DwConvMicrokernel q8_dwconv_c32_avx2 = {
    "q8-dwconv-c32-avx2", &dw_accumulate_avx2<false, MaddAddAvx2>, &dw_accumulate_avx2<true, MaddAddAvx2>,
    &dw_rows_avx2<false, MaddAddAvx2>, &dw_rows_avx2<true, MaddAddAvx2>};

}  // namespace ukernels
}  // namespace circle_quant
