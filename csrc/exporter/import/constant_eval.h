#pragma once

#include "exporter/import/fx_importer.h"

namespace torch_circle::exporter {

// Evaluates the current node when none of its inputs depends on a model input, binding its
// output to a constant. Returns false (and changes nothing) when it cannot.
bool try_evaluate_constant(ImportContext& ctx);

}  // namespace torch_circle::exporter
