"""The command line as a user meets it: one-line errors and exit codes, the results folder's
lock and writability, write failures mid-sweep, the inline executor's limits, plugins in Ray
workers, and Ray's own output kept out of the terminal."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

from actbench.results.read import iter_records
from actbench.results.store import LOCK

CLI = "from actbench.cli import main; main()"


def cli(*args: str, cwd: Path | None = None, prelude: str = "", **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + CLI, *args], capture_output=True, text=True, timeout=300, cwd=cwd, **kw)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) >= 1 and lines[-1].startswith("actbench: error: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    return lines[-1]


def probe(tmp_path: Path, body: str, name: str = "p") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\nkind: probe\n{body}")
    return p


def test_bad_input_is_one_line_exit_2_and_internal_errors_exit_1_with_traceback_file(tmp_path):
    bad = tmp_path / "n.yaml"
    bad.write_bytes(b"name: x\nkind: kernel\ndescription: \xff\n")
    r = cli("run", str(bad))
    assert r.returncode == 2 and one_error_line(r) == f"actbench: error: {bad}:3: not UTF-8 text (byte 0xff); save the file as UTF-8"
    r = cli("run", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "missing.yaml: cannot read suite" in one_error_line(r)
    r = cli("run", "--bogus")
    assert r.returncode == 2 and "No such option: --bogus" in one_error_line(r)
    r = cli("run", str(probe(tmp_path, "matrix:\n  tag: [a]\n")), "--set", "tag=[unclosed", "--dry-run")
    assert r.returncode == 2 and one_error_line(r).startswith("actbench: error: --set tag: invalid YAML:")
    # a bug (here: an exception planted in the table the command prints) is one line and a file
    r = cli("list", prelude="import actbench.report.tables as t; t.activation_table = lambda: 1 / 0; ")
    line = one_error_line(r)
    assert r.returncode == 1 and "internal error: ZeroDivisionError: division by zero (traceback in " in line
    tb = Path(line.rsplit("(traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in tb.read_text() and "ZeroDivisionError" in tb.read_text()
    tb.unlink()


def test_run_help_says_what_inline_is_for():
    r = cli("run", "--help")
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert "inline (in this process, one at a time, for debugging: a trial that kills its process ends the sweep)" in text
    assert "--max-trials" in text and "--verbose" in text


def test_unwritable_results_folder_fails_before_anything_runs(tmp_path):
    suite = probe(tmp_path, "matrix:\n  tag: [a]\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    r = cli("run", str(suite), "--out", str(blocker / "out"))  # a folder below a file: refused even for root
    assert r.returncode == 2
    assert one_error_line(r) == f"actbench: error: {blocker / 'out'}: results folder is not writable: Not a directory"
    assert "Ray" not in r.stdout  # refused before starting Ray
    r = cli("run", str(suite), "--out", str(tmp_path / "ok"), "--checkpoints", str(blocker / "ckpt"))
    assert r.returncode == 2 and one_error_line(r) == f"actbench: error: --checkpoints {blocker / 'ckpt'}: not writable: Not a directory"
    planted = tmp_path / "planted"  # a lock file planted as a link to a file of the user's
    planted.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (planted / LOCK).symlink_to(victim)
    r = cli("run", str(suite), "--out", str(planted))
    assert r.returncode == 2 and "results folder is not writable: a symbolic link is in the way" in one_error_line(r)
    assert victim.read_text() == "precious"


def test_write_failure_mid_sweep_keeps_whole_lines_and_resumes(tmp_path):
    """A real partial write: a file-size limit (RLIMIT_FSIZE binds root too) lets the next record
    only half in; the append is rolled back, the sweep stops in one line, and a rerun finishes."""
    from actbench import api
    from actbench.runner.local import InlineExecutor
    from actbench.suite import load_suite

    out = tmp_path / "out"
    api.run(load_suite(probe(tmp_path, "matrix:\n  tag: [a]\n")), out=out, executor=InlineExecutor())
    before = (out / "trials.jsonl").read_bytes()
    limit = len(before) * 3 // 2
    suite = probe(tmp_path, "matrix:\n  tag: [a, b, c]\n")
    r = cli("run", str(suite), "--executor", "inline", "--out", str(out),
            prelude=f"import resource; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); ")
    assert r.returncode == 2
    line = one_error_line(r)
    assert f"cannot write results to {out / 'trials.jsonl'}: File too large; stopped: 0 record(s) of this run are kept" in line
    assert (out / "trials.jsonl").read_bytes() == before  # the half-written line was cut off again
    r = cli("run", str(suite), "--executor", "inline", "--out", str(out))
    assert r.returncode == 0, r.stderr
    recs = list(iter_records(out / "trials.jsonl"))
    assert sorted(r.config["tag"] for r in recs) == ["a", "b", "c"] and all(r.status == "ok" for r in recs)


def test_inline_trial_that_exits_its_process_ends_the_sweep_keeping_what_finished(tmp_path):
    """Documented (README, --help): inline is the debugging executor; the Ray executor isolates
    each trial in a worker (tests/runner: an exiting trial is recorded as failed)."""
    out = tmp_path / "out"
    suite = probe(tmp_path, "zip:\n  tag: [a, b, c]\n  fail: [none, exit, none]\n")
    r = cli("run", str(suite), "--executor", "inline", "--out", str(out))
    assert r.returncode == 1  # os._exit(1) of the trial is the driver's exit
    recs = list(iter_records(out / "trials.jsonl"))
    assert [r.config["tag"] for r in recs] == ["a"] and (out / "trials.jsonl").read_bytes().endswith(b"\n")


def _inline_run_until(suite: Path, out: Path, ready: Callable[[], bool]) -> subprocess.Popen:
    """`actbench run SUITE --executor inline` in the background, returned once `ready()` (or 120 s)."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, "run", str(suite), "--executor", "inline", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not ready():
        time.sleep(0.05)
    return proc


def test_second_run_into_the_same_folder_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    suite = probe(tmp_path, "matrix:\n  tag: [a, b]\ndefaults:\n  sleep_s: 60\n")
    first = _inline_run_until(suite, out, lambda: (out / LOCK).exists() and bool((out / LOCK).read_text()))
    try:
        assert json.loads((out / LOCK).read_text())["pid"] == first.pid
        r = cli("run", str(suite), "--executor", "inline", "--out", str(out))
        assert r.returncode == 2
        assert f"{out}: results folder is in use by another actbench run (pid {first.pid} on host " in one_error_line(r)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130 and not list(iter_records(out / "trials.jsonl"))
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / LOCK).write_text(json.dumps({"pid": dead.pid, "host": "gone", "started": "yesterday"}))
    r = cli("run", str(probe(tmp_path, "matrix:\n  tag: [a, b]\n")), "--executor", "inline", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"took over the lock of pid {dead.pid} on host gone, started yesterday, which ended without releasing it" in r.stderr
    assert (out / LOCK).read_text() == ""  # released


def test_plugin_activation_runs_in_ray_workers_and_ray_output_goes_to_the_log(tmp_path):
    """The README's my_acts.py through the default Ray executor, plus a plugin activation that
    kills its worker: that trial's lost attempts are each recorded and retried, and Ray's
    messages about the dead worker land in <out>/run.log, not in the terminal."""
    (tmp_path / "my_acts.py").write_text(
        'import torch\nfrom actbench.activations import register\n\n\n@register("cube", family="poly", paper="none")\n'
        'class Cube(torch.nn.Module):\n    """f(x) = x^3"""\n\n    def forward(self, x):\n        return x ** 3\n')
    (tmp_path / "crash_acts.py").write_text(
        'import os\nimport torch\nfrom actbench.activations import register\n\n\n@register("boom", family="test")\n'
        'class Boom(torch.nn.Module):\n    def forward(self, x):\n        os._exit(3)\n')
    (tmp_path / "k.yaml").write_text("name: k\nkind: kernel\ndefaults: {impls: [eager], width: 64, rep_ms: 2, warmup_ms: 1, "
                                     "size: 4096, dtype: float32, device: cpu}\nmatrix:\n  activation: [cube, boom]\n"
                                     "resources: {cpus: 1, retries: 1}\n")
    r = cli("--plugin", "my_acts", "--plugin", "crash_acts", "run", "k.yaml", "--out", "out", cwd=tmp_path)
    assert r.returncode == 1, r.stderr + r.stdout
    assert "embedded Ray on this machine (private token)" in r.stdout and "1 node(s)" in r.stdout
    recs = list(iter_records(tmp_path / "out" / "trials.jsonl"))
    cube = [x for x in recs if x.config["activation"] == "cube"]
    assert [x.status for x in cube] == ["ok"] and cube[0].metrics["eager.forward.ms_p50"] > 0
    assert cube[0].env["torch_threads"] == 1 and "deterministic_algorithms" in cube[0].env
    boom = [(x.attempt, x.status, x.error["type"]) for x in recs if x.config["activation"] == "boom"]
    assert boom == [(1, "failed", "WorkerCrashedError"), (2, "failed", "WorkerCrashedError")]
    assert "(raylet)" not in r.stdout + r.stderr and "\x1b[33m" not in r.stdout
    assert "A worker died or was killed" in (tmp_path / "out" / "run.log").read_text()


def test_address_with_nothing_listening_fails_at_once(tmp_path):
    r = cli("run", str(probe(tmp_path, "matrix:\n  tag: [a]\n")), "--address", "127.0.0.1:1", "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert one_error_line(r) == ("actbench: error: --address 127.0.0.1:1: nothing accepts connections at 127.0.0.1:1 "
                                 "(Connection refused); is the cluster up and the port right?")


def test_ctrl_c_before_any_trial_finished_says_so_and_points_at_no_missing_file(tmp_path):
    out = tmp_path / "out"
    suite = probe(tmp_path, "matrix:\n  tag: [a]\ndefaults:\n  fail: hang\n  fail_marker: started\n")
    proc = _inline_run_until(suite, out, lambda: bool(list((out / "checkpoints").glob("*/started"))))  # the trial runs
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted: 0 finished trial(s) kept, 1 running trial(s) cancelled" in stderr
    text = " ".join(stdout.split())
    assert f"interrupted before any trial finished: nothing recorded; no results file: {out / 'trials.jsonl'} does not exist" in text
    assert not (out / "trials.jsonl").exists()


def test_dry_run_marks_recorded_trials_selects_with_k_and_summarises_large_suites(tmp_path):
    out = tmp_path / "out"
    suite = probe(tmp_path, "matrix:\n  tag: [a, b, c]\n  x: [1, 2]\n")
    r = cli("run", str(suite), "--executor", "inline", "--out", str(out), "-k", "tag=a or (tag=b and x=2)")
    assert r.returncode == 0, r.stderr
    assert sorted((x.config["tag"], x.config["x"]) for x in iter_records(out / "trials.jsonl")) == [("a", 1), ("a", 2), ("b", 2)]
    assert "3 ok, 3 not selected by -k" in " ".join(r.stdout.split())
    r = cli("run", str(suite), "--out", str(out), "--dry-run", "-k", "not c")
    rows = {tuple(line.split("│")[3:6]) for line in r.stdout.splitlines() if line.count("│") == 6}
    assert {(t.strip(), x.strip(), rec.strip()) for t, x, rec in rows} == {("a", "1.0", "ok: skipped"), ("a", "2.0", "ok: skipped"),
                                                                          ("b", "1.0", ""), ("b", "2.0", "ok: skipped")}, r.stdout
    text = " ".join(r.stdout.split())
    assert "p: 4 probe trial(s) of 6 (-k 'not c');" in text and "3 already recorded ok (skipped by run unless --rerun), 1 to run" in text
    r = cli("run", str(suite), "--out", str(out), "--dry-run", "--rerun", "-k", "tag=a")
    assert "0 already recorded ok" in r.stdout and "ok: skipped" not in r.stdout
    big = probe(tmp_path, "matrix:\n  tag: [" + ", ".join(f"t{i}" for i in range(30)) + "]\n  x: [1, 2, 3]\n", "big")
    r = cli("run", str(big), "--dry-run")
    assert r.returncode == 0 and "trials per value of each swept field" in r.stdout and "first 15 of 90 trials (--all lists every one)" in r.stdout
    assert "t0 (3), t1 (3)" in r.stdout and "1.0 (30), 2.0 (30), 3.0 (30)" in r.stdout and len(re.findall(r"│ [0-9a-f]{12} │", r.stdout)) == 15
    r = cli("run", str(big), "--dry-run", "--all")
    assert "trials per value" not in r.stdout and len(re.findall(r"│ [0-9a-f]{12} │", r.stdout)) == 90
    r = cli("run", str(big), "--dry-run", "-k", "tag=t1 and")
    assert r.returncode == 2 and one_error_line(r).startswith("actbench: error: -k 'tag=t1 and': unexpected end of the expression")


HEAVY = ("torch", "triton", "ray", "pandas", "matplotlib", "scipy")


@pytest.mark.parametrize(("args", "uses"), [(("--help",), ()), (("list",), ()), (("lm", "plan", "suites/llm_tiny.yaml"), ("pandas", "scipy")),
                                            (("info", "xielu"), ("torch",))])  # info: torch tells whether CUDA (triton's) is there
def test_commands_that_run_no_trials_import_only_what_they_use(args, uses):
    probe_imports = "import atexit, sys\natexit.register(lambda: print('IMPORTED', *sorted(m for m in HEAVY if m in sys.modules)))\n"
    r = cli(*args, prelude=f"HEAVY = {HEAVY!r}\n" + probe_imports, cwd=Path(__file__).parents[1])
    assert r.returncode == 0, r.stderr
    imported = r.stdout.strip().splitlines()[-1].split()[1:]
    assert set(imported) <= set(uses), imported
