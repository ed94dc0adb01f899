// Affine quantize / dequantize over contiguous buffers (torch-free core).
//
// The numerics are specified once in docs/numerics.md; every ISA path gives bit-identical
// results to the scalar reference, and the reference matches torch.ops.quantized_decomposed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace circle_quant {

// Parameters in the form the kernels consume. Build them with make_quantize_params() so the
// reciprocal and the clamp bounds are computed the same way everywhere.
struct QuantizeParams {
  float inv_scale;  // (float)(1.0 / (double)scale)
  float zero_point;
  float qmin;  // quant_min rounded up to a float (exact below 2^24)
  float qmax;  // quant_max rounded down to a float, so results stay inside the range
};

struct DequantizeParams {
  float scale;
  float zero_point;
};

QuantizeParams make_quantize_params(double scale, int64_t zero_point, int64_t qmin, int64_t qmax);

// y[i] = clamp(nearbyint(x[i] * inv_scale) + zero_point, qmin, qmax).
// Returns false if x holds a NaN; y is then unspecified and the caller must report the error.
template <typename Q>
bool quantize(const float* x, Q* y, size_t n, const QuantizeParams& p);

// The same with per-element parameters: element i uses inv_scale[i] and zero_point[i]. Used for
// per-channel quantization when the channel axis is the innermost (contiguous) one.
template <typename Q>
bool quantize_channelwise(const float* x, Q* y, size_t n, const float* inv_scale, const float* zero_point, float qmin,
                          float qmax);

// y[i] = ((float)x[i] - zero_point) * scale, all in float32.
template <typename Q>
void dequantize(const Q* x, float* y, size_t n, const DequantizeParams& p);

// Per-element parameters, as quantize_channelwise.
template <typename Q>
void dequantize_channelwise(const Q* x, float* y, size_t n, const float* scale, const float* zero_point);

// Fake quantization (quantize then dequantize in float) for QAT:
//   q = clamp(nearbyint(x * inv_scale) + zero_point, qmin, qmax);  y = (q - zero_point) * scale
// mask[i] (if not null) is 1 where the value before clamping lay inside [qmin, qmax]: the
// straight-through gradient passes there and is zero elsewhere. Returns false on NaN input.
bool fake_quantize(const float* x, float* y, uint8_t* mask, size_t n, const QuantizeParams& p, float scale);
// Per-element parameters, as quantize_channelwise.
bool fake_quantize_channelwise(const float* x, float* y, uint8_t* mask, size_t n, const float* inv_scale,
                               const float* zero_point, const float* scale, float qmin, float qmax);

// y[i] = table[x[i]] for n bytes: a function of one quantized byte (the backend's GELU, sigmoid,
// ... tables) as one lookup per element. table: 256 entries indexed by the raw byte; y may be x.
void lookup_bytes(const uint8_t* x, uint8_t* y, size_t n, const uint8_t* table);

// Quantized softmax over `rows` rows of `length` uint8 (or, x_signed, int8) values
// (docs/numerics.md, "Quantized softmax"): per row the probabilities, with exp_of_distance[d] =
// exp(-d · scale) for the 256 byte distances d from the row's maximum, quantized with `out` into
// y (uint8, or int8 when y_signed). Kernels are looked up once per call.
void quantized_softmax(const uint8_t* x, bool x_signed, size_t rows, size_t length, const float* exp_of_distance,
                       const QuantizeParams& out, void* y, bool y_signed);

}  // namespace circle_quant
