"""The kernel and memory kinds run for real on CPU (Triton through the interpreter)."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from actbench.benchmarks.kernel import KernelConfig
from actbench.benchmarks.kernel import run as run_kernel
from actbench.benchmarks.memory import MemoryConfig
from actbench.benchmarks.memory import run as run_memory
from actbench.benchmarks.timing import MIN_REPEATS, NOISY_SPREAD, Timing, time_ms
from actbench.core.trial import TrialContext
from actbench.kernels import xielu as kx
from actbench.lm.shards import read_shard


def test_kernel_trial_rows_bytes_and_copy_percentages():
    cfg = KernelConfig(activation="swiglu", impls=["eager", "compile"], dtype="float32", size=4096, width=64, rep_ms=5, warmup_ms=1, device="cpu")
    out = run_kernel(cfg, TrialContext("k"))
    rows = {(r["impl"], r["mode"]): r for r in out.rows}
    assert set(rows) == {("copy", "copy")} | {(i, m) for i in ("eager", "compile") for m in ("forward", "backward", "full")}
    fwd = rows[("eager", "forward")]
    assert fwd["gated"] and fwd["input_elems"] == 8192 and fwd["output_elems"] == 4096
    assert fwd["bytes"] == (8192 + 4096) * 4 and rows[("eager", "full")]["bytes"] == (8192 + 4096 + 2 * 8192 + 4096) * 4
    for r in out.rows:
        assert r["ms_p20"] <= r["ms_p50"] <= r["ms_p80"]
        assert r["gbps"] == pytest.approx(r["bytes"] / (r["ms_p50"] * 1e-3) / 1e9)
        assert r["repeats"] >= MIN_REPEATS and r["calls_per_repeat"] >= 1 and r["threads"] == torch.get_num_threads()
        assert r["noisy"] == ((r["ms_p80"] - r["ms_p20"]) / r["ms_p50"] > NOISY_SPREAD)
    assert "triton" not in {r["impl"] for r in out.rows}
    assert out.metrics["threads"] == torch.get_num_threads()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_timings_are_graph_replays_of_every_mode_and_impl():
    """On CUDA every call, the backward of a forward run before the timing included, is captured
    in a CUDA graph and its replays timed (device time, no host overhead)."""
    cfg = KernelConfig(activation="xielu", impls=["eager", "compile", "triton"], dtype="bfloat16", size=1 << 22, width=1024, rep_ms=20,
                       warmup_ms=5, device="cuda")
    out = run_kernel(cfg, TrialContext("k"))
    assert {(r["impl"], r["graphed"]) for r in out.rows} == {(i, True) for i in ("copy", "eager", "compile", "triton")}
    ms = {(r["impl"], r["mode"]): r["ms_p50"] for r in out.rows}
    assert 0 < ms[("triton", "forward")] < ms[("eager", "forward")]


def test_noisy_flag_against_known_spreads():
    """Ground truth: log-normal repeat times with sigma s have (p80 - p20) / p50 =
    2 sinh(0.8416 s), above the 0.2 bound from s = 0.118; a bimodal op is noisy; too few repeats
    are noisy whatever their spread."""
    rng = np.random.default_rng(0)
    for sigma, noisy in ((0.02, False), (0.08, False), (0.2, True), (0.5, True)):
        t = Timing.of(np.exp(rng.normal(0.0, sigma, 400)), 1)
        assert t.spread == pytest.approx(2 * np.sinh(0.8416 * sigma), rel=0.25)
        assert t.noisy is noisy, sigma
    assert Timing.of(np.r_[np.ones(50), 3 * np.ones(50)], 1).noisy
    assert Timing.of(np.ones(MIN_REPEATS - 1), 4).noisy and not Timing.of(np.ones(MIN_REPEATS), 4).noisy


def test_cpu_timing_warms_up_then_repeats_blocks_with_pinned_threads():
    """CPU: warmup_ms of calls before the first measured one (it used to be ignored), then at
    least MIN_REPEATS blocks of calls_per_repeat calls each, all at the trial's thread count
    (restored afterwards)."""
    calls: list[tuple[float, int]] = []
    cfg = KernelConfig(activation="relu", size=64, width=64, warmup_ms=60, rep_ms=1, device="cpu")
    before = torch.get_num_threads()
    t = time_ms(lambda: calls.append((time.perf_counter(), torch.get_num_threads())), torch.device("cpu"), cfg, [], threads=1)
    assert torch.get_num_threads() == before
    measured = t.repeats * t.calls_per_repeat
    assert t.repeats >= MIN_REPEATS and t.calls_per_repeat > 1  # a no-op takes far below CPU_BLOCK_MS
    assert len(calls) > measured and {n for _, n in calls} == {1}
    assert calls[-measured][0] - calls[0][0] >= 0.9 * 60e-3


@pytest.mark.skipif(kx.unavailable_reason() is not None, reason="triton unavailable")
def test_kernel_trial_times_the_triton_impl():
    cfg = KernelConfig(activation="xielu", impls=["triton"], dtype="bfloat16", size=8192, width=1024, rep_ms=5, warmup_ms=1, modes=["forward"])
    out = run_kernel(cfg, TrialContext("t"))
    assert [r["impl"] for r in out.rows] == ["copy", "triton"]


@pytest.mark.skipif(kx.unavailable_reason() is not None, reason="triton unavailable")
def test_memory_trial_fused_xielu_saves_two_bytes_per_element_in_bf16():
    cfg = MemoryConfig(activation="xielu", impls=["eager", "triton"], dtype="bfloat16", size=1 << 16, width=1024)
    out = run_memory(cfg, TrialContext("m"))
    saved = {r["impl"]: r["saved_bytes_per_elem"] for r in out.rows}
    assert saved["triton"] == pytest.approx(2.0, abs=1e-3)  # x only (plus two fp32 scalars)
    assert saved["eager"] > 8  # fp32 intermediates of the eager formula
    assert all(r["peak_fwd_mb"] is None for r in out.rows)  # peak needs CUDA


def test_memory_trial_relu2_and_gated():
    out = run_memory(MemoryConfig(activation="relu2", impls=["eager"], dtype="float32", size=4096, width=64), TrialContext("r"))
    assert out.rows[0]["saved_bytes_per_elem"] == pytest.approx(4.0)  # relu(x) only: relu and square share it
    out = run_memory(MemoryConfig(activation="reglu", impls=["eager"], dtype="float32", size=4096, width=64), TrialContext("g"))
    assert out.rows[0]["gated"] and out.rows[0]["input_elems"] == 8192


def test_data_prepare_cli_writes_readable_shards(tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 5000)
    (tmp_path / "b.txt").write_text("lorem ipsum " * 5000)
    r = subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", "data", "prepare", "--text", str(tmp_path),
                        "--out", str(tmp_path / "shards"), "--tokenizer", "byte", "--prefix", "t", "--val-tokens", "20000",
                        "--shard-tokens", "30000"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "shards").glob("*.bin"))
    assert [f.name for f in files] == [f"t_train_00000{i}.bin" for i in (1, 2, 3, 4)] + ["t_val_000000.bin"]
    val = read_shard(tmp_path / "shards" / "t_val_000000.bin")
    assert len(val) == 20000 and bytes(np.asarray(val[:5], dtype=np.uint8)) == b"hello"
    assert sum(len(read_shard(f)) for f in files) == 120000
