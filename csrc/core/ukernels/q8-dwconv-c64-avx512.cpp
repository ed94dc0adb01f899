// AVX-512 depthwise microkernel without VNNI: vpmaddwd on tap pairs, then vpaddd
// (dwconv_avx512_impl.h).
#include "dwconv_avx512_impl.h"

namespace circle_quant {
namespace ukernels {
namespace {

struct MaddAddAvx512 {
  static __m512i apply(__m512i acc, __m512i x, __m512i w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(x, w)); }
};

}  // namespace

extern constexpr DwConvMicrokernel q8_dwconv_c64_avx512 = {
    "q8-dwconv-c64-avx512", &dw_accumulate_avx512<false, MaddAddAvx512>, &dw_accumulate_avx512<true, MaddAddAvx512>,
    &dw_rows_avx512<false, MaddAddAvx512>, &dw_rows_avx512<true, MaddAddAvx512>};

}  // namespace ukernels
}  // namespace circle_quant
