"""compare / report / regress: statistics with known answers, and real CPU-suite results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actbench import report
from actbench.results import ResultStore, load, write_baseline
from actbench.runner import run_suite
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite, parse_overrides

ROOT = Path(__file__).resolve().parent.parent


def test_mean_ci_welch_and_churn_known_answers():
    m, half, n = report.mean_ci(pd.Series([1.0, 2.0, 3.0]))
    assert (m, n) == (2.0, 3) and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert report.welch_p(pd.Series([1.0, 2.0, 3.0]), pd.Series([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert report.welch_p(pd.Series([1.0, 1.1, 0.9, 1.05]), pd.Series([2.0, 2.1, 1.9, 2.05])) < 1e-4
    assert report.welch_p(pd.Series([1.0]), pd.Series([2.0, 3.0])) is None
    assert report.churn([[1, 2, 3, 4], [1, 2, 0, 4]]) == 0.25
    assert report.churn([[1, 2], [1, 2], [0, 0]]) == pytest.approx((0 + 1 + 1) / 3)


def _kernel_record(tid: str, p50: float, spread: float, gpu: str = "NVIDIA H100 80GB HBM3") -> dict:
    row = {"impl": "triton", "mode": "forward", "ms_p20": p50 * (1 - spread / 2), "ms_p50": p50, "ms_p80": p50 * (1 + spread / 2)}
    return {"trial_id": tid, "attempt": 1, "kind": "kernel", "status": "ok", "suite": "s", "metrics": {},
            "config": {"activation": "xielu", "dtype": "bfloat16", "size": 1 << 26, "seed": 0}, "rows": [row], "env": {"gpu_name": gpu}}


@pytest.mark.parametrize("current,spread,expected", [
    (1.00, 0.01, "SAME"),   # identical distributions
    (1.20, 0.01, "SLOW"),   # 20% slower, small noise
    (0.80, 0.01, "FAST"),
    (1.20, 0.50, "SAME"),   # 20% slower but p20-p80 spans 50%: noise, not flagged
    (1.04, 0.00, "SAME"),   # under the 5% threshold
])
def test_regress_verdicts_on_synthetic_kernel_results(tmp_path, current, spread, expected):
    ResultStore(tmp_path / "base").append(_kernel_record("k1", 1.0, spread))
    write_baseline(tmp_path / "base", tmp_path / "baseline.jsonl")
    ResultStore(tmp_path / "run").append(_kernel_record("k1", current, spread))
    df = report.regress(tmp_path / "baseline.jsonl", tmp_path / "run")
    assert df["verdict"].tolist() == [expected]
    assert report.regress_failed(df) == (expected == "SLOW")


def test_regress_lm_quality_in_absolute_bits_and_other_gpus_skipped(tmp_path):
    def lm(tid, bpb, tps, gpu="NVIDIA H100"):
        return {"trial_id": tid, "attempt": 1, "kind": "lm", "status": "ok", "suite": "s", "env": {"gpu_name": gpu},
                "config": {"activation": "xielu", "seed": 0}, "metrics": {"val_bpb": bpb, "tokens_per_s": tps}}
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
    assert md.startswith("## actbench regress: FAIL") and "WORSE" in md


@pytest.fixture(scope="module")
def cpu_results(tmp_path_factory):
    """Real results of the shipped CPU suites, shrunk: smoke (kernels) and llm_tiny (2 seeds)."""
    root = tmp_path_factory.mktemp("results")
    smoke = load_suite(ROOT / "suites/smoke.yaml", parse_overrides(["impls=[eager]", "rep_ms=5", "warmup_ms=1"]))
    smoke_trials = [t for t in smoke.trials if t.config.activation in ("xielu", "relu2", "swiglu")]
    smoke = type(smoke)(path=smoke.path, spec=smoke.spec, trials=smoke_trials)
    assert run_suite(smoke, ResultStore(root / "smoke"), InlineExecutor()).exit_code == 0
    lm = load_suite(ROOT / "suites/llm_tiny.yaml", parse_overrides(["tokens=20480", "eval_every=10", "eval_tokens=4096", "impl=eager", "final_eval=slice"]))
    assert run_suite(lm, ResultStore(root / "llm_tiny"), InlineExecutor()).exit_code == 0
    return root


def test_compare_frames_on_cpu_suite_results(cpu_results):
    frames = report.compare_frames(["relu2", "xielu", "swiglu"], cpu_results)
    k = frames["kernel"]
    assert set(k["activation"]) == {"relu2", "xielu", "swiglu"}
    assert np.allclose(k[k["activation"] == "relu2"]["vs_baseline"], 1.0)
    assert (k["pct_copy"] > 0).all() and k[k["activation"] == "swiglu"]["gated"].all()
    lm = frames["lm"]
    assert list(lm["activation"]) == ["relu2", "xielu", "swiglu"] and (lm["n"] == 2).all()
    assert lm["metric"].unique().tolist() == ["val_bpb"]
    assert lm.loc[lm["activation"] == "xielu", "p_value"].notna().all()
    assert lm.loc[lm["activation"] == "relu2", "delta"].isna().all()
    assert lm["params"].nunique() <= 2 and lm["flops_per_token"].nunique() == 1  # matched
    assert lm["churn"].between(0, 1).all()  # present for every pair of seeds; exact values are tested above
    lines = report.verdicts(frames, ["relu2", "xielu", "swiglu"])
    assert len(lines["lm"]) == 2 and all("Welch p=" in line for line in lines["lm"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", *args], capture_output=True, text=True, timeout=300)


def test_compare_cli_formats_and_missing_hints(cpu_results):
    r = _cli("compare", "relu2", "xielu", "mish", "--results", str(cpu_results))
    assert r.returncode == 0, r.stderr
    assert "Welch" in r.stdout and "no results for 'mish'" in r.stderr and "suites/" in r.stderr
    r = _cli("compare", "relu2", "xielu", "--results", str(cpu_results), "--format", "json")
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert {rec["kind"] for recs in records for rec in recs} == {"kernel", "lm"}
    r = _cli("compare", "relu2", "xielu", "--results", str(cpu_results), "--format", "md")
    assert "### lm" in r.stdout and "| suite | activation |" in r.stdout
    r = _cli("compare", "relu2", "xielo", "--results", str(cpu_results))
    assert r.returncode == 2 and "did you mean 'xielu'" in r.stderr


def test_report_writes_plots_html_and_exports_that_load_back(cpu_results, tmp_path):
    r = report.build_report(cpu_results, tmp_path / "rep")
    names = {p.name for p in r["images"]}
    assert {"lm_curves.png", "alphas.png", "activations.png"} <= names
    assert any(n.startswith("kernel_") for n in names)
    for p in r["images"]:
        assert p.stat().st_size > 5000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = r["html"].read_text()
    assert "data:image/png;base64," in page and "Summary" in page
    n = len(load(cpu_results))
    assert len(pd.read_csv(tmp_path / "rep" / "trials.csv")) == n
    pytest.importorskip("pyarrow")
    assert len(pd.read_parquet(tmp_path / "rep" / "trials.parquet")) == n
    assert len(pd.read_parquet(tmp_path / "rep" / "rows.parquet")) == len(pd.read_csv(tmp_path / "rep" / "rows.csv"))


def test_regress_cli_against_its_own_baseline_and_plot_activation(cpu_results, tmp_path):
    base = tmp_path / "base.jsonl"
    r = _cli("regress", str(cpu_results / "llm_tiny"), "--baseline", str(base), "--update-baseline")
    assert r.returncode == 0 and "wrote 6 ok record(s)" in r.stdout
    summary = tmp_path / "summary.md"
    r = _cli("regress", str(cpu_results / "llm_tiny"), "--baseline", str(base), "--summary", str(summary))
    assert r.returncode == 0, r.stdout
    assert "PASS" in summary.read_text()
    r = _cli("regress", str(cpu_results), "--baseline", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = _cli("plot-activation", "xielu", "swiglu", "--out", str(tmp_path / "a.png"))
    assert r.returncode == 0 and (tmp_path / "a.png").stat().st_size > 5000
