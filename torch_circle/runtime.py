"""Runs exported models in runtimes nobody here wrote: ONE's onert (.circle) and Google's LiteRT
(.tflite). Both are optional: ``pip install onert ai-edge-litert``.

onert's convenience wrapper (``onert.infer.session(...).infer``) fails on models with uint8
inputs in onert 0.1.0, so this module drives its native session directly. onert reinterprets
input bytes without checking their dtype, so inputs are checked here first.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from typing import Sequence

import numpy as np

_NUMPY_DTYPES = {"float32": np.float32, "uint8": np.uint8, "int8": np.int8, "int16": np.int16,
                 "int32": np.int32, "int64": np.int64, "bool": np.bool_}


class RuntimeNotInstalled(ImportError):
    pass


class RuntimeFailed(RuntimeError):
    """The runtime rejected a model or died running it."""


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x))


def run(model: bytes, inputs: Sequence, runtime: str = "auto", num_threads: int | None = None) -> list[np.ndarray]:
    identifier = model[4:8]
    if runtime == "auto":
        runtime = "litert" if identifier == b"TFL3" else "onert"
    arrays = [_as_numpy(x) for x in inputs]
    _check_shapes(model, arrays)
    if runtime == "onert":
        return run_onert(model, arrays)
    if runtime == "litert":
        return run_litert(model, arrays, num_threads=num_threads)
    raise ValueError(f"runtime must be 'onert', 'litert' or 'auto', not {runtime!r}")


def _check_shapes(model: bytes, arrays: Sequence[np.ndarray]) -> None:
    """Static dims must match (runtimes fail obscurely otherwise); -1 dims take any size."""
    from . import _C
    sg = _C.read_circle(model, "<model>")["subgraphs"][0]
    if len(arrays) != len(sg["inputs"]):
        raise ValueError(f"the model takes {len(sg['inputs'])} inputs, got {len(arrays)}")
    for k, (index, x) in enumerate(zip(sg["inputs"], arrays)):
        t = sg["tensors"][index]
        dims = t["shape_signature"] or t["shape"]
        if len(dims) != x.ndim or any(d >= 0 and d != n for d, n in zip(dims, x.shape)):
            raise ValueError(f"input {k} ('{t['name']}'): the model expects shape "
                             f"{['?' if d < 0 else d for d in dims]}, got {list(x.shape)} (export with "
                             "dynamic_shapes to accept other sizes)")


def run_onert(model: bytes, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    try:
        from onert.native.libnnfw_api_pybind import infer as nnfw, prepare_config
    except ImportError as error:
        raise RuntimeNotInstalled("onert is not installed: pip install onert (Python 3.10-3.12)") from error
    # onert loads from a path whose suffix names the format.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.circle")
        with open(path, "wb") as f:
            f.write(model)
        session = nnfw.nnfw_session(path, "cpu")
        if len(inputs) != session.input_size():
            raise ValueError(f"the model takes {session.input_size()} inputs, got {len(inputs)}")
        for i, x in enumerate(inputs):
            info = session.input_tensorinfo(i)
            want = _NUMPY_DTYPES.get(str(info.dtype))
            if want is not None and x.dtype != want:
                if x.dtype == np.float64 and want == np.float32:
                    inputs = list(inputs)
                    inputs[i] = x = x.astype(np.float32)
                else:
                    raise TypeError(f"input {i}: the model expects {info.dtype}, got {x.dtype}")
            dims = list(info.dims)[: info.rank]
            if dims != list(x.shape):  # dynamic dims, or a wrong shape onert will reject
                info.dims = list(x.shape)
                session.set_input_tensorinfo(i, info)
        session.set_prepare_config(prepare_config.ENABLE_INTERNAL_OUTPUT_ALLOC)
        session.prepare()
        for i, x in enumerate(inputs):
            session.set_input(i, x)
        session.run()
        return [np.array(session.get_output(i)) for i in range(session.output_size())]


def run_litert(model: bytes, inputs: Sequence[np.ndarray], num_threads: int | None = None) -> list[np.ndarray]:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as error:
        raise RuntimeNotInstalled("LiteRT is not installed: pip install ai-edge-litert") from error
    if model[4:8] != b"TFL3":
        raise ValueError("LiteRT runs TFLite files: export with format='tflite'")
    interpreter = Interpreter(model_content=model, num_threads=num_threads or 1,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = interpreter.get_input_details()
    if len(details) != len(inputs):
        raise ValueError(f"the model takes {len(details)} inputs, got {len(inputs)}")
    for d, x in zip(details, inputs):
        if list(d["shape"]) != list(x.shape):
            interpreter.resize_tensor_input(d["index"], list(x.shape))
    interpreter.allocate_tensors()
    for d, x in zip(details, inputs):
        if x.dtype != d["dtype"]:
            if x.dtype == np.float64 and d["dtype"] == np.float32:
                x = x.astype(np.float32)
            else:
                raise TypeError(f"input '{d['name']}': the model expects {np.dtype(d['dtype'])}, got {x.dtype}")
        interpreter.set_tensor(d["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]).copy() for d in interpreter.get_output_details()]


def run_isolated(model: bytes, inputs: Sequence, runtime: str = "auto",
                 timeout: float | None = None) -> list[np.ndarray]:
    """run() in a child process. A runtime can crash on a file that is well formed but that it
    cannot execute (onert 0.1.0 segfaults on some); here that is a RuntimeFailed, not the death of
    the caller. For files from elsewhere (``torch-circle verify``)."""
    arrays = [_as_numpy(x) for x in inputs]
    _check_shapes(model, arrays)
    name = "LiteRT" if runtime == "litert" or (runtime == "auto" and model[4:8] == b"TFL3") else "onert"
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f) for f in ("model", "inputs.npz", "outputs.npz")]
        with open(paths[0], "wb") as f:
            f.write(model)
        np.savez(paths[1], *arrays)
        try:
            child = subprocess.run([sys.executable, "-m", "torch_circle.runtime", *paths, runtime],
                                   capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeFailed(f"{name} did not finish running the model in {timeout} s") from None
        if child.returncode < 0:
            raise RuntimeFailed(f"{name} crashed ({signal.Signals(-child.returncode).name}) running the "
                                "model: the file is well formed, but the runtime cannot execute it")
        message = (child.stderr.strip().splitlines() or ["(no message)"])[-1]
        if child.returncode == _EXIT_NOT_INSTALLED:
            raise RuntimeNotInstalled(message)
        if child.returncode != 0:
            raise RuntimeFailed(f"{name} cannot run the model: {message}")
        with np.load(paths[2]) as outputs:
            return [outputs[f"arr_{k}"] for k in range(len(outputs.files))]


_EXIT_NOT_INSTALLED = 3


def _run_child(model_path: str, inputs_path: str, outputs_path: str, runtime: str) -> int:
    """The child side of run_isolated: one message line on stderr when it fails."""
    with open(model_path, "rb") as f:
        model = f.read()
    with np.load(inputs_path) as saved:
        inputs = [saved[f"arr_{k}"] for k in range(len(saved.files))]
    try:
        outputs = run(model, inputs, runtime=runtime)
    except RuntimeNotInstalled as error:
        print(error, file=sys.stderr)
        return _EXIT_NOT_INSTALLED
    except Exception as error:  # noqa: BLE001  reported to the parent as one line
        print(f"{type(error).__name__}: {error}".replace("\n", " | "), file=sys.stderr)
        return 1
    np.savez(outputs_path, *outputs)
    return 0


if __name__ == "__main__":
    sys.exit(_run_child(*sys.argv[1:5]))
