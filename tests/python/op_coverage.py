"""pytest plugin: every Circle op of the exporter's op table is written by some export test.

Each export a test makes (torch_circle._C.export_graph_module, in every xdist worker) records the
ops of the file it wrote. When the whole of tests/python has run and passed, the run fails if a
row of the op table (csrc/exporter/ir/circle_ops.lst, through _C.circle_op_table()) was never
written: a new op needs a test that exports it. Runs of a subset (-k, -m, --lf, file or node
arguments) skip the check.
"""

import mmap
import os
import tempfile
from pathlib import Path

import pytest

from torch_circle import _C

_TESTS_DIR = Path(__file__).resolve().parent


def table_ops() -> set[str]:
    """The Circle ops of the op table (importer-only "torch.*" rows never reach a file)."""
    return {row["type"] for row in _C.circle_op_table() if row["builtin"]}


def missing_ops(written: set[str]) -> list[str]:
    return sorted(table_ops() - written)


def _record_exports(record_file: str) -> None:
    export = _C.export_graph_module

    def recording_export(graph_module, format="circle", verbose=0, extended_buffer_threshold=0, fd=-1):
        result = export(graph_module, format, verbose, extended_buffer_threshold, fd)
        data = result if fd < 0 else mmap.mmap(fd, result, access=mmap.ACCESS_READ)
        try:
            ops = {op["op"] for sg in _C.read_circle(data)["subgraphs"] for op in sg["operators"]}
        finally:
            if fd >= 0:
                data.close()
        with open(record_file, "a") as f:
            f.write("".join(op + "\n" for op in ops))
        return result

    _C.export_graph_module = recording_export


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # an xdist worker: the controller chose the directory
        directory = config.workerinput["op_coverage_dir"]
    else:
        directory = tempfile.mkdtemp(prefix="torch-circle-op-coverage-")
        config._op_coverage_dir = directory
    _record_exports(os.path.join(directory, f"{os.getpid()}.txt"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):  # xdist: runs in the controller for each worker
    node.workerinput["op_coverage_dir"] = node.config._op_coverage_dir


def _whole_suite(config) -> bool:
    o = config.option
    if o.keyword or o.markexpr or getattr(o, "lf", False) or getattr(o, "deselect", None) or o.maxfail:
        return False
    paths = {Path(arg.split("::")[0]).resolve() for arg in config.args}
    return paths in ({_TESTS_DIR}, {_TESTS_DIR.parent}, {_TESTS_DIR.parent.parent})


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput") or exitstatus != 0 or not _whole_suite(config):
        return
    written = set()
    for record in Path(config._op_coverage_dir).glob("*.txt"):
        written |= set(record.read_text().split())
    missing = missing_ops(written)
    if missing:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(
            f"FAILED op coverage: no export test writes {', '.join(missing)} (rows of "
            "csrc/exporter/ir/circle_ops.lst); add a case to tests/python/test_export_ops.py",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
