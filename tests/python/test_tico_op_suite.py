"""benchmarks/tico_op_suite.py on a small suite of our own in TICO's layout: the harness must find
the cases, apply the tags, and count passes and each kind of failure correctly."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "tico_op_suite.py"

# The tag decorators as TICO's test tree defines them: class attributes named __tag_<tag>.
TAG_MODULE = """
def skip(reason):
    def mark(cls):
        cls.__tag_skip = True
        cls.__tag_skip_reason = reason
        return cls
    return mark


def test_negative(expected_err, runtime=None):
    def mark(cls):
        setattr(cls, "__tag_test_negative", True)
        setattr(cls, "__tag_expected_err", expected_err)
        setattr(cls, "__tag_negative_runtime", runtime)
        return cls
    return mark


def target(cls):
    setattr(cls, "__tag_target", True)
    return cls


def test_without_inference(cls):
    setattr(cls, "__tag_test_without_inference", True)
    return cls
"""

# Current TICO style: get_example_inputs returns (args, kwargs).
OPS_MODULE = """
import torch

from test.support import tag


class AddOne(torch.nn.Module):
    def forward(self, x):
        return x + 1

    def get_example_inputs(self):
        return (torch.randn(2, 3),), {}


class ScaleByNumber(torch.nn.Module):
    # A Python number argument and a keyword argument, in the (args, kwargs) form.
    def forward(self, x, scale, bias=None):
        return x * scale + bias

    def get_example_inputs(self):
        return (torch.randn(2, 3), 2.5), {"bias": torch.randn(3)}


@tag.skip(reason="not run")
class Skipped(torch.nn.Module):
    def forward(self, x):
        return x

    def get_example_inputs(self):
        return (torch.randn(2),), {}


@tag.test_negative(expected_err="anything")
class Negative(torch.nn.Module):
    def forward(self, x):
        return x

    def get_example_inputs(self):
        return (torch.randn(2),), {}


@tag.test_negative(expected_err="only in the other runtime", runtime="circle-interpreter")
class NegativeElsewhere(torch.nn.Module):
    # negative only under another runtime: an ordinary case under onert
    def forward(self, x):
        return x - 1

    def get_example_inputs(self):
        return (torch.randn(2),), {}


class Unsupported(torch.nn.Module):
    # a special function no Circle runtime has
    def forward(self, x):
        return torch.special.bessel_j0(x)

    def get_example_inputs(self):
        return (torch.randn(4),), {}


class Mismatch(torch.nn.Module):
    # eager runs first and sees 1; torch.export traces the second call and bakes in 2
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x + self.calls

    def get_example_inputs(self):
        return (torch.randn(3),), {}


class EagerFails(torch.nn.Module):
    def forward(self, x):
        return x @ x

    def get_example_inputs(self):
        return (torch.randn(2, 3),), {}


@tag.test_without_inference
class ExportOnly(torch.nn.Module):
    def forward(self, x):
        return x * 3

    def get_example_inputs(self):
        return (torch.randn(2),), {}


class Helper(torch.nn.Module):
    # no get_example_inputs: a building block, not a case
    def forward(self, x):
        return x
"""

# Older TICO style (args tuple only), tags from test.utils, and a @target that narrows the file.
TARGET_MODULE = """
import torch

from test.utils.tag import target


class NotTargeted(torch.nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)

    def get_example_inputs(self):
        return (torch.randn(2),)


@target
class Targeted(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x)

    def get_example_inputs(self):
        return (torch.randn(2, 2),)
"""

BROKEN_MODULE = """
import torch
import a_module_nobody_has  # noqa: F401

from test.support.tag import skip


class CannotImport(torch.nn.Module):
    def get_example_inputs(self):
        return (torch.randn(2),), {}


@skip(reason="x")
class CannotImportSkipped(torch.nn.Module):
    def get_example_inputs(self):
        return (torch.randn(2),), {}
"""

DYNAMIC_MODULE = """
import torch
from torch.export import Dim


class DynamicAdd(torch.nn.Module):
    def forward(self, x, y):
        return x + y

    def get_example_inputs(self):
        return (torch.randn(1, 4), torch.randn(1, 4))

    def get_input_dynamic_shapes(self):
        d = Dim("d", min=2)
        return (1, d), (1, d)
"""


def make_suite(root: Path) -> Path:
    files = {
        "test/__init__.py": "",
        "test/support/__init__.py": "",
        "test/support/tag.py": TAG_MODULE,
        "test/utils/__init__.py": "",
        "test/utils/tag.py": TAG_MODULE,
        "test/modules/__init__.py": "",
        "test/modules/op/__init__.py": "",
        "test/modules/op/ops.py": OPS_MODULE,
        "test/modules/op/targeted.py": TARGET_MODULE,
        "test/modules/op/broken.py": BROKEN_MODULE,
        "test/modules/op/dyn_shapes/__init__.py": "",
        "test/modules/op/dyn_shapes/add.py": DYNAMIC_MODULE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def run_script(*args, cwd=None):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )


def test_harness_counts_a_suite_in_ticos_layout(tmp_path):
    suite = make_suite(tmp_path / "TICO")
    out_json = tmp_path / "out.json"
    done = run_script("--tico-dir", suite, "--json", out_json, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(out_json.read_text())
    status = {r["name"]: (r["status"], r.get("kind")) for r in summary["results"]}
    assert status == {
        "ops.AddOne": ("pass", None),
        "ops.ScaleByNumber": ("pass", None),
        "ops.Skipped": ("ineligible", None),
        "ops.Negative": ("ineligible", None),
        "ops.NegativeElsewhere": ("pass", None),
        "ops.Unsupported": ("fail", "export"),
        "ops.Mismatch": ("fail", "mismatch"),
        "ops.EagerFails": ("fail", "eager"),
        "ops.ExportOnly": ("pass", None),
        "targeted.Targeted": ("pass", None),
        "broken.CannotImport": ("fail", "import"),
        "broken.CannotImportSkipped": ("ineligible", None),
        "dyn_shapes.add.DynamicAdd": ("pass", None),
    }
    assert summary["ineligible"] == {"skip": 2, "test_negative": 1}
    assert (summary["eligible"], summary["passed"]) == (10, 6)
    assert summary["percent"] == 60.0
    assert summary["failures_by_kind"] == {"export": 1, "mismatch": 1, "eager": 1, "import": 1}
    causes = {r["name"]: r.get("cause", "") for r in summary["results"]}
    assert causes["ops.Unsupported"].startswith("aten.special_bessel_j0")
    assert causes["ops.Mismatch"] == "values differ"
    notes = {r["name"]: r.get("note") for r in summary["results"]}
    assert notes["dyn_shapes.add.DynamicAdd"] == "also matched with other sizes of its dynamic dims"
    assert notes["ops.ExportOnly"].startswith("export only")
    assert "a_module_nobody_has" in causes["broken.CannotImport"]
    # The fake suite's `test` package must not have been shadowed by the standard library's.
    assert not summary["tico_package_imported"]

    table = done.stdout
    assert "| **passed** | **6 / 10 (60.0%)** |" in table
    assert "| not eligible: @skip | 2 |" in table
    assert f"reproduce: python benchmarks/tico_op_suite.py --tico-dir {suite.resolve()}" in table


def test_harness_only_filter_and_threshold(tmp_path):
    suite = make_suite(tmp_path / "TICO")
    done = run_script("--tico-dir", suite, "--only", "ops.AddOne", "--min-percent", "100")
    assert done.returncode == 0, done.stderr
    assert "| **passed** | **1 / 1 (100.0%)** |" in done.stdout
    failing = run_script("--tico-dir", suite, "--only", "Mismatch", "--min-percent", "98")
    assert failing.returncode == 1
    assert "| **passed** | **0 / 1 (0.0%)** |" in failing.stdout


def test_harness_bounds_each_module_in_time(tmp_path):
    suite = make_suite(tmp_path / "TICO")
    (suite / "test/modules/op/slow.py").write_text(
        textwrap.dedent(
            """
            import time

            import torch


            class Slow(torch.nn.Module):
                def forward(self, x):
                    time.sleep(30)
                    return x

                def get_example_inputs(self):
                    return (torch.randn(2),), {}
            """
        )
    )
    out_json = tmp_path / "out.json"
    done = run_script("--tico-dir", suite, "--only", "slow.", "--timeout", "1", "--json", out_json)
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(out_json.read_text())["results"]
    assert (result["status"], result["kind"], result["cause"]) == ("fail", "timeout", "over 1 s")
    assert result["seconds"] < 10


def test_harness_explains_a_missing_checkout(tmp_path):
    done = run_script("--tico-dir", tmp_path / "nowhere")
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "checkout of TICO's source repository" in done.stderr
    assert "--tico-dir /path/to/TICO" in done.stderr
    assert run_script().returncode == 2
