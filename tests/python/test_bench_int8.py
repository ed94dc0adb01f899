"""The int8 benchmarks keep running: a quick pass prints its table, the command that reproduces it,
and proves that the peers are what they claim to be (oneDNN int8 kernels in the x86 inductor graph)."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _ms(cell: str) -> float:
    """A time cell; a trailing '!' marks a noisy median (a busy machine), still a number."""
    return float(cell.rstrip("!"))


def _table(out: str, first_cell: str):
    """The markdown rows whose first cell is first_cell, as lists of cells."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| ")]
    header = rows[0]
    return header, [r for r in rows[1:] if r[0] == first_cell]


def test_bench_int8_kernels_quick_prints_table_peak_and_command():
    out = _run("bench_int8_kernels.py")
    assert out.startswith("reproduce: python benchmarks/bench_int8_kernels.py --quick")
    assert re.search(r"^peak: .* = \d+ GOPS at 1 thread", out, re.M), out
    header, linear = _table(out, "BERT-base linear")
    assert linear and len(linear[0]) == len(header)
    col = {h: i for i, h in enumerate(header)}
    for row in linear:
        # the peers ran and computed the right thing (within rounding of the exact result)
        assert _ms(row[col["oneDNN us"]]) > 0 and _ms(row[col["FBGEMM us"]]) > 0, row
        assert "oneDNN 0" in row[col["max diff vs float ref (steps)"]] or \
            "oneDNN 1" in row[col["max diff vs float ref (steps)"]], row
        assert "avx512" in row[col["oneDNN impl"]] or "avx2" in row[col["oneDNN impl"]], row
        # ours: a ratio once the ops exist, otherwise a stated reason
        assert row[col["ours vs oneDNN"]].endswith("x") or row[col["ours vs oneDNN"]].startswith("n/a ("), row
    assert _table(out, "ResNet-18 conv")[1] and _table(out, "MobileNetV2 conv")[1]
    assert out.rstrip().splitlines()[-1].startswith("reproduce: python benchmarks/bench_int8_kernels.py")


def test_bench_int8_e2e_quick_verifies_the_x86_peer_calls_onednn_int8():
    out = _run("bench_int8_e2e.py")
    assert out.startswith("reproduce: python benchmarks/bench_int8_e2e.py --quick")
    header, resnet = _table(out, "resnet18")
    _, bert = _table(out, "bert")
    assert resnet and bert, out
    col = {h: i for i, h in enumerate(header)}
    peer = col["peer int8 kernels"]
    # every conv and linear of the CNN, and every linear of the encoder, runs as a oneDNN int8 op
    m = re.fullmatch(r"onednn qconv x(\d+), qlinear x(\d+) \((\d+)/(\d+) conv\+linear\)", resnet[0][peer])
    assert m and m.group(3) == m.group(4), resnet[0][peer]
    m = re.fullmatch(r"onednn qlinear x(\d+) \((\d+)/(\d+) conv\+linear\)", bert[0][peer])
    assert m and m.group(2) == m.group(3), bert[0][peer]
    for row in resnet + bert:
        assert _ms(row[col["fp32 eager ms"]]) > 0 and _ms(row[col["x86 int8 ms"]]) > 0, row
        assert "x86 vs fp32: rel err" in row[col["agreement with fp32 eager"]], row
        target = row[col["ours vs x86 int8 (>= 1.2x)"]]
        assert target.startswith("n/a (") or re.match(r"\d+\.\d+x, (met|short by)", target), target
    assert "top-1" in resnet[0][col["agreement with fp32 eager"]]
    assert out.rstrip().splitlines()[-1].startswith("reproduce: python benchmarks/bench_int8_e2e.py")
