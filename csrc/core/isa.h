// Run-time choice of the instruction set the microkernels use.
//
// Every kernel family has a scalar reference and SIMD variants; the variant is picked once from
// the CPU's features. The environment variable CIRCLE_QUANT_ISA (scalar | avx2 | avx512) or
// set_isa_override() forces a lower path, so tests run every path on one machine.
#pragma once

#include <string>

namespace circle_quant {

enum class Isa {
  kScalar = 0,
  kAvx2 = 1,    // AVX2 + FMA
  kAvx512 = 2,  // AVX-512 F/BW/DQ/VL
};

const char* isa_name(Isa isa);

// Parses "scalar", "avx2", "avx512"; throws std::invalid_argument naming the accepted values.
Isa parse_isa(const std::string& name);

// True when this CPU (and OS) can run kernels built for `isa`.
bool isa_supported(Isa isa);

// The best ISA this CPU supports, unless forced by set_isa_override() or CIRCLE_QUANT_ISA.
// Throws std::runtime_error if the forced ISA is not supported here.
Isa active_isa();

// Forces `isa` for all later kernel calls in this process (throws if unsupported).
void set_isa_override(Isa isa);
// Returns to the automatic choice (CIRCLE_QUANT_ISA still applies).
void clear_isa_override();

}  // namespace circle_quant
