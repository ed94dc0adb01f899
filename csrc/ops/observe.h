// Observer ops: min/max statistics, HistogramObserver's running histogram, and scale / zero point
// choice. Each *_allocate() checks the arguments that do not depend on data and returns the
// uninitialised outputs; it is the Meta kernel and the first step of the CPU kernel.
#pragma once

#include <tuple>

#include "common.h"

namespace torch_circle {

using TensorPair = std::tuple<at::Tensor, at::Tensor>;
using TensorTriple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

TensorPair minmax_allocate(const at::Tensor& input);
TensorPair minmax_per_channel_allocate(const at::Tensor& input, int64_t axis);
TensorPair choose_qparams_allocate(const at::Tensor& min_val, const at::Tensor& max_val, int64_t quant_min,
                                   int64_t quant_max, at::ScalarType dtype, bool symmetric, double eps,
                                   bool has_customized_qrange);
// In-place observer updates (the state tensors are mutated): one call per observed batch.
void running_minmax_check(const at::Tensor& input, const at::Tensor& min_val, const at::Tensor& max_val,
                          c10::optional<double> averaging_constant);
void histogram_observe_inplace_check(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                     const at::Tensor& max_val, int64_t upsample_rate);
TensorTriple histogram_observe_allocate(const at::Tensor& input, const at::Tensor& histogram, const at::Tensor& min_val,
                                        const at::Tensor& max_val, int64_t upsample_rate);
TensorPair histogram_choose_qparams_allocate(const at::Tensor& histogram, const at::Tensor& min_val,
                                             const at::Tensor& max_val, int64_t quant_min, int64_t quant_max,
                                             at::ScalarType dtype, bool symmetric, double eps,
                                             bool has_customized_qrange);

// The zero point torchao's observers give symmetric schemes (see core/qparams.h).
int64_t symmetric_zero_point(at::ScalarType dtype, int64_t quant_min, int64_t quant_max, bool has_customized_qrange);

}  // namespace torch_circle
