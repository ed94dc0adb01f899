"""TICO's op test suite run through torch_circle: float export, onert, each output against eager.

TICO (Samsung's PyTorch-to-Circle converter) keeps one small nn.Module per op variant under
`test/modules/op/` of its source repository. That suite is not in the `tico` package on PyPI, so
this script fetches nothing: it runs against a checkout you pass.

    python benchmarks/tico_op_suite.py --tico-dir /path/to/TICO [--only cat] [--json out.json]

The modules are found and judged the way TICO's own harness (test/pt2_to_circle_test) does:

- every `nn.Module` class defined in a file of `test/modules/op/` (sub-folders included) is a
  case; a class without `get_example_inputs` is a helper, not a case;
- when some class of a file is tagged `@target`, only the tagged classes of that file run;
- `@skip` classes are not eligible, nor `@test_negative` ones (expected to fail), unless the
  negative tag names a runtime other than onert; the tags are class attributes `__tag_<name>`
  that TICO's tag decorators set (test/utils/tag.py or test/support/tag.py, by version);
- `get_example_inputs()` returns `(args, kwargs)` (current TICO) or the args tuple (older);
  `get_dynamic_shapes()` / `get_input_dynamic_shapes()` give torch.export's `dynamic_shapes`,
  and such a model is also run again with other sizes of its dynamic dims;
- eager runs first (`forward`, eval mode, no grad), then torch.export, then
  `torch_circle.export` (float) and onert; outputs are flattened with pytree, `None`s dropped,
  and each must match in count, shape, dtype and value (`torch.testing.assert_close`,
  `equal_nan`) at the module's `rtol` / `atol` if it has them, else 1e-4;
- `@test_without_inference` classes pass when the export succeeds; `@with_golden` classes are
  compared with `get_golden_outputs()`. TICO's `get_compile_config()` options are TICO's own
  and ignored.

Exit status 0 when the run completed (whatever the pass rate; `--min-percent` makes it fail
below a rate), 2 on a bad --tico-dir.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import importlib
import importlib.util
import inspect
import json
import re
import signal
import sys
import time
import types
from collections import Counter
from pathlib import Path

import numpy as np

OP_DIR = Path("test") / "modules" / "op"
DEFAULT_TOL = 1e-4
RUNTIME = "onert"

# Failure kinds, in the order the summary lists them.
KINDS = {
    "import": "the test file could not be imported",
    "eager": "the module fails in PyTorch: construction, inputs or forward",
    "torch_export": "torch.export fails",
    "export": "torch_circle.export refuses the program",
    "runtime": "onert refuses to load or run the file",
    "mismatch": "outputs differ from eager: count, shape, dtype or value",
    "timeout": "over the time limit",
}

MISSING_DIR_HELP = """\
--tico-dir must be a checkout of TICO's source repository (Samsung/TICO on GitHub), the folder
that holds test/modules/op/. The suite is not part of the `tico` package on PyPI, and this
script downloads nothing. Clone TICO anywhere outside this repository, then run:

    python benchmarks/tico_op_suite.py --tico-dir /path/to/TICO
"""


class CaseTimeout(BaseException):
    """A BaseException, so the `except Exception` that classifies a module's own errors lets it through."""


class CaseFailure(Exception):
    """kind: a key of KINDS; the message is the cause the summary counts; detail: the full error."""

    def __init__(self, kind: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Discovery


def _tagged(cls, tag: str) -> bool:
    return hasattr(cls, f"__tag_{tag}")


def _register_package(name: str, folder: Path) -> None:
    """Imports `name` from `folder`, or makes it an empty package there when the folder has no
    __init__.py. Needed because TICO's top package is called `test`, like the standard library's
    regression-test package, which must not answer for it."""
    existing = sys.modules.get(name)
    if existing is not None and str(folder) in [str(Path(p)) for p in getattr(existing, "__path__", [])]:
        return
    init = folder / "__init__.py"
    if init.exists():
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    else:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, module)


def prepare_imports(tico_dir: Path) -> None:
    """TICO's harness runs from the checkout's root, so `test.*` names its test tree; do the same."""
    root = str(tico_dir)
    if root not in sys.path:
        sys.path.insert(0, root)
    for name in [n for n in sys.modules if n == "test" or n.startswith("test.")]:
        if not str(getattr(sys.modules[name], "__file__", "") or "").startswith(root):
            del sys.modules[name]
    _register_package("test", tico_dir / "test")


def test_files(tico_dir: Path) -> list[Path]:
    return sorted(p for p in (tico_dir / OP_DIR).rglob("*.py") if p.name != "__init__.py")


def module_name(tico_dir: Path, path: Path) -> str:
    return ".".join(path.relative_to(tico_dir).with_suffix("").parts)


def import_test_module(tico_dir: Path, path: Path):
    name = module_name(tico_dir, path)
    parts = name.split(".")
    for depth in range(2, len(parts)):
        _register_package(".".join(parts[:depth]), tico_dir.joinpath(*parts[:depth]))
    return importlib.import_module(name)


def nn_module_classes(module) -> list[type]:
    """The nn.Module classes the file defines, narrowed to its @target ones when it has any."""
    import torch

    classes = [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and issubclass(cls, torch.nn.Module)
    ]
    targeted = [cls for cls in classes if _tagged(cls, "target")]
    return targeted or classes


def ineligible_reason(cls) -> str | None:
    if _tagged(cls, "skip"):
        return "skip"
    if _tagged(cls, "test_negative"):
        runtime = getattr(cls, "__tag_negative_runtime", None)
        if runtime is None or runtime == RUNTIME:
            return "test_negative"
    return None


def classes_from_source(path: Path) -> list[tuple[str, str | None]]:
    """For a file that fails to import: its classes with a get_example_inputs method and the
    skip / test_negative / target tag their decorators name, read from the source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if not any(isinstance(item, ast.FunctionDef) and item.name == "get_example_inputs" for item in node.body):
            continue
        tags = set()
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            tags.add(target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", ""))
        negative_runtime = None
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call):
                for keyword in decorator.keywords:
                    if keyword.arg == "runtime" and isinstance(keyword.value, ast.Constant):
                        negative_runtime = keyword.value.value
        tag = None
        if "skip" in tags or "skip_if" in tags:
            tag = "skip"
        elif "test_negative" in tags and negative_runtime in (None, RUNTIME):
            tag = "test_negative"
        found.append((node.name, tag, "target" in tags))
    if any(targeted for _, _, targeted in found):
        found = [entry for entry in found if entry[2]]
    return [(name, tag) for name, tag, _ in found]


# ---------------------------------------------------------------------------------------------
# One case


def example_inputs(model) -> tuple[tuple, dict]:
    """`(args, kwargs)` from current TICO, the args tuple from older TICO."""
    value = model.get_example_inputs()
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], tuple) and isinstance(value[1], dict):
        return value
    if isinstance(value, tuple):
        return value, {}
    raise CaseFailure("eager", f"get_example_inputs() returned a {type(value).__name__}, not a tuple")


def dynamic_shapes_of(model):
    for getter in ("get_dynamic_shapes", "get_input_dynamic_shapes"):
        if hasattr(model, getter):
            return getattr(model, getter)()
    return None


def flat_outputs(result) -> list:
    from torch.utils import _pytree as pytree

    leaves, _ = pytree.tree_flatten(result)
    return [leaf for leaf in leaves if leaf is not None]


def tensor_inputs(model, args: tuple, kwargs: dict) -> list:
    """The tensors among the forward arguments, in torch.export's order (kwargs by signature);
    other arguments are baked into the exported program, not file inputs."""
    import torch
    from torch.utils import _pytree as pytree

    names = list(inspect.signature(model.forward).parameters)
    ordered = dict(sorted(kwargs.items(), key=lambda item: names.index(item[0]) if item[0] in names else len(names)))
    leaves, _ = pytree.tree_flatten((args, ordered))
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def eager(model, args, kwargs) -> list:
    import torch

    with torch.no_grad():
        return flat_outputs(model.forward(*copy.deepcopy(args), **copy.deepcopy(kwargs)))


def compare(expected: list, actual: list, rtol: float, atol: float, reshape: bool = False) -> None:
    """TICO's check: count, then per output shape, value (assert_close, equal_nan), dtype; plain
    Python numbers by value and type."""
    import torch

    if len(expected) != len(actual):
        raise CaseFailure("mismatch", f"{len(actual)} outputs, eager has {len(expected)}")
    for i, (want, got) in enumerate(zip(expected, actual)):
        got = np.asarray(got)
        if isinstance(want, torch.Tensor):
            if reshape and got.size == want.numel():
                got = got.reshape(tuple(want.shape))  # onert reports a dynamic output's placeholder shape
            if tuple(got.shape) != tuple(want.shape):
                raise CaseFailure(
                    "mismatch", "shapes differ", f"output {i}: shape {list(got.shape)}, eager {list(want.shape)}"
                )
            got_tensor = torch.from_numpy(np.ascontiguousarray(got))
            if got_tensor.dtype != want.dtype:
                raise CaseFailure("mismatch", f"dtype {got_tensor.dtype}, eager {want.dtype}", f"output {i}")
            try:
                torch.testing.assert_close(got_tensor, want, rtol=rtol, atol=atol, equal_nan=True)
            except AssertionError as error:
                detail = " ".join(line.strip() for line in str(error).splitlines()[1:4])
                raise CaseFailure("mismatch", "values differ", f"output {i}: {detail}") from None
        elif isinstance(want, (bool, int, float)):
            if not np.allclose(got, want, rtol=rtol, atol=atol):
                raise CaseFailure("mismatch", "values differ", f"output {i}: {got.tolist()}, eager {want}")
            if type(got.item()) is not type(want):
                raise CaseFailure(
                    "mismatch", f"{type(got.item()).__name__}, eager {type(want).__name__}", f"output {i}"
                )
        else:
            raise CaseFailure("mismatch", f"eager returned a {type(want).__name__}", f"output {i}")


def other_sizes(cm, inputs: list, seed: int = 0) -> list | None:
    """The inputs with each dynamic dim (-1 in the file's shape_signature) resized, 3 or else 2,
    as TICO's harness re-runs dynamic models; None when the file has no dynamic dim."""
    import torch

    sg = cm.info["subgraphs"][0]
    generator = torch.Generator().manual_seed(seed)
    changed, resized = False, []
    for index, value in zip(sg["inputs"], inputs):
        signature = sg["tensors"][index]["shape_signature"]
        if not signature or -1 not in signature:
            resized.append(value)
            continue
        changed = True
        shape = [(3 if size != 3 else 2) if dim == -1 else size for size, dim in zip(value.shape, signature)]
        if value.dtype.is_floating_point:
            resized.append(torch.randn(shape, generator=generator, dtype=value.dtype))
        else:
            resized.append(torch.randint(0, 2, shape, generator=generator, dtype=value.dtype))
    return resized if changed else None


def run_case(cls) -> dict:
    """Runs one module class; returns {"status": "pass"} or raises CaseFailure."""
    import torch

    import torch_circle
    from torch_circle.runtime import RuntimeFailed

    try:
        model = cls()
        args, kwargs = example_inputs(model)
        model.eval()
        # Eager first: some modules change state while being exported (TICO does the same).
        if _tagged(cls, "with_golden"):
            expected = flat_outputs(model.get_golden_outputs())
        else:
            expected = eager(model, args, kwargs)
        dynamic_shapes = dynamic_shapes_of(model)
    except CaseFailure:
        raise
    except Exception as error:
        raise CaseFailure("eager", _first_line(error)) from None
    rtol = getattr(model, "rtol", DEFAULT_TOL)
    atol = getattr(model, "atol", DEFAULT_TOL)

    try:
        with torch.no_grad():
            program = torch.export.export(
                model, copy.deepcopy(args), copy.deepcopy(kwargs), dynamic_shapes=dynamic_shapes
            )
    except Exception as error:
        raise CaseFailure("torch_export", _first_line(error)) from None
    # Without stack traces the exporter's errors name the op and the reason only, so the same
    # cause counts once in the summary (the module's name says where it comes from).
    for node in program.graph_module.graph.nodes:
        node.meta.pop("stack_trace", None)
    try:
        cm = torch_circle.export(program)
    except torch_circle.ExportError as error:
        raise CaseFailure("export", _export_cause(error), str(error)[:2000]) from None
    if _tagged(cls, "test_without_inference"):
        return {"status": "pass", "note": "export only (@test_without_inference)"}

    inputs = tensor_inputs(model, args, kwargs)
    try:
        actual = cm.run(*inputs, runtime=RUNTIME)
    except (RuntimeFailed, TypeError, ValueError) as error:
        raise CaseFailure("runtime", _first_line(error)) from None
    compare(expected, actual, rtol, atol, reshape=dynamic_shapes is not None)

    if dynamic_shapes is not None and not _tagged(cls, "with_golden"):
        resized = other_sizes(cm, inputs)
        if resized is not None:
            positional = len(resized) - len(kwargs)
            new_args = tuple(resized[:positional]) if len(args) == positional else args
            new_kwargs = dict(zip(list(kwargs), resized[positional:])) if kwargs else {}
            try:
                actual = cm.run(*resized, runtime=RUNTIME)
            except (RuntimeFailed, TypeError, ValueError) as error:
                raise CaseFailure("runtime", f"other sizes: {_first_line(error)}") from None
            compare(eager(model, new_args, new_kwargs), actual, rtol, atol, reshape=True)
            return {"status": "pass", "note": "also matched with other sizes of its dynamic dims"}
    return {"status": "pass"}


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]


def _export_cause(error: BaseException) -> str:
    """The exporter's first named node ("- node 'x' (aten.op): why") without the node's name,
    so the same cause counts once across modules; else the error's first line."""
    for line in str(error).splitlines():
        named = re.match(r"\s*- node '[^']*' \(([^)]*)\)(?:: (.*))?$", line)
        if named:
            return f"{named[1]}: {named[2] or 'no exporter for this op'}"[:300]
    return _first_line(error)


@contextlib.contextmanager
def time_limit(seconds: float):
    """SIGALRM bounds Python work; the exporter's C++ and the runtime's worker are interrupted
    when control comes back to Python (the worker is killed then)."""

    def expire(signum, frame):
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------------------------------------
# The run


def collect(tico_dir: Path, only: str | None) -> tuple[list[dict], list[dict]]:
    """(cases, files that failed to import). A case: name, cls (None for an unimported file),
    tag (None when eligible)."""
    cases, broken = [], []
    for path in test_files(tico_dir):
        name = module_name(tico_dir, path)
        short = name[len("test.modules.op.") :]
        try:
            module = import_test_module(tico_dir, path)
            entries = [
                (cls.__name__, cls, ineligible_reason(cls))
                for cls in nn_module_classes(module)
                if hasattr(cls, "get_example_inputs")
            ]
            error = None
        except Exception as exc:  # a file TICO's harness would also fail to load
            error = _first_line(exc)
            entries = [(cls_name, None, tag) for cls_name, tag in classes_from_source(path)]
            broken.append({"file": str(path.relative_to(tico_dir)), "error": error})
        for cls_name, cls, tag in entries:
            case = f"{short}.{cls_name}"
            if only and only not in case:
                continue
            cases.append({"name": case, "cls": cls, "tag": tag, "import_error": error})
    return cases, broken


def run_suite(tico_dir: Path, only: str | None, timeout: float, verbose: bool) -> dict:
    prepare_imports(tico_dir)
    import warnings

    warnings.filterwarnings("ignore")
    cases, broken = collect(tico_dir, only)
    results = []
    for case in cases:
        record = {"name": case["name"], "tag": case["tag"]}
        if case["tag"] is not None:
            record["status"] = "ineligible"
        elif case["cls"] is None:
            record.update(status="fail", kind="import", cause=case["import_error"])
        else:
            start = time.perf_counter()
            try:
                with time_limit(timeout):
                    record.update(run_case(case["cls"]))
            except CaseFailure as failure:
                record.update(status="fail", kind=failure.kind, cause=str(failure))
                if failure.detail:
                    record["detail"] = failure.detail
            except CaseTimeout:
                record.update(status="fail", kind="timeout", cause=f"over {timeout:g} s")
            except Exception as error:  # the harness reports, never dies on one module
                record.update(status="fail", kind="eager", cause=_first_line(error))
            record["seconds"] = round(time.perf_counter() - start, 3)
        if verbose and record["status"] != "ineligible":
            print(f"  {record['status']:4s} {record['name']}  {record.get('cause', '')}", flush=True)
        results.append(record)
    eligible = [r for r in results if r["status"] != "ineligible"]
    passed = [r for r in eligible if r["status"] == "pass"]
    return {
        "tico_dir": str(tico_dir),
        "files": len(test_files(tico_dir)),
        "files_not_imported": broken,
        "classes": len(results),
        "ineligible": dict(Counter(r["tag"] for r in results if r["status"] == "ineligible")),
        "eligible": len(eligible),
        "passed": len(passed),
        "percent": round(100.0 * len(passed) / len(eligible), 2) if eligible else 0.0,
        "failures_by_kind": dict(Counter(r["kind"] for r in eligible if r["status"] == "fail")),
        "rtol_atol_default": DEFAULT_TOL,
        "runtime": RUNTIME,
        "tico_package_imported": "tico" in sys.modules,
        "export_seconds_total": round(sum(r.get("seconds", 0.0) for r in eligible), 2),
        "results": results,
    }


def format_report(summary: dict, command: str) -> str:
    lines = [
        f"TICO op suite: {summary['tico_dir']}/{OP_DIR}  ({summary['files']} files, "
        f"{summary['classes']} module classes)",
        f"float export -> {summary['runtime']}, each output against eager at rtol/atol "
        f"{summary['rtol_atol_default']:g} (or the module's own)",
        "",
        "| | modules |",
        "| --- | ---: |",
    ]
    for tag, count in sorted(summary["ineligible"].items()):
        lines.append(f"| not eligible: @{tag} | {count} |")
    lines.append(f"| eligible | {summary['eligible']} |")
    lines.append(f"| **passed** | **{summary['passed']} / {summary['eligible']} ({summary['percent']:.1f}%)** |")
    for kind in KINDS:
        if kind in summary["failures_by_kind"]:
            lines.append(f"| failed: {kind} ({KINDS[kind]}) | {summary['failures_by_kind'][kind]} |")
    failures = [r for r in summary["results"] if r["status"] == "fail"]
    if failures:
        causes = Counter((r["kind"], r["cause"]) for r in failures)
        lines += ["", "| count | kind | cause |", "| ---: | --- | --- |"]
        for (kind, cause), count in sorted(causes.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"| {count} | {kind} | {cause.replace('|', '/')} |")
        lines += ["", "failed modules:"]
        for r in failures:
            detail = r.get("detail", "") if r["kind"] != "export" else ""  # an export's detail is long
            lines.append(f"  {r['name']}: {r['kind']}: {r['cause']}" + (f" ({detail})" if detail else ""))
    for broken in summary["files_not_imported"]:
        lines.append(f"  (file not imported: {broken['file']}: {broken['error']})")
    lines += ["", f"export + run time, eligible modules: {summary['export_seconds_total']:.1f} s"]
    lines.append(f"reproduce: {command}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tico-dir", type=Path, help="a checkout of TICO's source repository")
    parser.add_argument("--only", help="run only the cases whose 'file.Class' name contains this")
    parser.add_argument("--json", type=Path, help="also write every result to this JSON file")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per module (default 120)")
    parser.add_argument("--min-percent", type=float, default=None, help="exit 1 below this pass rate")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each module as it runs")
    options = parser.parse_args(argv)

    if options.tico_dir is None or not (options.tico_dir / OP_DIR).is_dir():
        where = "not given" if options.tico_dir is None else f"{options.tico_dir}/{OP_DIR} does not exist"
        print(f"error: --tico-dir {where}.\n\n{MISSING_DIR_HELP}", file=sys.stderr)
        return 2
    tico_dir = options.tico_dir.resolve()
    command = "python benchmarks/tico_op_suite.py --tico-dir " + str(tico_dir)
    if options.only:
        command += f" --only {options.only}"
    summary = run_suite(tico_dir, options.only, options.timeout, options.verbose)
    print(format_report(summary, command))
    if options.json:
        options.json.write_text(json.dumps(summary, indent=1))
    if options.min_percent is not None and summary["percent"] < options.min_percent:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
