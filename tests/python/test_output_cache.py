"""The kernels' output cache (csrc/ops/output_cache.h): freed large outputs are reused, results and
layouts are those of fresh memory, and the limit / environment variable are honoured."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import torch_circle
from torch_circle import ops

MIB = 1 << 20


def quantize(x):
    return ops.quantize_per_tensor(x, 0.05, 128, 0, 255, torch.uint8)


def test_a_freed_output_is_reused_and_gives_the_same_bytes():
    x = torch.randn(1024, 1024)  # a 1 MiB uint8 output: the smallest the cache takes
    first = quantize(x)
    address, expected = first.data_ptr(), first.clone()
    del first
    before = torch_circle.output_cache_stats()
    again = quantize(x)
    after = torch_circle.output_cache_stats()
    assert again.data_ptr() == address
    assert after.reused == before.reused + 1 and after.allocated == before.allocated
    assert torch.equal(again, expected)


def test_reused_blocks_keep_each_outputs_own_layout():
    x = torch.randn(8, 64, 64, 64).contiguous(memory_format=torch.channels_last)
    expected = quantize(x.contiguous())
    del expected  # its block is now cached: the next output of that size takes it
    before = torch_circle.output_cache_stats()
    got = quantize(x)
    assert torch_circle.output_cache_stats().reused == before.reused + 1
    assert got.stride() == x.stride()
    assert torch.equal(got, quantize(x.contiguous()))


def test_small_outputs_bypass_the_cache():
    before = torch_circle.output_cache_stats()
    for _ in range(3):
        quantize(torch.randn(100, 100))
    after = torch_circle.output_cache_stats()
    assert (after.reused, after.allocated) == (before.reused, before.allocated)


def test_release_gives_every_block_back():
    out = quantize(torch.randn(2048, 1024))
    del out
    assert torch_circle.output_cache_stats().cached_bytes >= 2 * MIB
    torch_circle.release_output_cache()
    assert torch_circle.output_cache_stats().cached_bytes == 0
    before = torch_circle.output_cache_stats()
    quantize(torch.randn(2048, 1024))
    assert torch_circle.output_cache_stats().allocated == before.allocated + 1


def run_with_cache_limit(value, body):
    code = "import torch, torch_circle\nfrom torch_circle import ops\n" + textwrap.dedent(body)
    env = dict(os.environ, CIRCLE_QUANT_OUTPUT_CACHE_MB=value)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def test_the_limit_bounds_what_is_kept():
    done = run_with_cache_limit(
        "2",
        """
        outs = [ops.quantize_per_tensor(torch.randn(1024, 1024), 0.05, 128, 0, 255, torch.uint8) for _ in range(4)]
        del outs
        s = torch_circle.output_cache_stats()
        print(s.limit_bytes, s.cached_bytes)
        """,
    )
    assert done.returncode == 0, done.stderr
    limit, cached = map(int, done.stdout.split())
    assert limit == 2 * MIB and cached == 2 * MIB


def test_zero_turns_the_cache_off():
    done = run_with_cache_limit(
        "0",
        """
        for _ in range(3):
            ops.quantize_per_tensor(torch.randn(1024, 1024), 0.05, 128, 0, 255, torch.uint8)
        s = torch_circle.output_cache_stats()
        print(s.limit_bytes, s.cached_bytes, s.reused, s.allocated)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0", "0", "0"]


@pytest.mark.parametrize("value", ["lots", "-1", "1.5"])
def test_a_bad_limit_is_named(value):
    done = run_with_cache_limit(
        value,
        """
        try:
            ops.quantize_per_tensor(torch.randn(1024, 1024), 0.05, 128, 0, 255, torch.uint8)
        except ValueError as e:
            print("ValueError:", e)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "ValueError:" in done.stdout and "CIRCLE_QUANT_OUTPUT_CACHE_MB" in done.stdout, done.stdout
