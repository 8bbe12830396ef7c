"""The library entry points: a GPU suite run on a machine without a GPU says, before anything
starts, what to run instead; an executor handed in is used as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actbench import api
from actbench.errors import UserError
from actbench.runner.local import InlineExecutor

ROOT = Path(__file__).resolve().parents[1]
GPU_SUITES = ["llm_small", "kernels", "memory", "xielu_targets", "ladder_gpu", "llm_fineweb", "paper_1b"]
needs_no_gpu = pytest.mark.skipif(torch.cuda.device_count() > 0, reason="this machine has a GPU")


@needs_no_gpu
@pytest.mark.parametrize("name", GPU_SUITES)
def test_a_gpu_suite_on_a_cpu_machine_says_what_to_run_instead(name, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the suites name data paths relative to the checkout
    with pytest.raises(UserError) as e:
        api.run(f"suites/{name}.yaml", out=tmp_path / "out", executor="inline")
    msg = str(e.value)
    assert msg.startswith(f"suites/{name}.yaml: resources.gpus") and "this machine has none" in msg and "\n" not in msg
    if name == "paper_1b":
        assert "8 Ray Train workers" in msg and "--address" in msg and "suites/llm_tiny.yaml" in msg
    else:
        assert "--set resources.gpus=0" in msg
    if name in ("llm_small", "llm_fineweb"):
        assert "`actbench run suites/llm_tiny.yaml` asks the same question" in msg and "CPU-hours" in msg and "--set compile=false" in msg
    if name == "ladder_gpu":
        assert "suites/ladder_tiny.yaml" in msg
    if name in ("kernels", "xielu_targets"):
        assert "suites/smoke.yaml" in msg and "--set device=cpu" in msg
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


@needs_no_gpu
def test_the_headline_command_on_a_cpu_machine_starts_nothing(tmp_path):
    r = subprocess.run([sys.executable, "-m", "actbench", "run", "suites/llm_small.yaml", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Ray" not in r.stdout + r.stderr
    assert "suites/llm_tiny.yaml" in r.stderr and not (tmp_path / "o").exists()


def test_an_executor_handed_in_is_used_as_it_is_and_kept_running(tmp_path):
    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\nkind: probe\nmatrix:\n  tag: [a, b]\n")
    ex = InlineExecutor()
    first = api.run(suite, out=tmp_path / "o", executor=ex)
    again = api.run(suite, out=tmp_path / "o", executor=ex, rerun=True)
    assert first.exit_code == again.exit_code == 0 and len(first.records) == len(again.records) == 2


def test_a_run_reads_its_records_once_and_warns_once_of_a_bad_line(tmp_path):
    import warnings

    from actbench.results.read import ResultsWarning

    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\nkind: probe\nmatrix:\n  tag: [a, b]\n")
    api.run(suite, out=tmp_path / "o", executor=InlineExecutor())
    with (tmp_path / "o" / "trials.jsonl").open("a") as f:
        f.write("{\"x\": 1}\n")  # JSON, but no trial record: warned about (a torn last line would pass silently)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = api.run(suite, out=tmp_path / "o", executor=InlineExecutor(), rerun=True)
    assert again.exit_code == 0 and len(again.records) == 2
    assert sum(issubclass(w.category, ResultsWarning) for w in caught) == 1
    assert [r.attempt for r in again.records] == [2, 2]  # the attempts counted from that one read
