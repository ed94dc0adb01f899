#!/usr/bin/env bash
# Sets up (scripts/setup.sh), builds the GoogleTest suites, runs them with ctest, then pytest.
#   bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash scripts/setup.sh

BUILD=build/cmake
printf '\n== C++ tests (GoogleTest via ctest)\n'
cmake -S . -B "$BUILD" -DTORCH_CIRCLE_BUILD_TESTS=ON \
  -DCMAKE_PREFIX_PATH="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" > /dev/null
cmake --build "$BUILD" -j "$(nproc)"
ctest --test-dir "$BUILD" --output-on-failure -j "$(nproc)"

printf '\n== Python tests (pytest)\n'
"$PYTHON" -m pytest tests/python -q "$@"
