// One writer per row of the op table (ir/circle_ops.lst): its builtin code and the options
// table it needs, built from the IR op's attributes.
#pragma once

#include "exporter/ir/graph.h"

#include <circle_schema_generated.h>

#include <functional>
#include <string>

namespace torch_circle::exporter {

struct OptionsRef {
  circle::BuiltinOptions type = circle::BuiltinOptions_NONE;
  flatbuffers::Offset<void> table;
};

struct OpWriter {
  circle::BuiltinOperator code;
  std::function<OptionsRef(flatbuffers::FlatBufferBuilder&, const Op&)> options;
};

// The writer for an IR op type ("CONV_2D"), or nullptr when the op table has no such Circle op.
const OpWriter* find_op_writer(const std::string& type);

}  // namespace torch_circle::exporter
