#!/usr/bin/env bash
# Sets up a fresh Debian machine for torch-circle and builds it; skips whatever is already there.
#   bash scripts/setup.sh
# Installs Debian's C++ libraries (apt), the pinned Python packages (pip, torch==2.13.0 CPU build,
# torchao without its own torch), then builds and installs torch-circle in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------------------------
# clang + libclang-rt-14-dev: libFuzzer for scripts/fuzz.sh (Debian 12's clang is 14).
# g++-aarch64-linux-gnu + qemu-user: the AArch64 kernel tests of scripts/test_arm.sh; qemu-user
# also emulates the lesser x86 CPUs of scripts/test_x86_tiers.sh. clang-format: the C++ style
# (.clang-format, scripts/format.sh) that tests/python/test_style.py checks.
APT_PACKAGES=(g++ make libflatbuffers-dev flatbuffers-compiler libfmt-dev libgtest-dev clang libclang-rt-14-dev
              g++-aarch64-linux-gnu qemu-user clang-format)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  step "apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  step "Debian packages: all present"
fi

# --- Python packages ---------------------------------------------------------------------------
pip_install() { "$PYTHON" -m pip install -q -c requirements/constraints.txt "$@"; }
if ! "$PYTHON" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
want = {"torch": "2.13.0", "torchao": "0.18.0"}
for name in ("numpy", "pytest", "pytest-xdist", "ruff", "cmake", "ninja", "scikit-learn", "matplotlib", "circle-schema",
             "flatbuffers", "onert", "ai-edge-litert", "packaging", "PyYAML", "tqdm", "tico", "transformers"):
    md.version(name)
for name, version in want.items():
    if not md.version(name).startswith(version):
        sys.exit(1)
PY
then
  step "pip install (torch==2.13.0, torchao --no-deps, build and test tools)"
  pip_install -r requirements/dev.txt
  pip_install --no-deps -r requirements/peers.txt
else
  step "Python packages: all present"
fi
# Test-only packages in build/test-packages, not in the environment (requirements/test-packages.txt).
if ! compgen -G "build/test-packages/torchvision-0.28.0*.dist-info" > /dev/null; then
  step "pip install --target build/test-packages (torchvision for the tests, --no-deps)"
  pip_install --no-deps --target build/test-packages -r requirements/test-packages.txt
fi

# --- build -------------------------------------------------------------------------------------
step "build torch-circle (CMake via setup.py, against the installed torch)"
pip_install --no-build-isolation --no-deps -e .
"$PYTHON" -c "import torch_circle; print('torch_circle', torch_circle.__version__, 'kernels:', torch_circle.active_kernel_isa())"
