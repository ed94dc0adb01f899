#!/usr/bin/env bash
# Builds torch-circle with gcc's AddressSanitizer + UndefinedBehaviorSanitizer in build/sanitize,
# runs the GoogleTest suites (ctest), then a pytest subset (ops, fused ops, exporter, reader,
# hostile inputs) on the sanitized Python extension. Any sanitizer report fails the run: UB aborts
# (-fno-sanitize-recover), ASan aborts by default.
#   bash scripts/sanitize.sh                      ctest + the default pytest subset
#   bash scripts/sanitize.sh tests/python/x.py    ctest + these pytest arguments instead
#   SANITIZE_CTEST=0 bash scripts/sanitize.sh     pytest only
# Leaves the regular build (build/cmake, torch_circle/*.so) alone: the sanitized package is
# assembled in build/sanitize/python and put first on PYTHONPATH. Python itself is not built with
# ASan, so libasan is loaded first with LD_PRELOAD (leak checking is off there: CPython keeps its
# objects alive at exit by design).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BUILD=${SANITIZE_BUILD_DIR:-build/sanitize}
JOBS=${JOBS:-$(nproc)}
SANITIZE="-fsanitize=address,undefined"
start=$SECONDS

launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
generator=()
command -v ninja > /dev/null && [[ ! -f $BUILD/CMakeCache.txt ]] && generator=(-G Ninja)

printf '== Building with %s in %s\n' "$SANITIZE" "$BUILD"
cmake -S . -B "$BUILD" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=g++ -DTORCH_CIRCLE_BUILD_TESTS=ON -DPython_EXECUTABLE="$(command -v "$PYTHON")" \
  -DCMAKE_PREFIX_PATH="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
  -DCMAKE_CXX_FLAGS="$SANITIZE -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="$SANITIZE" -DCMAKE_SHARED_LINKER_FLAGS="$SANITIZE" \
  -DCMAKE_MODULE_LINKER_FLAGS="$SANITIZE" > "$BUILD.configure.log" 2>&1 \
  || { cat "$BUILD.configure.log" >&2; exit 1; }
# The TorchScript test models are written by Python loading the sanitized library: like the pytest
# run below, that needs libasan loaded first. Everything else builds without it.
# libstdc++ too: Python is not linked with it, and ASan's __cxa_throw interceptor must find it at
# start-up or the first C++ exception aborts ("real___cxa_throw != 0").
ASAN_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so)"
cmake --build "$BUILD" -j "$JOBS" --target torch_circle
LD_PRELOAD="$ASAN_PRELOAD" ASAN_OPTIONS=detect_leaks=0 cmake --build "$BUILD" -j "$JOBS" --target torchscript_models
cmake --build "$BUILD" -j "$JOBS"
printf '   built in %d s\n' $((SECONDS - start))

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [[ ${SANITIZE_CTEST:-1} != 0 ]]; then
  printf '\n== C++ tests under ASan + UBSan (ctest)\n'
  t=$SECONDS
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"
  printf '   ctest: %d s\n' $((SECONDS - t))
fi

printf '\n== Python tests under ASan + UBSan (pytest)\n'
t=$SECONDS
PKG=$BUILD/python/torch_circle
rm -rf "$BUILD/python"
mkdir -p "$BUILD/python"
cp -r torch_circle "$PKG"
rm -f "$PKG"/*.so
cp "$BUILD"/_C*.so "$BUILD"/libtorch_circle.so "$PKG"/
if (( $# == 0 )); then
  set -- tests/python/test_quantize_ops.py tests/python/test_fake_quantize.py \
    tests/python/test_observer_ops.py tests/python/test_quantized_linear.py \
    tests/python/test_quantized_conv2d.py tests/python/test_fused_add.py \
    tests/python/test_lookup_table.py tests/python/test_quantized_softmax.py \
    tests/python/test_exporter.py tests/python/test_hostile_inputs.py
fi
# PYTHONSAFEPATH: `python -c` and `python -m` would put the working directory, this checkout with
# its unsanitized torch_circle, ahead of PYTHONPATH.
LD_PRELOAD="$ASAN_PRELOAD" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONSAFEPATH=1 \
  PYTHONPATH="$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}" \
  "$PYTHON" -c "import torch_circle, sys; p = torch_circle.__file__; sys.exit(0 if '$BUILD/python' in p else f'imported {p}, not the sanitized build')"
LD_PRELOAD="$ASAN_PRELOAD" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONSAFEPATH=1 \
  PYTHONPATH="$PWD/$BUILD/python${PYTHONPATH:+:$PYTHONPATH}" \
  "$PYTHON" -m pytest -q -p no:cacheprovider -n "${PYTEST_WORKERS:-auto}" "$@"
printf '   pytest: %d s; total %d s\n' $((SECONDS - t)) $((SECONDS - start))
