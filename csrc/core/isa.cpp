#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <fmt/format.h>

namespace circle_quant {
namespace {

bool detect(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return true;
#if defined(__x86_64__) || defined(__i386__)
    // __builtin_cpu_supports also checks that the OS saves the wider register state (XGETBV).
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvxVnni: return detect(Isa::kAvx2) && __builtin_cpu_supports("avxvnni");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    case Isa::kAvx512Vnni: return detect(Isa::kAvx512) && __builtin_cpu_supports("avx512vnni");
#endif
#if defined(__aarch64__)
    case Isa::kNeon: return true;
    case Isa::kNeonDot: return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
    default: return false;
  }
}

Isa best_supported() {
  Isa best = Isa::kScalar;
  for (Isa isa : kAllIsas) {
    if (detect(isa)) best = isa;  // kAllIsas is ordered lowest first
  }
  return best;
}

// -1: no override; otherwise the Isa value.
std::atomic<int> g_override{-1};

Isa checked(Isa isa, const char* origin) {
  if (!detect(isa)) {
    throw std::runtime_error(
        fmt::format("circle_quant: {} asks for the '{}' kernels, but this CPU does not support them "
                    "(best available: '{}')",
                    origin, isa_name(isa), isa_name(best_supported())));
  }
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvxVnni: return "avxvnni";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Vnni: return "avx512vnni";
    case Isa::kNeon: return "neon";
    case Isa::kNeonDot: return "neondot";
  }
  return "unknown";
}

Isa isa_fallback(Isa isa) {
  switch (isa) {
    case Isa::kAvx512Vnni: return Isa::kAvx512;
    case Isa::kAvx512:
    case Isa::kAvxVnni: return Isa::kAvx2;
    case Isa::kNeonDot: return Isa::kNeon;
    default: return Isa::kScalar;
  }
}

Isa parse_isa(const std::string& name) {
  std::string names;
  for (Isa isa : kAllIsas) {
    if (name == isa_name(isa)) return isa;
    names += names.empty() ? isa_name(isa) : fmt::format(", {}", isa_name(isa));
  }
  throw std::invalid_argument(fmt::format("circle_quant: unknown ISA '{}'; expected one of: {}", name, names));
}

bool isa_supported(Isa isa) { return detect(isa); }

Isa active_isa() {
  const int forced = g_override.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  // Read the environment once: kernels call this on every invocation.
  static const int from_env = [] {
    const char* env = std::getenv("CIRCLE_QUANT_ISA");
    if (env == nullptr || *env == '\0') return static_cast<int>(best_supported());
    return static_cast<int>(parse_isa(env));
  }();
  return checked(static_cast<Isa>(from_env), "CIRCLE_QUANT_ISA");
}

void set_isa_override(Isa isa) {
  g_override.store(static_cast<int>(checked(isa, "set_isa_override")), std::memory_order_relaxed);
}

void clear_isa_override() { g_override.store(-1, std::memory_order_relaxed); }

}  // namespace circle_quant
