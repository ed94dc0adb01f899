// Residual add fused into the quantized layers (fused_add.h).
#include "fused_add.h"

#include <limits>
#include <stdexcept>
#include <string>

#include "common.h"

namespace torch_circle {

void check_fused_add_operand(const char* op, const at::Tensor& layer_out, const at::Tensor& other) {
  const auto dtype = layer_out.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kByte || dtype == at::kChar || dtype == at::kShort, op,
                   ": a fused add needs a quantized layer output (uint8, int8 or int16), but the "
                   "plan's output dtype is ",
                   dtype_name(dtype));
  TORCH_CHECK_TYPE(other.scalar_type() == dtype, op, ": other has dtype ", dtype_name(other.scalar_type()),
                   " but the layer's output is ", dtype_name(dtype), " (the add takes one integer type)");
  TORCH_CHECK_VALUE(other.sym_sizes().equals(layer_out.sym_sizes()), op, ": other has shape ", other.sym_sizes(),
                    " but the layer's output has shape ", layer_out.sym_sizes(), " (the fused add does not broadcast)");
  check_same_device(op, layer_out, "other", other);
}

FusedAdd make_fused_add(const char* op, const circle_quant::OutputStage& layer_stage, float layer_scale,
                        const at::Tensor& layer_out, const FusedAddArgs& args) {
  check_fused_add_operand(op, layer_out, args.other);
  FusedAdd add;
  const auto layout = layer_out.is_contiguous(at::MemoryFormat::ChannelsLast) && layer_out.dim() == 4
                          ? at::MemoryFormat::ChannelsLast
                          : at::MemoryFormat::Contiguous;
  add.other = args.other.contiguous(layout);
  const auto in_int32 = [&](int64_t v, const char* what) {
    TORCH_CHECK_VALUE(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(), op, ": ",
                      what, " ", v, " is out of range");
    return static_cast<int32_t>(v);
  };
  try {
    circle_quant::make_residual_add(layer_stage.type, layer_stage.mode, layer_scale, layer_stage.zero_point,
                                    args.other_scale, in_int32(args.other_zero_point, "other_zero_point"),
                                    args.output_scale, in_int32(args.output_zero_point, "output_zero_point"),
                                    args.activation_min.value_or(-std::numeric_limits<double>::infinity()),
                                    args.activation_max.value_or(std::numeric_limits<double>::infinity()), &add.params);
  } catch (const std::invalid_argument& e) {
    std::string what = e.what();
    const std::string prefix = "circle_quant: ";
    if (what.compare(0, prefix.size(), prefix) == 0) what = what.substr(prefix.size());
    TORCH_CHECK_VALUE(false, op, ": ", what);
  }
  add.params.other = add.other.const_data_ptr();
  add.params.other_stride =
      layer_out.dim() == 0
          ? 1
          : static_cast<size_t>(layout == at::MemoryFormat::ChannelsLast ? layer_out.size(1) : layer_out.size(-1));
  return add;
}

}  // namespace torch_circle
