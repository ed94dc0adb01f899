// Facts about the ops of the exporter's IR, from the one table in circle_ops.lst. Torch-free:
// the reader of untrusted files (built without torch) checks input counts with it too.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace torch_circle::exporter {

// How a TRANSPOSE in front of the op can move behind it (sink_transposes).
enum class OpLayout : uint8_t {
  kElementwise,   // any layout: the transpose moves through unchanged (constants are permuted)
  kConcat,        // any layout; its `axis` attribute is remapped
  kPad,           // any layout; its `paddings` pairs are remapped
  kPerDim,        // any layout; its per-dimension lists (`begin`, `size`, `multiples`) are remapped
  kReduce,        // any layout; its `axes` are remapped
  kChannelsLast,  // NHWC in Circle (NCHW in PyTorch): legalize_layout puts it between transposes
  kFixedFrame,    // reads shapes or axes in its own frame: a transpose stays in front of it
};

// What the op's integer kernels do with quantization parameters (insert_requantize).
enum class QuantRule : uint8_t {
  kRescales,     // computes into its output's parameters: nothing to do
  kSameParams,   // copies, selects or averages integers: output and inputs must share parameters
  kFixedOutput,  // writes a fixed range its kernels assume (LOGISTIC, SOFTMAX, TANH)
  kFloatOnly,    // no integer kernel in either runtime: it stays in float
};

enum OpFlags : unsigned {
  kNoFlags = 0,
  kOnertInt = 1u << 0,         // onert runs it on integers (uint8)
  kLitertInt = 1u << 1,        // LiteRT runs it on integers (int8 / int16)
  kFusesActivation = 1u << 2,  // its options take a fused RELU / RELU6 / RELU_N1_TO_1
  kRearranges = 1u << 3,       // only moves or repeats its one data input's elements: quantization
                               // parameters pass through it unchanged (propagate_qparams)
};

inline constexpr int kAnyInputs = -1;
inline constexpr int kNotABuiltin = -1;

struct OpInfo {
  std::string_view type;  // the IR op type: "CONV_2D", or an importer-only "torch.conv2d"
  int builtin;            // circle::BuiltinOperator, or kNotABuiltin for an importer-only op
  OpLayout layout;
  QuantRule quant;
  unsigned flags;
  int min_inputs;
  int max_inputs;             // kAnyInputs: no limit
  std::string_view operands;  // see circle_ops.lst
  bool has(OpFlags flag) const { return (flags & flag) != 0; }
};

// Every row of circle_ops.lst, in table order.
const std::vector<OpInfo>& op_table();
// The row for an IR op type, or nullptr when the table has none.
const OpInfo* find_op(std::string_view type);
// The row for a Circle builtin code, or nullptr.
const OpInfo* find_builtin(int builtin);

// The fusable activations: the ops fuse_activation folds into a kFusesActivation producer. The
// quantizer and the torch.compile backend read this list through torch_circle._C.
const std::vector<std::string_view>& fusable_activations();

}  // namespace torch_circle::exporter
