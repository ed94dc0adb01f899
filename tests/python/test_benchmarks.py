"""The benchmark scripts keep running: a quick pass must print its table and the command."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_ops_quick_run_prints_table_and_command():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_ops.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    for row in ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel",
                "minmax", "histogram", "memcpy"):
        assert row in out, row
    assert "reproduce: python benchmarks/bench_ops.py" in out


def test_bench_export_quick_run_prints_table_targets_and_command():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_export.py"), "--quick"],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    for row in ("float     torch-circle", "uint8     torch-circle", "targets (issue, for ResNet-50)",
                "ratios (same case, same program)"):
        assert row in out, row
    assert "reproduce: python benchmarks/bench_export.py" in out
