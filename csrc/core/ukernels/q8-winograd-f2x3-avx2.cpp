// Winograd F(2x2, 3x3), AVX2 (qwinograd_ukernels.h): the transforms on 16 channels (int16) or 8
// output channels (int32) per register, the GEMM as 6 tiles × 16 output channels per call with
// one vpmaddwd + one vpaddd per 16 multiply-adds (12 accumulators, 2 weight registers, one
// broadcast: 15 of the 16 ymm registers).
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "qwinograd_ukernels.h"

#define CQ_UNROLL _Pragma("GCC unroll 16")

namespace circle_quant {
namespace ukernels {
namespace {

template <bool kSigned>
inline __m256i load_centered(const uint8_t* p, __m256i za) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_sub_epi16(kSigned ? _mm256_cvtepi8_epi16(bytes) : _mm256_cvtepu8_epi16(bytes), za);
}

template <bool kSigned>
void input_tiles(size_t tiles, size_t channels, const uint8_t* x, size_t row_stride, size_t pixel_stride, int32_t za,
                 int16_t* v) {
  const __m256i vza = _mm256_set1_epi16(static_cast<int16_t>(za));
  for (size_t t = 0; t < tiles; ++t) {
    const uint8_t* patch = x + 2 * t * pixel_stride;
    int16_t* out = v + t * kWinogradPositions * channels;
    for (size_t c = 0; c < channels; c += kWinogradChannelStep) {
      __m256i e[4][4];
      CQ_UNROLL for (size_t j = 0; j < 4; ++j) {  // Bᵀ d, column j
        const uint8_t* col = patch + j * pixel_stride + c;
        const __m256i d0 = load_centered<kSigned>(col, vza);
        const __m256i d1 = load_centered<kSigned>(col + row_stride, vza);
        const __m256i d2 = load_centered<kSigned>(col + 2 * row_stride, vza);
        const __m256i d3 = load_centered<kSigned>(col + 3 * row_stride, vza);
        e[0][j] = _mm256_sub_epi16(d0, d2);
        e[1][j] = _mm256_add_epi16(d1, d2);
        e[2][j] = _mm256_sub_epi16(d2, d1);
        e[3][j] = _mm256_sub_epi16(d1, d3);
      }
      CQ_UNROLL for (size_t i = 0; i < 4; ++i) {  // (Bᵀ d) B
        __m256i* row = reinterpret_cast<__m256i*>(out + 4 * i * channels + c);
        const size_t step = channels / kWinogradChannelStep;  // one position, in registers
        _mm256_storeu_si256(row, _mm256_sub_epi16(e[i][0], e[i][2]));
        _mm256_storeu_si256(row + step, _mm256_add_epi16(e[i][1], e[i][2]));
        _mm256_storeu_si256(row + 2 * step, _mm256_sub_epi16(e[i][2], e[i][1]));
        _mm256_storeu_si256(row + 3 * step, _mm256_sub_epi16(e[i][1], e[i][3]));
      }
    }
  }
}

void input_avx2(size_t tiles, size_t channels, const uint8_t* x, size_t row_stride, size_t pixel_stride, bool is_signed,
                int32_t za, int16_t* v) {
  if (is_signed) {
    input_tiles<true>(tiles, channels, x, row_stride, pixel_stride, za, v);
  } else {
    input_tiles<false>(tiles, channels, x, row_stride, pixel_stride, za, v);
  }
}

inline __m256i broadcast_pair(const int16_t* p) {
  int32_t pair;
  std::memcpy(&pair, p, sizeof pair);
  return _mm256_set1_epi32(pair);
}

template <size_t kRows>
void gemm_rows(size_t pairs, const int16_t* v, size_t v_channels, const int16_t* u, int32_t* m, size_t m_stride) {
  for (size_t p = 0; p < kWinogradPositions; ++p) {
    const int16_t* up = u + p * pairs * 32;
    const int16_t* vp = v + p * v_channels;
    __m256i acc[kRows][2];
    CQ_UNROLL for (size_t r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (size_t q = 0; q < pairs; ++q) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(up + q * 32));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(up + q * 32 + 16));
      CQ_UNROLL for (size_t r = 0; r < kRows; ++r) {
        // |V| · |U| ≤ 1020 · 2295: each int32 lane of vpmaddwd is exact.
        const __m256i a = broadcast_pair(vp + r * kWinogradPositions * v_channels + 2 * q);
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(a, b0));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(a, b1));
      }
    }
    CQ_UNROLL for (size_t r = 0; r < kRows; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + p * m_stride + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + p * m_stride + r * 16 + 8), acc[r][1]);
    }
  }
}

void gemm_avx2(size_t rows, size_t pairs, const int16_t* v, size_t v_channels, const int16_t* u, int32_t* m,
               size_t m_stride) {
  switch (rows) {
    case 1: gemm_rows<1>(pairs, v, v_channels, u, m, m_stride); break;
    case 2: gemm_rows<2>(pairs, v, v_channels, u, m, m_stride); break;
    case 3: gemm_rows<3>(pairs, v, v_channels, u, m, m_stride); break;
    case 4: gemm_rows<4>(pairs, v, v_channels, u, m, m_stride); break;
    case 5: gemm_rows<5>(pairs, v, v_channels, u, m, m_stride); break;
    default: gemm_rows<6>(pairs, v, v_channels, u, m, m_stride); break;
  }
}

void output_avx2(size_t rows, const int32_t* m, size_t m_stride, int32_t* y, size_t y_row_stride) {
  for (size_t r = 0; r < rows; ++r) {
    for (size_t h = 0; h < 16; h += 8) {
      __m256i a[16];
      CQ_UNROLL for (size_t p = 0; p < kWinogradPositions; ++p) {
        a[p] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(m + p * m_stride + r * 16 + h));
      }
      __m256i t[2][4];
      CQ_UNROLL for (size_t c = 0; c < 4; ++c) {  // Aᵀ M (int32 wrap-around, as the scalar kernel)
        t[0][c] = _mm256_add_epi32(_mm256_add_epi32(a[c], a[4 + c]), a[8 + c]);
        t[1][c] = _mm256_sub_epi32(_mm256_sub_epi32(a[4 + c], a[8 + c]), a[12 + c]);
      }
      CQ_UNROLL for (size_t dy = 0; dy < 2; ++dy) {  // (Aᵀ M) A / 4
        const __m256i y0 = _mm256_add_epi32(_mm256_add_epi32(t[dy][0], t[dy][1]), t[dy][2]);
        const __m256i y1 = _mm256_sub_epi32(_mm256_sub_epi32(t[dy][1], t[dy][2]), t[dy][3]);
        int32_t* out = y + dy * y_row_stride + 2 * r * 16 + h;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_srai_epi32(y0, 2));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 16), _mm256_srai_epi32(y1, 2));
      }
    }
  }
}

}  // namespace

extern constexpr WinogradMicrokernel q8_winograd_f2x3_avx2 = {"q8-winograd-f2x3-avx2", &input_avx2, &gemm_avx2,
                                                              &output_avx2};

}  // namespace ukernels
}  // namespace circle_quant
