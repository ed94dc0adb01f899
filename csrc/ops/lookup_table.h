// lookup_table: each 8-bit integer of the input mapped through a 256-entry table. The compile
// backend builds such tables for dequantize → elementwise ops → quantize chains (a function of one
// byte), so GELU, sigmoid, tanh, SiLU, ... on quantized tensors cost one gather per element.
#pragma once

#include "common.h"

namespace torch_circle {

// Argument checks and the output (the input's shape and layout, the table's dtype); the Meta kernel.
at::Tensor lookup_table_allocate(const at::Tensor& input, const at::Tensor& table);

}  // namespace torch_circle
