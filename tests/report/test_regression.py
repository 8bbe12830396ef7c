"""regress: kernel rows on the copy-normalised figure, noise-aware verdicts, lm tolerances,
errors when nothing is compared, and the per-commit history with its trend plot."""

from __future__ import annotations

import json
import subprocess
import sys

import msgspec
import pytest

from actbench.errors import UserError
from actbench.report import regression as report
from actbench.report.regression import write_baseline
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actbench", *args], capture_output=True, text=True, timeout=120)


def _baseline(tmp_path, record) -> str:
    ResultStore(tmp_path / "base").append(record)
    write_baseline(tmp_path / "base", tmp_path / "baseline.jsonl")
    return str(tmp_path / "baseline.jsonl")


@pytest.mark.parametrize("p50,copy,spread,expected", [
    (1.00, 0.10, 0.01, "SAME"),   # identical
    (2.00, 0.20, 0.01, "SAME"),   # the whole machine twice as slow, copy included: not a regression
    (1.20, 0.10, 0.01, "SLOW"),   # 20% slower against the same copy
    (0.80, 0.10, 0.01, "FAST"),
    (1.04, 0.10, 0.00, "SAME"),   # under the 5% threshold
    (1.20, 0.10, 0.15, "NOISY"),  # row + copy spread 0.30 > NOISY_SPREAD: no verdict
])
def test_kernel_rows_on_the_copy_normalised_figure(tmp_path, p50, copy, spread, expected):
    base = _baseline(tmp_path, kernel_record("k1", "xielu", [("triton", "forward", 1.0, spread)], copy=(0.1, spread)))
    ResultStore(tmp_path / "run").append(kernel_record("k1", "xielu", [("triton", "forward", p50, spread)], copy=(copy, spread)))
    df = report.regress(base, tmp_path / "run")
    assert df["verdict"].tolist() == [expected]  # the copy row itself is not compared
    assert df["metric"].tolist() == ["pct_copy"]
    assert report.regress_failed(df) == (expected == "SLOW")


def test_noise_widens_the_threshold(tmp_path):
    base = _baseline(tmp_path, kernel_record("k1", "xielu", [("triton", "forward", 1.0, 0.1)], copy=(0.1, 0.05)))
    ResultStore(tmp_path / "run").append(kernel_record("k1", "xielu", [("triton", "forward", 1.12, 0.1)], copy=(0.1, 0.05)))
    df = report.regress(base, tmp_path / "run")
    assert df["verdict"].tolist() == ["SAME"] and df["noise_pct"].iloc[0] == pytest.approx(15.0)


def test_lm_quality_in_absolute_bits_and_other_gpus_skipped(tmp_path):
    def lm(tid, bpb, tps, gpu="NVIDIA H100"):
        r = lm_record("xielu", 0, bpb)
        return msgspec.structs.replace(r, trial_id=tid, env={"gpu_name": gpu}, metrics={"val_bpb": bpb, "tokens_per_s": tps})
    base = ResultStore(tmp_path / "b")
    for rec in (lm("a", 1.50, 1000), lm("b", 1.50, 1000), lm("c", 1.50, 1000, gpu="NVIDIA A100")):
        base.append(rec)
    write_baseline(tmp_path / "b", tmp_path / "base.jsonl")
    run = ResultStore(tmp_path / "r")
    for rec in (lm("a", 1.51, 1000), lm("b", 1.60, 900), lm("c", 1.50, 1000)):
        run.append(rec)
    df = report.regress(tmp_path / "base.jsonl", tmp_path / "r")
    got = {(r.trial_id, r.metric): r.verdict for r in df.itertuples()}
    assert got[("a", "val_bpb")] == "SAME" and got[("a", "tokens_per_s")] == "SAME"
    assert got[("b", "val_bpb")] == "WORSE" and got[("b", "tokens_per_s")] == "SLOW"
    assert got[("c", "-")] == "SKIPPED (different GPU)"
    md = report.regress_markdown(df, "base.jsonl", tmp_path / "r")
    assert md.startswith("## actbench regress: FAIL") and "WORSE" in md and "nan" not in md


def test_nothing_compared_is_an_error(tmp_path):
    base = _baseline(tmp_path, kernel_record("k1", "xielu", [("triton", "forward", 1.0, 0.01)]))
    ResultStore(tmp_path / "run").append(kernel_record("other", "xielu", [("triton", "forward", 1.0, 0.01)]))
    with pytest.raises(UserError, match="nothing compared"):
        report.regress(base, tmp_path / "run")
    r = _cli("regress", str(tmp_path / "run"), "--baseline", base)
    assert r.returncode == 2 and "nothing compared" in r.stderr and str(tmp_path / "run") in r.stderr
    r = _cli("regress", str(tmp_path / "typo"), "--baseline", base)
    assert r.returncode == 2 and "typo" in r.stderr
    r = _cli("regress", str(tmp_path / "typo"), "--baseline", str(tmp_path / "new.jsonl"), "--update-baseline")
    assert r.returncode == 2 and not (tmp_path / "new.jsonl").exists()


def test_history_one_line_per_run_and_a_trend_plot(tmp_path):
    base = _baseline(tmp_path, kernel_record("k1", "xielu", [("triton", "forward", 1.0, 0.01), ("eager", "forward", 2.0, 0.01)]))
    history = tmp_path / "ci" / "history.jsonl"
    for i, p50 in enumerate((1.0, 1.02, 1.3)):
        run = tmp_path / f"night{i}"
        rec = kernel_record("k1", "xielu", [("triton", "forward", p50, 0.01), ("eager", "forward", 2.0, 0.01)])
        ResultStore(run).append(msgspec.structs.replace(rec, env={**rec.env, "git_commit": f"c{i}" * 20}, ended_at=1.7e9 + i * 86400))
        if i < 2:
            report.append_history(report.regress(base, run), run, history)
        else:  # through the CLI: the slow run fails the job and still lands in the history
            r = _cli("regress", str(run), "--baseline", base, "--history", str(history))
            assert r.returncode == 1 and "SLOW" in r.stdout and "history: 2 figure(s)" in r.stdout, r.stdout + r.stderr
    entries = [json.loads(line) for line in history.read_text().splitlines()]
    assert [e["commit"] for e in entries] == [f"c{i}" * 20 for i in range(3)]
    assert entries[0]["date"].startswith("2023-11-14") and entries[2]["date"].startswith("2023-11-16")
    triton = [v for e in entries for k, v in e["figures"].items() if "triton forward" in k and k.endswith("| pct_copy")]
    assert triton == pytest.approx([10.0, 10.0 / 1.02, 10.0 / 1.3])
    png = history.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
