"""The int8 benchmarks keep running: a quick pass prints its table, the command that reproduces it,
and proves that the peers are what they claim to be (oneDNN int8 kernels in the x86 inductor graph)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _ms(cell: str) -> float:
    """A time cell; a trailing '!' marks a noisy median (a busy machine), still a number."""
    return float(cell.rstrip("!"))


def _table(out: str, first_cell: str):
    """The markdown rows whose first cell is first_cell, as lists of cells."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")
    ]
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
        assert (
            "oneDNN 0" in row[col["max diff vs float ref (steps)"]]
            or "oneDNN 1" in row[col["max diff vs float ref (steps)"]]
        ), row
        # an int8 kernel of some x86 tier (Sapphire Rapids: brg_matmul:avx10_1_512_amx)
        assert any(t in row[col["oneDNN impl"]] for t in ("avx512", "avx10", "amx", "avx2")), row
        # ours ran (the ops are part of the package): a ratio, never "n/a"
        assert re.fullmatch(r"\d+\.\d\dx", row[col["ours vs oneDNN"]]), row
    assert _table(out, "ResNet-18 conv")[1] and _table(out, "MobileNetV2 conv")[1]
    assert out.rstrip().splitlines()[-1].startswith("reproduce: python benchmarks/bench_int8_kernels.py")


def test_bench_int8_kernels_batch_runs_every_conv_at_that_batch():
    out = _run("bench_int8_kernels.py", "--only", "conv", "--batch", "3")
    assert out.splitlines()[0].endswith("--only conv --batch 3"), out.splitlines()[0]
    assert "conv batch 3, channels-last input" in out
    header, convs = _table(out, "MobileNetV2 conv")
    col = {h: i for i, h in enumerate(header)}
    assert convs and all(row[col["shape"]].endswith(" b3") for row in convs), convs
    for row in convs:  # ours and oneDNN ran the batch and agree with the exact result
        assert re.fullmatch(r"\d+\.\d\dx", row[col["ours vs oneDNN"]]), row
        assert (
            "ours 0" in row[col["max diff vs float ref (steps)"]]
            or "ours 1" in row[col["max diff vs float ref (steps)"]]
        )


def test_bench_int8_kernels_x_zero_point_reaches_every_implementation():
    # Zero point 0 (a layer after ReLU) is where oneDNN skips its compensation: all three must
    # compute with it, and agree with the float reference built with it.
    out = _run("bench_int8_kernels.py", "--only", "conv", "--x-zero-point", "0")
    assert out.splitlines()[0].endswith("--only conv --x-zero-point 0"), out.splitlines()[0]
    assert "uint8 activations (zero point 0)" in out
    header, convs = _table(out, "ResNet-18 conv")
    col = {h: i for i, h in enumerate(header)}
    assert convs, out
    for row in convs:
        diffs = row[col["max diff vs float ref (steps)"]]
        for impl in ("oneDNN", "FBGEMM", "ours"):
            assert re.search(rf"{impl} [01]\b", diffs), row


def test_bench_int8_kernels_rejects_a_zero_point_outside_uint8():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_int8_kernels.py"), "--x-zero-point", "256"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "--x-zero-point must be in [0, 255]" in done.stderr, done.stderr


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
    # every row names both sides' ISA tier (oneDNN's from its verbose log)
    assert re.fullmatch(r"ours \w+, oneDNN \w+", resnet[0][col["ISA tier"]]), resnet[0]
    # each timed variant's page faults per call (what the ops' output cache removes)
    assert re.search(r"resnet18 b1 ours: .* of \d+ calls, \d+ page faults per call;", out), out
    assert out.rstrip().splitlines()[-1].startswith("reproduce: python benchmarks/bench_int8_e2e.py")


def _bench_module():
    """benchmarks/bench_int8_kernels.py as a module (its CPU probe and tier logic)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_int8_kernels", ROOT / "benchmarks" / "bench_int8_kernels.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_peak_probe_never_runs_an_instruction_above_the_tier():
    bench = _bench_module()
    for tier in ("avx2", "avxvnni", "avx512"):
        probe, _ = bench.peak_probe_for(tier)
        assert probe.instruction == "vpmaddwd ymm" and probe.function == "madd_ymm_ns", tier
    assert bench.peak_probe_for("avx512vnni")[0].instruction == "vpdpbusd zmm"
    for tier in ("scalar", "neon", "neondot"):
        probe, why = bench.peak_probe_for(tier)
        assert probe is None and tier in why


def test_avx2_peak_probe_runs_on_an_emulated_haswell_and_the_vnni_one_does_not(tmp_path):
    """The probe the AVX2 tier runs executes on an AVX2-only CPU (QEMU's Haswell model); the VNNI
    probe dies there with SIGILL, which shows the emulator would catch a wrong choice."""
    import shutil

    qemu, cc = shutil.which("qemu-x86_64"), shutil.which("cc") or shutil.which("gcc")
    if qemu is None or cc is None:
        import pytest

        pytest.skip("needs qemu-x86_64 (Debian qemu-user) and a C compiler")
    bench = _bench_module()
    (tmp_path / "probe.c").write_text(bench._CPU_PROBE_C)
    subprocess.run([cc, "-O2", "-DPROBE_MAIN", str(tmp_path / "probe.c"), "-o", str(tmp_path / "probe")], check=True)
    run = lambda fn: subprocess.run(
        [qemu, "-cpu", "Haswell", str(tmp_path / "probe"), fn], capture_output=True, timeout=120
    )
    assert run(bench.peak_probe_for("avx2")[0].function).returncode == 0
    assert run("add_chain_ns").returncode == 0
    assert run(bench.peak_probe_for("avx512vnni")[0].function).returncode == -4  # SIGILL


def test_bench_int8_kernels_quick_at_the_avx2_tier():
    """--isa avx2: ours forced to AVX2 and oneDNN capped at AVX2 in a child process, verified from
    its verbose log; the peak comes from vpmaddwd, never vpdpbusd; the saturation case is printed."""
    out = _run("bench_int8_kernels.py", "--isa", "avx2")
    assert "--isa avx2" in out.splitlines()[0]
    assert re.search(r"^peak: +vpmaddwd ymm per cycle .*ISA tier avx2.* = \d+ GOPS at 1 thread", out, re.M), out
    assert "vpdpbusd" not in out
    assert "oneDNN verified at AVX2" in out, out
    header, linear = _table(out, "BERT-base linear")
    col = {h: i for i, h in enumerate(header)}
    for row in linear:
        assert row[col["ISA tier"]] == "ours avx2, oneDNN avx2", row
        assert row[col["CPU"]] and row[col["CPU"]] != "?", row
    m = re.search(
        r"^saturation case.*x86 inductor \(oneDNN, freezing\) ([\d.]+)%, ours \(circle_quant\) ([\d.]+)%", out, re.M
    )
    assert m, out
    assert float(m.group(2)) == 0.0  # ours: exactly the reference graph
