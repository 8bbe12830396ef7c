"""Training on CPU: loss goes down, bits per byte hit a known entropy, resume is exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from actbench.benchmarks import TrialContext
from actbench.lm.config import LMConfig
from actbench.lm.train import lr_at, train
from actbench.results import ResultStore, iter_records

TINY = dict(d_model=32, n_layers=1, n_heads=2, seq_len=32, batch_size=8, ff_multiple=16, eval_tokens=2048, churn_tokens=256)


def test_thirty_cpu_steps_lower_the_loss():
    cfg = LMConfig(activation="xielu", tokens=30 * 8 * 32, eval_every=10, **TINY)
    out = train(cfg, TrialContext(trial_id="t"))
    assert out.status == "ok"
    losses = [l for _, l in out.series["train_loss"]]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert out.metrics["val_loss"] < np.log(256) - 0.5
    assert len(out.series["val_argmax"]) == 256
    assert [row[1] for row in out.series["alphas"][:1]] == [0]  # layer index
    assert 0 < out.metrics["alpha_p_mean"] and out.metrics["alpha_n_mean"] > 0.5


def test_bits_per_byte_reach_the_entropy_of_a_uniform_16_symbol_source(tmp_path):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnop", dtype=np.uint8)
    for name, n in (("a_train.txt", 200_000), ("b_val.txt", 50_000)):
        (tmp_path / name).write_bytes(letters[rng.integers(0, 16, n)].tobytes())
    cfg = LMConfig(activation="relu2", data={"source": "text", "path": str(tmp_path), "val_fraction": 0.49},
                   tokens=150 * 8 * 32, eval_every=50, lr=1e-2, **TINY)
    out = train(cfg, TrialContext(trial_id="u"))
    bpb = out.metrics["val_bpb"]
    assert 3.97 < bpb < 4.15, bpb  # 4 bits per byte is the floor; a model cannot beat it


def test_wsd_and_cosine_schedules():
    cfg = LMConfig(activation="relu2", tokens=100 * 16 * 128, warmup_frac=0.1, decay_frac=0.2, min_lr_ratio=0.1, lr=1.0)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 9) == pytest.approx(1.0) and lr_at(cfg, 79) == pytest.approx(1.0)
    assert lr_at(cfg, 99) == pytest.approx(0.1)
    cos = cfg.model_copy(update={"schedule": "cosine"})
    assert lr_at(cos, 10) == pytest.approx(1.0) and lr_at(cos, 99) == pytest.approx(0.1, abs=0.01)


SUITE = """\
name: resume
kind: lm
defaults:
  impl: eager
  d_model: 32
  n_layers: 1
  n_heads: 2
  seq_len: 32
  batch_size: 8
  ff_multiple: 16
  tokens: 153600
  eval_every: 100
  eval_tokens: 2048
  checkpoint_every: 20
matrix:
  activation: [xielu]
resources:
  retries: 0
"""


def _cli(*args):
    return subprocess.Popen([sys.executable, "-c", "from actbench.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_trial_resumes_from_its_checkpoint_with_the_same_loss_curve(tmp_path):
    suite = tmp_path / "resume.yaml"
    suite.write_text(SUITE)
    full = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "full"))
    assert full.wait(timeout=600) == 0, full.stderr.read()

    crashed = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "crash"))
    ckpts = tmp_path / "crash" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpts.glob("*/ckpt.pt")):
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.wait()
    assert not (tmp_path / "crash" / "trials.jsonl").exists()  # it died before finishing

    resumed = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "crash"))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a = next(iter_records(tmp_path / "full" / "trials.jsonl"))
    b = next(iter_records(tmp_path / "crash" / "trials.jsonl"))
    assert a["trial_id"] == b["trial_id"]
    assert a["metrics"]["resumed_from_step"] is None
    assert 20 <= b["metrics"]["resumed_from_step"] < 600
    sa, sb = (ResultStore(tmp_path / d).series(r) for d, r in (("full", a), ("crash", b)))
    np.testing.assert_allclose(np.array(sa["train_loss"]), np.array(sb["train_loss"]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array(sa["val"]), np.array(sb["val"]), rtol=1e-5, atol=1e-6)
    assert a["metrics"]["val_bpb"] == pytest.approx(b["metrics"]["val_bpb"], rel=1e-5)
    assert not list(ckpts.glob("*/ckpt.pt"))  # removed once the trial finished


def test_non_finite_loss_stops_the_trial_as_diverged_with_the_step():
    cfg = LMConfig(activation="relu2", tokens=40 * 8 * 32, norm="none", lr=1e4, grad_clip=0, warmup_frac=0, **TINY)
    out = train(cfg, TrialContext(trial_id="d"))
    assert out.status == "diverged"
    assert out.note.startswith("non-finite loss at step ")
    assert out.metrics["steps"] < 40
