#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds the GoogleTest suites, runs them with ctest, runs the
# torch-free kernel tests on emulated AVX2-only and pre-AVX x86 CPUs (scripts/test_x86_tiers.sh;
# X86_TIER_TESTS=0 skips) and cross built for AArch64 (scripts/test_arm.sh; ARM_TESTS=0 skips),
# all under qemu-user, fuzzes the .circle reader for FUZZ_SECONDS (default 60; 0 skips), then
# runs pytest (pytest-xdist, one worker per core; PYTEST_WORKERS=0: one process).
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash scripts/setup.sh

BUILD=build/cmake
printf '\n== C++ tests (GoogleTest via ctest)\n'
# Python_EXECUTABLE: the interpreter with torch, which also writes the TorchScript test models.
cmake -S . -B "$BUILD" -DTORCH_CIRCLE_BUILD_TESTS=ON -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -DCMAKE_PREFIX_PATH="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" > /dev/null
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)"

if [[ ${X86_TIER_TESTS:-1} != 0 && $(uname -m) == x86_64 ]]; then
  printf '\n== x86 ISA tiers below this CPU (core_tests and a Python smoke test under qemu-user)\n'
  bash scripts/test_x86_tiers.sh "$BUILD"
fi

if [[ ${ARM_TESTS:-1} != 0 ]]; then
  printf '\n== AArch64 kernel tests (cross build, ctest under qemu-user)\n'
  bash scripts/test_arm.sh
fi

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
if (( FUZZ_SECONDS > 0 )); then
  printf '\n== Fuzzing the .circle reader for %s s (libFuzzer)\n' "$FUZZ_SECONDS"
  bash scripts/fuzz.sh "$FUZZ_SECONDS"
fi

printf '\n== Python tests (pytest)\n'
# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs in this process) halves the time here.
"$PYTHON" -m pytest tests/python -q -n "${PYTEST_WORKERS:-auto}" "$@"
