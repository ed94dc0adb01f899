// AVX-512 VNNI depthwise microkernel: whole blocks of 64 channels on the quad layout (qconv.h),
// where vpdpbusd multiplies 4 taps of a channel in one int32 lane, u8 input × s8 stored weight;
// a remainder of fewer than 64 channels on the pair layout with vpdpwssd
// (dwconv_avx512_impl.h).
//
// The channel vectors of 4 taps (64 channels each) are interleaved by two rounds of in-lane
// unpacks (bytes, then words) into 4 vectors of (tap 0, 1, 2, 3) byte quads; that leaves channel
// 16l + 4k + j in lane 4l + j of vector k, the order the weights were packed in. Two rounds of
// 128-bit shuffles put the 4 accumulators back in channel order. No lane-crossing widening, which
// is what limits the pair-layout kernels.
//
// Signed input is read as uint8 by flipping its top bit (x + 128); stored weights are the int8
// weights (uint8 weights minus 128). The sums are corrected to the contract's Σ x · (w - zb):
//   Σ (x + 128)·w_s - zb_s·Σ (x + 128) - 128·Σ (w_s - zb_s)
// with the zero point term only when some zb_s != 0 (uint8 asymmetric weights).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "dwconv_avx512_impl.h"
#include "qdwconv_ukernels.h"

namespace circle_quant {
namespace ukernels {
namespace {

inline __mmask64 byte_mask(size_t n) { return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1; }

// Vector k of the 4 byte-quad vectors: lane 4l + j = channel 16l + 4k + j.
struct Quads {
  __m512i q[4];
};

inline Quads interleave(__m512i t0, __m512i t1, __m512i t2, __m512i t3) {
  const __m512i a = _mm512_unpacklo_epi8(t0, t1), b = _mm512_unpackhi_epi8(t0, t1);
  const __m512i c = _mm512_unpacklo_epi8(t2, t3), d = _mm512_unpackhi_epi8(t2, t3);
  return {{_mm512_unpacklo_epi16(a, c), _mm512_unpackhi_epi16(a, c), _mm512_unpacklo_epi16(b, d),
           _mm512_unpackhi_epi16(b, d)}};
}

// From "vector k, lane 4l + j" back to channel order: output vector m = lane m of each k.
inline void to_channel_order(const __m512i v[4], __m512i out[4]) {
  const __m512i lo01 = _mm512_shuffle_i32x4(v[0], v[1], 0x44), lo23 = _mm512_shuffle_i32x4(v[2], v[3], 0x44);
  const __m512i hi01 = _mm512_shuffle_i32x4(v[0], v[1], 0xEE), hi23 = _mm512_shuffle_i32x4(v[2], v[3], 0xEE);
  out[0] = _mm512_shuffle_i32x4(lo01, lo23, 0x88);
  out[1] = _mm512_shuffle_i32x4(lo01, lo23, 0xDD);
  out[2] = _mm512_shuffle_i32x4(hi01, hi23, 0x88);
  out[3] = _mm512_shuffle_i32x4(hi01, hi23, 0xDD);
}

inline __mmask16 lane_mask(size_t c, size_t channels) {
  if (c >= channels) return 0;
  const size_t n = channels - c;
  return n >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << n) - 1);
}

// One pixel, channels [c, c + 64) (fewer at the tail: masked loads, zero padding weights).
template <bool kSigned, bool kZeroPoint>
inline void dw_block64(size_t c, size_t channels, size_t taps, const uint8_t* const* rows, size_t offset,
                       const DwConvWeights& w, int32_t* out) {
  const __mmask64 mask = byte_mask(channels - c);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const int8_t* wq = w.quads + (c / 64) * 256;
  __m512i acc[4], xsum[4];
  for (int k = 0; k < 4; ++k) acc[k] = xsum[k] = _mm512_setzero_si512();
  for (size_t t = 0; t < taps; t += 4, wq += w.quad_stride) {
    __m512i x[4];
    for (size_t i = 0; i < 4; ++i) {
      // A missing tap of the last group repeats tap t: its weight is 0, and its ones below are 0.
      const uint8_t* p = rows[t + i < taps ? t + i : t] + offset + c;
      x[i] = _mm512_maskz_loadu_epi8(mask, p);
      if (kSigned) x[i] = _mm512_xor_si512(x[i], flip);
    }
    const Quads q = interleave(x[0], x[1], x[2], x[3]);
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm512_dpbusd_epi32(acc[k], q.q[k], _mm512_loadu_si512(wq + 64 * k));
    }
    if (kZeroPoint) {
      const size_t real = taps - t < 4 ? taps - t : 4;
      const __m512i ones = _mm512_set1_epi32(static_cast<int32_t>(0x01010101u >> (8 * (4 - real))));
      for (int k = 0; k < 4; ++k) xsum[k] = _mm512_dpbusd_epi32(xsum[k], q.q[k], ones);
    }
  }
  __m512i sum[4];
  to_channel_order(acc, sum);
  if (kZeroPoint) {
    __m512i xs[4];
    to_channel_order(xsum, xs);
    for (int m = 0; m < 4; ++m) {
      const __m512i zb = _mm512_maskz_loadu_epi32(lane_mask(c + 16 * m, channels), w.zero_point + c + 16 * m);
      sum[m] = _mm512_sub_epi32(sum[m], _mm512_mullo_epi32(zb, xs[m]));
    }
  }
  if (kSigned) {
    for (int m = 0; m < 4; ++m) {
      const __m512i ws = _mm512_maskz_loadu_epi32(lane_mask(c + 16 * m, channels), w.weight_sum + c + 16 * m);
      sum[m] = _mm512_sub_epi32(sum[m], _mm512_slli_epi32(ws, 7));
    }
  }
  for (int m = 0; m < 4; ++m) _mm512_storeu_si512(out + c + 16 * m, sum[m]);
}

struct DotAvx512Vnni {
  static __m512i apply(__m512i acc, __m512i x, __m512i w) { return _mm512_dpwssd_epi32(acc, x, w); }
};

template <bool kSigned, bool kZeroPoint>
void dw_pixels(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input, size_t input_stride,
               const DwConvWeights& w, int32_t* acc, size_t acc_stride) {
  // Whole blocks of 64 channels on the quads; the rest (fewer than 64) on the pairs with
  // vpdpwssd, which wastes no lanes on a 16- or 32-channel remainder.
  const size_t quad_channels = channels / 64 * 64;
  for (size_t p = 0; p < pixels; ++p) {
    const size_t offset = p * input_stride;
    int32_t* out = acc + p * acc_stride;
    for (size_t c = 0; c < quad_channels; c += 64) {
      dw_block64<kSigned, kZeroPoint>(c, channels, taps, input, offset, w, out);
    }
    size_t c = quad_channels;
    if (c + 32 <= channels) {
      dw_block<kSigned, DotAvx512Vnni, 2>(c, offset, taps, input, w.pairs, w.pair_stride, out);
      c += 32;
    }
    if (c + 16 <= channels) {
      dw_block<kSigned, DotAvx512Vnni, 1>(c, offset, taps, input, w.pairs, w.pair_stride, out);
      c += 16;
    }
    if (c < channels) {
      dw_tail<kSigned, DotAvx512Vnni>(c, channels - c, offset, taps, input, w.pairs, w.pair_stride, out);
    }
  }
}

template <bool kSigned>
void dw_accumulate_avx512vnni(size_t pixels, size_t channels, size_t taps, const uint8_t* const* input,
                              size_t input_stride, const DwConvWeights& w, int32_t* acc, size_t acc_stride) {
  if (w.zero_point != nullptr) {
    dw_pixels<kSigned, true>(pixels, channels, taps, input, input_stride, w, acc, acc_stride);
  } else {
    dw_pixels<kSigned, false>(pixels, channels, taps, input, input_stride, w, acc, acc_stride);
  }
}

}  // namespace

extern constexpr DwConvMicrokernel q8_dwconv_c64_avx512vnni = {
    "q8-dwconv-c64-avx512vnni", &dw_accumulate_avx512vnni<false>, &dw_accumulate_avx512vnni<true>,
    &dw_rows_avx512<false, DotAvx512Vnni>, &dw_rows_avx512<true, DotAvx512Vnni>};

}  // namespace ukernels
}  // namespace circle_quant
