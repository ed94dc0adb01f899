"""Runs exported models in runtimes nobody here wrote: ONE's onert (.circle) and Google's LiteRT
(.tflite). Both are optional: ``pip install onert ai-edge-litert``.

onert's convenience wrapper (``onert.infer.session(...).infer``) fails on models with uint8
inputs in onert 0.1.0, so this module drives its native session directly. onert reinterprets
input bytes without checking their dtype, so inputs are checked here first.
"""

from __future__ import annotations

import atexit
import os
import pickle
import re
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Sequence

import numpy as np

_NUMPY_DTYPES = {
    "float32": np.float32,
    "uint8": np.uint8,
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
}


class RuntimeNotInstalled(ImportError):
    pass


class RuntimeFailed(RuntimeError):
    """The runtime rejected a model or died running it."""


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, order="C")  # not ascontiguousarray: it turns a 0-d input into shape [1]


def run(model: bytes, inputs: Sequence, runtime: str = "auto", num_threads: int | None = None) -> list[np.ndarray]:
    identifier = model[4:8]
    if runtime == "auto":
        runtime = "litert" if identifier == b"TFL3" else "onert"
    arrays = [_as_numpy(x) for x in inputs]
    _check_inputs(model, arrays)
    if runtime == "onert":
        return run_onert(model, arrays)
    if runtime == "litert":
        return run_litert(model, arrays, num_threads=num_threads)
    raise ValueError(f"runtime must be 'onert', 'litert' or 'auto', not {runtime!r}")


def _check_inputs(model: bytes, arrays: Sequence[np.ndarray]) -> None:
    """Static dims must match (runtimes fail obscurely otherwise); -1 dims take any size. The
    dtype must be the file's (float64 is converted to float32 later)."""
    from . import _C

    sg = _C.read_circle(model, "<model>")["subgraphs"][0]
    if len(arrays) != len(sg["inputs"]):
        raise ValueError(f"the model takes {len(sg['inputs'])} inputs, got {len(arrays)}")
    for k, (index, x) in enumerate(zip(sg["inputs"], arrays)):
        t = sg["tensors"][index]
        dims = t["shape_signature"] or t["shape"]
        if len(dims) != x.ndim or any(d >= 0 and d != n for d, n in zip(dims, x.shape)):
            raise ValueError(
                f"input {k} ('{t['name']}'): the model expects shape "
                f"{['?' if d < 0 else d for d in dims]}, got {list(x.shape)} (export with "
                "dynamic_shapes to accept other sizes)"
            )
        want = t["dtype"].lower()  # the file's type names are numpy's, upper case
        if x.dtype.name != want and not (x.dtype == np.float64 and want == "float32"):
            raise TypeError(f"input {k} ('{t['name']}'): the model expects {want}, got {x.dtype}")


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
    interpreter = Interpreter(
        model_content=model,
        num_threads=num_threads or 1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
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


# --- running in a child process -------------------------------------------------------------
#
# A runtime can crash on a file that is well formed but that it cannot execute (onert 0.1.0 dies
# with SIGFPE on a zero-size tensor and SIGSEGV on an out-of-range gather index), and a crash
# inside the caller's process would take the caller with it. So models run in a worker process:
# one per caller process, started on first use and kept for the next calls (starting Python and
# importing a runtime costs far more than a call), and started again after it dies. The worker
# loads this file by path and imports neither torch nor torch_circle, only numpy and the runtime.
# Requests and replies are pickled frames on pipes of their own (the runtimes print on stdout).

_FRAME = struct.Struct("<Q")


def _runtime_name(model: bytes, runtime: str) -> str:
    return "LiteRT" if runtime == "litert" or (runtime == "auto" and model[4:8] == b"TFL3") else "onert"


# The worker's program: this file's _serve(), loaded by path (argv: file, request fd, reply fd).
_WORKER_CODE = (
    "import importlib.util, sys; "
    "spec = importlib.util.spec_from_file_location('_torch_circle_runtime_worker', sys.argv[1]); "
    "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
    "sys.exit(m._serve(int(sys.argv[2]), int(sys.argv[3])))"
)


def _worker_environment() -> dict:
    """The caller's environment minus sanitizer runtimes in LD_PRELOAD.

    The worker runs no code of torch_circle's, so a sanitized build's preloaded libasan gains
    nothing there, and it breaks onert: ASan's dlopen interceptor makes libasan the caller, so
    onert's RUNPATH is not searched and no backend loads ("No loaded backends available").
    """
    env = dict(os.environ)
    preload = env.get("LD_PRELOAD")
    if preload:
        kept = [
            lib
            for lib in preload.replace(":", " ").split()
            if not re.search(r"lib(asan|ubsan|tsan|lsan|hwasan)[.-]", os.path.basename(lib))
        ]
        if kept:
            env["LD_PRELOAD"] = " ".join(kept)
        else:
            del env["LD_PRELOAD"]
    return env


class _Worker:
    """A child process running models; call() sends one request and waits for its reply."""

    def __init__(self):
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_CODE, os.path.abspath(__file__), str(request_r), str(reply_w)],
            pass_fds=(request_r, reply_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=_worker_environment(),
        )
        os.close(request_r)
        os.close(reply_w)
        self.requests = os.fdopen(request_w, "wb")
        self.replies = reply_r
        self.model = None  # the bytes object the worker holds (identity, so no hashing)

    def close(self) -> None:
        try:
            self.requests.close()  # the worker exits at end of input
        except OSError:
            pass
        os.close(self.replies)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _read(self, n: int, deadline: float | None) -> bytes | None:
        chunks = []
        while n > 0:
            if deadline is not None:
                wait = deadline - time.monotonic()
                if wait <= 0 or not select.select([self.replies], [], [], wait)[0]:
                    raise TimeoutError
            chunk = os.read(self.replies, min(n, 1 << 24))
            if not chunk:
                return None  # the worker died
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, model: bytes, inputs, runtime: str, num_threads, timeout: float | None):
        """The worker's reply, or None when it died before answering."""
        deadline = None if timeout is None else time.monotonic() + timeout
        send_model = model is not self.model
        frame = pickle.dumps(
            (model if send_model else None, inputs, runtime, num_threads), protocol=pickle.HIGHEST_PROTOCOL
        )
        try:
            self.requests.write(_FRAME.pack(len(frame)))
            self.requests.write(frame)
            self.requests.flush()
        except (BrokenPipeError, ValueError):
            return None
        self.model = model if send_model else self.model
        header = self._read(_FRAME.size, deadline)
        if header is None:
            return None
        body = self._read(_FRAME.unpack(header)[0], deadline)
        return None if body is None else pickle.loads(body)


_worker: _Worker | None = None
_worker_pid = None  # the process that started _worker (a forked child must start its own)
_worker_lock = threading.Lock()


def _close_worker() -> None:
    global _worker
    if _worker is not None and _worker_pid == os.getpid():
        _worker.close()
    _worker = None


atexit.register(_close_worker)


def run_isolated(
    model: bytes,
    inputs: Sequence,
    runtime: str = "auto",
    num_threads: int | None = None,
    timeout: float | None = None,
    source: str = "the model",
    fresh: bool = False,
) -> list[np.ndarray]:
    """run() in the worker process: a runtime that crashes becomes a RuntimeFailed naming
    `source` (a file name), not the death of the caller. Errors the runtime raises come back as
    the same exception types (TypeError, ValueError, RuntimeNotInstalled) or a RuntimeFailed.
    `fresh`: a worker of its own, closed afterwards (``torch-circle verify`` on a file from
    elsewhere); `timeout` (seconds) then bounds the run."""
    global _worker, _worker_pid
    arrays = [_as_numpy(x) for x in inputs]
    _check_inputs(model, arrays)
    name = _runtime_name(model, runtime)
    if not isinstance(model, bytes):  # an mmap (a big export) cannot be pickled
        model = bytes(model)
    with _worker_lock:
        if fresh:
            worker = _Worker()
        else:
            if _worker is None or _worker_pid != os.getpid() or _worker.process.poll() is not None:
                if _worker is not None and _worker_pid == os.getpid():
                    _worker.close()
                _worker, _worker_pid = _Worker(), os.getpid()
            worker = _worker
        reply = None
        try:
            reply = worker.call(model, arrays, runtime, num_threads, timeout)
        except TimeoutError:
            worker.process.kill()
            reply = "timeout"
        finally:
            if fresh or reply is None or reply == "timeout":
                worker.close()
                if worker is _worker:
                    _worker = None
    if reply == "timeout":
        raise RuntimeFailed(f"{name} did not finish running {source} in {timeout} s")
    if reply is None:
        code = worker.process.returncode
        how = signal.Signals(-code).name if code is not None and code < 0 else f"exit status {code}"
        raise RuntimeFailed(
            f"{name} crashed ({how}) running {source}: the file is well formed, but the runtime cannot execute it"
        )
    if reply[0] == "ok":
        return reply[1]
    _, kind, message = reply
    if kind == "RuntimeNotInstalled":
        raise RuntimeNotInstalled(message)
    if kind in ("TypeError", "ValueError"):
        raise {"TypeError": TypeError, "ValueError": ValueError}[kind](f"{source}: {message}")
    raise RuntimeFailed(f"{name} cannot run {source}: {kind}: {message}")


def _serve(request_fd: int, reply_fd: int) -> int:
    """The worker's loop: one reply per request, until the parent closes the requests pipe.
    Holds the last model it was sent."""
    requests = os.fdopen(request_fd, "rb")
    replies = os.fdopen(reply_fd, "wb")
    model = None
    while True:
        header = requests.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return 0
        new_model, inputs, runtime, num_threads = pickle.loads(requests.read(_FRAME.unpack(header)[0]))
        model = model if new_model is None else new_model
        try:
            if runtime == "auto":
                runtime = "litert" if model[4:8] == b"TFL3" else "onert"
            if runtime == "onert":
                reply = ("ok", run_onert(model, inputs))
            elif runtime == "litert":
                reply = ("ok", run_litert(model, inputs, num_threads=num_threads))
            else:
                raise ValueError(f"runtime must be 'onert', 'litert' or 'auto', not {runtime!r}")
        except Exception as error:  # noqa: BLE001  sent to the parent
            reply = ("error", type(error).__name__, str(error))
        frame = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        replies.write(_FRAME.pack(len(frame)))
        replies.write(frame)
        replies.flush()
