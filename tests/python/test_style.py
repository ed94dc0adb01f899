"""The tree stays formatted and lint-clean: clang-format (.clang-format) for C++, ruff
(pyproject.toml) for Python. `bash scripts/format.sh` fixes what these report."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*command):
    assert shutil.which(command[0]), f"{command[0]} is not installed (scripts/setup.sh installs it)"
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_cpp_is_clang_formatted():
    files = _run("git", "ls-files", "*.cpp", "*.h").stdout.split()
    assert files
    result = _run("clang-format", "--dry-run", "--Werror", *files)
    assert result.returncode == 0, "run bash scripts/format.sh:\n" + result.stderr[-4000:]


def test_python_is_ruff_formatted_and_lint_clean():
    formatted = _run("ruff", "format", "--check", ".")
    assert formatted.returncode == 0, "run bash scripts/format.sh:\n" + formatted.stdout[-4000:]
    lint = _run("ruff", "check", ".")
    assert lint.returncode == 0, lint.stdout[-4000:]
