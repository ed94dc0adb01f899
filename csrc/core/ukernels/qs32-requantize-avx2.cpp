// AVX2 output stage (RequantizeFn in qgemm_ukernels.h): the loops of requantize_x86_impl.h on 8
// channels per vector, conditions as all-ones lanes, masked loads and a buffered store for the
// column tail. Used by the avx2 and avxvnni GEMM kernels.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qgemm_ukernels.h"
#include "requantize_x86_impl.h"

namespace circle_quant {
namespace ukernels {
namespace {

// The lane traits requantize_x86_impl.h describes.
struct Avx2Lanes {
  using I = __m256i;
  using F = __m256;
  using Mask = __m256i;  // all ones in the lanes where the condition holds
  static constexpr size_t kLanes = 8;
  CIRCLE_REQUANTIZE_LANE_OPS(_mm256, si256)

  static Mask tail(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static I load(Mask m, const int32_t* p) { return _mm256_maskload_epi32(p, m); }
  static F loadf(Mask m, const float* p) { return _mm256_maskload_ps(p, m); }

  static Mask eq(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static Mask gt(I a, I b) { return _mm256_cmpgt_epi32(a, b); }
  static Mask both(Mask a, Mask b) { return _mm256_and_si256(a, b); }
  static I select(Mask c, I a, I b) { return _mm256_blendv_epi8(b, a, c); }
  // The condition's all-ones lanes are -1, so subtracting adds one.
  static I increment_where(Mask c, I v) { return _mm256_sub_epi32(v, c); }

  // vpmuldq multiplies the even int32 lanes; the odd ones are moved down first. Bits 31..62 of
  // each sum are the result: even lanes shift them down, odd lanes shift them up into the high
  // half. Only those bits are kept, so logical shifts do (AVX2 has no 64-bit arithmetic shift).
  static I rounding_high_mul(I x, I m) {
    const __m256i nudge = _mm256_set1_epi64x(int64_t{1} << 30);
    const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
    const __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge);
    return _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  }

  // vcvtps2dq rounds as MXCSR says: to nearest, ties to even, unless the caller changed the
  // rounding mode, which the scalar reference's nearbyint follows too. One instruction, where
  // vroundps + vcvttps2dq are three uops on the conversion ports.
  static I round(F x) { return _mm256_cvtps_epi32(x); }

  // Packs to Q (the saturating packs only narrow: the lanes are in range); a partial vector goes
  // through a buffer, as AVX2 has no byte-masked store.
  template <typename Q>
  static void store(Q* y, I v, Mask, size_t n) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    alignas(16) Q buf[16];
    Q* dst = n == kLanes ? y : buf;
    if constexpr (std::is_same_v<Q, uint8_t>) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packus_epi16(w, w));
    } else if constexpr (std::is_same_v<Q, int8_t>) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packs_epi16(w, w));
    } else {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), w);
    }
    if (n != kLanes) std::memcpy(y, buf, n * sizeof(Q));
  }
  // 32 bytes from four whole vectors (Q of one byte). After the packs, 128-bit lane L holds
  // dwords a[4L..4L+3], b[..], c[..], d[..]; the permute puts each vector's two dwords in order.
  template <typename Q>
  static void store4(Q* y, I a, I b, I c, I d) {
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    const __m256i bytes = std::is_same_v<Q, uint8_t> ? _mm256_packus_epi16(ab, cd) : _mm256_packs_epi16(ab, cd);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y), _mm256_permutevar8x32_epi32(bytes, order));
  }
  static void storef(float* y, Mask m, F v) { _mm256_maskstore_ps(y, m, v); }
};

}  // namespace

void qs32_requantize_avx2(size_t rows, size_t cols, const int32_t* acc, size_t acc_stride, const int32_t* channel_term,
                          const int32_t* zb, const int32_t* row_sum, const OutputStage& stage, size_t n0, void* out,
                          size_t out_stride) {
  RequantizeDispatch<RequantizeStage<Avx2Lanes>>::run(rows, cols, acc, acc_stride, channel_term, zb, row_sum, stage, n0,
                                                      out, out_stride);
}

}  // namespace ukernels
}  // namespace circle_quant
