#!/usr/bin/env bash
# Formats the tree: clang-format for C++ (.clang-format), ruff for Python (pyproject.toml).
#   bash scripts/format.sh           rewrite what needs it (and apply ruff's safe lint fixes)
#   bash scripts/format.sh --check   change nothing; list what needs it and exit 1 if anything does
# clang-format comes from Debian (scripts/setup.sh installs it), ruff from requirements/dev.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t cxx < <(git ls-files '*.cpp' '*.h')
if [[ ${1:-} == --check ]]; then
  status=0
  clang-format --dry-run --Werror "${cxx[@]}" || status=1
  ruff format --check . || status=1
  ruff check . || status=1
  exit $status
fi
clang-format -i "${cxx[@]}"
ruff check --fix . || true  # what it cannot fix is listed, for a person to decide
ruff format .
