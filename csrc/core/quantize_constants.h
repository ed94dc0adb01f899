// Quantization of constants (weights, biases, constant operands) outside the kernels' hot loops
// (torch-free core). One copy for the prepack ops (csrc/ops/q*_plan.cpp) and the Circle
// exporter (csrc/exporter/passes), so a model run in PyTorch and its exported file hold the same
// integers. The numerics are docs/numerics.md's quantize.
#pragma once

#include <cstddef>
#include <cstdint>

namespace circle_quant {

// A bias is added to the int32 accumulator Σ (a − za)(b − zb), so it is stored at scale
// s[c] = input_scale · weight_scale[c] (a float product) with zero point 0.
inline float bias_scale(float input_scale, float weight_scale) { return input_scale * weight_scale; }

// q[c] = nearbyint(bias[c] · (1 / s[c])), all in float: the spec's quantize with zero point 0 and
// no clamp (callers check or clamp the range of the type they store, int32 or int64). Returned as
// doubles, which hold every such integer exactly. weight_scale has 1 entry (per tensor) or n.
// Returns the first channel whose 1 / s[c] is not finite (the product underflows), or -1.
int64_t quantize_bias(const float* bias, size_t n, float input_scale, const float* weight_scale,
                      size_t num_weight_scales, double* q);

// Per-channel (or, with channels = 1, per-tensor) quantize of an [outer, channels, inner]
// row-major buffer: each channel c uses scale[c] and zero_point[c], in [qmin, qmax]. Q is one of
// the core's quantized types (uint8, int8, uint16, int16, int32). Returns false if x holds NaN.
template <typename Q>
bool quantize_per_channel(const float* x, Q* y, int64_t outer, int64_t channels, int64_t inner, const float* scale,
                          const int64_t* zero_point, int64_t qmin, int64_t qmax);

}  // namespace circle_quant
