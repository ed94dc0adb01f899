// Quantization of constants at export time, with the core's numerics (docs/numerics.md).
#pragma once

#include "exporter/ir/graph.h"

#include <utility>

namespace torch_circle::exporter {

// Integer range of a quantized dtype.
std::pair<int64_t, int64_t> quant_range(DType dtype);
// round-half-even(x / scale) + zero_point, clamped, as `dtype`: the numerics spec's quantize.
at::Tensor quantize_constant(const at::Tensor& real, const QuantParams& quant, DType dtype);
at::Tensor dequantize_constant(const at::Tensor& q, const QuantParams& quant);
// Per-tensor parameters covering a float constant's range (and 0), for `dtype`; symmetric when
// the dtype's activations are (int16).
QuantParams choose_constant_quant(const at::Tensor& real, DType dtype);

}  // namespace torch_circle::exporter
