"""compare / report / regress on real results of the shipped CPU suites (shrunk), through the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from actbench import api
from actbench.errors import UserError
from actbench.report import html as report
from actbench.report.compare import compare_results
from actbench.report.plots import kernel as plots
from actbench.results import load
from actbench.runner.local import InlineExecutor
from actbench.select import parse_filter
from actbench.suite import load_suite, parse_overrides

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cpu_results(tmp_path_factory):
    """Real results of the shipped CPU suites, shrunk: smoke (kernels) and llm_tiny (2 seeds)."""
    root = tmp_path_factory.mktemp("results")
    smoke = load_suite(ROOT / "suites/smoke.yaml", parse_overrides(["impls=[eager]", "rep_ms=5", "warmup_ms=1"]))
    assert api.run(smoke, out=root / "smoke", executor=InlineExecutor(), select="xielu or relu2 or swiglu").exit_code == 0
    shape = yaml.safe_load((ROOT / "suites/llm_tiny.yaml").read_text())  # its models and data, 2 fixed seeds at one learning rate
    for block in ("tune", "decide"):
        shape.pop(block, None)
    (root / "llm_tiny.yaml").write_text(yaml.safe_dump({**shape, "seeds": 2}))
    lm = load_suite(root / "llm_tiny.yaml", parse_overrides(["tokens=8192", "eval_every=2", "eval_tokens=2048", "churn_tokens=2048",
                                                              "impl=eager", "final_eval=slice"]))  # 4 steps, 2 evaluations
    assert api.run(lm, out=root / "llm_tiny", executor=InlineExecutor()).exit_code == 0
    return root


def test_compare_on_cpu_suite_results(cpu_results):
    c = compare_results(["relu2", "xielu", "swiglu"], cpu_results)
    k = c.frames["kernel"]
    assert set(k["activation"]) == {"relu2", "xielu", "swiglu"} and (k["verdict"] == "baseline").sum() == 6  # one per dtype and mode
    assert set(k["verdict"]) <= {"baseline", "same", "faster", "slower", "noisy"}
    assert (k["pct_copy"] > 0).all() and k[k["activation"] == "swiglu"]["gated"].all()
    assert (k["trials"] == 1).all() and (k["runs"] == 1).all() and set(k["results"]) == {"smoke"}
    line = next(line for line in c.lines["kernel"] if line.startswith("xielu (best of eager) vs relu2 (best of eager)"))
    assert "CPU timings of eager" in line and "the fused GPU kernel (xielu's triton, xielu's fused, relu2's fused) was not measured: it needs a GPU" in line
    lm = c.frames["lm"]
    assert list(lm["activation"]) == ["relu2", "xielu", "swiglu"] and (lm["n"] == 2).all()
    assert lm["metric"].unique().tolist() == ["val_bpb"] and lm["setup"].nunique() == 1
    cand = lm[lm["activation"] != "relu2"]
    assert (cand["pairs"] == 2).all() and cand["p_holm"].notna().all() and (cand["p_holm"] >= cand["p"]).all()
    assert set(cand["verdict"]) <= {"better", "worse", "undecided"}
    assert lm["matched"].all()  # llm_tiny matches MLP parameters and FLOPs within 0.5%
    assert lm["churn"].between(0, 1).all()
    verdicts, costs = [line for line in c.lines["lm"] if "the run cost" not in line], [line for line in c.lines["lm"] if "the run cost" in line]
    assert len(verdicts) == 2 and all("Holm p=" in line for line in verdicts)
    assert len(costs) == 1 and costs[0].startswith("llm_tiny (")  # what the run cost, beside what the plan says


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actbench", *args], capture_output=True, text=True, timeout=300)


def _imports_torch(*args: str) -> bool:
    code = ("import sys\nfrom actbench.cli import main\nsys.argv = ['actbench', *sys.argv[1:]]\ntry:\n    main()\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\nprint('torch' in sys.modules, 'triton' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1] != "False False"


def test_compare_cli_formats_and_missing_hints(cpu_results):
    r = _cli("compare", "relu2", "xielu", "mish", "--results", str(cpu_results))
    assert r.returncode == 0, r.stderr
    assert "Holm" in r.stdout and "no results for 'mish'" in r.stderr and "suites/" in r.stderr
    doc = json.loads(_cli("compare", "relu2", "xielu", "--results", str(cpu_results), "--format", "json").stdout)
    assert len(doc["kernel"]["rows"]) > 0 and len(doc["lm"]["rows"]) == 2
    assert not _imports_torch("compare", "relu2", "xielu", "--results", str(cpu_results), "--format", "json")


def _cli_rows(rows: int, *args: str) -> str:
    """Output of the CLI with TERMINAL_ROWS set to `rows`."""
    code = f"import actbench.cli as c\nc.TERMINAL_ROWS = {rows}\nc.main()"
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "250"})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_terminal_tables_show_the_first_rows_unless_all(cpu_results, tmp_path):
    kernel_rows = len(compare_results(["relu2", "xielu"], cpu_results).frames["kernel"])
    assert kernel_rows > 3
    short = _cli_rows(3, "compare", "relu2", "xielu", "--results", str(cpu_results))
    assert f"the first 3 of {kernel_rows} rows in table order: --all prints them all" in short
    full = _cli_rows(3, "compare", "relu2", "xielu", "--results", str(cpu_results), "--all")
    assert "the first" not in full and full.count("│ smoke") > short.count("│ smoke") >= 3
    assert short.count("kernel: ") == full.count("kernel: ") >= 1  # the verdict lines cover every row either way


def test_report_writes_plots_html_and_exports_that_load_back(cpu_results, tmp_path):
    r = report.build_report(cpu_results, tmp_path / "rep")
    assert r["names"][0] == "relu2" and r["baseline_why"] == "the suite's reference"
    names = {p.name for p in r["images"]}
    suite = load(cpu_results).query("kind == 'lm'")["suite"].iloc[0]
    assert {f"lm_{suite}.png", f"alphas_{suite}.png"} <= names and any(n.startswith("kernel_") for n in names)
    for p in r["images"]:
        assert p.stat().st_size > 5000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = r["html"].read_text()
    assert "data:image/png;base64," in page and "Summary" in page and "the suite&#x27;s reference" in page
    assert not re.search(r">\s*(nan|None|NaN)\s*<", page)
    env = page[page.index("Environment"):]
    assert "git commit" in env and "torch threads" in env and f"name: {suite}" in env  # fingerprint and the suite as run
    n = len(load(cpu_results))
    assert len(pd.read_csv(tmp_path / "rep" / "trials.csv")) == n
    pytest.importorskip("pyarrow")
    assert len(pd.read_parquet(tmp_path / "rep" / "trials.parquet")) == n
    assert len(pd.read_parquet(tmp_path / "rep" / "rows.parquet")) == len(pd.read_csv(tmp_path / "rep" / "rows.csv"))
    assert report.build_report(cpu_results, tmp_path / "rep2", baseline="xielu")["names"][0] == "xielu"
    assert not _imports_torch("report", str(cpu_results), "--out", str(tmp_path / "rep3"), "--baseline", "swiglu")
    r = _cli("report", str(cpu_results), "--out", str(tmp_path / "rep4"), "--baseline", "xielo")
    assert r.returncode == 2 and "did you mean 'xielu'" in r.stderr


def test_a_report_that_fails_leaves_the_earlier_exports_as_they_were(cpu_results, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    written = report.build_report(cpu_results, out)["exports"]
    before = {p.name: p.read_bytes() for p in written}
    assert {"trials.csv", "rows.csv"} <= set(before)

    def no_plot(*args, **kwargs):
        raise RuntimeError("injected plot failure")

    fewer = parse_filter("activation=xielu")  # other exports than the first report's, were they written
    with pytest.raises(UserError, match="--alpha"):
        report.build_report(cpu_results, out, alpha=2.0, select=fewer)  # rejected while the exports are being written
    monkeypatch.setattr(plots, "kernel_throughput", no_plot)
    with pytest.raises(RuntimeError, match="injected"):
        report.build_report(cpu_results, out, select=fewer)
    assert {p.name: p.read_bytes() for p in written} == before
    assert not list(out.glob(".*"))  # no staged file left behind, though the exports were written beside the failing figure


def test_regress_cli_against_its_own_baseline_and_plot_activation(cpu_results, tmp_path):
    base = cpu_results  # the run itself as its baseline: nothing moved
    summary = tmp_path / "summary.md"
    r = _cli("regress", str(cpu_results), "--baseline", str(base), "--summary", str(summary))
    assert r.returncode == 0, r.stdout
    assert "PASS" in summary.read_text() and "SLOW" not in summary.read_text()
    r = _cli("regress", str(cpu_results), "--baseline", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "no such file" in r.stderr
    r = _cli("plot-activation", "xielu", "swiglu", "--out", str(tmp_path / "a.png"))
    assert r.returncode == 0 and (tmp_path / "a.png").stat().st_size > 5000
