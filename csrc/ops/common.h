// Shared by the operator definitions (schema + Meta) and their CPU kernels: argument checks that
// name the op and argument at fault, dtype dispatch, and the memory layout the kernels walk.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>

#include "output_cache.h"

namespace torch_circle {

// --- argument checks (shape / dtype / scalar values; never data-dependent) -------------------

// "torch.int8" etc.: dtypes as Python users write them, for error messages.
std::string dtype_name(at::ScalarType dtype);

// quant dtypes the ops accept: uint8, int8, uint16, int16, int32.
bool is_quant_dtype(at::ScalarType dtype);
// [min, max] of a quant dtype's values.
std::pair<int64_t, int64_t> dtype_bounds(at::ScalarType dtype);
void check_quant_range(const char* op, int64_t quant_min, int64_t quant_max, at::ScalarType dtype);
void check_scale(const char* op, double scale);
void check_zero_point(const char* op, int64_t zero_point, int64_t quant_min, int64_t quant_max);
// float32, or float16/bfloat16 (upcast to float32 as quantized_decomposed does).
void check_float_input(const char* op, const at::Tensor& input, const char* name = "input");
void check_quantized_input(const char* op, const at::Tensor& input, at::ScalarType dtype);
// `tensor` (argument `name`) is on `input`'s device. Every tensor argument of an op must be:
// the dispatcher picks one kernel for all of them, so a meta-device scale next to a CPU input
// would otherwise run the Meta kernel and return uninitialized memory. `input_name` names the
// tensor the others are compared with.
void check_same_device(const char* op, const at::Tensor& input, const char* name, const at::Tensor& tensor,
                       const char* input_name = "input");
// Returns the axis in [0, dim).
int64_t check_axis(const char* op, const at::Tensor& input, int64_t axis);
// scales (and zero_points, when given) are 1-D with one entry per channel of input's axis.
void check_channel_params(const char* op, const at::Tensor& input, int64_t axis, const at::Tensor& scales,
                          const c10::optional<at::Tensor>& zero_points);

// --- data checks (CPU kernels only) -----------------------------------------------------------

// Every scale finite and > 0, every zero point inside [quant_min, quant_max] and, with
// `integral_zero_points`, an integer. The quantizing ops require that: quantized_decomposed adds
// a fractional zero point after rounding and truncates when it converts, a result no real
// quantization scheme wants and no SIMD path reproduces (docs/numerics.md).
void check_channel_param_values(const char* op, const at::Tensor& scales, const c10::optional<at::Tensor>& zero_points,
                                int64_t quant_min, int64_t quant_max, bool integral_zero_points);
// Raises "<op>: <name> contains NaN at index i (...)" naming the first NaN's position.
[[noreturn]] void fail_nan(const char* op, const at::Tensor& input, const char* name = "input");

// --- layout -----------------------------------------------------------------------------------

// Output of an elementwise op: same sizes, `dtype`, the input's strides when those are dense.
at::Tensor empty_like_preserve(const at::Tensor& input, at::ScalarType dtype);

// Returns `input` itself when it already has `like`'s strides, else a copy with them, so that
// both can be walked as one flat buffer.
at::Tensor with_strides_of(const at::Tensor& input, const at::Tensor& like);

// A dense tensor's memory seen as [outer, channels, inner] around `axis`: element (o, c, i) sits
// at offset (o * channels + c) * inner + i, whatever the dimension order in memory.
struct ChannelLayout {
  int64_t outer;
  int64_t channels;
  int64_t inner;
};
ChannelLayout channel_layout(const at::Tensor& dense, int64_t axis);

// Elements per task when splitting flat work across threads.
constexpr int64_t kGrainSize = 1 << 15;  // as ATen: smaller tasks cost more to start than they save
// Multiply-accumulates below which a fused linear / conv task is not worth handing to another
// thread: ~10 us on a VNNI core (50-100 GMAC/s), against a few microseconds to start an OpenMP
// region, and much more when the other cores are busy and the team has to wait for them.
constexpr int64_t kMinTaskMacs = int64_t{1} << 20;
// Rows a fused linear / conv / matmul thread's range is aligned to: the microkernels' row tile on
// most ISAs, so a split does not leave a short tile on every thread.
constexpr int64_t kRowTile = 4;

}  // namespace torch_circle

// Dispatches over the quantized dtypes, binding `Q` to the C type.
#define TORCH_CIRCLE_DISPATCH_QTYPES(dtype, op, ...)                                        \
  [&] {                                                                                     \
    switch (dtype) {                                                                        \
      case at::kByte: {                                                                     \
        using Q = uint8_t;                                                                  \
        return __VA_ARGS__();                                                               \
      }                                                                                     \
      case at::kChar: {                                                                     \
        using Q = int8_t;                                                                   \
        return __VA_ARGS__();                                                               \
      }                                                                                     \
      case at::kUInt16: {                                                                   \
        using Q = uint16_t;                                                                 \
        return __VA_ARGS__();                                                               \
      }                                                                                     \
      case at::kShort: {                                                                    \
        using Q = int16_t;                                                                  \
        return __VA_ARGS__();                                                               \
      }                                                                                     \
      case at::kInt: {                                                                      \
        using Q = int32_t;                                                                  \
        return __VA_ARGS__();                                                               \
      }                                                                                     \
      default: TORCH_CHECK(false, op, ": unsupported quantized dtype ", dtype_name(dtype)); \
    }                                                                                       \
  }()
