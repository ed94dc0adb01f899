// AVX-512 depthwise accumulation on the pair layout (qconv.h) with a multiply-add `Madd`:
// q8-dwconv-c64-avx512.cpp (vpmaddwd + vpaddd) for everything, q8-dwconv-c64-avx512vnni.cpp
// (vpdpwssd) for the row form and the channels its quad kernel leaves over. Each file includes
// this once; the anonymous namespace keeps the two instantiations apart.
//
// Each int32 lane is one channel. The bytes of two taps are widened to int32 and joined into
// (tap 2q, tap 2q + 1) int16 pairs, which the packed weights match pair for pair, so one
// multiply-add instruction covers two taps of 16 channels. Products are exact: |x| ≤ 255 and
// |w'| ≤ 255 fit int16, and a pair's sum fits int32.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "avx512_common.h"
#include "qdwconv_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <bool kSigned>
inline __m512i widen16(__m128i bytes) {
  return kSigned ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
}

// 16 channels of two taps as int16 pairs: low halves from x0, high halves from x1.
template <bool kSigned>
inline __m512i tap_pair(__m128i x0, __m128i x1) {
  return _mm512_mask_blend_epi16(0xAAAAAAAAu, widen16<kSigned>(x0), _mm512_slli_epi32(widen16<kSigned>(x1), 16));
}

inline __m128i load16(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// `kVectors` full vectors of 16 channels starting at channel c, over all tap pairs; two
// accumulator sets (even / odd pairs) keep the multiply-add chains short.
// Input bytes of tap t at rows[t] + offset + c; weights and accumulators at channel c.
template <bool kSigned, typename Madd, int kVectors>
inline void dw_block(size_t c, size_t offset, size_t taps, const uint8_t* const* rows, const int32_t* weights,
                     size_t weight_stride, int32_t* out) {
  const size_t at = offset + c;
  __m512i even[kVectors], odd[kVectors];
  for (int v = 0; v < kVectors; ++v) even[v] = odd[v] = _mm512_setzero_si512();
  size_t t = 0;
  const int32_t* w = weights + c;
  for (; t + 4 <= taps; t += 4, w += 2 * weight_stride) {
    const uint8_t* x0 = rows[t] + at;
    const uint8_t* x1 = rows[t + 1] + at;
    const uint8_t* x2 = rows[t + 2] + at;
    const uint8_t* x3 = rows[t + 3] + at;
    for (int v = 0; v < kVectors; ++v) {
      even[v] = Madd::apply(even[v], tap_pair<kSigned>(load16(x0 + 16 * v), load16(x1 + 16 * v)),
                            _mm512_loadu_si512(w + 16 * v));
      odd[v] = Madd::apply(odd[v], tap_pair<kSigned>(load16(x2 + 16 * v), load16(x3 + 16 * v)),
                           _mm512_loadu_si512(w + weight_stride + 16 * v));
    }
  }
  for (; t < taps; t += 2, w += weight_stride) {
    const uint8_t* x0 = rows[t] + at;
    // A lone last tap pairs with itself; its high weight is 0.
    const uint8_t* x1 = (t + 1 < taps ? rows[t + 1] : rows[t]) + at;
    for (int v = 0; v < kVectors; ++v) {
      even[v] = Madd::apply(even[v], tap_pair<kSigned>(load16(x0 + 16 * v), load16(x1 + 16 * v)),
                            _mm512_loadu_si512(w + 16 * v));
    }
  }
  for (int v = 0; v < kVectors; ++v) {
    _mm512_storeu_si512(out + c + 16 * v, _mm512_add_epi32(even[v], odd[v]));
  }
}

// The last 1..16 channels: masked byte loads so nothing past the channel vector is read.
template <bool kSigned, typename Madd>
inline void dw_tail(size_t c, size_t n, size_t offset, size_t taps, const uint8_t* const* rows, const int32_t* weights,
                    size_t weight_stride, int32_t* out) {
  const size_t at = offset + c;
  const __mmask16 mask = avx512::tail_mask(n);
  __m512i sum = _mm512_setzero_si512();
  const int32_t* w = weights + c;
  for (size_t t = 0; t < taps; t += 2, w += weight_stride) {
    const __m128i x0 = _mm_maskz_loadu_epi8(mask, rows[t] + at);
    const __m128i x1 = t + 1 < taps ? _mm_maskz_loadu_epi8(mask, rows[t + 1] + at) : x0;
    sum = Madd::apply(sum, tap_pair<kSigned>(x0, x1), _mm512_loadu_si512(w));
  }
  _mm512_storeu_si512(out + c, sum);
}

template <bool kSigned, typename Madd>
void dw_pixel(size_t channels, size_t taps, const uint8_t* const* rows, size_t offset, const int32_t* weights,
              size_t weight_stride, int32_t* out) {
  size_t c = 0;
  for (; c + 64 <= channels; c += 64) {
    dw_block<kSigned, Madd, 4>(c, offset, taps, rows, weights, weight_stride, out);
  }
  if (c + 32 <= channels) {
    dw_block<kSigned, Madd, 2>(c, offset, taps, rows, weights, weight_stride, out);
    c += 32;
  }
  if (c + 16 <= channels) {
    dw_block<kSigned, Madd, 1>(c, offset, taps, rows, weights, weight_stride, out);
    c += 16;
  }
  if (c < channels) dw_tail<kSigned, Madd>(c, channels - c, offset, taps, rows, weights, weight_stride, out);
}

template <bool kSigned, typename Madd>
void dw_accumulate_avx512(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input, size_t input_stride,
                          const DwConvWeights& weights, int32_t* acc, size_t acc_stride) {
  for (size_t p = 0; p < pixels; ++p) {
    dw_pixel<kSigned, Madd>(channels, taps, input, p * input_stride, weights.pairs, weights.pair_stride,
                            acc + p * acc_stride);
  }
}

// --- row form (DwConvRowsFn) -----------------------------------------------------------------
// One block of 16 channels at a time, one kernel row at a time: the kernel row's KW weights stay
// in registers as (w', 0) int16 pairs, and a window of KW widened input columns slides along the
// run, so each column is loaded and widened once per kernel row (stride 1) rather than KW times.
// A widened int32 lane (x, sign or 0) times (w', 0) is x · w' for vpmaddwd and vpdpwssd alike.
// The partial sums of the kernel rows are added in the accumulator tile.

template <bool kSigned>
inline __m512i widen_masked(const uint8_t* p, __mmask16 mask) {
  return widen16<kSigned>(_mm_maskz_loadu_epi8(mask, p));
}

template <bool kSigned, typename Madd, int kKw, int kStride>
void dw_rows_block(size_t c, size_t pixels, size_t channels, size_t kernel_h, const uint8_t* const* rows,
                   const DwConvWeights& w, int32_t* acc, size_t acc_stride) {
  const __mmask16 mask = avx512::tail_mask(channels - c < 16 ? channels - c : 16);
  const __m512i low_half = _mm512_set1_epi32(0xFFFF);
  for (size_t kh = 0; kh < kernel_h; ++kh) {
    __m512i wt[kKw];
#pragma GCC unroll 8
    for (int kw = 0; kw < kKw; ++kw) {
      const size_t t = kh * kKw + static_cast<size_t>(kw);
      const __m512i pair = _mm512_loadu_si512(w.pairs + (t / 2) * w.pair_stride + c);
      wt[kw] = t % 2 ? _mm512_srli_epi32(pair, 16) : _mm512_and_si512(pair, low_half);
    }
    const uint8_t* x = rows[kh] + c;
    __m512i win[kKw];
#pragma GCC unroll 8
    for (int j = 0; j < kKw; ++j) win[j] = widen_masked<kSigned>(x + j * channels, mask);
    int32_t* out = acc + c;
    for (size_t p = 0; p < pixels; ++p, out += acc_stride) {
      if (p > 0) {
        // Slide by kStride columns: keep the overlap, widen the new ones.
#pragma GCC unroll 8
        for (int j = 0; j < kKw - kStride; ++j) win[j] = win[j + kStride];
        const uint8_t* next = x + (p * kStride + (kKw - kStride)) * channels;
#pragma GCC unroll 8
        for (int j = 0; j < kStride; ++j) {
          win[kKw - kStride + j] = widen_masked<kSigned>(next + j * channels, mask);
        }
      }
      __m512i even = _mm512_setzero_si512(), odd = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int kw = 0; kw < kKw; ++kw) {
        if (kw % 2 == 0) {
          even = Madd::apply(even, win[kw], wt[kw]);
        } else {
          odd = Madd::apply(odd, win[kw], wt[kw]);
        }
      }
      __m512i sum = _mm512_add_epi32(even, odd);
      if (kh > 0) sum = _mm512_add_epi32(sum, _mm512_loadu_si512(out));
      _mm512_storeu_si512(out, sum);
    }
  }
}

// A 3x3 kernel: kernel rows 0 and 1 of a column as one vector of (row 0, row 1) int16 pairs, so
// one multiply-add covers two taps (the row form above leaves each lane's high half zero), and
// all three kernel rows in one pass, the sums in registers: per output pixel and 16 channels, 6
// multiply-adds and one store, where the row form takes 9, and a load, add and store per kernel
// row. Weights: (w'(0, kw), w'(1, kw)) pairs and (w'(2, kw), 0).

// One column of kernel rows 0 and 1 (16 channels) as int16 pairs: bytes interleaved, then widened.
template <bool kSigned>
inline __m512i row_pair(const uint8_t* x0, const uint8_t* x1, __mmask16 mask) {
  const __m128i a = _mm_maskz_loadu_epi8(mask, x0), b = _mm_maskz_loadu_epi8(mask, x1);
  const __m256i ab =
      _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)), _mm_unpackhi_epi8(a, b), 1);
  return kSigned ? _mm512_cvtepi8_epi16(ab) : _mm512_cvtepu8_epi16(ab);
}

// Tap t's weight in the low 16 bits of each lane (high half zero), from the pair layout.
inline __m512i tap_low(const DwConvWeights& w, size_t c, size_t t) {
  const __m512i pair = _mm512_loadu_si512(w.pairs + (t / 2) * w.pair_stride + c);
  return t % 2 ? _mm512_srli_epi32(pair, 16) : _mm512_and_si512(pair, _mm512_set1_epi32(0xFFFF));
}

template <bool kSigned, typename Madd, int kStride>
void dw_rows_block_3x3(size_t c, size_t pixels, size_t channels, const uint8_t* const* rows, const DwConvWeights& w,
                       int32_t* acc, size_t acc_stride) {
  const __mmask16 mask = avx512::tail_mask(channels - c < 16 ? channels - c : 16);
  __m512i w01[3], w2[3];
#pragma GCC unroll 3
  for (int kw = 0; kw < 3; ++kw) {
    w01[kw] = _mm512_or_si512(tap_low(w, c, kw), _mm512_slli_epi32(tap_low(w, c, 3 + kw), 16));
    w2[kw] = tap_low(w, c, 6 + kw);
  }
  const uint8_t* x0 = rows[0] + c;
  const uint8_t* x1 = rows[1] + c;
  const uint8_t* x2 = rows[2] + c;
  __m512i pairs[3], third[3];  // the window: columns p·kStride .. p·kStride + 2
#pragma GCC unroll 3
  for (int j = 0; j < 3; ++j) {
    pairs[j] = row_pair<kSigned>(x0 + j * channels, x1 + j * channels, mask);
    third[j] = widen_masked<kSigned>(x2 + j * channels, mask);
  }
  int32_t* out = acc + c;
  for (size_t p = 0; p < pixels; ++p, out += acc_stride) {
    if (p > 0) {
      // Slide by kStride columns: keep the overlap, load the new ones.
#pragma GCC unroll 3
      for (int j = 0; j < 3 - kStride; ++j) {
        pairs[j] = pairs[j + kStride];
        third[j] = third[j + kStride];
      }
      const size_t next = (p * kStride + (3 - kStride)) * channels;
#pragma GCC unroll 2
      for (int j = 0; j < kStride; ++j) {
        const size_t at = next + static_cast<size_t>(j) * channels;
        pairs[3 - kStride + j] = row_pair<kSigned>(x0 + at, x1 + at, mask);
        third[3 - kStride + j] = widen_masked<kSigned>(x2 + at, mask);
      }
    }
    __m512i even = Madd::apply(_mm512_setzero_si512(), pairs[0], w01[0]);
    __m512i odd = Madd::apply(_mm512_setzero_si512(), third[0], w2[0]);
#pragma GCC unroll 2
    for (int kw = 1; kw < 3; ++kw) {
      even = Madd::apply(even, pairs[kw], w01[kw]);
      odd = Madd::apply(odd, third[kw], w2[kw]);
    }
    _mm512_storeu_si512(out, _mm512_add_epi32(even, odd));
  }
}

template <bool kSigned, typename Madd>
void dw_rows_avx512(size_t pixels, size_t channels, size_t kernel_h, size_t kernel_w, size_t stride_w,
                    const uint8_t* const* rows, const DwConvWeights& w, int32_t* acc, size_t acc_stride) {
  for (size_t c = 0; c < channels; c += 16) {
    if (kernel_h == 3 && kernel_w == 3) {
      if (stride_w == 1) {
        dw_rows_block_3x3<kSigned, Madd, 1>(c, pixels, channels, rows, w, acc, acc_stride);
      } else {
        dw_rows_block_3x3<kSigned, Madd, 2>(c, pixels, channels, rows, w, acc, acc_stride);
      }
    } else if (kernel_w == 3) {
      if (stride_w == 1) {
        dw_rows_block<kSigned, Madd, 3, 1>(c, pixels, channels, kernel_h, rows, w, acc, acc_stride);
      } else {
        dw_rows_block<kSigned, Madd, 3, 2>(c, pixels, channels, kernel_h, rows, w, acc, acc_stride);
      }
    } else if (stride_w == 1) {
      dw_rows_block<kSigned, Madd, 5, 1>(c, pixels, channels, kernel_h, rows, w, acc, acc_stride);
    } else {
      dw_rows_block<kSigned, Madd, 5, 2>(c, pixels, channels, kernel_h, rows, w, acc, acc_stride);
    }
  }
}

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
