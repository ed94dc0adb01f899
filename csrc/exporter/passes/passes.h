// The exporter's passes, one per file, in the order run_passes applies them. Each takes the IR
// as the previous one left it; see docs/exporter.md for what each expects and guarantees.
#pragma once

#include "exporter/ir/graph.h"

#include <functional>
#include <string>
#include <vector>

namespace torch_circle::exporter {

// Decompose / fuse (PyTorch semantics, before quantization is folded).
void promote_operand_types(Graph& graph);  // CAST operands to the dtype PyTorch's promotion computes in
void legalize_batch_matmul(Graph& graph);  // BATCH_MATMUL with a constant left operand → transposed form
// .circle: GATHER / BROADCAST_TO of int64 or bool, FLOOR_DIV of int64 → on int32 between CASTs
void legalize_integer_ops(Graph& graph);
void fuse_batch_norm(Graph& graph);  // conv + batch norm → conv; a lone batch norm → MUL + ADD
void decompose_norms(Graph& graph);  // layer norm / RMS norm → MEAN, SUB, MUL, RSQRT, ...
void fuse_activation(Graph& graph);  // conv / fc / add ... + RELU / RELU6 → fused activation

// Quantization.
void propagate_qparams(Graph& graph);           // dq sinks / q rises through layout ops, taking qparams along
void fold_quantization(Graph& graph);           // dq → op → q becomes one quantized op; weights as integers
void quantize_bias(Graph& graph);               // conv / fc bias → int32 (int64 for int16) at s_in * s_w
void legalize_weight_signedness(Graph& graph);  // int8 weights under uint8 activations → uint8 (+128)

// Layout.
void legalize_layout(Graph& graph);           // torch.conv2d, pools ... → NHWC Circle ops + TRANSPOSE
void sink_transposes(Graph& graph);           // move transposes down and cancel inverse pairs
void legalize_fully_connected(Graph& graph);  // FC forms runtimes get wrong → reshapes / 1x1 conv

// Clean-up and final form.
void insert_requantize(Graph& graph);         // QUANTIZE where an op needs other qparams than it gets
void fold_constants(Graph& graph);            // ops whose inputs are all constants
void fold_constant_dequantize(Graph& graph);  // weights left in float: DEQUANTIZE folded away
void remove_dead_code(Graph& graph);          // ops whose outputs nobody reads
void merge_duplicate_ops(Graph& graph);       // the same op on the same inputs, computed once
void separate_graph_outputs(Graph& graph);    // an output other ops read gets its own tensor (onert)
void materialize_operands(Graph& graph);      // attrs that Circle takes as tensors (shape, perm, axes)
void check_exportable(const Graph& graph);    // every op is a Circle op with consistent dtypes
// "float32 and int32" when an op promote_operand_types covers reads operands of different dtypes.
std::string mixed_operand_types(const Op& op);

struct PassOptions {
  int verbose = 0;  // 1: op count after each pass; 2: also every op (stderr, for debugging)
};

// The whole pipeline, in order.
void run_passes(Graph& graph, const PassOptions& options = {});

// Names of the passes in order, with the function each runs (tests run them one at a time).
const std::vector<std::pair<std::string, std::function<void(Graph&)>>>& pass_pipeline();

}  // namespace torch_circle::exporter
