"""The README's main job (examples/quantize_tiny_cnn.py) runs to "All checks passed." with few
calibration batches: its checks are the job's own, this test only keeps it runnable."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_passes_its_checks(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quantize_tiny_cnn.py"), "--batches", "4", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "All checks passed." in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny_cnn_float.circle",
        "tiny_cnn_int16.tflite",
        "tiny_cnn_int8.tflite",
        "tiny_cnn_uint8.circle",
    ]
