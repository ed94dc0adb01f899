"""The benchmark scripts keep running: a quick pass must print its table and the command."""

import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_ops_quick_run_prints_table_and_command():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ops.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    for row in (
        "quantize_per_tensor",
        "dequantize_per_tensor",
        "quantize_per_channel",
        "minmax",
        "histogram",
        "memcpy",
    ):
        assert row in out, row
    assert "reproduce: python benchmarks/bench_ops.py" in out


def test_bench_export_quick_run_prints_table_targets_and_command():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_export.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    for row in (
        "float     torch-circle",
        "uint8     torch-circle",
        "targets (issue, for ResNet-50)",
        "ratios (same case, same program)",
    ):
        assert row in out, row
    assert "reproduce: python benchmarks/bench_export.py" in out


def test_bench_quantizer_accuracy_quick_run_prints_every_setting():
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_quantizer_accuracy.py"),
            "--quick",
            "--seq",
            "16",
            "--calib",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    rows = {
        line[:48].strip(): [float(v) for v in line[48:].split()]
        for line in out.splitlines()
        if line.startswith(("x86", "ours"))
    }
    assert len(rows) == 7 and all(0 < err < 0.2 for err, _ in rows.values()), out
    assert all(abs(db + 20 * math.log10(err)) < 0.2 for err, db in rows.values()), out  # err printed to 4 places
    assert rows["ours int16 (a16w8)"][0] < rows["ours uint8"][0]  # 256x finer steps must show
    assert "reproduce: python benchmarks/bench_quantizer_accuracy.py" in out
