"""Circle export: the Python front end. It only hands the graph over; the walker, the passes and
the flatbuffers writer are C++ (csrc/exporter).

    cm = torch_circle.export(converted_model, (x,))   # also an ExportedProgram or a float model
    cm.save("model.circle")
    outputs = cm.run(x)                               # in ONE's runtime (onert)
"""

from __future__ import annotations

import mmap
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from . import _C

ExportError = _C.ExportError
CircleFileError = _C.CircleFileError

# Nodes convert_pt2e inserts without shape metadata; the exporter derives their shapes itself.
_SHAPELESS_OK = ("quantized_decomposed.", "circle_quant.")


def export(
    model: Any,
    example_inputs: Sequence[Any] | None = None,
    *,
    format: str = "circle",
    dynamic_shapes: Any = None,
    verbose: int = 0,
) -> "CircleModel":
    """Exports a model to Circle (or TFLite, ``format="tflite"``).

    ``model`` is a PT2E-converted ``GraphModule`` (``convert_pt2e`` output), an
    ``ExportedProgram``, or a float ``nn.Module`` (exported here with ``torch.export``;
    ``dynamic_shapes`` is passed on, and a dim marked dynamic is written as -1 in
    ``shape_signature``). ``example_inputs`` is needed when the graph has no shape metadata.
    ``verbose=1`` prints each pass's op count, ``2`` every op after every pass (stderr).
    Raises ``ExportError`` naming every node it cannot export.
    """
    if format not in ("circle", "tflite"):
        raise ValueError(f"format must be 'circle' or 'tflite', not {format!r}")
    graph_module = _graph_module(model, example_inputs, dynamic_shapes)
    # The exporter writes the file to an unlinked temporary file, the constants straight from
    # the tensors' memory. A small file is read back as bytes; a big one is memory-mapped, so
    # exporting never holds a second copy of the weights (docs/exporter.md, "Big models").
    spill = tempfile.TemporaryFile(prefix="torch_circle_", suffix=".circle")
    try:
        size = _C.export_graph_module(graph_module, format, int(verbose), 0, spill.fileno())
        if size < _MAP_BYTES:
            spill.seek(0)
            return CircleModel(spill.read())
        cm = CircleModel(mmap.mmap(spill.fileno(), size, access=mmap.ACCESS_READ))
        cm._file, spill = spill, None  # kept open for save(); the mapping keeps the data
        return cm
    finally:
        if spill is not None:
            spill.close()


# Exported files from this size on are memory-mapped instead of read into bytes.
_MAP_BYTES = 64 << 20


def _copy_file(source, destination) -> None:
    """Copies an open file's bytes to another, in the kernel (no pages of this process)."""
    offset, size = 0, os.fstat(source.fileno()).st_size
    while offset < size:
        sent = os.sendfile(destination.fileno(), source.fileno(), offset, min(size - offset, 1 << 30))
        if sent == 0:
            raise OSError(f"copying the exported file stopped at byte {offset} of {size}")
        offset += sent


# load()'s default size limit: far above any model onert or LiteRT can load, far below what
# reading an endless device (/dev/zero) would take before it exhausted memory.
MAX_FILE_BYTES = 16 << 30


def load(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> "CircleModel":
    """Reads a .circle / .tflite file, verifying it (CircleFileError when malformed). Only
    regular files of at most ``max_bytes`` are read (ValueError naming the file otherwise): a
    FIFO would block forever, a device like /dev/zero never end."""
    path = Path(path)
    # O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with open(fd, "rb", closefd=True) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a regular file; a model is read only from a regular file")
        if st.st_size > max_bytes:
            raise ValueError(f"{path}: {st.st_size:,} bytes, more than the limit of {max_bytes:,}")
        data = f.read(st.st_size)
    return CircleModel(data, source=str(path))


def _args_tuple(example_inputs):
    if example_inputs is None:
        return None
    return tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)


def _graph_module(model, example_inputs, dynamic_shapes):
    args = _args_tuple(example_inputs)
    if isinstance(model, torch.export.ExportedProgram):
        return _functional(model).module()
    if isinstance(model, torch.fx.GraphModule) and _has_call_functions(model):
        written = _write_into_view(model)
        if written is not None:
            raise ExportError(
                f"node '{written.name}' ({written.target}) writes into a view of another tensor "
                f"(as `mask[a:b] = v` does), which this graph cannot express without "
                f"functionalizing it: export the model with torch.export.export(...)"
                f".run_decompositions({{}}) before prepare_pt2e, or pass the nn.Module"
            )
        if _needs_shapes(model):
            if args is None:
                raise ValueError("this graph has no shape metadata: pass example_inputs to export()")
            from torch.fx.passes.shape_prop import ShapeProp

            ShapeProp(model).propagate(*args)
        return model
    if isinstance(model, torch.nn.Module):
        if args is None:
            raise ValueError("exporting an nn.Module needs example_inputs (it is traced with torch.export)")
        if model.training and _behaves_differently_in_training(model):
            raise ValueError(
                f"{type(model).__name__} is in training mode (its batch norm / dropout would be "
                "exported as in training); call model.eval() before exporting"
            )
        return _functional(torch.export.export(model, args, dynamic_shapes=dynamic_shapes)).module()
    raise TypeError(f"cannot export a {type(model).__name__}: pass an nn.Module, a GraphModule or an ExportedProgram")


def _write_into_view(gm) -> "torch.fx.Node | None":
    """The first in-place op whose written tensor is a view of another (`fill_` on a slice of a
    mask, as torchvision's Swin builds its attention mask), or None. Exporting the op as its
    out-of-place twin would leave the base tensor unchanged: a silently wrong file."""

    def is_view(n):
        return (
            isinstance(n, torch.fx.Node)
            and n.op == "call_function"
            and isinstance(n.target, torch._ops.OpOverload)
            and n.target.is_view
        )

    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    for node in gm.graph.nodes:
        target = node.target
        if (
            node.op != "call_function"
            or not isinstance(target, torch._ops.OpOverload)
            or not node.args
            or not target._schema.is_mutable
            or not is_view(node.args[0])
        ):
            continue
        # The tensors the written view aliases: is any of them read after the write?
        chain, base = [node.args[0]], node.args[0].args[0]
        while is_view(base):
            chain.append(base)
            base = base.args[0]
        for aliased in (*chain[1:], base):
            if any(order[user] > order[node] and user not in chain for user in aliased.users):
                return node
    return None


def _functional(program):
    """The program with writes into views made functional (slice_scatter and friends); ops stay
    as they are (an empty decomposition table). Programs without such writes are kept as traced."""
    return program.run_decompositions({}) if _write_into_view(program.graph_module) is not None else program


def _behaves_differently_in_training(model) -> bool:
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    return any(isinstance(m, (_BatchNorm, _DropoutNd)) for m in model.modules())


def _has_call_functions(gm) -> bool:
    return any(n.op == "call_function" for n in gm.graph.nodes)


def _needs_shapes(gm) -> bool:
    for node in gm.graph.nodes:
        if node.op in ("call_function", "placeholder") and "val" not in node.meta and "tensor_meta" not in node.meta:
            if node.op == "placeholder" or not str(node.target).startswith(_SHAPELESS_OK):
                return True
    return False


class CircleModel:
    """An exported model: the file's bytes, a summary of what is in it, and ways to run it."""

    def __init__(self, data: bytes | mmap.mmap, source: str = "<exported>"):
        # bytes, or (a big export) a read-only mmap of the file, which slices and reads like bytes
        self.data = data if isinstance(data, (bytes, mmap.mmap)) else bytes(data)
        self.source = source  # named in errors
        self._file = None  # the open file self.data maps, if any
        self.info = _C.read_circle(self.data, source)  # verifies: never trust bytes blindly

    @property
    def format(self) -> str:
        return "tflite" if self.info["identifier"] == "TFL3" else "circle"

    @property
    def operators(self) -> list[str]:
        return [op["op"] for op in self.info["subgraphs"][0]["operators"]]

    def output_step(self, index: int = 0) -> float | None:
        """The quantization step (scale) of the integer tensor model output `index` is dequantized
        from, looking through layout ops after the DEQUANTIZE; None when the output is computed in
        float. The natural unit for comparing a quantized model's outputs."""
        sg = self.info["subgraphs"][0]
        tensor = sg["outputs"][index]
        producers = {t: op for op in sg["operators"] for t in op["outputs"]}
        while tensor in producers:
            op = producers[tensor]
            if op["op"] == "DEQUANTIZE":
                scale = sg["tensors"][op["inputs"][0]]["scale"]
                return scale[0] if len(scale) == 1 else None
            if op["op"] not in ("TRANSPOSE", "RESHAPE"):
                return None
            tensor = op["inputs"][0]
        return None

    def output_steps(self, actual, expected, index: int = 0):
        """|actual - expected| in whole output steps, as an integer numpy array: how far a runtime's
        output `index` is from PyTorch's converted model, counted on the integers both dequantize.

        Both are (q - zero_point) * step, so dividing by the step and rounding recovers the
        integers exactly; comparing those avoids reading 2 steps as 2.0016 after a float division.
        Raises ValueError when the output is float, or when either side is not on the output's
        integer grid (then a step count would hide sub-step differences)."""
        import numpy as np

        step = self.output_step(index)
        if step is None:
            raise ValueError(
                f"output {index} of this model is computed in float, not dequantized "
                "from integers: compare it with a float tolerance"
            )
        counts = []
        for name, values in (("actual", actual), ("expected", expected)):
            scaled = np.asarray(values, dtype=np.float64) / step
            whole = np.rint(scaled)
            off = float(np.abs(scaled - whole).max()) if scaled.size else 0.0
            # float32 dequantization is off the grid by |q| * 2^-24 at most: 0.002 for int16.
            if off > 0.01:
                raise ValueError(
                    f"{name} values are not on output {index}'s integer grid (step {step:g}): {off:.3g} of a step away"
                )
            counts.append(whole)
        return np.abs(counts[0] - counts[1]).astype(np.int64)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        with open(path, "wb") as f:
            if self._file is not None:
                _copy_file(self._file, f)
            else:
                f.write(self.data)
        return path

    def run(self, *inputs, runtime: str = "auto", num_threads: int | None = None) -> list:
        """Runs the model in a real runtime on numpy arrays or tensors and returns numpy arrays.
        runtime: "onert" (ONE's runtime, .circle), "litert" (.tflite), or "auto" by format.
        The runtime runs in a worker process (kept for later calls), so a runtime that crashes
        on this file raises RuntimeFailed instead of killing the caller."""
        from . import runtime as rt

        return rt.run_isolated(self.data, inputs, runtime=runtime, num_threads=num_threads, source=self.source)

    def summary(self) -> str:
        from .summary import format_summary

        return format_summary(self.info)

    def __repr__(self) -> str:
        sg = self.info["subgraphs"][0]
        return (
            f"CircleModel({self.format}, {len(self.data):,} bytes, {len(sg['operators'])} ops, "
            f"{len(sg['tensors'])} tensors)"
        )
