#!/usr/bin/env bash
# Fuzzes the hostile-file reader (csrc/exporter/reader/circle_reader.cpp) with libFuzzer under
# ASan + UBSan for a bounded time, starting from real exported models.
#   bash scripts/fuzz.sh [seconds]          (default 60)
#
# Installs nothing. Needs Debian's clang with its fuzzer runtime, flatc, flatbuffers and fmt headers:
#   apt-get install clang libclang-rt-14-dev flatbuffers-compiler libflatbuffers-dev libfmt-dev cmake
# Builds build/fuzz from tests/fuzz (standalone, torch-free). The seed corpus build/fuzz/corpus gets
#   * tests/fuzz/seeds/*.circle|*.tflite  (committed binary seeds, if any)
#   * tests/fuzz/seeds/*.json             (committed seeds in flatc's JSON form, built with flatc -b)
#   * build/fuzz/seeds/*.circle|*.tflite  (exported now by tests/fuzz/make_seeds.py when torch_circle
#                                          imports; skipped with a message otherwise)
# The corpus is kept between runs, so each run starts where the last stopped (delete
# build/fuzz/corpus to start over). Exits non-zero on a finding (crash, sanitizer report, leak,
# timeout, out-of-memory) and prints where the input was saved and how to reproduce it.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_TO_RUN=${1:-60}
PYTHON=${PYTHON:-python3}
BUILD=build/fuzz
CXX_FUZZ=${CXX_FUZZ:-clang++}

if ! [[ $SECONDS_TO_RUN =~ ^[0-9]+$ ]] || (( SECONDS_TO_RUN < 1 )); then
  echo "usage: bash scripts/fuzz.sh [seconds]   (a positive whole number, default 60)" >&2
  exit 2
fi

missing=()
command -v "$CXX_FUZZ" > /dev/null || missing+=("clang libclang-rt-14-dev")
command -v flatc > /dev/null || missing+=("flatbuffers-compiler libflatbuffers-dev")
command -v cmake > /dev/null || missing+=("cmake")
if (( ${#missing[@]} )); then
  echo "fuzz.sh: missing tools. libFuzzer comes with clang; on Debian 12 install (as root):" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]} libfmt-dev" >&2
  echo "  (libclang-rt-NN-dev must match clang's major version: clang --version)" >&2
  exit 1
fi

set -e
mkdir -p "$BUILD"
printf '== Building the fuzzer (%s, ASan + UBSan + libFuzzer) in %s\n' "$CXX_FUZZ" "$BUILD"
cmake -S tests/fuzz -B "$BUILD" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" > "$BUILD.configure.log" 2>&1 \
  || { cat "$BUILD.configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)"
FUZZER=$ROOT/$BUILD/fuzz_circle_reader

printf '\n== Seed corpus\n'
mkdir -p "$BUILD/seeds" "$BUILD/corpus" "$BUILD/artifacts"
if "$PYTHON" -c 'import torch_circle; torch_circle.export' > /dev/null 2>&1; then
  rm -f "$BUILD"/seeds/*.circle "$BUILD"/seeds/*.tflite
  "$PYTHON" tests/fuzz/make_seeds.py "$BUILD/seeds" 2> "$BUILD/seeds.log" \
    || echo "fuzz.sh: make_seeds.py failed (see $BUILD/seeds.log); using the seeds there are" >&2
  grep '^make_seeds: skipped' "$BUILD/seeds.log" >&2 || true
else
  echo "fuzz.sh: torch_circle is not importable with $PYTHON: no exported seeds this time," \
       "only the committed ones in tests/fuzz/seeds (and those already in $BUILD/seeds)" >&2
fi
shopt -s nullglob
for json in tests/fuzz/seeds/*.json; do
  flatc -b -o "$BUILD/seeds" schemas/circle_schema.fbs "$json"
done
seeds=(tests/fuzz/seeds/*.circle tests/fuzz/seeds/*.tflite "$BUILD"/seeds/*.circle "$BUILD"/seeds/*.tflite)
shopt -u nullglob
for seed in "${seeds[@]}"; do
  cp "$seed" "$BUILD/corpus/seed-$(basename "$seed")"
done
echo "${#seeds[@]} seeds; corpus $BUILD/corpus holds $(ls "$BUILD/corpus" | wc -l) inputs"
(( ${#seeds[@]} )) || echo "fuzz.sh: no seeds at all: libFuzzer starts from empty input" >&2

printf '\n== Fuzzing for %s s\n' "$SECONDS_TO_RUN"
# One process: -jobs/-workers > 0 would fork a child that logs to fuzz-N.log and only shows its
# output at the end; the plain mode is that same single worker with live output.
stamp=$(mktemp)
set +e
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$FUZZER" \
  -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$ROOT/$BUILD/artifacts/" "$BUILD/corpus" 2>&1 | tee "$BUILD/fuzz.log"
status=${PIPESTATUS[0]}
# Reporting only from here on (still without set -e: a closed pipe must not end it early).
found=$(find "$BUILD/artifacts" -type f -newer "$stamp" 2>/dev/null | sort)
rm -f "$stamp"
if (( status != 0 )) || [[ -n $found ]]; then
  printf '\n== FINDING: the fuzzer stopped with exit status %s (log: %s)\n' "$status" "$BUILD/fuzz.log"
  for f in $found; do
    echo "input saved at: $f ($(stat -c %s "$f") bytes); first bytes:"
    head -c 128 "$f" | od -A x -t x1z -v
    echo "reproduce: $FUZZER $f"
  done
  exit $(( status != 0 ? status : 1 ))
fi
printf '\n== No finding in %s s (corpus: %s inputs in %s)\n' "$SECONDS_TO_RUN" \
  "$(ls "$BUILD/corpus" | wc -l)" "$BUILD/corpus"
