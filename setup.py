"""Build and package torch-circle.

CMakeLists.txt is the only build description: this file runs CMake for the operator library
(``libtorch_circle.so``, no Python) and its Python bindings (``_C.<suffix>.so``) and places both
in the ``torch_circle`` package.
Build against the installed torch, without build isolation (which would download another torch):

    pip install --no-build-isolation -e .
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name):
        super().__init__(name, sources=[])


OPS_LIBRARY = "libtorch_circle.so"  # shipped beside the extension, which finds it by RPATH $ORIGIN


class CMakeBuild(build_ext):
    """Configures (once) and builds the CMake tree in build/cmake, then copies the libraries."""

    # The operator library is an extra output of the extension: declare it so that wheels and
    # editable installs copy it too.
    def get_outputs(self):
        outputs = super().get_outputs()
        return outputs + [str(Path(o).with_name(OPS_LIBRARY)) for o in outputs]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        extra = {}
        for built, inplace in mapping.items():
            if Path(built).name.startswith("_C"):
                extra[str(Path(built).with_name(OPS_LIBRARY))] = str(Path(inplace).with_name(OPS_LIBRARY))
        return {**mapping, **extra}

    def copy_extensions_to_source(self):  # editable installs: the package dir is the source tree
        super().copy_extensions_to_source()
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            package_dir = Path(build_py.get_package_dir(".".join(ext.name.split(".")[:-1])))
            built = (Path(self.build_lib) / self.get_ext_filename(ext.name)).with_name(OPS_LIBRARY)
            shutil.copyfile(built, package_dir / OPS_LIBRARY)

    def build_extension(self, ext):
        try:
            import torch
        except ImportError:
            sys.exit(
                "torch-circle: install torch==2.13.0 first, then build with "
                "`pip install --no-build-isolation .` (see scripts/setup.sh)"
            )
        build_dir = Path(os.environ.get("TORCH_CIRCLE_BUILD_DIR", ROOT / "build" / "cmake"))
        build_dir.mkdir(parents=True, exist_ok=True)
        configure = [
            "cmake",
            "-S",
            str(ROOT),
            "-B",
            str(build_dir),
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            "-DCMAKE_BUILD_TYPE=Release",
            f"-DPython_EXECUTABLE={sys.executable}",
        ]
        # Tests are built by scripts/test.sh, which turns them on in the same build tree; a plain
        # `pip install` leaves that cached choice alone.
        if shutil.which("ninja"):
            configure += ["-G", "Ninja"] if not (build_dir / "CMakeCache.txt").exists() else []
        subprocess.check_call(configure)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.check_call(
            ["cmake", "--build", str(build_dir), "--target", "torch_circle", "torch_circle_python", "-j", jobs]
        )
        target = Path(self.get_ext_fullpath(ext.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(build_dir / target.name, target)
        shutil.copyfile(build_dir / OPS_LIBRARY, target.parent / OPS_LIBRARY)


setup(
    name="torch-circle",
    version="0.1.0",
    description="PyTorch 2 Export int8 quantization, fast CPU kernels and Circle export",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["torch_circle", "torch_circle.*"]),
    ext_modules=[CMakeExtension("torch_circle._C")],
    cmdclass={"build_ext": CMakeBuild},
    # torch is deliberately not a pip requirement: a plain `torch` requirement lets pip replace
    # the installed CPU build with a multi-GB CUDA one. scripts/setup.sh pins torch==2.13.0.
    install_requires=["numpy"],
    extras_require={"test": ["pytest"], "runtime": ["onert", "ai-edge-litert"]},
    entry_points={
        "console_scripts": ["torch-circle = torch_circle.cli:main"],
        # torch.compile(model, backend="circle_quant") finds the backend here, no import needed.
        "torch_dynamo_backends": ["circle_quant = torch_circle.backend:circle_quant_backend"],
    },
    zip_safe=False,
)
