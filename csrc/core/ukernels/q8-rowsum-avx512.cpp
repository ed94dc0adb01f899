// AVX-512 row sums (RowSumFn in qgemm_ukernels.h): vpsadbw on 64 bytes, the row's last K mod 64
// bytes by a masked load (masked-off bytes are not read).
#include <immintrin.h>

#include "qgemm_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <bool kSigned>
void row_sums(size_t rows, size_t k, const uint8_t* a, size_t a_stride, int32_t* row_sum) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), zero = _mm512_setzero_si512();
  const size_t tail = k % 64;
  const __mmask64 keep = tail == 0 ? 0 : (~uint64_t{0} >> (64 - tail));
  const int32_t correction = kSigned ? 128 * static_cast<int32_t>(k) : 0;
  for (size_t i = 0; i < rows; ++i) {
    const uint8_t* row = a + i * a_stride;
    __m512i sums = zero;
    size_t kk = 0;
    for (; kk + 64 <= k; kk += 64) {
      __m512i v = _mm512_loadu_si512(row + kk);
      if (kSigned) v = _mm512_xor_si512(v, flip);
      sums = _mm512_add_epi64(sums, _mm512_sad_epu8(v, zero));
    }
    if (tail != 0) {
      __m512i v = _mm512_maskz_loadu_epi8(keep, row + kk);
      if (kSigned) v = _mm512_xor_si512(v, _mm512_maskz_mov_epi8(keep, flip));  // the kept bytes
      sums = _mm512_add_epi64(sums, _mm512_sad_epu8(v, zero));
    }
    row_sum[i] = static_cast<int32_t>(_mm512_reduce_add_epi64(sums)) - correction;
  }
}

}  // namespace

void q8_rowsum_avx512(size_t rows, size_t k, const uint8_t* a, size_t a_stride, bool a_signed, int32_t* row_sum) {
  if (a_signed) return row_sums<true>(rows, k, a, a_stride, row_sum);
  row_sums<false>(rows, k, a, a_stride, row_sum);
}

}  // namespace ukernels
}  // namespace circle_quant
