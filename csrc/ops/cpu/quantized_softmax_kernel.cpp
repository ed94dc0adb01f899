// CPU kernel of quantized_softmax over the last dimension. Per row: the largest byte; the exps
// of the (non-positive) dequantized distance to it from one 256-entry table indexed by the byte
// distance; their float sum; then probability = exp · (1 / sum), quantized like
// quantize_per_tensor (docs/numerics.md, "Quantized softmax").
#include <ATen/Parallel.h>

#include <array>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../quantized_softmax.h"
#include "core/quantize.h"

namespace torch_circle {
namespace {

template <typename In, typename Out>
void softmax_rows(const In* input, Out* output, int64_t rows, int64_t length, float input_scale,
                  const circle_quant::QuantizeParams& out_params) {
  // exp(-d · s) for the byte distance d = max - x in [0, 255], in float32.
  std::array<float, 256> table;
  for (int d = 0; d < 256; ++d) table[d] = std::exp(-static_cast<float>(d) * input_scale);
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> probabilities(length);
    for (int64_t r = begin; r < end; ++r) {
      const In* x = input + r * length;
      In m = x[0];
      for (int64_t j = 1; j < length; ++j) m = x[j] > m ? x[j] : m;
      const int top = m;
      // Eight running sums, combined pairwise: one chain of float adds (4 cycles each) cost more
      // than everything else in the row.
      float partial[8] = {};
      int64_t j = 0;
      for (; j + 8 <= length; j += 8) {
        for (int l = 0; l < 8; ++l) {
          probabilities[j + l] = table[top - static_cast<int>(x[j + l])];
          partial[l] += probabilities[j + l];
        }
      }
      for (; j < length; ++j) {
        probabilities[j] = table[top - static_cast<int>(x[j])];
        partial[j % 8] += probabilities[j];
      }
      const float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                        ((partial[4] + partial[5]) + (partial[6] + partial[7]));
      const float inverse = 1.f / sum;
      for (int64_t j = 0; j < length; ++j) probabilities[j] *= inverse;
      circle_quant::quantize<Out>(probabilities.data(), output + r * length, length, out_params);
    }
  });
}

template <typename In>
void dispatch_output(const at::Tensor& in, at::Tensor& out, int64_t rows, int64_t length, float scale,
                     const circle_quant::QuantizeParams& params) {
  if (out.scalar_type() == at::kByte)
    softmax_rows(in.data_ptr<In>(), out.data_ptr<uint8_t>(), rows, length, scale, params);
  else
    softmax_rows(in.data_ptr<In>(), out.data_ptr<int8_t>(), rows, length, scale, params);
}

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
  if (dense.scalar_type() == at::kByte)
    dispatch_output<uint8_t>(dense, out, rows, length, scale, params);
  else
    dispatch_output<int8_t>(dense, out, rows, length, scale, params);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("quantized_softmax", &quantized_softmax_cpu); }

}  // namespace torch_circle
