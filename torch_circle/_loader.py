"""Loads the native libraries: torch_circle._C (Python bindings), which pulls in
libtorch_circle.so, whose static initialisers register the ``circle_quant::`` ops."""

import importlib
from pathlib import Path


def load_library():
    """Imports torch_circle._C (registering the ops) and returns the module."""
    import torch  # noqa: F401  the extension needs torch's libraries loaded first

    try:
        return importlib.import_module("torch_circle._C")
    except ImportError as error:
        here = Path(__file__).resolve().parent
        raise ImportError(
            f"torch_circle: cannot load the native extension from {here} ({error}). Build it with "
            "`pip install --no-build-isolation -e .` (or run scripts/setup.sh)."
        ) from error
