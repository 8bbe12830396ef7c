"""The runners with real Ray and real failures: statuses, exclusivity, retries, kill -9, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray

from actbench import api
from actbench.results.frames import load
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.runner.ray import RayExecutor
from actbench.suite import load_suite


def probe_suite(tmp_path: Path, body: str, name: str = "p") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nkind: probe\n{body}")
    return p


FAILURES = """\
zip:
  tag: [a, b, c, d, e, f]
  fail: [none, raise, nan, hang, oom, none]
resources:
  cpus: 1
  timeout_s: 4
  retries: 0
"""
EXPECTED = {"a": "ok", "b": "failed", "c": "diverged", "d": "timeout", "e": "oom", "f": "ok"}


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 4 CPUs (more than the 2 cores CI has: its probe trials mostly sleep) and 2 fake
    GPUs, shared by the tests that ask for it, which come before those that start and stop Ray of their own."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def statuses(result) -> dict[str, str]:
    return {r.config["tag"]: r.status for r in result.records}


def test_injected_failures_inline(tmp_path):
    suite = load_suite(probe_suite(tmp_path, FAILURES))
    store = ResultStore(tmp_path / "out")
    result = api.run(suite, out=store.root, executor=InlineExecutor())
    assert statuses(result) == EXPECTED
    assert result.exit_code == 1
    failed = next(r for r in result.records if r.status == "failed")
    assert failed.error["type"] == "ValueError" and "injected failure" in failed.error["message"]
    tb = (store.root / failed.error["traceback_file"]).read_text()
    assert "Traceback" in tb and "injected failure" in tb


def test_injected_failures_ray_and_worker_death_retry(tmp_path, local_ray):
    suite = load_suite(probe_suite(tmp_path, FAILURES))
    result = api.run(suite, out=tmp_path / "out", executor=RayExecutor())
    assert statuses(result) == EXPECTED
    # a worker that dies is retried by the driver, and every attempt is recorded: the first
    # attempt exits (its marker is created in the trial's own folder), the retry succeeds
    body = "zip:\n  tag: [x, y]\n  fail: [exit, exit]\n  fail_marker: [died-once, died-once]\n"
    retry = load_suite(probe_suite(tmp_path, body + "resources:\n  retries: 1\n", "r"))
    result = api.run(retry, out=tmp_path / "r", executor=RayExecutor())
    assert statuses(result) == {"x": "ok", "y": "ok"} and result.exit_code == 0
    by_tag = {tag: [(r.attempt, r.status) for r in result.records if r.config["tag"] == tag] for tag in "xy"}
    assert by_tag == {"x": [(1, "failed"), (2, "ok")], "y": [(1, "failed"), (2, "ok")]}
    for t in retry.trials:
        assert (tmp_path / "r" / "checkpoints" / t.id / "died-once").exists()
    assert [r.attempt for r in ResultStore(tmp_path / "r").records()].count(2) == 2
    no_retry = load_suite(probe_suite(tmp_path, "matrix:\n  fail: [exit]\nresources:\n  retries: 2\n", "n"))
    result = api.run(no_retry, out=tmp_path / "n", executor=RayExecutor())
    assert [(r.attempt, r.status) for r in result.records] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert "Worker" in result.records[0].error["type"] or "Crash" in result.records[0].error["type"]


def test_fake_gpus_are_placed_exclusively(tmp_path, local_ray):
    body = "matrix:\n  tag: [a, b, c, d, e]\ndefaults:\n  sleep_s: 1.0\nresources:\n  gpus: 1\n  cpus: 0.5\n"
    suite = load_suite(probe_suite(tmp_path, body))
    result = api.run(suite, out=tmp_path / "out", executor=RayExecutor())
    assert all(r.status == "ok" for r in result.records)
    spans = [(r.metrics["t_start"], r.metrics["t_end"], r.metrics["gpu_ids"]) for r in result.records]
    for s, e, gpus in spans:
        assert gpus in ("0", "1"), gpus
    for s1, _, _ in spans:  # at every trial start: who is running, and on which GPU
        active = [g for s, e, g in spans if s <= s1 < e]
        assert 1 <= len(active) <= 2
        assert len(set(active)) == len(active)  # never the same GPU twice at once


def test_fractional_gpus_pack_trials_and_each_record_names_who_shared_its_gpu(tmp_path, local_ray):
    """Four trials at gpus 0.25 on a machine Ray is told has GPUs run at once, and each record
    names the trials that ran beside it on its GPU (exactly those with its GPU id)."""
    def warm_worker() -> int:
        import actbench.benchmarks.probe  # noqa: F401
        import actbench.runner.trial  # noqa: F401 - and torch with it

        time.sleep(1.0)  # held, so that the four calls run in four processes
        return os.getpid()

    warm = ray.remote(num_cpus=0.5, num_gpus=0.25)(warm_worker)  # four GPU worker processes that imported what a trial does
    assert len(set(ray.get([warm.remote() for _ in range(4)]))) == 4
    # each holds its GPU share 4 s: on 2 loaded cores the fourth start came up to 0.5 s after the first end at 2 s
    body = "matrix:\n  tag: [a, b, c, d]\ndefaults:\n  sleep_s: 4.0\nresources:\n  gpus: 0.25\n  cpus: 0.5\n"
    result = api.run(load_suite(probe_suite(tmp_path, body, "pack")), out=tmp_path / "out", executor=RayExecutor())
    recs = result.records
    assert len(recs) == 4 and all(r.ok for r in recs)
    assert max(r.metrics["t_start"] for r in recs) < min(r.metrics["t_end"] for r in recs)  # all four ran at once
    for r in recs:
        beside = sorted(o.trial_id for o in recs if o is not r and o.env["ray_gpu_ids"] == r.env["ray_gpu_ids"])
        assert r.env["shared_with"] == beside and r.env["shared_gpu"] == len(beside) and r.env["gpu_share"] == 0.25
    assert sum(r.env["shared_gpu"] for r in recs) >= 4  # four trials on two GPUs: at least two share one


TINY_LM = """\
name: packed
kind: lm
defaults: {impl: eager, d_model: 16, n_layers: 1, n_heads: 2, seq_len: 16, batch_size: 2, tokens: 64, eval_every: 100, eval_tokens: 32,
           final_eval: slice, churn_tokens: 0, data: {val_tokens: 256}}
matrix:
  activation: [relu2, xielu]
seeds: 2
resources: {gpus: auto, cpus: 0.5}
"""


@pytest.mark.slow  # four real lm trials in Ray workers (about 10-25 s on 2 loaded cores): the scheduling of auto's share is Ray's
def test_gpus_auto_packs_lm_trials_by_their_memory_and_records_who_shared(tmp_path, local_ray):
    """`resources.gpus: auto` on a machine Ray is told has GPUs: tiny lm trials get the smallest
    share (an eighth: eight fit in the GPU assumed), run together, and each record names the
    trials that ran beside it on its GPU."""
    def warm_worker() -> int:
        import actbench.lm.train  # noqa: F401
        import actbench.runner.trial  # noqa: F401

        time.sleep(1.0)  # held, so that the four calls run in four processes
        return os.getpid()

    warm = ray.remote(num_cpus=0.5, num_gpus=0.125)(warm_worker)
    assert len(set(ray.get([warm.remote() for _ in range(4)]))) == 4
    (tmp_path / "packed.yaml").write_text(TINY_LM)
    suite = load_suite(tmp_path / "packed.yaml")
    assert suite.spec.resources.gpus == 0.125 and {t.resources.gpus for t in suite.trials} == {0.125}
    recs = api.run(suite, out=tmp_path / "out", executor=RayExecutor()).records
    assert len(recs) == 4 and all(r.ok for r in recs), [(r.status, r.error) for r in recs]
    assert {r.env["gpu_share"] for r in recs} == {0.125}
    for r in recs:
        beside = set(r.env["shared_with"])
        assert beside <= {o.trial_id for o in recs if o is not r and o.env["ray_gpu_ids"] == r.env["ray_gpu_ids"]}
        assert all(r.trial_id in o.env["shared_with"] for o in recs if o.trial_id in beside)  # sharing is mutual
        assert r.env["shared_gpu"] == len(beside)
    assert sum(r.env["shared_gpu"] for r in recs) >= 2  # four at once on two GPUs: at least two shared one


def test_each_trial_gets_the_threads_its_cpus_grant_also_on_a_reused_worker(tmp_path, local_ray):
    import torch

    threads = {}
    for cpus in (2, 1, 2):  # Ray keeps idle workers: a 1-CPU trial may land on one a 2-CPU trial used
        suite = load_suite(probe_suite(tmp_path, f"matrix:\n  tag: [a, b]\nresources:\n  cpus: {cpus}\n"))
        result = api.run(suite, out=tmp_path / f"out{cpus}", executor=RayExecutor(), rerun=True)
        threads.setdefault(cpus, set()).update(r.env["torch_threads"] for r in result.records)
    assert threads == {1: {1}, 2: {2}}
    before = torch.get_num_threads()
    suite = load_suite(probe_suite(tmp_path, "matrix:\n  tag: [a]\nresources:\n  cpus: 3.5\n", "i"))
    (rec,) = api.run(suite, out=tmp_path / "inline", executor=InlineExecutor()).records
    assert rec.env["torch_threads"] == 3 and torch.get_num_threads() == before


def test_write_failure_stops_the_sweep_rolls_back_and_cancels_running_trials(tmp_path, local_ray, monkeypatch):
    """The disk fills up halfway through writing a record (an OSError injected at the store's
    own os.write of trials.jsonl, after half the line went to disk)."""
    import errno

    from actbench.errors import UserError

    real_write = os.write

    def disk_full_halfway(fd: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("trials.jsonl"):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    store = ResultStore(tmp_path / "out")
    store.append({"trial_id": "earlier", "attempt": 1, "status": "ok", "config": {}})
    before = store.path.read_bytes()
    monkeypatch.setattr(os, "write", disk_full_halfway)
    suite = load_suite(probe_suite(tmp_path, "zip:\n  tag: [fast, slow]\n  sleep_s: [0, 120]\n"))
    t0 = time.time()
    with pytest.raises(UserError, match=r"cannot write results to .*trials.jsonl: No space left on device; stopped: 0 record\(s\) "
                                        r"of this run are kept, .* runs again next time; 1 running trial\(s\) cancelled$"):
        api.run(suite, out=store.root, executor=RayExecutor())
    monkeypatch.undo()
    assert store.path.read_bytes() == before  # the half-written line is gone
    assert time.time() - t0 < 100  # the slow trial was cancelled, not waited for


def test_torn_line_is_tolerated_and_next_append_is_whole(tmp_path):
    store = ResultStore(tmp_path)
    store.append({"trial_id": "a", "attempt": 1, "status": "ok", "config": {}})
    with open(store.path, "ab") as f:
        f.write(b'{"trial_id": "b", "att')  # crash mid-write
    assert [r.trial_id for r in store.records()] == ["a"]
    store.append({"trial_id": "c", "attempt": 1, "status": "ok", "config": {}})
    with pytest.warns(UserWarning, match="torn record"):
        assert [r.trial_id for r in store.records()] == ["a", "c"]


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-c", "from actbench.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _start_sweep_and_wait_for_records(tmp_path: Path, trials: int, sleep_s: float, records: int, **popen) -> tuple[subprocess.Popen, Path, Path]:
    """Start `actbench run` on a probe suite in a subprocess; return once `records` are stored."""
    if ray.is_initialized():
        ray.shutdown()
    tags = ", ".join(f"t{i}" for i in range(trials))
    suite_path = probe_suite(tmp_path, f"matrix:\n  tag: [{tags}]\ndefaults:\n  sleep_s: {sleep_s}\nresources:\n  cpus: 1\n")
    out = tmp_path / "out"
    proc = _run_cli(["run", str(suite_path), "--out", str(out)], **popen)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "trials.jsonl").exists() and len((out / "trials.jsonl").read_text().splitlines()) >= records:
            return proc, suite_path, out
        time.sleep(0.05)
    pytest.fail("driver recorded nothing: " + (proc.stderr.read() if proc.poll() is not None else ""))


def test_sigkill_driver_mid_sweep_then_resume_records_each_trial_once(tmp_path):
    proc, suite_path, out = _start_sweep_and_wait_for_records(tmp_path, trials=8, sleep_s=0.5, records=2, start_new_session=True)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first = list(iter_records(out / "trials.jsonl"))
        assert 2 <= len(first) < 8
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the embedded Ray of the killed driver
        except ProcessLookupError:
            pass
    again = _run_cli(["run", str(suite_path), "--out", str(out), "--executor", "inline"])  # resuming is the driver's, not Ray's
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert f"resume: {len(first)} trial(s) already recorded ok" in err.replace("\n", " ")
    recs = list(iter_records(out / "trials.jsonl"))
    ids = [r.trial_id for r in recs if r.status == "ok"]
    assert len(ids) == len(set(ids)) == 8
    assert len(load(out)) == 8


@pytest.fixture
def one_cpu_node():
    """A real Ray cluster of a head without CPUs and one node of 1 CPU: (cluster, that node)."""
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        node = cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster, node
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_node_removed_while_trial_runs_is_retried_elsewhere(tmp_path, one_cpu_node):
    cluster, doomed = one_cpu_node
    doomed_id = doomed.node_id
    suite = load_suite(probe_suite(tmp_path, "matrix:\n  tag: [survivor]\ndefaults:\n  sleep_s: 4\nresources:\n  retries: 2\n"))

    results = []
    sweep = threading.Thread(target=lambda: results.append(api.run(suite, out=tmp_path / "out", executor=RayExecutor())), daemon=True)
    sweep.start()
    deadline = time.time() + 60  # wait until the trial runs on the doomed node, then replace the node
    while time.time() < deadline and ray.available_resources().get("CPU", 0) > 0:
        time.sleep(0.1)
    time.sleep(1.0)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    cluster.remove_node(doomed)
    sweep.join(timeout=240)
    lost, rec = results[0].records  # the attempt on the removed node is recorded, then its retry
    assert (lost.attempt, lost.status, rec.attempt, rec.status) == (1, "failed", 2, "ok"), results[0].records
    assert rec.env["ray_node_id"] != doomed_id
    assert rec.metrics["t_start"] > time.time() - 60


def test_a_sweep_whose_nodes_are_lost_stops_with_one_line_instead_of_hanging(tmp_path, monkeypatch, one_cpu_node):
    """The only node with CPUs goes: the running trial and the next cannot be placed anywhere;
    after PLACEMENT_WAIT_S the sweep stops with a UserError saying so (no hang on a task Ray
    keeps pending)."""
    import actbench.runner
    from actbench.errors import UserError

    monkeypatch.setattr(actbench.runner.driver, "PLACEMENT_WAIT_S", 2.0)
    cluster, doomed = one_cpu_node
    suite = load_suite(probe_suite(tmp_path, "matrix:\n  tag: [a, b]\ndefaults:\n  sleep_s: 4\nresources:\n  retries: 2\n"))
    outcome: list = []

    def sweep() -> None:
        try:
            outcome.append(api.run(suite, out=tmp_path / "out", executor=RayExecutor()))
        except UserError as e:
            outcome.append(e)

    thread = threading.Thread(target=sweep, daemon=True)  # a regression to a hang fails the test, not pytest
    thread.start()
    deadline = time.time() + 60  # once the first trial runs on the only node with CPUs, remove it
    while time.time() < deadline and ray.available_resources().get("CPU", 0) > 0:
        time.sleep(0.1)
    cluster.remove_node(doomed)
    thread.join(timeout=90)
    assert not thread.is_alive() and isinstance(outcome[0], UserError), outcome
    assert "can no longer place a trial asking for 1 CPU(s)" in str(outcome[0]) and "2 trial(s) without a record" in str(outcome[0])


def test_ctrl_c_keeps_finished_trials_cancels_running_ones_and_exits_130(tmp_path):
    proc, suite_path, out = _start_sweep_and_wait_for_records(tmp_path, trials=6, sleep_s=0.8, records=1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "running trial(s) cancelled" in err
    kept = list(iter_records(out / "trials.jsonl"))
    assert 1 <= len(kept) < 6 and all(r.status == "ok" for r in kept)
    again = _run_cli(["run", str(suite_path), "--out", str(out), "--executor", "inline"])  # resuming is the driver's, not Ray's
    again.communicate(timeout=300)
    ids = [r.trial_id for r in iter_records(out / "trials.jsonl")]
    assert again.returncode == 0 and len(ids) == len(set(ids)) == 6


def test_resume_ignores_lines_that_are_not_trial_records(tmp_path):
    store = ResultStore(tmp_path / "out")
    store.root.mkdir()
    store.path.write_text('[1, 2, 3]\n42\n{"status": "ok"}\n{"trial_id": 7, "status": "ok"}\n')
    suite = load_suite(probe_suite(tmp_path, "matrix:\n  tag: [a, b]\n"))
    result = api.run(suite, out=store.root, executor=InlineExecutor())
    assert [r.attempt for r in result.records] == [1, 1] and result.exit_code == 0
    assert api.run(suite, out=store.root, executor=InlineExecutor()).skipped == 2
