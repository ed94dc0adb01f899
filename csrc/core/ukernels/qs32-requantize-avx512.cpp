// AVX-512 output stage (RequantizeFn in qgemm_ukernels.h): the loops of requantize_x86_impl.h on
// 16 channels per vector, conditions in mask registers, masked loads and stores for the column
// tail.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "qgemm_ukernels.h"
#include "requantize_x86_impl.h"

namespace circle_quant {
namespace ukernels {
namespace {

// The lane traits requantize_x86_impl.h describes.
struct Avx512Lanes {
  using I = __m512i;
  using F = __m512;
  using Mask = __mmask16;
  static constexpr size_t kLanes = 16;
  CIRCLE_REQUANTIZE_LANE_OPS(_mm512, si512)

  static Mask tail(size_t n) { return static_cast<__mmask16>((1u << n) - 1); }  // n ≤ 16
  static I load(Mask m, const int32_t* p) { return _mm512_maskz_loadu_epi32(m, p); }
  static F loadf(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }

  static Mask eq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static Mask gt(I a, I b) { return _mm512_cmpgt_epi32_mask(a, b); }
  static Mask both(Mask a, Mask b) { return static_cast<__mmask16>(a & b); }
  static I select(Mask c, I a, I b) { return _mm512_mask_blend_epi32(c, b, a); }
  static I increment_where(Mask c, I v) { return _mm512_mask_add_epi32(v, c, v, _mm512_set1_epi32(1)); }

  // vpmuldq multiplies the even int32 lanes; the odd ones are moved down first. Bits 31..62 of
  // each sum are the result: even lanes shift them down, odd lanes shift them up into the high
  // half.
  static I rounding_high_mul(I x, I m) {
    const __m512i nudge = _mm512_set1_epi64(int64_t{1} << 30);
    const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
    const __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge);
    return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  }

  static I round(F x) { return _mm512_cvt_roundps_epi32(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }

  // A whole vector by a plain store of the narrowed register: the masked store of vpmovdb's
  // memory form held up the loop (perf: most of its samples on that store, MobileNetV2's 1x1
  // convs at batch 32).
  template <typename Q>
  static void store(Q* y, I v, Mask m, size_t n) {
    if constexpr (sizeof(Q) == 1) {
      const __m128i bytes = _mm512_cvtepi32_epi8(v);
      if (n == kLanes) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y), bytes);
      } else {
        _mm_mask_storeu_epi8(y, m, bytes);
      }
    } else {
      const __m256i words = _mm512_cvtepi32_epi16(v);
      if (n == kLanes) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), words);
      } else {
        _mm256_mask_storeu_epi16(y, m, words);
      }
    }
  }
  // 64 bytes from four whole vectors (Q of one byte). After the packs, 128-bit lane L holds
  // dwords a[4L..4L+3], b[..], c[..], d[..]; the permute puts each vector's four dwords in order.
  template <typename Q>
  static void store4(Q* y, I a, I b, I c, I d) {
    const __m512i ab = _mm512_packs_epi32(a, b), cd = _mm512_packs_epi32(c, d);
    const __m512i bytes = std::is_same_v<Q, uint8_t> ? _mm512_packus_epi16(ab, cd) : _mm512_packs_epi16(ab, cd);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_storeu_si512(y, _mm512_permutexvar_epi32(order, bytes));
  }
  static void storef(float* y, Mask m, F v) { _mm512_mask_storeu_ps(y, m, v); }
};

}  // namespace

void qs32_requantize_avx512(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride,
                            const int32_t* channel_term, const int32_t* zb, const int32_t* row_sum,
                            const OutputStage& stage, size_t n0, void* out, size_t out_stride) {
  RequantizeDispatch<RequantizeStage<Avx512Lanes>>::run(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage,
                                                        n0, out, out_stride);
}

}  // namespace ukernels
}  // namespace circle_quant
