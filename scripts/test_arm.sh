#!/usr/bin/env bash
# Cross builds the torch-free kernel core and its GoogleTest suite (core_tests) for AArch64 with
# Debian's g++-aarch64-linux-gnu and runs it with ctest under qemu-user, twice:
#   1. qemu's default CPU (dot product present): the sdot kernels are chosen automatically;
#   2. QEMU_CPU=cortex-a72 (no dot product): the smull/sadalp fallback is chosen automatically
#      (tests forcing neondot skip there: sdot would be an illegal instruction).
# Every run also forces each ISA level the CPU has. Emulation is slow: small shapes only.
#   bash scripts/test_arm.sh
# Installs g++-aarch64-linux-gnu and qemu-user with apt when missing. Builds in build/arm64.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${ARM_BUILD:-build/arm64}
JOBS=${ARM_JOBS:-2}

step() { printf '\n== %s\n' "$*"; }

APT_PACKAGES=(g++-aarch64-linux-gnu qemu-user libgtest-dev libfmt-dev flatbuffers-compiler cmake)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  # cmake may come from pip (scripts/setup.sh) rather than apt.
  [[ $pkg == cmake ]] && command -v cmake > /dev/null && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

start=$SECONDS
step "AArch64 cross build (core_tests) in $BUILD"
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/toolchain-aarch64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DTORCH_CIRCLE_BUILD_TORCH=OFF -DTORCH_CIRCLE_BUILD_TESTS=ON \
  > "$BUILD.configure.log" 2>&1 || { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" --target core_tests -j "$JOBS"
build_seconds=$((SECONDS - start))

# Runs ctest with qemu emulating CPU $1 (QEMU_CPU, read by qemu-user) and checks that the
# automatic choice is ISA $2; keeps the summary line.
summaries=()
run_ctest() {
  local cpu=$1 expect=$2 label="$1 (automatic ISA: $2)" log
  step "core_tests under qemu-aarch64, CPU $label"
  log="$BUILD/ctest-$cpu.log"
  local t0=$SECONDS
  if ! QEMU_CPU=$cpu CIRCLE_QUANT_EXPECT_ISA=$expect \
       ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS" > "$log" 2>&1; then
    cat "$log"
    printf '\nFAILED: core_tests on AArch64, CPU %s (log: %s)\n' "$label" "$log" >&2
    exit 1
  fi
  local line skipped
  line=$(grep -E 'tests passed' "$log" | tail -n 1)
  skipped=$(grep -c -E '\*\*\*Skipped|Not Run' "$log" || true)
  summaries+=("CPU $label: $line, $skipped skipped ($((SECONDS - t0)) s)")
  printf '%s (%s skipped)\n' "$line" "$skipped"
}
# "max" (qemu-user's default) has every feature qemu emulates, dotprod and i8mm included.
run_ctest max neondot
run_ctest cortex-a72 neon

step "AArch64 summary: all passed ($((SECONDS - start)) s, build $build_seconds s)"
printf '  %s\n' "${summaries[@]}"
