// AVX2 depthwise accumulation on the pair layout (qconv.h) with a multiply-add `Madd`
// (q8-dwconv-c32-avx2.cpp: vpmaddwd + vpaddd).
//
// Each int32 lane is one channel; the bytes of two taps are widened and joined into int16
// pairs (tap 2q low, tap 2q + 1 high) that match the packed weights, so one multiply-add covers
// two taps of 8 channels. Channels past the last multiple of 8 take a scalar loop (equal sums:
// every path computes the exact value).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "qdwconv_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

template <bool kSigned>
inline __m256i widen8(const uint8_t* p) {
  int64_t bits;
  std::memcpy(&bits, p, 8);
  const __m128i bytes = _mm_cvtsi64_si128(bits);
  return kSigned ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
}

template <bool kSigned>
inline __m256i tap_pair8(const uint8_t* x0, const uint8_t* x1) {
  return _mm256_blend_epi16(widen8<kSigned>(x0), _mm256_slli_epi32(widen8<kSigned>(x1), 16), 0xAA);
}

// Input bytes of tap t at rows[t] + offset + c; weights and accumulators at channel c.
template <bool kSigned, typename Madd, int kVectors>
inline void dw_block8(size_t c, size_t offset, size_t taps, const uint8_t* const* rows, const int32_t* weights,
                      size_t weight_stride, int32_t* out) {
  const size_t at = offset + c;
  __m256i even[kVectors], odd[kVectors];
  for (int v = 0; v < kVectors; ++v) even[v] = odd[v] = _mm256_setzero_si256();
  size_t t = 0;
  const int32_t* w = weights + c;
  for (; t + 4 <= taps; t += 4, w += 2 * weight_stride) {
    const uint8_t* x0 = rows[t] + at;
    const uint8_t* x1 = rows[t + 1] + at;
    const uint8_t* x2 = rows[t + 2] + at;
    const uint8_t* x3 = rows[t + 3] + at;
    for (int v = 0; v < kVectors; ++v) {
      even[v] = Madd::apply(even[v], tap_pair8<kSigned>(x0 + 8 * v, x1 + 8 * v),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 8 * v)));
      odd[v] = Madd::apply(odd[v], tap_pair8<kSigned>(x2 + 8 * v, x3 + 8 * v),
                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + weight_stride + 8 * v)));
    }
  }
  for (; t < taps; t += 2, w += weight_stride) {
    const uint8_t* x0 = rows[t] + at;
    // A lone last tap pairs with itself; its high weight is 0.
    const uint8_t* x1 = (t + 1 < taps ? rows[t + 1] : rows[t]) + at;
    for (int v = 0; v < kVectors; ++v) {
      even[v] = Madd::apply(even[v], tap_pair8<kSigned>(x0 + 8 * v, x1 + 8 * v),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 8 * v)));
    }
  }
  for (int v = 0; v < kVectors; ++v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + c + 8 * v), _mm256_add_epi32(even[v], odd[v]));
  }
}

template <bool kSigned>
inline void dw_tail_scalar(size_t c, size_t channels, size_t offset, size_t taps, const uint8_t* const* rows,
                           const int32_t* weights, size_t weight_stride, int32_t* out) {
  using X = std::conditional_t<kSigned, int8_t, uint8_t>;
  for (; c < channels; ++c) {
    uint32_t sum = 0;
    for (size_t t = 0; t < taps; ++t) {
      const int32_t x = static_cast<int32_t>(reinterpret_cast<const X*>(rows[t] + offset)[c]);
      const uint32_t pair = static_cast<uint32_t>(weights[(t / 2) * weight_stride + c]);
      const int32_t w = static_cast<int16_t>(static_cast<uint16_t>(pair >> (t % 2 ? 16 : 0)));
      sum += static_cast<uint32_t>(x * w);
    }
    out[c] = static_cast<int32_t>(sum);
  }
}

template <bool kSigned, typename Madd>
void dw_accumulate_avx2(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input, size_t input_stride,
                        const DwConvWeights& packed, int32_t* acc, size_t acc_stride) {
  const int32_t* weights = packed.pairs;
  const size_t weight_stride = packed.pair_stride;
  for (size_t p = 0; p < pixels; ++p) {
    const size_t offset = p * input_stride;
    int32_t* out = acc + p * acc_stride;
    size_t c = 0;
    for (; c + 32 <= channels; c += 32) {
      dw_block8<kSigned, Madd, 4>(c, offset, taps, input, weights, weight_stride, out);
    }
    if (c + 16 <= channels) {
      dw_block8<kSigned, Madd, 2>(c, offset, taps, input, weights, weight_stride, out);
      c += 16;
    }
    if (c + 8 <= channels) {
      dw_block8<kSigned, Madd, 1>(c, offset, taps, input, weights, weight_stride, out);
      c += 8;
    }
    dw_tail_scalar<kSigned>(c, channels, offset, taps, input, weights, weight_stride, out);
  }
}

// --- row form (DwConvRowsFn) for 3x3 kernels ---------------------------------------------------
// As dw_rows_block_3x3 in dwconv_avx512_impl.h, on 8 channels: a column of kernel rows 0 and 1 is
// one vector of (row 0, row 1) int16 pairs, row 2 one of (row 2, 0); the window of three columns
// slides along the output row, so each input column is loaded and widened once (stride 1) where
// the tap form widens each tap of each pixel. Other kernels, and the channels past the last
// multiple of 8, take the tap form.

template <bool kSigned>
inline __m256i row_pair8(const uint8_t* x0, const uint8_t* x1) {
  int64_t a, b;
  std::memcpy(&a, x0, 8);
  std::memcpy(&b, x1, 8);
  const __m128i ab = _mm_unpacklo_epi8(_mm_cvtsi64_si128(a), _mm_cvtsi64_si128(b));
  return kSigned ? _mm256_cvtepi8_epi16(ab) : _mm256_cvtepu8_epi16(ab);
}

// Tap t's weight in the low 16 bits of each lane (high half zero), from the pair layout.
inline __m256i tap_low8(const DwConvWeights& w, size_t c, size_t t) {
  const __m256i pair = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.pairs + (t / 2) * w.pair_stride + c));
  return t % 2 ? _mm256_srli_epi32(pair, 16) : _mm256_and_si256(pair, _mm256_set1_epi32(0xFFFF));
}

template <bool kSigned, typename Madd, int kStride>
void dw_rows_block8_3x3(size_t c, size_t pixels, size_t channels, const uint8_t* const* rows, const DwConvWeights& w,
                        int32_t* acc, size_t acc_stride) {
  __m256i w01[3], w2[3];
  for (int kw = 0; kw < 3; ++kw) {
    w01[kw] = _mm256_or_si256(tap_low8(w, c, kw), _mm256_slli_epi32(tap_low8(w, c, 3 + kw), 16));
    w2[kw] = tap_low8(w, c, 6 + kw);
  }
  const uint8_t* x0 = rows[0] + c;
  const uint8_t* x1 = rows[1] + c;
  const uint8_t* x2 = rows[2] + c;
  __m256i pairs[3], third[3];  // the window: columns p·kStride .. p·kStride + 2
  for (int j = 0; j < 3; ++j) {
    pairs[j] = row_pair8<kSigned>(x0 + j * channels, x1 + j * channels);
    third[j] = widen8<kSigned>(x2 + j * channels);
  }
  int32_t* out = acc + c;
  for (size_t p = 0; p < pixels; ++p, out += acc_stride) {
    if (p > 0) {
      for (int j = 0; j < 3 - kStride; ++j) {
        pairs[j] = pairs[j + kStride];
        third[j] = third[j + kStride];
      }
      const size_t next = (p * kStride + (3 - kStride)) * channels;
      for (int j = 0; j < kStride; ++j) {
        const size_t at = next + static_cast<size_t>(j) * channels;
        pairs[3 - kStride + j] = row_pair8<kSigned>(x0 + at, x1 + at);
        third[3 - kStride + j] = widen8<kSigned>(x2 + at);
      }
    }
    __m256i even = Madd::apply(_mm256_setzero_si256(), pairs[0], w01[0]);
    __m256i odd = Madd::apply(_mm256_setzero_si256(), third[0], w2[0]);
    for (int kw = 1; kw < 3; ++kw) {
      even = Madd::apply(even, pairs[kw], w01[kw]);
      odd = Madd::apply(odd, third[kw], w2[kw]);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_add_epi32(even, odd));
  }
}

template <bool kSigned, typename Madd>
void dw_rows_avx2(size_t pixels, size_t channels, size_t kernel_h, size_t kernel_w, size_t stride_w,
                  const uint8_t* const* rows, const DwConvWeights& w, int32_t* acc, size_t acc_stride) {
  const bool three = kernel_h == 3 && kernel_w == 3;
  const size_t row_channels = three ? channels / 8 * 8 : 0;
  for (size_t c = 0; c < row_channels; c += 8) {
    if (stride_w == 1) {
      dw_rows_block8_3x3<kSigned, Madd, 1>(c, pixels, channels, rows, w, acc, acc_stride);
    } else {
      dw_rows_block8_3x3<kSigned, Madd, 2>(c, pixels, channels, rows, w, acc, acc_stride);
    }
  }
  if (row_channels == channels) return;
  // The rest through the tap form: tap (kh, kw) of pixel p at rows[kh] + (p·stride_w + kw)·channels.
  const size_t taps = kernel_h * kernel_w;
  thread_local std::vector<const uint8_t*> tap_rows;
  tap_rows.resize(taps);
  for (size_t kh = 0, t = 0; kh < kernel_h; ++kh) {
    for (size_t kw = 0; kw < kernel_w; ++kw, ++t) tap_rows[t] = rows[kh] + kw * channels;
  }
  for (size_t p = 0; p < pixels; ++p) {
    const size_t offset = p * stride_w * channels;
    int32_t* out = acc + p * acc_stride;
    size_t c = row_channels;
    for (; c + 8 <= channels; c += 8) {
      dw_block8<kSigned, Madd, 1>(c, offset, taps, tap_rows.data(), w.pairs, w.pair_stride, out);
    }
    dw_tail_scalar<kSigned>(c, channels, offset, taps, tap_rows.data(), w.pairs, w.pair_stride, out);
  }
}

}  // namespace
}  // namespace ukernels
}  // namespace circle_quant
