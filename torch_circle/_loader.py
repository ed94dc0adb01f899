"""Loads the native operator library, which registers the ``circle_quant::`` ops."""
from pathlib import Path

import torch

_LIBRARY = None


def load_library() -> Path:
    """Loads ``torch_circle/_C*.so`` once and returns its path."""
    global _LIBRARY
    if _LIBRARY is None:
        here = Path(__file__).resolve().parent
        candidates = sorted(here.glob("_C*.so"))
        if not candidates:
            raise ImportError(
                f"torch_circle: the native library (_C*.so) is missing from {here}. Build it with "
                "`pip install --no-build-isolation -e .` (or run scripts/setup.sh)."
            )
        torch.ops.load_library(str(candidates[0]))
        _LIBRARY = candidates[0]
    return _LIBRARY
