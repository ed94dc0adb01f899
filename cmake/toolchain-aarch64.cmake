# Cross build for AArch64 Linux with Debian's cross compiler (g++-aarch64-linux-gnu); ctest runs
# the tests through qemu-aarch64 (Debian's qemu-user):
#   cmake -S . -B build/arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake \
#     -DTORCH_CIRCLE_BUILD_TORCH=OFF -DTORCH_CIRCLE_BUILD_TESTS=ON
# scripts/test_arm.sh does this. No libtorch exists for arm64: only the torch-free core builds.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# The target's libraries live under this prefix; programs (flatc) come from the build machine.
# Header-only libraries in /usr/include (fmt, flatbuffers) still work: Debian's cross compiler
# searches /usr/include after its own directories.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# add_test() and gtest_discover_tests() run the test programs through qemu; -L points the
# emulated dynamic loader at the target's libc and libstdc++. QEMU_CPU in the environment picks
# the emulated core (default: every feature qemu knows, dotprod included).
find_program(QEMU_AARCH64 qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
