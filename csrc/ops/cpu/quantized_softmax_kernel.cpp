// CPU kernel of quantized_softmax over the last dimension, rows split across threads. Per row,
// the active ISA's kernels (circle_quant::quantized_softmax): the largest byte; the exps of the
// (non-positive) dequantized distance to it from one 256-entry table indexed by the byte
// distance; their float sum; the probabilities exp · (1 / sum), quantized like
// quantize_per_tensor (docs/numerics.md, "Quantized softmax").
#include <ATen/Parallel.h>

#include <array>
#include <cmath>

#include "../quantized_softmax.h"
#include "core/quantize.h"

namespace torch_circle {
namespace {

at::Tensor quantized_softmax_cpu(const at::Tensor& input, double input_scale, int64_t input_zero_point,
                                 double output_scale, int64_t output_zero_point, int64_t quant_min, int64_t quant_max,
                                 at::ScalarType dtype) {
  auto out = quantized_softmax_allocate(input, input_scale, input_zero_point, output_scale, output_zero_point,
                                        quant_min, quant_max, dtype);
  const int64_t length = input.dim() ? input.size(-1) : 1;
  if (out.numel() == 0) return out;
  const auto dense = input.contiguous();
  const int64_t rows = dense.numel() / length;
  const auto params = circle_quant::make_quantize_params(output_scale, output_zero_point, quant_min, quant_max);
  // The zero point cancels in x - max; the scale is the input's float32 scale.
  const float scale = static_cast<float>(input_scale);
  // exp(-d · s) for the byte distance d = max - x in [0, 255], in float32.
  std::array<float, 256> table;
  for (int d = 0; d < 256; ++d) table[d] = std::exp(-static_cast<float>(d) * scale);
  const auto* in = static_cast<const uint8_t*>(dense.const_data_ptr());
  const bool in_signed = dense.scalar_type() == at::kChar, out_signed = out.scalar_type() == at::kChar;
  auto* y = static_cast<uint8_t*>(out.data_ptr());
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    circle_quant::quantized_softmax(in + begin * length, in_signed, static_cast<size_t>(end - begin),
                                    static_cast<size_t>(length), table.data(), params, y + begin * length, out_signed);
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("quantized_softmax", &quantized_softmax_cpu); }

}  // namespace torch_circle
