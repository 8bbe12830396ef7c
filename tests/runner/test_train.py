"""lm trials on several workers through Ray Train, on CPU with gloo: the same experiment as one
process, a killed worker retried from the trial's checkpoint, placement refused up front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from actbench import api
from actbench.errors import UserError
from actbench.results.store import ResultStore
from actbench.runner.ray import RayExecutor
from actbench.runner.trial import execute_trial
from actbench.suite import load_suite

STEPS, BATCH, ACCUM, SEQ = 40, 4, 2, 32
CONFIG = dict(activation="xielu", d_model=32, n_layers=1, n_heads=2, seq_len=SEQ, batch_size=BATCH, grad_accum=ACCUM,
              tokens=STEPS * BATCH * ACCUM * SEQ, ff_multiple=16, reference="relu2", reference_d_ff=192, lr=3e-3, eval_every=20,
              eval_tokens=2048, churn_tokens=256, checkpoint_every=10, final_eval="full", impl="eager")
WORDS = ["the", "river", "stone", "lamp", "héllo", "a", "to", "zebra", "quixotic", "banana"]
# Per-step training loss of 2 workers against 1 process with the same global batch. They differ
# only by the order of float32 sums (each rank averages its half of the batch, gloo averages the
# ranks' gradients), amplified by 40 Adam steps: 0.15% at most, measured. A wrong split is far
# outside: 1 process at half or double the global batch differs by 5-7% (measured on this model).
LOSS_RTOL = 0.01


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    """A small text corpus (bytes as tokens): a full-split evaluation of a few thousand targets."""
    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    (d / "words.txt").write_text("".join(" " + WORDS[i] for i in rng.integers(0, len(WORDS), 12_000)), encoding="utf-8")
    return str(d)


def config(corpus: str) -> dict:
    return {**CONFIG, "data": {"source": "text", "path": corpus}}


def suite_file(tmp_path: Path, name: str, workers: int, corpus: str) -> Path:
    defaults = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in config(corpus).items() if k != "activation")
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nkind: lm\ndefaults:\n{defaults}matrix:\n  activation: [{CONFIG['activation']}]\nseeds: 1\n"
                 f"resources:\n  workers: {workers}\n  cpus_per_worker: 1\n  timeout_s: 300\n  retries: 1\n")
    return p


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs: room for one trial of 2 workers."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def one_process(corpus) -> dict:
    """The same trial in one process, no Ray: the reference curve."""
    out = execute_trial("lm", {**config(corpus), "seed": 0}, "one", None, 300, 1)
    assert out["status"] == "ok", out
    return out


def _train_loss(series: dict) -> np.ndarray:
    return np.asarray(series["train"]["loss"], dtype=float)


def _kill_a_worker_after_first_checkpoint(ckpts: Path, killed: list[int]) -> None:
    """SIGKILL one Ray Train worker process once the trial has written its first checkpoint."""
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("*/ckpt.pt")):
        time.sleep(0.02)
    for pid in sorted(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()):
        try:
            cmd = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::RayTrainWorker"):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return


def test_two_gloo_workers_train_the_experiment_of_one_process_and_a_killed_worker_resumes(tmp_path, local_ray, one_process, corpus):
    suite = load_suite(suite_file(tmp_path, "two", 2, corpus))
    result = api.run(suite, out=tmp_path / "two", executor=RayExecutor())
    assert result.exit_code == 0, result.records
    (rec,) = result.records
    m = rec.metrics
    assert (m["workers"], m["nodes"], m["steps"], m["tokens"]) == (2, 1, STEPS, STEPS * BATCH * ACCUM * SEQ)
    assert [w["rank"] for w in rec.env["workers"]] == [0, 1] and rec.env["strategy"] == "ddp"
    two = ResultStore(tmp_path / "two").series(rec)
    np.testing.assert_allclose(_train_loss(two), _train_loss(one_process["series"]), rtol=LOSS_RTOL)
    assert m["val_loss"] == pytest.approx(one_process["metrics"]["val_loss"], rel=LOSS_RTOL)
    # the ranks' shares of the full evaluation, gathered in order: the same chunks of the same text
    assert (m["eval_scope"], m["val_tokens_scored"], m["val_bytes_scored"]) == \
        ("full", one_process["metrics"]["val_tokens_scored"], one_process["metrics"]["val_bytes_scored"])
    chunks, ref = two["eval_chunks"], one_process["series"]["eval_chunks"]
    assert chunks["bytes"] == ref["bytes"] and chunks["tokens"] == ref["tokens"] and len(chunks["nats"]) > 4
    np.testing.assert_allclose(chunks["nats"], ref["nats"], rtol=LOSS_RTOL)
    assert np.mean(np.asarray(two["val_argmax"]) == np.asarray(one_process["series"]["val_argmax"])) > 0.95

    # the same trial again; one worker is killed after the first checkpoint: the driver records
    # the lost attempt and runs the trial again, which resumes from that checkpoint
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(tmp_path / "kill" / "checkpoints", killed))
    killer.start()
    result = api.run(suite, out=tmp_path / "kill", executor=RayExecutor())
    killer.join()
    assert killed, "no Ray Train worker process found to kill"
    attempts = [(r.attempt, r.status) for r in result.records]
    assert attempts == [(1, "failed"), (2, "ok")], [(r.attempt, r.status, r.error) for r in result.records]
    assert "WorkersLost" in result.records[0].error["type"]
    resumed = result.records[1].metrics
    assert 10 <= resumed["resumed_from_step"] < STEPS
    again = ResultStore(tmp_path / "kill").series(result.records[1])
    np.testing.assert_allclose(_train_loss(again), _train_loss(two), rtol=LOSS_RTOL)
    assert not (tmp_path / "kill" / "checkpoints").exists()


def test_a_trial_no_node_can_place_is_refused_before_it_starts(tmp_path, local_ray, corpus):
    suite = load_suite(suite_file(tmp_path, "big", 4, corpus))
    with pytest.raises(UserError, match="4 worker"):
        api.run(suite, out=tmp_path / "big", executor=RayExecutor())
    assert not (tmp_path / "big" / "trials.jsonl").exists()


@pytest.mark.parametrize("resources, error", [
    ("workers: 2\n  gpus: 1", "gpus is for a trial of one process"),
    ("cpus_per_worker: 2", "cpus_per_worker needs workers"),
    ("workers: 2\n  gpus_per_worker: 0.5", "0 or 1"),
    ("workers: 2\n  gpus_per_worker: 2", "raise workers"),
    ("workers: 2\n  strategy: zero3", "strategy"),
])
def test_worker_resources_are_checked_when_the_suite_loads(tmp_path, resources, error):
    p = tmp_path / "s.yaml"
    p.write_text(f"name: s\nkind: lm\nmatrix:\n  activation: [relu2]\nresources:\n  {resources}\n")
    with pytest.raises(UserError, match=error):
        load_suite(p)


def test_workers_are_refused_for_kinds_that_run_in_one_process(tmp_path):
    p = tmp_path / "k.yaml"
    p.write_text("name: k\nkind: kernel\nmatrix:\n  activation: [relu2]\nresources:\n  workers: 2\n")
    with pytest.raises(UserError, match="runs each trial in one process"):
        load_suite(p)


def test_lm_plan_of_the_paper_suite_states_its_cost_at_the_papers_and_a_smaller_budget():
    root = Path(__file__).resolve().parents[2]
    plan = [sys.executable, "-m", "actbench", "lm", "plan", str(root / "suites" / "paper_1b.yaml")]
    full = subprocess.run(plan, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})
    small = subprocess.run([*plan, "--set", "tokens=10000000000"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "COLUMNS": "250"})
    assert full.returncode == 0 and small.returncode == 0, full.stderr + small.stderr
    assert "8 workers" in full.stdout and "GPU-h" in full.stdout
    assert full.stdout != small.stdout
