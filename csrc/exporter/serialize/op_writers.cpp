#include "exporter/serialize/op_writers.h"

#include <fmt/format.h>

#include <map>

namespace torch_circle::exporter {
namespace {

using Builder = flatbuffers::FlatBufferBuilder;

circle::ActivationFunctionType activation(const Op& op) {
  if (!op.has("fused_activation")) return circle::ActivationFunctionType_NONE;
  const std::string& name = op.s("fused_activation");
  if (name == "RELU") return circle::ActivationFunctionType_RELU;
  if (name == "RELU6") return circle::ActivationFunctionType_RELU6;
  if (name == "RELU_N1_TO_1") return circle::ActivationFunctionType_RELU_N1_TO_1;
  throw ExportError(fmt::format("{} ({}): unknown fused activation {}", op.type, op.origin, name));
}

circle::Padding padding(const Op& op) {
  const std::string& name = op.s("padding");
  if (name == "SAME") return circle::Padding_SAME;
  if (name == "VALID") return circle::Padding_VALID;
  throw ExportError(fmt::format("{} ({}): padding must be SAME or VALID, not {}", op.type, op.origin, name));
}

int32_t i32(int64_t v) { return static_cast<int32_t>(v); }

template <typename T>
OptionsRef ref(circle::BuiltinOptions type, flatbuffers::Offset<T> table) {
  return {type, table.Union()};
}

// Writers whose op needs an options table; every other builtin gets a writer with none.
const std::map<std::string, std::function<OptionsRef(Builder&, const Op&)>>& options_writers() {
  static const std::map<std::string, std::function<OptionsRef(Builder&, const Op&)>> writers{
      {"CONV_2D", [](Builder& b, const Op& op) {
         auto s = op.ints("stride"), d = op.ints("dilation");
         return ref(circle::BuiltinOptions_Conv2DOptions,
                    circle::CreateConv2DOptions(b, padding(op), i32(s[1]), i32(s[0]), activation(op), i32(d[1]), i32(d[0])));
       }},
      {"DEPTHWISE_CONV_2D", [](Builder& b, const Op& op) {
         auto s = op.ints("stride"), d = op.ints("dilation");
         return ref(circle::BuiltinOptions_DepthwiseConv2DOptions,
                    circle::CreateDepthwiseConv2DOptions(b, padding(op), i32(s[1]), i32(s[0]), i32(op.i("depth_multiplier")),
                                                         activation(op), i32(d[1]), i32(d[0])));
       }},
      {"TRANSPOSE_CONV", [](Builder& b, const Op& op) {
         auto s = op.ints("stride");
         return ref(circle::BuiltinOptions_TransposeConvOptions,
                    circle::CreateTransposeConvOptions(b, padding(op), i32(s[1]), i32(s[0]), activation(op)));
       }},
      {"MAX_POOL_2D", [](Builder& b, const Op& op) {
         auto s = op.ints("stride"), k = op.ints("kernel");
         return ref(circle::BuiltinOptions_Pool2DOptions,
                    circle::CreatePool2DOptions(b, padding(op), i32(s[1]), i32(s[0]), i32(k[1]), i32(k[0]), activation(op)));
       }},
      {"AVERAGE_POOL_2D", [](Builder& b, const Op& op) {
         auto s = op.ints("stride"), k = op.ints("kernel");
         return ref(circle::BuiltinOptions_Pool2DOptions,
                    circle::CreatePool2DOptions(b, padding(op), i32(s[1]), i32(s[0]), i32(k[1]), i32(k[0]), activation(op)));
       }},
      {"FULLY_CONNECTED", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_FullyConnectedOptions,
                    circle::CreateFullyConnectedOptions(b, activation(op), circle::FullyConnectedOptionsWeightsFormat_DEFAULT,
                                                        op.i("keep_num_dims", 0) != 0));
       }},
      {"ADD", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_AddOptions, circle::CreateAddOptions(b, activation(op)));
       }},
      {"SUB", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_SubOptions, circle::CreateSubOptions(b, activation(op)));
       }},
      {"MUL", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_MulOptions, circle::CreateMulOptions(b, activation(op)));
       }},
      {"DIV", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_DivOptions, circle::CreateDivOptions(b, activation(op)));
       }},
      {"CONCATENATION", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ConcatenationOptions,
                    circle::CreateConcatenationOptions(b, i32(op.i("axis")), activation(op)));
       }},
      {"SOFTMAX", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_SoftmaxOptions, circle::CreateSoftmaxOptions(b, static_cast<float>(op.f("beta"))));
       }},
      {"RESHAPE", [](Builder& b, const Op& op) {
         std::vector<int32_t> shape;
         for (int64_t d : op.ints("shape")) shape.push_back(i32(d));
         return ref(circle::BuiltinOptions_ReshapeOptions, circle::CreateReshapeOptions(b, b.CreateVector(shape)));
       }},
      {"TRANSPOSE", [](Builder& b, const Op&) {
         return ref(circle::BuiltinOptions_TransposeOptions, circle::CreateTransposeOptions(b));
       }},
      {"MEAN", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ReducerOptions, circle::CreateReducerOptions(b, op.i("keep_dims") != 0));
       }},
      {"SUM", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ReducerOptions, circle::CreateReducerOptions(b, op.i("keep_dims") != 0));
       }},
      {"REDUCE_MAX", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ReducerOptions, circle::CreateReducerOptions(b, op.i("keep_dims") != 0));
       }},
      {"REDUCE_MIN", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ReducerOptions, circle::CreateReducerOptions(b, op.i("keep_dims") != 0));
       }},
      {"STRIDED_SLICE", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_StridedSliceOptions,
                    circle::CreateStridedSliceOptions(b, 0, 0, 0, 0, i32(op.i("shrink_axis_mask", 0))));
       }},
      {"SPLIT_V", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_SplitVOptions,
                    circle::CreateSplitVOptions(b, static_cast<int32_t>(op.outputs.size())));
       }},
      {"GATHER", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_GatherOptions,
                    circle::CreateGatherOptions(b, i32(op.i("axis")), i32(op.i("batch_dims", 0))));
       }},
      {"BATCH_MATMUL", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_BatchMatMulOptions,
                    circle::CreateBatchMatMulOptions(b, op.i("adj_x", 0) != 0, op.i("adj_y", 0) != 0));
       }},
      {"LEAKY_RELU", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_LeakyReluOptions, circle::CreateLeakyReluOptions(b, static_cast<float>(op.f("alpha"))));
       }},
      {"GELU", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_GeluOptions, circle::CreateGeluOptions(b, op.i("approximate", 0) != 0));
       }},
      {"CAST", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_CastOptions,
                    circle::CreateCastOptions(b, static_cast<circle::TensorType>(op.inputs[0]->dtype),
                                              static_cast<circle::TensorType>(op.outputs[0]->dtype)));
       }},
      {"ARG_MAX", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ArgMaxOptions,
                    circle::CreateArgMaxOptions(b, static_cast<circle::TensorType>(op.outputs[0]->dtype)));
       }},
      {"SLICE", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_SliceOptions, circle::CreateSliceOptions(b)); }},
      {"TILE", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_TileOptions, circle::CreateTileOptions(b)); }},
      {"PAD", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_PadOptions, circle::CreatePadOptions(b)); }},
      {"PADV2", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_PadV2Options, circle::CreatePadV2Options(b)); }},
      {"QUANTIZE", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_QuantizeOptions, circle::CreateQuantizeOptions(b)); }},
      {"DEQUANTIZE", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_DequantizeOptions, circle::CreateDequantizeOptions(b)); }},
      {"HARD_SWISH", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_HardSwishOptions, circle::CreateHardSwishOptions(b)); }},
      {"SELECT_V2", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_SelectV2Options, circle::CreateSelectV2Options(b)); }},
      {"EXP", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_ExpOptions, circle::CreateExpOptions(b)); }},
      {"POW", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_PowOptions, circle::CreatePowOptions(b)); }},
      {"MAXIMUM", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_MaximumMinimumOptions, circle::CreateMaximumMinimumOptions(b)); }},
      {"MINIMUM", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_MaximumMinimumOptions, circle::CreateMaximumMinimumOptions(b)); }},
      {"LOG_SOFTMAX", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LogSoftmaxOptions, circle::CreateLogSoftmaxOptions(b)); }},
      {"BROADCAST_TO", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_BroadcastToOptions, circle::CreateBroadcastToOptions(b)); }},
      {"NEG", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_NegOptions, circle::CreateNegOptions(b)); }},
      {"ABS", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_AbsOptions, circle::CreateAbsOptions(b)); }},
      {"FLOOR_DIV", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_FloorDivOptions, circle::CreateFloorDivOptions(b)); }},
      {"EQUAL", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_EqualOptions, circle::CreateEqualOptions(b)); }},
      {"NOT_EQUAL", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_NotEqualOptions, circle::CreateNotEqualOptions(b)); }},
      {"LESS", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LessOptions, circle::CreateLessOptions(b)); }},
      {"LESS_EQUAL", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LessEqualOptions, circle::CreateLessEqualOptions(b)); }},
      {"GREATER", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_GreaterOptions, circle::CreateGreaterOptions(b)); }},
      {"GREATER_EQUAL", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_GreaterEqualOptions, circle::CreateGreaterEqualOptions(b)); }},
      {"SHAPE", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ShapeOptions,
                    circle::CreateShapeOptions(b, static_cast<circle::TensorType>(op.outputs[0]->dtype)));
       }},
      {"RESIZE_BILINEAR", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ResizeBilinearOptions,
                    circle::CreateResizeBilinearOptions(b, op.i("align_corners") != 0, op.i("half_pixel_centers") != 0));
       }},
      {"REDUCE_ANY", [](Builder& b, const Op& op) {
         return ref(circle::BuiltinOptions_ReducerOptions, circle::CreateReducerOptions(b, op.i("keep_dims") != 0));
       }},
      {"LOGICAL_AND", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LogicalAndOptions, circle::CreateLogicalAndOptions(b)); }},
      {"LOGICAL_OR", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LogicalOrOptions, circle::CreateLogicalOrOptions(b)); }},
      {"LOGICAL_NOT", [](Builder& b, const Op&) { return ref(circle::BuiltinOptions_LogicalNotOptions, circle::CreateLogicalNotOptions(b)); }},
  };
  return writers;
}

}  // namespace

const OpWriter* find_op_writer(const std::string& type) {
  static const std::map<std::string, OpWriter> writers = [] {
    std::map<std::string, OpWriter> all;
    for (circle::BuiltinOperator code : circle::EnumValuesBuiltinOperator()) {
      OpWriter writer{code, nullptr};
      auto it = options_writers().find(circle::EnumNameBuiltinOperator(code));
      if (it != options_writers().end()) writer.options = it->second;
      all.emplace(circle::EnumNameBuiltinOperator(code), writer);
    }
    return all;
  }();
  auto it = writers.find(type);
  return it == writers.end() ? nullptr : &it->second;
}

}  // namespace torch_circle::exporter
