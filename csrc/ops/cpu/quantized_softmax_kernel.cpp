// CPU kernel of quantized_softmax over the last dimension. Per row: the largest byte; the exps
// of (dequantized value − dequantized maximum) from a 256-entry table for that maximum; their
// float sum; then probability = exp · (1 / sum), quantized like quantize_per_tensor. The tables
// (one per row maximum that occurs, at most 256) are built before the rows are split across
// threads, so the row loop only reads them.
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
void softmax_rows(const In* input, Out* output, int64_t rows, int64_t length, float input_scale, float input_zero_point,
                  const circle_quant::QuantizeParams& out_params) {
  constexpr int kOffset = std::is_same<In, int8_t>::value ? 128 : 0;  // value → table index
  // Row maxima first: they say which exp tables are needed.
  std::vector<uint8_t> row_max(rows);
  at::parallel_for(0, rows, 256, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const In* x = input + r * length;
      In m = x[0];
      for (int64_t j = 1; j < length; ++j) m = x[j] > m ? x[j] : m;
      row_max[r] = static_cast<uint8_t>(static_cast<int>(m) + kOffset);
    }
  });
  std::array<char, 256> used{};
  for (uint8_t m : row_max) used[m] = 1;
  // exp(dequantize(v) − dequantize(max)), each dequantize and the difference in float32 as in
  // the reference graph; entries above the maximum never occur in its rows.
  std::vector<float> tables(256 * 256);
  auto dequantized = [&](int index) { return (static_cast<float>(index - kOffset) - input_zero_point) * input_scale; };
  at::parallel_for(0, 256, 16, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      if (!used[m]) continue;
      const float top = dequantized(static_cast<int>(m));
      for (int v = 0; v <= m; ++v) tables[m * 256 + v] = std::exp(dequantized(v) - top);
    }
  });
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> probabilities(length);
    for (int64_t r = begin; r < end; ++r) {
      const In* x = input + r * length;
      const float* table = tables.data() + 256 * row_max[r];
      float sum = 0.f;
      for (int64_t j = 0; j < length; ++j) {
        probabilities[j] = table[static_cast<int>(x[j]) + kOffset];
        sum += probabilities[j];
      }
      const float inverse = 1.f / sum;
      for (int64_t j = 0; j < length; ++j) probabilities[j] *= inverse;
      circle_quant::quantize<Out>(probabilities.data(), output + r * length, length, out_params);
    }
  });
}

template <typename In>
void dispatch_output(const at::Tensor& in, at::Tensor& out, int64_t rows, int64_t length, float scale, float zero_point,
                     const circle_quant::QuantizeParams& params) {
  if (out.scalar_type() == at::kByte)
    softmax_rows(in.data_ptr<In>(), out.data_ptr<uint8_t>(), rows, length, scale, zero_point, params);
  else
    softmax_rows(in.data_ptr<In>(), out.data_ptr<int8_t>(), rows, length, scale, zero_point, params);
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
  // The reference dequantizes in float32: (float(x) − zero point) · float(scale).
  const float scale = static_cast<float>(input_scale), zero_point = static_cast<float>(input_zero_point);
  if (dense.scalar_type() == at::kByte)
    dispatch_output<uint8_t>(dense, out, rows, length, scale, zero_point, params);
  else
    dispatch_output<int8_t>(dense, out, rows, length, scale, zero_point, params);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(circle_quant, CPU, m)
{ m.impl("quantized_softmax", &quantized_softmax_cpu); }

}  // namespace torch_circle
