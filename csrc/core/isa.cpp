#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif
#if defined(__aarch64__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <fmt/format.h>

namespace circle_quant {
namespace {

#if defined(__x86_64__)
// AMX-TILE and AMX-INT8 (CPUID leaf 7, EDX bits 24 and 25), enabled by the OS in XCR0 (tile
// config and data, bits 17 and 18), and Linux's permission for this process to use the 8 KB tile
// data state: without it the first tile instruction raises SIGILL. Asked once; oneDNN asks the
// same, and a granted permission stays for the process.
bool detect_amx() {
  static const bool ok = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if ((edx & (1u << 24)) == 0 || (edx & (1u << 25)) == 0) return false;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 27)) == 0) return false;  // OSXSAVE
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}
#endif

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
#if defined(__x86_64__)
    case Isa::kAmx: return detect(Isa::kAvx512Vnni) && detect_amx();
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
    case Isa::kAmx: return "amx";
  }
  return "unknown";
}

Isa isa_fallback(Isa isa) {
  switch (isa) {
    case Isa::kAmx: return Isa::kAvx512Vnni;
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
  // Read the environment and check it once: kernels call this on every invocation. An
  // unsupported value throws here and again on the next call (the static stays unset).
  static const int from_env = [] {
    const char* env = std::getenv("CIRCLE_QUANT_ISA");
    if (env == nullptr || *env == '\0') return static_cast<int>(best_supported());
    return static_cast<int>(checked(parse_isa(env), "CIRCLE_QUANT_ISA"));
  }();
  return static_cast<Isa>(from_env);
}

void set_isa_override(Isa isa) {
  g_override.store(static_cast<int>(checked(isa, "set_isa_override")), std::memory_order_relaxed);
}

void clear_isa_override() { g_override.store(-1, std::memory_order_relaxed); }

}  // namespace circle_quant
