#!/usr/bin/env bash
# Runs the torch-free kernel tests (core_tests) on lesser x86 CPUs than this one, emulated by
# Debian's qemu-user (TCG), so every ISA tier is proved on any machine:
#   1. -cpu Haswell  (AVX2 + FMA; AVX-512 and AVX-VNNI raise SIGILL): the automatic choice must be
#      avx2, and every test forcing avx2 runs real AVX2 code with nothing above it;
#   2. -cpu Nehalem  (SSE4.2, no AVX): the automatic choice must be scalar. TCG does not trap AVX2
#      on older CPU models, so this tier checks the dispatch (CPUID), not the instruction set.
# Then a Python smoke test under -cpu Haswell (TORCH_SMOKE=0 skips it): import torch_circle,
# quantize, one fused linear and one fused conv against the reference, automatic ISA avx2.
#   bash scripts/test_x86_tiers.sh [build dir with core_tests; default build/cmake]
# Installs qemu-user with apt when missing. Emulation is about 20-50x slower than the host.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/cmake}
PYTHON=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

if [[ $(uname -m) != x86_64 ]]; then
  echo "test_x86_tiers.sh: x86_64 hosts only (this is $(uname -m)); nothing to do"
  exit 0
fi
if ! command -v qemu-x86_64 > /dev/null; then
  step "apt-get install qemu-user"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends qemu-user
fi

CORE_TESTS=$BUILD/tests/cpp/core_tests
if [[ ! -x $CORE_TESTS ]]; then
  step "build core_tests in $BUILD"
  cmake -S . -B "$BUILD" -DTORCH_CIRCLE_BUILD_TESTS=ON > /dev/null
  cmake --build "$BUILD" --target core_tests -j "$(nproc)"
fi

start=$SECONDS
summaries=()

# Nothing compiled with an ISA's flags may run before the dispatcher has checked the CPU: the
# kernel descriptors are constant data (ukernels/registry.h), so no ISA object file has a static
# initializer. (TCG does not trap AVX2 on the Nehalem model, so the tier below cannot show this.)
step "no static initializers in the ISA-specific objects"
objects=$(find "$BUILD" -path '*circle_quant_core.dir*' -name '*-avx*.cpp.o')
[[ -n $objects ]] || { echo "no ISA objects found under $BUILD" >&2; exit 1; }
for o in $objects; do
  if objdump -h "$o" | grep -q -E '\.init_array|\.ctors'; then
    echo "FAILED: $o has a static initializer (code of its ISA would run at load time)" >&2
    exit 1
  fi
done
summaries+=("$(wc -w <<< "$objects") ISA objects without static initializers")

# Runs core_tests under qemu emulating CPU $1; the automatic choice must be ISA $2.
run_tier() {
  local cpu=$1 expect=$2 log="$BUILD/x86-tier-$1.log" t0=$SECONDS
  step "core_tests under qemu-x86_64 -cpu $cpu (automatic ISA must be $expect)"
  # Ambient overrides would defeat the automatic-choice check. No guard pages after test buffers:
  # qemu 7.2's TCG faults on the masked-off lanes of vpmaskmov, which real CPUs never touch (the
  # native ctest run keeps them and catches over-reads).
  if ! env -u CIRCLE_QUANT_ISA CIRCLE_QUANT_EXPECT_ISA="$expect" CIRCLE_QUANT_TEST_GUARD_PAGES=0 \
       qemu-x86_64 -cpu "$cpu" "$CORE_TESTS" --gtest_brief=1 > "$log" 2>&1; then
    tail -n 60 "$log"
    printf '\nFAILED: core_tests under -cpu %s (log: %s)\n' "$cpu" "$log" >&2
    exit 1
  fi
  local passed
  passed=$(grep -E '^\[  PASSED  \]' "$log" | tail -n 1)
  summaries+=("-cpu $cpu (automatic ISA $expect): ${passed#\[  PASSED  \] } ($((SECONDS - t0)) s)")
  printf '%s\n' "$passed"
}
run_tier Haswell avx2
run_tier Nehalem scalar

if [[ ${TORCH_SMOKE:-1} != 0 ]]; then
  step "Python smoke test under qemu-x86_64 -cpu Haswell"
  t0=$SECONDS
  # qemu-user runs the interpreter binary itself; the test prints the ISA it found and checks it.
  # The interpreter itself, not a shim script (pyenv): qemu-user runs ELF binaries.
  python_binary=$("$PYTHON" -c "import sys; print(sys.executable)")
  env -u CIRCLE_QUANT_ISA qemu-x86_64 -cpu Haswell "$python_binary" \
    tests/python/smoke_isa_tier.py --expect-isa avx2
  summaries+=("Python smoke test under -cpu Haswell ($((SECONDS - t0)) s)")
fi

step "x86 tier summary: all passed ($((SECONDS - start)) s)"
printf '  %s\n' "${summaries[@]}"
