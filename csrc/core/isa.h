// Run-time choice of the instruction set the microkernels use.
//
// Every kernel family has a scalar reference and SIMD variants; the variant is picked once from
// the CPU's features. The environment variable CIRCLE_QUANT_ISA (one of the names below) or
// set_isa_override() forces a lower path, so tests run every path on one machine.
//
// Levels are ordered within an architecture. A kernel family without a variant for a level uses
// the level that one implies (isa_fallback(), repeatedly): the elementwise kernels (quantize,
// observers) run their avx2 code under avxvnni and their avx512 code under avx512vnni; the GEMM
// runs its avx2 kernels under avx512. Which families have which levels is the kernel registry
// (ukernels/registry.h), not this file.
#pragma once

#include <cstddef>
#include <string>

namespace circle_quant {

enum class Isa {
  kScalar = 0,
  kAvx2 = 1,        // AVX2 + FMA
  kAvxVnni = 2,     // AVX2 + AVX-VNNI (vpdpbusd on ymm, VEX encoded)
  kAvx512 = 3,      // AVX-512 F/BW/DQ/VL
  kAvx512Vnni = 4,  // AVX-512 F/BW/DQ/VL + VNNI (vpdpbusd on zmm)
  kNeon = 5,        // AArch64 Advanced SIMD (always present on AArch64)
  kNeonDot = 6,     // + the dot product extension (sdot / udot, Armv8.2-A DotProd)
  // AVX-512 VNNI + AMX-TILE / AMX-INT8 (tdpbusd on tile registers), with the OS's permission to
  // use the tile data state (Linux: arch_prctl ARCH_REQ_XCOMP_PERM, asked once when detected).
  // Only the GEMM has AMX kernels, for calls of many rows; the rest runs avx512vnni code.
  kAmx = 7,
};

// Every Isa value, lowest first, for parsing, listing and tests.
constexpr Isa kAllIsas[] = {Isa::kScalar,     Isa::kAvx2, Isa::kAvxVnni, Isa::kAvx512,
                            Isa::kAvx512Vnni, Isa::kAmx,  Isa::kNeon,    Isa::kNeonDot};

constexpr size_t kIsaCount = sizeof(kAllIsas) / sizeof(kAllIsas[0]);

const char* isa_name(Isa isa);

// The level `isa` implies one step down (every instruction of the result also runs where `isa`
// does): amx → avx512vnni → avx512 → avx2 → scalar, avxvnni → avx2, neondot → neon → scalar. A level
// not in kAllIsas' chain above it (avx512 does not imply avxvnni) is never reached from it.
// kScalar returns itself.
Isa isa_fallback(Isa isa);

// Parses an isa_name() (scalar, avx2, avxvnni, avx512, avx512vnni, amx, neon, neondot); throws std::invalid_argument
// naming the accepted values.
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
