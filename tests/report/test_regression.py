"""regress --baseline (a one-off comparison of two runs): kernel rows on the copy-normalised
figure, noise-aware verdicts, lm tolerances, errors when nothing is compared. The nightly gate
(--history) is tested in test_nightly_gate.py."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pandas as pd
import pytest

from actbench.errors import UserError
from actbench.report import regression as report
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actbench", *args], capture_output=True, text=True, timeout=120)


def _baseline(tmp_path, record) -> str:
    ResultStore(tmp_path / "base").append(record)
    return str(tmp_path / "base" / "trials.jsonl")


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
    run = ResultStore(tmp_path / "r")
    for rec in (lm("a", 1.51, 1000), lm("b", 1.60, 900), lm("c", 1.50, 1000)):
        run.append(rec)
    df = report.regress(tmp_path / "b", tmp_path / "r")  # a results folder as the baseline
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
    r = _cli("regress", str(tmp_path / "run"), "--baseline", base, "--history", str(tmp_path / "h"))
    assert r.returncode == 2 and "not both" in r.stderr and not (tmp_path / "h").exists()


def test_a_baseline_folder_and_its_trials_jsonl_read_the_latest_attempt_alike(tmp_path):
    """A trial whose latest attempt in the baseline failed has no baseline, given as the folder or
    as its trials.jsonl alike (the file used to fall back to the last ok attempt), and says so."""
    base = ResultStore(tmp_path / "base")
    for tid in ("k1", "k2"):
        base.append(kernel_record(tid, "xielu", [("triton", "forward", 1.0, 0.01)]))
    base.append(msgspec.structs.replace(kernel_record("k2", "xielu", []), attempt=2, status="error", rows=[]))
    run = ResultStore(tmp_path / "run")
    for tid in ("k1", "k2"):
        run.append(kernel_record(tid, "xielu", [("triton", "forward", 1.3, 0.01)]))
    verdicts = [{r.trial_id: r.verdict for r in report.regress(b, tmp_path / "run").itertuples()}
                for b in (tmp_path / "base", tmp_path / "base" / "trials.jsonl")]
    assert verdicts[0] == verdicts[1] == {"k1": "SLOW", "k2": "NO BASELINE (its last attempt there: error)"}


def test_rows_lacking_an_impl_and_a_run_without_a_copy_row(tmp_path):
    """A row that names no impl is compared as impl None (never taken for the copy); a trial
    without a copy row has no copy noise; a key twice in a trial: its last row, in its first place."""
    def record(p50s):
        rec = kernel_record("k1", "xielu", [("triton", "forward", p50, 0.01) for p50 in p50s])
        rows = [dict(r) for r in rec.rows[1:]]  # no copy row
        rows[0].pop("impl")
        return msgspec.structs.replace(rec, rows=rows)

    ResultStore(tmp_path / "base").append(record([1.0, 1.0, 1.0]))
    ResultStore(tmp_path / "run").append(record([1.3, 1.0, 0.7]))
    df = report.regress(tmp_path / "base", tmp_path / "run")
    assert df["what"].tolist() == ["activation=xielu dtype=bfloat16 size=1048576 seed=0 None forward",
                                   "activation=xielu dtype=bfloat16 size=1048576 seed=0 triton forward"]
    assert df["verdict"].tolist() == ["SLOW", "FAST"] and df["noise_pct"].tolist() == pytest.approx([1.0, 1.0])


def test_a_run_of_no_readable_record_against_a_baseline_with_rows(tmp_path):
    """A run whose every line is set aside (torn, or a row field of the wrong type), against a
    baseline with measurement rows, is 'nothing compared' (exit 2), as before the vectorised
    lookup, which indexed the run's empty kinds with the baseline's rows (IndexError)."""
    ResultStore(tmp_path / "base").append(kernel_record("k1", "xielu", [("triton", "forward", 1.0, 0.01)]))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trials.jsonl").write_text('{"trial_id": "k1", "rows": [{"impl": nu\n')
    with pytest.raises(UserError, match="no trial of 0 has a baseline"):
        report.regress(tmp_path / "base", tmp_path / "run")


def test_a_spread_over_a_zero_median_is_no_noise(tmp_path):
    """A timing row whose median is 0 (a copy row timed at 0 ms) has no spread (0, as
    `spread` gives it), not an infinite one that made every row of its trial NOISY."""
    def record(p50):
        rec = kernel_record("k1", "xielu", [("triton", "forward", p50, 0.01)], copy=(0.1, 0.02))
        return msgspec.structs.replace(rec, rows=[{**rec.rows[0], "ms_p50": 0.0}, *rec.rows[1:]])

    ResultStore(tmp_path / "base").append(record(1.0))
    ResultStore(tmp_path / "run").append(record(1.3))
    df = report.regress(tmp_path / "base", tmp_path / "run")
    assert report.spread({"ms_p20": 0.1, "ms_p50": 0.0, "ms_p80": 0.2}) == 0.0
    assert df["verdict"].tolist() == ["SLOW"] and df["noise_pct"].tolist() == pytest.approx([1.0])


def test_a_baseline_folder_reads_only_the_compared_columns_of_its_index(tmp_path, monkeypatch):
    """A results folder is read through its index, only the columns regress compares (and the run's
    config for the labels): the same table as when the baseline is its trials.jsonl, decoded record by record."""
    from actbench.results import index

    base, run = ResultStore(tmp_path / "base"), ResultStore(tmp_path / "run")
    for store, p50, bpb in ((base, 1.0, 1.50), (run, 1.3, 1.60)):
        store.append(kernel_record("k1", "xielu", [("triton", "forward", p50, 0.01), ("eager", "backward", 1.0, 0.01)]))
        store.append(msgspec.structs.replace(lm_record("xielu", 0, bpb), trial_id="l1", metrics={"val_bpb": bpb, "tokens_per_s": 1000.0}))
    report.regress(tmp_path / "base", tmp_path / "run")  # the indexes written
    read: list[str] = []
    real = index._arrow  # each table read from the Parquet of an index

    def spied(raw, columns=None):
        table = real(raw, columns)
        read.extend(table.column_names)
        return table

    monkeypatch.setattr(index, "_arrow", spied)
    df = report.regress(tmp_path / "base", tmp_path / "run")
    assert read and not set(read) - report.READ[0] - report.READ[1] - {"_record"}
    assert read.count("config") == 1  # the run's, for its labels; the baseline's is not decoded
    pd.testing.assert_frame_equal(df, report.regress(tmp_path / "base" / "trials.jsonl", tmp_path / "run"))
    assert df["what"].tolist() == ["activation=xielu dtype=bfloat16 size=1048576 seed=0 triton forward",
                                   "activation=xielu dtype=bfloat16 size=1048576 seed=0 eager backward", "activation=xielu seed=0",
                                   "activation=xielu seed=0"]
    assert df["verdict"].tolist() == ["SLOW", "SAME", "WORSE", "SAME"]
