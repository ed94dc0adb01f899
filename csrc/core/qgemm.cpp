// Integer GEMM: weight packing, output stage set-up and the tiling driver (qgemm.h).
#include "qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <fmt/format.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

#include "isa.h"
#include "scratch.h"
#include "ukernels/registry.h"

namespace circle_quant {

int64_t packed_k(int64_t k) { return (k + kGemmKr - 1) / kGemmKr * kGemmKr; }

size_t packed_weight_bytes(int64_t n, int64_t k) {
  const int64_t blocks = (n + kGemmNr - 1) / kGemmNr;
  return static_cast<size_t>(blocks) * static_cast<size_t>(packed_k(k)) * kGemmNr;
}

namespace {

void check_weight_shape(int64_t n, int64_t k) {
  if (n < 0 || k < 0) throw std::invalid_argument("circle_quant: negative GEMM weight shape");
  if (k > kMaxGemmK) {
    throw std::invalid_argument(
        fmt::format("circle_quant: reduction length {} exceeds the int8 GEMM's limit of {} (int32 "
                    "accumulators could overflow)",
                    k, kMaxGemmK));
  }
}

}  // namespace

int32_t stored_weight_zero_point(const int32_t* zero_point, size_t count, int64_t channel, bool is_unsigned) {
  // uint8 weights are stored as int8 (b - 128); the zero point moves with them, so b - zb keeps
  // its value.
  const int32_t lo = is_unsigned ? 0 : -128, hi = is_unsigned ? 255 : 127;
  const int32_t zp = zero_point[count == 1 ? 0 : channel];
  if (zp < lo || zp > hi) {
    throw std::invalid_argument(
        fmt::format("circle_quant: weight zero point {} of channel {} is outside [{}, {}]", zp, channel, lo, hi));
  }
  return zp - (is_unsigned ? 128 : 0);
}

namespace {

// out[4 * j + t] = row_t[j] ^ flip for the 16 lanes j and four rows t: one group of a block
// whose channels are contiguous in memory.
void interleave_four_rows(const uint8_t* row0, const uint8_t* row1, const uint8_t* row2, const uint8_t* row3,
                          uint8_t flip, uint8_t* out) {
#if defined(__SSE2__)
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
  const __m128i r0 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row0)), f);
  const __m128i r1 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row1)), f);
  const __m128i r2 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row2)), f);
  const __m128i r3 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row3)), f);
  const __m128i r01_lo = _mm_unpacklo_epi8(r0, r1), r01_hi = _mm_unpackhi_epi8(r0, r1);
  const __m128i r23_lo = _mm_unpacklo_epi8(r2, r3), r23_hi = _mm_unpackhi_epi8(r2, r3);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi16(r01_lo, r23_lo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi16(r01_lo, r23_lo));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi16(r01_hi, r23_hi));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi16(r01_hi, r23_hi));
#elif defined(__ARM_NEON)
  const uint8x16_t f = vdupq_n_u8(flip);
  uint8x16x4_t rows;
  rows.val[0] = veorq_u8(vld1q_u8(row0), f);
  rows.val[1] = veorq_u8(vld1q_u8(row1), f);
  rows.val[2] = veorq_u8(vld1q_u8(row2), f);
  rows.val[3] = veorq_u8(vld1q_u8(row3), f);
  vst4q_u8(out, rows);
#else
  const uint8_t* rows[4] = {row0, row1, row2, row3};
  for (size_t j = 0; j < kGemmNr; ++j)
    for (size_t t = 0; t < kGemmKr; ++t) out[j * kGemmKr + t] = rows[t][j] ^ flip;
#endif
}

// Packs one block of up to kGemmNr channels ([c0, c0 + channels)) of weight element (c, i) at
// weight[c * n_stride + i * k_stride] into `block` (zeroed by the caller). `flip` (0x80 for uint8
// weights, else 0) moves uint8 values into the stored int8 domain. The two dense cases get loops
// a compiler turns into wide moves: quantized matmuls pack B on every call.
void pack_block(const uint8_t* weight, int64_t c0, int64_t channels, int64_t k, size_t n_stride, size_t k_stride,
                uint8_t flip, int8_t* block) {
  const int64_t full_groups = k / static_cast<int64_t>(kGemmKr);
  uint8_t* out = reinterpret_cast<uint8_t*>(block);
  auto put = [&](int64_t j, int64_t i) {  // element (c0 + j, i), any strides
    out[static_cast<size_t>(i / 4) * (kGemmNr * kGemmKr) + static_cast<size_t>(j) * kGemmKr +
        static_cast<size_t>(i % 4)] =
        weight[static_cast<size_t>(c0 + j) * n_stride + static_cast<size_t>(i) * k_stride] ^ flip;
  };
  if (k_stride == 1) {  // rows of K bytes (torch's [N, K] weights, a transposed [K, N] view)
    const uint32_t flip4 = flip * 0x01010101u;
    for (int64_t j = 0; j < channels; ++j) {
      const uint8_t* row = weight + static_cast<size_t>(c0 + j) * n_stride;
      uint8_t* dst = out + static_cast<size_t>(j) * kGemmKr;
      for (int64_t g = 0; g < full_groups; ++g, row += kGemmKr, dst += kGemmNr * kGemmKr) {
        uint32_t group;
        std::memcpy(&group, row, sizeof group);
        group ^= flip4;
        std::memcpy(dst, &group, sizeof group);
      }
    }
  } else if (n_stride == 1 && channels == static_cast<int64_t>(kGemmNr)) {
    // Rows of N bytes ([K, N] row major: attention's V): each group interleaves 16 bytes of four
    // rows into lane-major order, byte t of lane j from row t.
    for (int64_t g = 0; g < full_groups; ++g) {
      const uint8_t* r = weight + static_cast<size_t>(g * static_cast<int64_t>(kGemmKr)) * k_stride + c0;
      interleave_four_rows(r, r + k_stride, r + 2 * k_stride, r + 3 * k_stride, flip,
                           out + static_cast<size_t>(g) * (kGemmNr * kGemmKr));
    }
  } else {
    for (int64_t j = 0; j < channels; ++j)
      for (int64_t i = 0; i < full_groups * static_cast<int64_t>(kGemmKr); ++i) put(j, i);
  }
  for (int64_t j = 0; j < channels; ++j)  // the K tail: a partial group, zero padded
    for (int64_t i = full_groups * static_cast<int64_t>(kGemmKr); i < k; ++i) put(j, i);
}

}  // namespace

bool pack_weights_strided(const void* weight, bool is_unsigned, int64_t n, int64_t k, size_t n_stride, size_t k_stride,
                          const int32_t* zero_point, size_t zero_point_count, int8_t* data, int32_t* zero_point_out,
                          int32_t* column_sum_out) {
  check_weight_shape(n, k);
  if (zero_point_count != 1 && zero_point_count != static_cast<size_t>(n)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: {} weight zero points for {} output channels", zero_point_count, n));
  }
  const int64_t kp = packed_k(k);
  const size_t block_stride = static_cast<size_t>(kp) * kGemmNr;
  std::fill(data, data + packed_weight_bytes(n, k), int8_t{0});
  bool any_zero_point = false;
  for (int64_t c = 0; c < n; ++c) {
    zero_point_out[c] = stored_weight_zero_point(zero_point, zero_point_count, c, is_unsigned);
    any_zero_point |= zero_point_out[c] != 0;
  }
  const uint8_t flip = is_unsigned ? 0x80 : 0;  // b - 128 is b with its top bit flipped, as int8
  for (int64_t c0 = 0; c0 < n; c0 += static_cast<int64_t>(kGemmNr)) {
    const int64_t channels = std::min<int64_t>(static_cast<int64_t>(kGemmNr), n - c0);
    int8_t* block = data + static_cast<size_t>(c0 / static_cast<int64_t>(kGemmNr)) * block_stride;
    pack_block(static_cast<const uint8_t*>(weight), c0, channels, k, n_stride, k_stride, flip, block);
    // Column sums from the packed block: byte j of each 64-byte group belongs to lane j / 4.
    int32_t lane_bytes[kGemmNr * kGemmKr] = {};
    for (int64_t g = 0; g < kp / static_cast<int64_t>(kGemmKr); ++g) {
      const int8_t* group = block + static_cast<size_t>(g) * (kGemmNr * kGemmKr);
      for (size_t b = 0; b < kGemmNr * kGemmKr; ++b) lane_bytes[b] += group[b];
    }
    for (int64_t j = 0; j < channels; ++j) {
      const int32_t* lane = lane_bytes + static_cast<size_t>(j) * kGemmKr;
      column_sum_out[c0 + j] = lane[0] + lane[1] + lane[2] + lane[3];
    }
  }
  return any_zero_point;
}

bool pack_weights(const void* weight, bool is_unsigned, int64_t n, int64_t k, size_t row_stride,
                  const int32_t* zero_point, size_t zero_point_count, int8_t* data, int32_t* zero_point_out,
                  int32_t* column_sum_out) {
  return pack_weights_strided(weight, is_unsigned, n, k, row_stride, 1, zero_point, zero_point_count, data,
                              zero_point_out, column_sum_out);
}

PackedWeightsView PackedWeights::view() const {
  PackedWeightsView v;
  v.n = n;
  v.k = k;
  v.k_padded = packed_k(k);
  v.n_blocks = (n + kGemmNr - 1) / kGemmNr;
  v.data = data.data();
  v.zero_point = zero_point.data();
  v.column_sum = column_sum.data();
  v.has_weight_zero_point = has_weight_zero_point;
  v.prepacked_b = prepacked_b.empty() ? nullptr : prepacked_b.data();
  v.prepacked_layout = prepacked_b.empty() ? 0 : prepacked_layout;
  return v;
}

PackedWeights pack_weights(const void* weight, bool is_unsigned, int64_t n, int64_t k, const int32_t* zero_point,
                           size_t zero_point_count) {
  check_weight_shape(n, k);  // before sizing the arrays
  PackedWeights w;
  w.n = n;
  w.k = k;
  w.data.resize(packed_weight_bytes(n, k));
  w.zero_point.resize(static_cast<size_t>(n));
  w.column_sum.resize(static_cast<size_t>(n));
  w.has_weight_zero_point = pack_weights(weight, is_unsigned, n, k, static_cast<size_t>(k), zero_point,
                                         zero_point_count, w.data.data(), w.zero_point.data(), w.column_sum.data());
  const int32_t layout = prepacked_b_layout(active_isa());
  w.prepacked_b.resize(prepacked_b_bytes(layout, n, k));
  w.prepacked_layout = w.prepacked_b.empty() ? 0 : layout;
  prepack_gemm_b(w.prepacked_layout, w.data.data(), n, k, w.prepacked_b.data());
  return w;
}

namespace {

const ukernels::GemmMicrokernel& prepacked_kernel(int32_t layout) {
  const ukernels::GemmMicrokernel* uk = ukernels::gemm_microkernel_with_layout(layout);
  if (uk == nullptr) {
    throw std::invalid_argument(
        fmt::format("circle_quant: prepacked weight layout {} is not one this build's GEMM kernels read", layout));
  }
  return *uk;
}

size_t blocks_of(int64_t n) { return static_cast<size_t>((n + kGemmNr - 1) / kGemmNr); }
size_t groups_of(int64_t k) { return static_cast<size_t>((k + kGemmKr - 1) / kGemmKr); }

}  // namespace

int32_t prepacked_b_layout(Isa isa) {
  const ukernels::GemmMicrokernel* uk = ukernels::prepacked_gemm_microkernel(isa);
  return uk != nullptr ? uk->prepacked_layout : 0;
}

size_t prepacked_b_bytes(int32_t layout, int64_t n, int64_t k) {
  if (layout == 0) return 0;
  const ukernels::GemmMicrokernel& uk = prepacked_kernel(layout);  // unknown layouts throw, K = 0 or not
  if (k == 0) return 0;  // nothing to multiply: the kernels that read the packed bytes run
  return blocks_of(n) * ukernels::working_b_block_stride(uk, groups_of(k));
}

void prepack_gemm_b(int32_t layout, const int8_t* packed, int64_t n, int64_t k, int8_t* out) {
  if (layout == 0 || k == 0) return;
  prepacked_kernel(layout).prepack_b(blocks_of(n), static_cast<size_t>(k), packed,
                                     static_cast<size_t>(packed_k(k)) * kGemmNr, out);
}

bool check_prepacked_gemm_b(int32_t layout, const int8_t* prepacked, int64_t n, int64_t k) {
  if (layout == 0 || k == 0) return true;
  return prepacked_kernel(layout).check_prepacked_b(blocks_of(n), static_cast<size_t>(k), prepacked);
}

// ---------------------------------------------------------------------------------------------
// Output stage.

void quantize_multiplier(double m, int32_t* fixed_multiplier, int32_t* shift) {
  if (!(m > 0.0) || !std::isfinite(m)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: requantization multiplier {} is not a "
                    "positive finite number",
                    m));
  }
  int exponent = 0;
  const double mantissa = std::frexp(m, &exponent);  // m = mantissa · 2^exponent, [0.5, 1)
  int64_t q = static_cast<int64_t>(std::round(mantissa * static_cast<double>(1ll << 31)));
  if (q == (1ll << 31)) {  // rounding carried into the next power of two
    q /= 2;
    ++exponent;
  }
  if (exponent < -31) {  // too small to represent: the product rounds to 0 anyway
    q = 0;
    exponent = 0;
  }
  if (exponent > 30) {
    throw std::invalid_argument(
        fmt::format("circle_quant: requantization multiplier {} is too large for fixed point", m));
  }
  *fixed_multiplier = static_cast<int32_t>(q);
  *shift = exponent;
}

namespace {

// gemmlowp's SaturatingRoundingDoublingHighMul: round(a·b / 2^31), ties away from zero... in the
// specific form the runtimes use (nudge, then truncating division).
int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  if (a == b && a == std::numeric_limits<int32_t>::min()) return std::numeric_limits<int32_t>::max();
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (1ll << 30) : (1 - (1ll << 30));
  return static_cast<int32_t>((ab + nudge) / (1ll << 31));
}

// gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded half away from zero.
int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((1ll << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

}  // namespace

int32_t multiply_by_quantized_multiplier(int32_t x, int32_t fixed_multiplier, int32_t shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  // The runtimes shift left in int32; saturate instead of relying on overflow (only reachable
  // with multipliers ≥ 1, which real layers do not have).
  const int64_t shifted = static_cast<int64_t>(x) * (int64_t{1} << left);
  const int32_t x_shifted = static_cast<int32_t>(
      std::clamp<int64_t>(shifted, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x_shifted, fixed_multiplier), right);
}

namespace {

void type_range(OutputType type, int32_t* lo, int32_t* hi) {
  switch (type) {
    case OutputType::kUint8:
      *lo = 0;
      *hi = 255;
      return;
    case OutputType::kInt8:
      *lo = -128;
      *hi = 127;
      return;
    case OutputType::kInt16:
      *lo = -32768;
      *hi = 32767;
      return;
    case OutputType::kFloat:
      *lo = 0;
      *hi = 0;
      return;
  }
}

void check_scale(double s, const char* what) {
  if (!(s > 0.0) || !std::isfinite(s)) {
    throw std::invalid_argument(fmt::format("circle_quant: {} {} is not a positive finite number", what, s));
  }
}

// A scale the kernels use as float32, with its float reciprocal: both must be normal numbers
// (a scale that underflows to 0, or whose reciprocal overflows, would silently lose the clamp).
void check_float_scale(double s, const char* what) {
  check_scale(s, what);
  const float f = static_cast<float>(s), inv = static_cast<float>(1.0 / s);
  if (!std::isnormal(f) || !std::isnormal(inv)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: {} {} is outside float32's range (it and its reciprocal must be normal "
                    "float32 numbers)",
                    what, s));
  }
}

// A real activation bound as an output integer, the way each family's runtime computes it:
// PyTorch's quantize (multiply by the float reciprocal, ties to even) for kFloat, TFLite's
// CalculateActivationRangeQuantized (float division, ties away from zero) for kFixedPoint.
int64_t quantize_bound(double v, RequantMode mode, double scale, int32_t zero_point) {
  float q;
  if (mode == RequantMode::kFloat) {
    q = std::nearbyint(static_cast<float>(v) * static_cast<float>(1.0 / scale));
  } else {
    q = std::round(static_cast<float>(v) / static_cast<float>(scale));
  }
  // Far-away bounds only need to land outside the type's range.
  return static_cast<int64_t>(std::clamp(q, -1e9f, 1e9f)) + zero_point;
}

}  // namespace

void compute_output_stage(OutputType type, RequantMode mode, double input_scale, const float* weight_scale,
                          size_t weight_scale_count, int64_t n, double output_scale, int32_t output_zero_point,
                          double activation_min, double activation_max, float* multiplier, int32_t* fixed_multiplier,
                          int32_t* fixed_shift, OutputStage* stage) {
  check_scale(input_scale, "input scale");
  if (weight_scale_count != 1 && weight_scale_count != static_cast<size_t>(n)) {
    throw std::invalid_argument(
        fmt::format("circle_quant: {} weight scales for {} output channels", weight_scale_count, n));
  }
  if (std::isnan(activation_min) || std::isnan(activation_max) || activation_min > activation_max) {
    throw std::invalid_argument(
        fmt::format("circle_quant: invalid activation range [{}, {}]", activation_min, activation_max));
  }
  const bool float_out = type == OutputType::kFloat;
  if (!float_out) check_float_scale(output_scale, "output scale");
  stage->type = type;
  stage->mode = mode;
  for (int64_t c = 0; c < n; ++c) {
    const double ws = weight_scale[weight_scale_count == 1 ? 0 : c];
    check_scale(ws, "weight scale");
    // The accumulator's scale is float(sa) · float(sb) as the bias is quantized with it (and as
    // the Circle file records it); the ratio to sy is rounded once.
    const double acc_scale = static_cast<double>(static_cast<float>(input_scale) * static_cast<float>(ws));
    const double m = float_out ? acc_scale : acc_scale / output_scale;
    multiplier[c] = static_cast<float>(m);
    if (mode == RequantMode::kFixedPoint && !float_out) {
      quantize_multiplier(m, &fixed_multiplier[c], &fixed_shift[c]);
    } else if (fixed_multiplier != nullptr) {
      fixed_multiplier[c] = 0;
      fixed_shift[c] = 0;
    }
  }
  stage->multiplier = multiplier;
  stage->fixed_multiplier = fixed_multiplier;
  stage->fixed_shift = fixed_shift;
  if (float_out) {
    stage->zero_point = 0;
    stage->qmin = stage->qmax = 0;
    stage->fmin = static_cast<float>(activation_min);
    stage->fmax = static_cast<float>(activation_max);
    return;
  }
  int32_t lo = 0, hi = 0;
  type_range(type, &lo, &hi);
  if (output_zero_point < lo || output_zero_point > hi) {
    throw std::invalid_argument(
        fmt::format("circle_quant: output zero point {} is outside [{}, {}]", output_zero_point, lo, hi));
  }
  stage->zero_point = output_zero_point;
  int64_t qmin = lo, qmax = hi;
  if (std::isfinite(activation_min)) {
    qmin = std::max<int64_t>(qmin, quantize_bound(activation_min, mode, output_scale, output_zero_point));
  }
  if (std::isfinite(activation_max)) {
    qmax = std::min<int64_t>(qmax, quantize_bound(activation_max, mode, output_scale, output_zero_point));
  }
  if (qmin > qmax) qmin = qmax;  // an activation range inside one quantization step
  stage->qmin = static_cast<int32_t>(qmin);
  stage->qmax = static_cast<int32_t>(qmax);
  stage->fmin = -std::numeric_limits<float>::infinity();
  stage->fmax = std::numeric_limits<float>::infinity();
}

void make_output_stage(OutputType type, RequantMode mode, double input_scale, const float* weight_scale,
                       size_t weight_scale_count, int64_t n, double output_scale, int32_t output_zero_point,
                       double activation_min, double activation_max, OutputStageStorage* storage) {
  storage->multiplier.assign(static_cast<size_t>(n), 0.0f);
  storage->fixed_multiplier.assign(static_cast<size_t>(n), 0);
  storage->fixed_shift.assign(static_cast<size_t>(n), 0);
  compute_output_stage(type, mode, input_scale, weight_scale, weight_scale_count, n, output_scale, output_zero_point,
                       activation_min, activation_max, storage->multiplier.data(), storage->fixed_multiplier.data(),
                       storage->fixed_shift.data(), &storage->stage);
}

void make_residual_add(OutputType type, RequantMode mode, double layer_scale, int32_t layer_zero_point,
                       double other_scale, int32_t other_zero_point, double output_scale, int32_t output_zero_point,
                       double activation_min, double activation_max, ResidualAdd* add) {
  if (type == OutputType::kFloat) {
    throw std::invalid_argument("circle_quant: a fused residual add needs a quantized output");
  }
  check_float_scale(layer_scale, "layer output scale");
  check_float_scale(other_scale, "residual scale");
  check_float_scale(output_scale, "add output scale");
  if (std::isnan(activation_min) || std::isnan(activation_max) || activation_min > activation_max) {
    throw std::invalid_argument(
        fmt::format("circle_quant: invalid activation range [{}, {}]", activation_min, activation_max));
  }
  int32_t lo = 0, hi = 0;
  type_range(type, &lo, &hi);
  for (const auto& [zp, what] : {std::pair{layer_zero_point, "layer output"}, std::pair{other_zero_point, "residual"},
                                 std::pair{output_zero_point, "add output"}}) {
    if (zp < lo || zp > hi) {
      throw std::invalid_argument(fmt::format("circle_quant: {} zero point {} is outside [{}, {}]", what, zp, lo, hi));
    }
  }
  // The scales as the graph's float32 tensors / the Circle file hold them.
  const float sy = static_cast<float>(layer_scale), sr = static_cast<float>(other_scale);
  const float so = static_cast<float>(output_scale);
  add->layer_scale = sy;
  add->other_scale = sr;
  add->inv_output_scale = static_cast<float>(1.0 / output_scale);
  add->layer_zero_point = layer_zero_point;
  add->other_zero_point = other_zero_point;
  add->output_zero_point = output_zero_point;
  int64_t qmin = lo, qmax = hi;
  if (std::isfinite(activation_min)) {
    qmin = std::max<int64_t>(qmin, quantize_bound(activation_min, mode, output_scale, output_zero_point));
  }
  if (std::isfinite(activation_max)) {
    qmax = std::min<int64_t>(qmax, quantize_bound(activation_max, mode, output_scale, output_zero_point));
  }
  if (qmin > qmax) qmin = qmax;
  add->qmin = static_cast<int32_t>(qmin);
  add->qmax = static_cast<int32_t>(qmax);
  // TFLite's Prepare of ADD: both inputs rescaled to twice the larger scale, with 20 (16-bit:
  // 15) bits of headroom, then to the output.
  add->left_shift = type == OutputType::kInt16 ? 15 : 20;
  const double twice_max = 2.0 * std::max<double>(sy, sr);
  const double output_real = twice_max / static_cast<double>(static_cast<float>(1 << add->left_shift) * so);
  add->layer_multiplier = add->layer_shift = add->other_multiplier = add->other_shift = 0;
  add->output_multiplier = add->output_shift = 0;
  if (mode == RequantMode::kFixedPoint) {
    quantize_multiplier(sy / twice_max, &add->layer_multiplier, &add->layer_shift);
    quantize_multiplier(sr / twice_max, &add->other_multiplier, &add->other_shift);
    quantize_multiplier(output_real, &add->output_multiplier, &add->output_shift);
  }
}

// ---------------------------------------------------------------------------------------------
// Driver.

namespace {

// A row group's (working) A stays in L1 while each block of the chunk passes over it.
constexpr size_t kGroupABytes = 16 * 1024;
// A row group's accumulators over the chunk's channels, read by one output-stage call: at most
// this many int32 (24 KB, in L1 with the group's A).
constexpr size_t kGroupAccumulators = 6 * 1024;
static_assert(ukernels::kMaxTileAccumulators <= kGroupAccumulators, "a kernel's tile must fit the group");

}  // namespace

void ukernels::accumulate_packed(const GemmMicrokernel& uk, size_t mr, size_t blocks, size_t k, const uint8_t* a,
                                 size_t a_stride, const int8_t* b, size_t block_stride, int32_t* acc,
                                 size_t acc_stride) {
  const size_t groups = (k + kGemmKr - 1) / kGemmKr;
  std::vector<uint8_t> wide_a;
  std::vector<int8_t> wide_b;
  if (uk.widen_a != nullptr) {
    wide_a.resize(mr * groups * uk.a_group_bytes + 1);
    uk.widen_a(mr, k, a, a_stride, wide_a.data());
    a = wide_a.data();
    a_stride = groups * uk.a_group_bytes;
  }
  if (uk.prepack_b != nullptr) {
    wide_b.resize(blocks * ukernels::working_b_block_stride(uk, groups) + 1);
    uk.prepack_b(blocks, k, b, block_stride, wide_b.data());
    b = wide_b.data();
    block_stride = ukernels::working_b_block_stride(uk, groups);
  }
  uk.accumulate(mr, blocks, k, a, a_stride, b, block_stride, acc, acc_stride);
  if (uk.finish != nullptr) uk.finish();
}

namespace {

// GemmSession's state: open sessions on this thread, and the finish a deferred call left.
thread_local int g_session_depth = 0;
thread_local void (*g_pending_finish)() = nullptr;

void finish_or_defer(const ukernels::GemmMicrokernel& uk) {
  if (uk.finish == nullptr) return;
  if (g_session_depth > 0) {
    g_pending_finish = uk.finish;
  } else {
    uk.finish();
  }
}

}  // namespace

GemmSession::GemmSession() { ++g_session_depth; }

GemmSession::~GemmSession() {
  if (--g_session_depth == 0 && g_pending_finish != nullptr) {
    g_pending_finish();
    g_pending_finish = nullptr;
  }
}

const char* qgemm_kernel_name() { return ukernels::gemm_microkernel_for(active_isa()).name; }

bool qgemm_taps_supported(Isa isa, size_t blocks, size_t rows, int32_t layout, size_t tap_k) {
  const ukernels::GemmMicrokernel& uk = ukernels::gemm_microkernel_for(isa, blocks, rows, layout);
  return uk.accumulate_taps != nullptr && tap_k % uk.tap_align == 0;
}

bool qgemm_rows_by_offset(Isa isa, size_t blocks, size_t rows, int32_t layout) {
  return ukernels::gemm_microkernel_for(isa, blocks, rows, layout).reads_row_offsets;
}

void qgemm(const GemmActivations& a, int64_t m_begin, int64_t m_end, const PackedWeightsView& w, int64_t n_begin,
           int64_t n_end, const int32_t* bias, const OutputStage& stage, void* out, size_t out_stride) {
  if (m_begin >= m_end || n_begin >= n_end) return;
  if (stage.residual != nullptr && stage.type == OutputType::kFloat) {
    throw std::invalid_argument("circle_quant: a fused residual add needs a quantized output");
  }
  if (n_begin % static_cast<int64_t>(kGemmNr) != 0) {
    throw std::invalid_argument("circle_quant: qgemm's n_begin must be a multiple of 16");
  }
  const size_t call_blocks =
      static_cast<size_t>((n_end - n_begin + static_cast<int64_t>(kGemmNr) - 1) / static_cast<int64_t>(kGemmNr));
  const size_t rows = static_cast<size_t>(m_end - m_begin);
  const ukernels::GemmMicrokernel& uk = ukernels::gemm_microkernel_for(
      active_isa(), call_blocks, rows, w.prepacked_b != nullptr ? w.prepacked_layout : 0);
  const size_t k = static_cast<size_t>(w.k);
  const size_t cols = static_cast<size_t>(n_end - n_begin);
  const bool tapped = a.tap_offsets != nullptr;
  if (tapped && (uk.accumulate_taps == nullptr || a.is_signed != uk.a_signed || a.taps == 0 || k % a.taps != 0 ||
                 (k / a.taps) % uk.tap_align != 0)) {
    throw std::logic_error(fmt::format("circle_quant: kernel {} cannot read these tapped activations", uk.name));
  }
  const size_t tap_k = tapped ? k / a.taps : 0;
  const bool by_offset = a.row_offsets != nullptr;
  if (by_offset && (!tapped || !uk.reads_row_offsets || a.row_period != 0)) {
    throw std::logic_error(
        fmt::format("circle_quant: kernel {} cannot read rows by offset here (tapped, without virtual rows)", uk.name));
  }

  // The kernel reads A as uint8 (x86) or int8 (ARM). Activations of the other signedness are
  // moved by 128 (flip the sign bit) into scratch, and so is their zero point: a - za is
  // unchanged. O(M·K) against the GEMM's O(M·N·K).
  const bool flip = a.is_signed != uk.a_signed;
  const int32_t za = a.zero_point + (flip ? (a.is_signed ? 128 : -128) : 0);
  thread_local std::vector<uint8_t> flipped;
  // Rows by offset: a_rows is A's base and row i's offset a.row_offsets[m_begin + i].
  const uint8_t* a_rows =
      static_cast<const uint8_t*>(a.data) + (by_offset ? 0 : static_cast<size_t>(m_begin) * a.stride);
  size_t a_stride = a.stride;
  if (flip && k > 0) {
    flipped.resize(rows * k);
    for (size_t i = 0; i < rows; ++i) {
      const uint8_t* src = a_rows + i * a.stride;
      uint8_t* dst = flipped.data() + i * k;
      for (size_t j = 0; j < k; ++j) dst[j] = static_cast<uint8_t>(src[j] ^ 0x80u);
    }
    a_rows = flipped.data();
    a_stride = k;
  }

  // Σ (a - za)(b - zb) = Σ a·b - za·Σb - zb·Σa + K·za·zb: the kernel computes Σ a·b; the
  // per-channel terms (with the bias) are summed here once per call, the per-row ones only when
  // a weight zero point is non-zero. All modulo 2^32, like every int32 sum of the kernels
  // (docs/numerics.md, "Integer GEMM"); the exact total fits in int32.
  thread_local std::vector<int32_t> channel_term_buffer, row_sum_buffer;
  channel_term_buffer.resize(cols);
  uint32_t* term = reinterpret_cast<uint32_t*>(channel_term_buffer.data());
  const int32_t* column_sum = w.column_sum + n_begin;
  const int32_t* zb = w.zero_point + n_begin;
  for (size_t j = 0; j < cols; ++j) {
    term[j] = bias != nullptr ? static_cast<uint32_t>(bias[n_begin + j]) : 0u;
  }
  if (za != 0) {
    const uint32_t uza = static_cast<uint32_t>(za);
    for (size_t j = 0; j < cols; ++j) term[j] -= uza * static_cast<uint32_t>(column_sum[j]);
    if (w.has_weight_zero_point) {
      const uint32_t kza = static_cast<uint32_t>(k) * uza;
      for (size_t j = 0; j < cols; ++j) term[j] += kza * static_cast<uint32_t>(zb[j]);
    }
  }
  // Row sums of A, for weight zero points: row_sums[i] = Σ_k a[i][k], filled group by group in
  // the first pass over the channels (sum_rows below), while the group's rows are in cache. A
  // separate pass over every row first read A from memory twice when a call's rows outgrow the
  // caches (a pointwise conv of a batch: 9% of MobileNetV2's time at batch 32).
  const bool sums_needed = w.has_weight_zero_point;
  const bool runs_summed = sums_needed && tapped && a.tap_run_sums != nullptr && (by_offset || a.stride % tap_k == 0) &&
                           std::all_of(a.tap_offsets, a.tap_offsets + a.taps,
                                       [&](int64_t offset) { return offset % static_cast<int64_t>(tap_k) == 0; });
  if (by_offset && sums_needed && !runs_summed) {  // the sums below read rows at one stride
    throw std::logic_error("circle_quant: rows by offset with weight zero points need the taps' run sums");
  }
  thread_local std::vector<size_t> run_offsets;  // runs_summed: the taps in runs, divided once
  if (runs_summed) {
    run_offsets.resize(a.taps);
    for (size_t t = 0; t < a.taps; ++t) run_offsets[t] = static_cast<size_t>(a.tap_offsets[t]) / tap_k;
  }
  thread_local std::vector<int32_t> tap_sums;
  const ukernels::RowSumFn row_sums_of = sums_needed ? ukernels::row_sum_kernel_for(active_isa()) : nullptr;
  if (sums_needed) row_sum_buffer.resize(rows);
  const int32_t* row_sums = sums_needed ? row_sum_buffer.data() : nullptr;
  // Rows [i0, i0 + count) of the call, from A as the caller gave it (a_rows and a_stride here).
  const auto sum_rows = [&, a_rows, a_stride](size_t i0, size_t count) {
    int32_t* sums = row_sum_buffer.data() + i0;
    if (runs_summed && by_offset) {  // the caller's run sums at each row's offset
      const int64_t* offsets = a.row_offsets + m_begin + static_cast<int64_t>(i0);
      for (size_t i = 0; i < count; ++i) {
        const int32_t* runs = a.tap_run_sums + static_cast<size_t>(offsets[i]) / tap_k;  // one division a row
        int32_t sum = 0;
        for (size_t t = 0; t < a.taps; ++t) sum += runs[run_offsets[t]];
        sums[i] = sum;
      }
    } else if (runs_summed) {  // the caller's run sums, one per tap
      const size_t row_runs = a.stride / tap_k;
      const int32_t* runs = a.tap_run_sums + (static_cast<size_t>(m_begin) + i0) * row_runs;
      std::fill(sums, sums + count, 0);
      for (size_t t = 0; t < a.taps; ++t) {
        const int32_t* tap_runs = runs + run_offsets[t];
        if (row_runs == 1) {  // stride 1: consecutive rows' runs are adjacent, and this loop vectorizes
          for (size_t i = 0; i < count; ++i) sums[i] += tap_runs[i];
        } else {
          for (size_t i = 0; i < count; ++i) sums[i] += tap_runs[i * row_runs];
        }
      }
    } else if (tapped) {  // the sum over every tap's run
      tap_sums.resize(count);
      std::fill(sums, sums + count, 0);
      for (size_t t = 0; t < a.taps; ++t) {
        row_sums_of(count, tap_k, a_rows + i0 * a_stride + a.tap_offsets[t], a_stride, uk.a_signed, tap_sums.data());
        for (size_t i = 0; i < count; ++i) sums[i] += tap_sums[i];
      }
    } else {
      row_sums_of(count, k, a_rows + i0 * a_stride, a_stride, uk.a_signed, sums);
    }
  };

  // Kernels with a working layout of their own (ukernels::WidenAFn / PrepackBFn): A is copied
  // into it here once per call, unless the layout is A's own bytes and K needs no padding, and
  // every tile reads that and the B prepacked with the weights. The copy starts on a cache line.
  const size_t groups = (k + kGemmKr - 1) / kGemmKr;
  thread_local std::vector<uint8_t> wide_a_storage;
  const bool a_is_working = uk.a_group_bytes == kGemmKr && k % kGemmKr == 0;
  if (uk.widen_a != nullptr && !a_is_working) {
    uint8_t* wide_a = cache_aligned(wide_a_storage, rows * groups * uk.a_group_bytes);
    uk.widen_a(rows, k, a_rows, a_stride, wide_a);
    a_rows = wide_a;
    a_stride = groups * uk.a_group_bytes;
  }

  // Tiles: uk.mr rows × uk.max_blocks blocks. The channels are cut into chunks of about
  // kGemmChunkBytes of packed weights; each chunk stays in L2 while every row group passes over it
  // (a group of row tiles keeps its A, at most kGroupABytes, in L1). Large M thus reads the
  // weights from memory once, and A once per chunk.
  const size_t elem = stage.type == OutputType::kFloat ? 4 : stage.type == OutputType::kInt16 ? 2 : 1;
  if (a.row_period != 0 && (a.row_valid == 0 || a.row_valid > a.row_period)) {
    throw std::invalid_argument("circle_quant: qgemm's valid rows per period must be in [1, row_period]");
  }
  const size_t packed_block_stride = w.block_stride();
  const bool prepacked = uk.prepack_b != nullptr;  // then w carries its layout (gemm_microkernel_for)
  const size_t block_stride = prepacked ? ukernels::working_b_block_stride(uk, groups) : packed_block_stride;
  const int8_t* b_blocks = prepacked ? w.prepacked_b : w.data;
  const size_t first_block = static_cast<size_t>(n_begin) / kGemmNr;
  const size_t end_block = (static_cast<size_t>(n_end) + kGemmNr - 1) / kGemmNr;
  // Row tiles of uk.mr rows and a shorter last one, or, for kernels whose row count is part of a
  // costly configuration (AMX), as equal as the count allows (56 rows: 28 + 28, not 32 + 24).
  const size_t row_tiles = (rows + uk.mr - 1) / uk.mr;
  const size_t tile_rows = uk.balance_row_tiles ? (rows + row_tiles - 1) / row_tiles : uk.mr;
  // Chunks of about kGemmChunkBytes of packed weights, and no wider than one row tile's accumulators
  // allow (whole tiles of uk.max_blocks blocks).
  const size_t max_chunk_blocks =
      std::max<size_t>(1, kGroupAccumulators / (tile_rows * kGemmNr) / uk.max_blocks) * uk.max_blocks;
  const size_t chunk_blocks = std::min(
      max_chunk_blocks, std::max<size_t>(uk.max_blocks, kGemmChunkBytes / std::max<size_t>(packed_block_stride, 1) /
                                                            uk.max_blocks * uk.max_blocks));
  // The group's accumulators: one row per GEMM row, the chunk's channels across.
  const size_t acc_stride =
      std::min(chunk_blocks, end_block - first_block + uk.max_blocks - 1) / uk.max_blocks * uk.max_blocks * kGemmNr;
  alignas(64) int32_t acc[kGroupAccumulators];
  // Row tiles are taken in groups that share one output-stage call over the chunk's channels: the
  // call's set-up (channel constants, tail masks) spreads over more rows and columns, and wide rows
  // narrow four vectors at a time (qs32-requantize-*). Matters when K is small and the output
  // stage costs as much as the products.
  const size_t group_tiles = std::max<size_t>(1, std::min(kGroupAccumulators / acc_stride / tile_rows,
                                                          kGroupABytes / std::max<size_t>(tile_rows * a_stride, 1)));
  const size_t group_rows = group_tiles * tile_rows;
  // Rows per accumulate call: a tile's, or the whole group's for a kernel that loops over its own
  // tiles (GemmMicrokernel::any_rows; not the tapped form).
  const size_t call_rows = uk.any_rows && !tapped ? group_rows : tile_rows;

  for (size_t chunk = first_block; chunk < end_block; chunk += chunk_blocks) {
    const size_t chunk_end = std::min(end_block, chunk + chunk_blocks);
    const int8_t* b_chunk = b_blocks + chunk * block_stride;
    const size_t n0 = chunk * kGemmNr;
    const size_t nc = std::min(chunk_end * kGemmNr, static_cast<size_t>(n_end)) - n0;  // the chunk's columns
    const size_t j0 = n0 - static_cast<size_t>(n_begin);
    for (size_t i = 0; i < rows; i += group_rows) {
      const size_t mr = std::min(group_rows, rows - i);  // rows of the group
      if (sums_needed && chunk == first_block) sum_rows(i, mr);
      for (size_t nb = chunk; nb < chunk_end; nb += uk.max_blocks) {
        const size_t blocks = std::min(uk.max_blocks, chunk_end - nb);
        const int8_t* b_tile = b_chunk + (nb - chunk) * block_stride;
        for (size_t t = i; t < i + mr; t += call_rows) {
          const size_t tr = std::min(call_rows, i + mr - t);
          int32_t* tile_acc = acc + (t - i) * acc_stride + (nb - chunk) * kGemmNr;
          if (by_offset) {
            uk.accumulate_taps(tr, blocks, a.taps, a.tap_offsets, tap_k, a_rows, a_stride,
                               a.row_offsets + m_begin + static_cast<int64_t>(t), b_tile, block_stride, tile_acc,
                               acc_stride);
          } else if (tapped) {
            uk.accumulate_taps(tr, blocks, a.taps, a.tap_offsets, tap_k, a_rows + t * a_stride, a_stride, nullptr,
                               b_tile, block_stride, tile_acc, acc_stride);
          } else {
            uk.accumulate(tr, blocks, k, a_rows + t * a_stride, a_stride, b_tile, block_stride, tile_acc, acc_stride);
          }
        }
      }
      // The group's rows [r0, r1) go to output rows [out_row, ...): all of them, or each run of
      // valid virtual rows.
      const auto store = [&](size_t r0, size_t r1, size_t out_row) {
        uint8_t* tile = static_cast<uint8_t*>(out) + (out_row * out_stride + n0) * elem;
        uk.requantize(r1 - r0, nc, acc + (r0 - i) * acc_stride, acc_stride, channel_term_buffer.data() + j0,
                      w.zero_point + n0, row_sums != nullptr ? row_sums + r0 : nullptr, stage, n0, tile, out_stride);
        if (stage.residual != nullptr) {
          const ResidualAdd& r = *stage.residual;
          uk.add_residual(r1 - r0, nc, tile, out_stride,
                          static_cast<const uint8_t*>(r.other) + (out_row * r.other_stride + n0) * elem, r.other_stride,
                          stage.type, stage.mode, r);
        }
      };
      if (a.row_period == 0) {
        store(i, i + mr, static_cast<size_t>(m_begin) + i);
      } else {
        for (size_t r0 = i; r0 < i + mr;) {
          const size_t v = static_cast<size_t>(m_begin) + r0, in_period = v % a.row_period;
          const size_t r1 = std::min(i + mr, r0 + (a.row_period - in_period));  // to the period's end
          if (in_period < a.row_valid) {
            store(r0, std::min(r1, r0 + (a.row_valid - in_period)), v / a.row_period * a.row_valid + in_period);
          }
          r0 = r1;
        }
      }
    }
  }
  finish_or_defer(uk);
}

}  // namespace circle_quant
