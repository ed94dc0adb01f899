// Kernel-path control, for tests and benchmarks: which ISA the microkernels use.
#include <torch/library.h>

#include <stdexcept>

#include "core/isa.h"
#include "core/ukernels/registry.h"

namespace torch_circle {
namespace {

std::string active_isa() { return circle_quant::isa_name(circle_quant::active_isa()); }

// The integer GEMM microkernel the active ISA runs for a call of `rows` rows (AVX2 has one for
// few rows and one for many), e.g. "qu8-gemm-8x48c4-avx512vnni".
std::string gemm_kernel(int64_t rows) {
  TORCH_CHECK_VALUE(rows >= 1, "circle_quant::_gemm_kernel: rows must be at least 1, got ", rows);
  return circle_quant::ukernels::gemm_microkernel_for(circle_quant::active_isa(), 0, static_cast<size_t>(rows)).name;
}

// "" returns to the automatic choice; anything else must name an ISA this CPU supports.
void set_isa(const std::string& isa) {
  try {
    if (isa.empty()) {
      circle_quant::clear_isa_override();
    } else {
      circle_quant::set_isa_override(circle_quant::parse_isa(isa));
    }
  } catch (const std::exception& e) {
    TORCH_CHECK_VALUE(false, e.what());
  }
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(circle_quant, m)
{
  m.def("_active_isa() -> str", &active_isa);
  m.def("_set_isa(str isa) -> ()", &set_isa);
  m.def("_gemm_kernel(int rows) -> str", &gemm_kernel);
}

}  // namespace torch_circle
