// Small helpers the passes share, and (included from here) permutations and constant quantization.
#pragma once

#include "exporter/ir/circle_ops.h"
#include "exporter/ir/graph.h"
#include "exporter/passes/constant_quantization.h"
#include "exporter/passes/permutations.h"

#include <string>

namespace torch_circle::exporter {

// The only op reading `tensor`, when it has exactly one reader and is not a graph output.
Op* sole_user(const Graph& graph, const Tensor* tensor);

// Whether the runtime the graph targets has an integer kernel for `type` (an op type before or
// after legalization: "torch.conv2d" and "CONV_2D" alike), from the op table's kOnertInt /
// kLitertInt. onert 0.1.0 runs far fewer ops on integers than LiteRT; an op without a kernel
// stays in float between DEQUANTIZE and QUANTIZE.
bool runs_quantized(const Graph& graph, const std::string& type);

}  // namespace torch_circle::exporter
