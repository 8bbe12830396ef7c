"""Joining a Ray cluster started the README's way (`ray start --head`, which in Ray 2.60 turns on
token authentication once a token exists), and losing it mid-sweep."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actbench.results.read import iter_records


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pids_mentioning(text: str) -> list[int]:
    """Processes whose command line names `text` (the private temp folder of the cluster this test started)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != os.getpid():
            try:
                if text in (p / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_join_a_cluster_started_the_readme_way_then_lose_it(tmp_path):
    """Head: `ray start --head` on a machine with ~/.ray/auth_token; second node: the README's
    `RAY_AUTH_MODE=token RAY_AUTH_TOKEN=... ray start --address`; then actbench joins by
    HOST:PORT, says what it joined, and ends in one line, keeping what finished, when the head dies."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    token = secrets.token_hex(32)
    (home / ".ray" / "auth_token").write_text(token)  # a machine where Ray made a token before
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    temps = [tempfile.mkdtemp(prefix="abr", dir="/tmp") for _ in range(2)]  # short: Ray's socket paths live below them
    port = _free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    try:
        head = subprocess.run([ray_cli, "start", "--head", f"--port={port}", f"--temp-dir={temps[0]}", "--num-cpus=2",
                               "--include-dashboard=false"], env=env, capture_output=True, text=True, timeout=180)
        assert head.returncode == 0, head.stderr
        assert "Token authentication is enabled" in head.stdout + head.stderr
        node = subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", f"--temp-dir={temps[1]}", "--num-cpus=1"],
                              env={**env, "HOME": str(tmp_path), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                              capture_output=True, text=True, timeout=180)
        assert node.returncode == 0, node.stderr
        suite = tmp_path / "p.yaml"
        suite.write_text("name: p\nkind: probe\nzip:\n  tag: [a, b, c, d]\n  sleep_s: [0, 600, 600, 600]\nresources:\n  cpus: 1\n")
        out = tmp_path / "out"
        proc = subprocess.Popen([sys.executable, "-c", "from actbench.cli import main; main()", "run", str(suite),
                                 "--address", f"127.0.0.1:{port}", "--out", str(out)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if (out / "trials.jsonl").exists() and (out / "trials.jsonl").read_text().count("\n") >= 1:
                break
            time.sleep(0.05)
        _kill(_pids_mentioning(temps[0]))  # the head node dies
        stdout, stderr = proc.communicate(timeout=180)
        assert "joined the Ray cluster at " in stdout and f":{port}, ready in " in stdout and "2 node(s), 3 CPU(s), 0 GPU(s)" in stdout
        assert proc.returncode == 2, stderr + (out / "run.log").read_text()[-3000:]
        last = stderr.strip().splitlines()[-1]
        assert last.startswith("actbench: error: lost the connection to the Ray cluster: its GCS at ") and "Traceback" not in stderr
        kept = list(iter_records(out / "trials.jsonl"))
        assert ("a", "ok") in {(r.config["tag"], r.status) for r in kept}  # plus attempts lost with the head
        assert f"{len(kept)} record(s) of this run are kept" in last
        assert (out / "trials.jsonl").read_bytes().endswith(b"\n")
    finally:
        for temp in temps:
            _kill(_pids_mentioning(temp))
            shutil.rmtree(temp, ignore_errors=True)


def test_embedded_ray_refuses_callers_without_its_private_token(monkeypatch):
    """Ray 2.60 cannot bind the embedded cluster to loopback, so it runs with token
    authentication on a fresh token that only this run's processes hold: a caller without it,
    or with the machine's default token, is refused (here: the runtime-env agent's HTTP port).
    It is always a new cluster: never one that RAY_ADDRESS (or a stale `ray start`) names."""
    import urllib.error
    import urllib.request

    import ray

    from actbench.runner.ray import RayExecutor

    if ray.is_initialized():
        ray.shutdown()
    saved = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    ex = RayExecutor(num_cpus=1)
    try:
        token = os.environ["RAY_AUTH_TOKEN"]
        assert os.environ["RAY_AUTH_MODE"] == "token" and token != saved["RAY_AUTH_TOKEN"]
        default = Path.home() / ".ray" / "auth_token"
        assert not default.exists() or default.read_text().strip() != token
        node = ray.nodes()[0]
        url = f"http://{node['NodeManagerAddress']}:{node['RuntimeEnvAgentPort']}/get_or_create_runtime_env"
        codes = []
        for auth in (None, "Bearer not-the-token", f"Bearer {token}"):
            req = urllib.request.Request(url, data=b"", method="POST", headers={"Authorization": auth} if auth else {})
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    codes.append(r.status)
            except urllib.error.HTTPError as e:
                codes.append(e.code)
        assert codes == [401, 403, 200]
    finally:
        ex.shutdown()
    assert {k: os.environ.get(k) for k in saved} == saved  # the private token leaves with the cluster
