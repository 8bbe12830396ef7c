"""compare on synthetic results with known answers: pairing, setups, verdicts, formats, folders,
plugin activations and hostile results files."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import warnings

import msgspec
import numpy as np
import pandas as pd
import pytest

from actbench.errors import UserError
from actbench.report.compare import compare_results
from actbench.report.html import build_report
from actbench.report.present import compare_tables
from actbench.report.lm import setup_key
from actbench.results.frames import load, load_tables, series
from actbench.results.read import ResultsWarning
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record, write_lm


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actbench", *args], capture_output=True, text=True, timeout=120)


def _row(c, activation: str, **where) -> pd.Series:
    lm = c.frames["lm"]
    sel = lm["activation"] == activation
    for k, v in where.items():
        sel &= lm[k] == v
    assert sel.sum() == 1, lm[["activation", *where]]
    return lm[sel].iloc[0]


def test_setup_key_keeps_what_changes_the_result_and_nothing_else():
    base = {"activation": "relu2", "d_ff": 384, "impl": "eager", "seed": 0, "lr": 3e-3, "d_model": 128, "tokens": 1000,
            "data": {"source": "shakespeare", "path": None}, "eval_every": 10, "checkpoint_every": 5, "churn_tokens": 8,
            "device": "cpu", "compile": False}
    other = {**base, "activation": "swiglu", "d_ff": 256, "impl": "triton", "seed": 3, "eval_every": 99, "checkpoint_every": 0,
             "churn_tokens": 0, "device": "cuda", "compile": True, "d_model": 128.0, "data": {"path": None, "source": "shakespeare"}}
    assert setup_key(base) == setup_key(other)
    assert setup_key(base) != setup_key({**base, "lr": 1e-3})  # two learning rates are two setups
    assert setup_key(base, ignore=("lr",)) == setup_key({**base, "lr": 1e-3}, ignore=("lr",))
    assert setup_key(base) != setup_key({**base, "tokens": 2000})
    assert "lr=0.003" in setup_key(base) and "seed" not in setup_key(base)


def test_planted_effects_paired_verdicts_holm_and_unmatched(tmp_path):
    # xielu better by 0.03 bpb, swiglu identical to relu2, wide better but with 8% more parameters
    write_lm(tmp_path / "run", {"relu2": 0.0, "xielu": -0.03, "swiglu": 0.0, "wide": -0.03}, seeds=6, noise_sd=0.004)
    c = compare_results(["relu2", "xielu", "swiglu", "wide"], tmp_path)
    assert _row(c, "relu2")["verdict"] == "baseline"
    x, s, w = _row(c, "xielu"), _row(c, "swiglu"), _row(c, "wide")
    assert x["verdict"] == "better" and x["delta"] == pytest.approx(-0.03, abs=0.015) and x["pairs"] == 6
    assert x["p_holm"] >= x["p"] and x["matched"]
    assert s["verdict"] == "undecided"
    assert np.isfinite(s["detectable"]) and s["detectable"] > 0
    assert w["verdict"] == "better (UNMATCHED)" and w["params_diff_pct"] == pytest.approx(100 * (130_000 / 120_000 - 1))
    # the per-seed values are paired: the seed effect (sd 0.05) cancels, the interval is narrow
    assert x["delta_ci95"] < 0.03 < x["ci95"]
    # the eval-set interval comes from the chunks and agrees with the seed-paired estimate
    assert x["eval_delta"] == pytest.approx(x["delta"], abs=1e-9) and x["eval_low"] < x["eval_delta"] < x["eval_high"]
    assert x["dominant"] in ("seeds", "eval set")
    line = next(line for line in c.lines["lm"] if "swiglu vs relu2" in line)
    assert "undecided" in line and "smallest detectable" in line and "80% power" in line
    assert any("UNMATCHED: params +8.33%" in line for line in c.lines["lm"])


def test_one_paired_seed_is_no_test_and_unpaired_seeds_are_not_compared(tmp_path):
    store = ResultStore(tmp_path / "run")
    store.append(lm_record("relu2", 0, 1.50))
    store.append(lm_record("xielu", 0, 1.20))  # a huge difference, but one pair
    store.append(lm_record("swiglu", 5, 1.20))  # no seed in common with the baseline
    c = compare_results(["relu2", "xielu", "swiglu"], tmp_path)
    assert _row(c, "xielu")["verdict"] == "no test" and _row(c, "swiglu")["verdict"] == "no paired seeds"
    text = " ".join(c.lines["lm"])
    assert "need >= 2 paired seeds" in text
    for word in ("better", "worse", "no detectable"):
        assert word not in text


def test_learning_rates_are_separate_tables_each_with_its_own_holm_family(tmp_path):
    write_lm(tmp_path / "a", {"relu2": 0.0, "xielu": -0.03}, seeds=4, lr=1e-3, noise_sd=0.002)
    write_lm(tmp_path / "a", {"relu2": 0.0, "xielu": 0.0}, seeds=4, lr=3e-3, rng_seed=1)
    c = compare_results(["relu2", "xielu"], tmp_path)
    lm = c.frames["lm"]
    assert len(lm) == 4 and lm["setup"].nunique() == 2 and set(lm["setup_label"]) == {"lr=0.001", "lr=0.003"}
    assert _row(c, "xielu", lr="0.001")["verdict"] == "better"
    assert _row(c, "xielu", lr="0.003")["verdict"] == "undecided"
    assert len(compare_tables(c)) == 2


def test_results_folders_stay_separate_unless_merged(tmp_path):
    write_lm(tmp_path / "monday", {"relu2": 0.0, "xielu": -0.03}, seeds=3, run_id="m")
    write_lm(tmp_path / "tuesday", {"relu2": 0.0, "xielu": -0.03}, seeds=3, run_id="t", rng_seed=1)
    apart = compare_results(["relu2", "xielu"], tmp_path)
    assert sorted(apart.frames["lm"]["results"].unique()) == ["monday", "tuesday"]
    assert (apart.frames["lm"]["trials"] == 3).all() and (apart.frames["lm"]["runs"] == 1).all()
    merged = compare_results(["relu2", "xielu"], tmp_path, merge=True)
    x = _row(merged, "xielu")
    assert x["results"] == "merged" and x["trials"] == 6 and x["runs"] == 2 and x["n"] == 3  # same seeds: averaged per seed

    k = ResultStore(tmp_path / "k1")
    k.append(kernel_record("a", "relu2", [("eager", "forward", 0.071, 0.02)]))
    ResultStore(tmp_path / "k2").append(kernel_record("a", "relu2", [("eager", "forward", 0.174, 0.02)], run_id="r2"))
    rows = compare_results(["relu2"], tmp_path).frames["kernel"]
    assert sorted(rows["ms_p50"]) == [0.071, 0.174]  # not one median of the two
    pooled = compare_results(["relu2"], tmp_path, merge=True).frames["kernel"]
    assert len(pooled) == 1 and pooled["trials"].iloc[0] == 2 and pooled["runs"].iloc[0] == 2


def test_kernel_verdicts_say_same_or_noisy_rather_than_a_bare_ratio(tmp_path):
    s = ResultStore(tmp_path / "k")
    s.append(kernel_record("a", "relu2", [("eager", "forward", 1.00, 0.04), ("eager", "backward", 1.0, 0.04)]))
    s.append(kernel_record("b", "xielu", [("eager", "forward", 1.01, 0.04), ("eager", "backward", 1.0, 0.9)]))
    s.append(kernel_record("c", "gelu", [("eager", "forward", 0.60, 0.04), ("eager", "backward", 1.5, 0.04)]))
    c = compare_results(["relu2", "xielu", "gelu"], tmp_path)
    k = c.frames["kernel"].set_index(["activation", "mode"])["verdict"].to_dict()
    assert k[("xielu", "forward")] == "same" and k[("xielu", "backward")] == "noisy"
    assert k[("gelu", "forward")] == "faster" and k[("gelu", "backward")] == "slower"
    xline, gline = c.lines["kernel"]
    assert "same at 1" in xline and "noisy at 1" in xline and "faster" not in xline and "x," not in xline
    assert "faster at 1 (0.60x" in gline and "slower at 1 (1.50x" in gline


def test_json_and_csv_are_one_loadable_document_each(tmp_path):
    write_lm(tmp_path / "run", {"relu2": 0.0, "xielu": -0.03}, seeds=3, noise_sd=0.002)
    ResultStore(tmp_path / "k").append(kernel_record("a", "relu2", [("eager", "forward", 1.0, 0.02)]))
    ResultStore(tmp_path / "k").append(kernel_record("b", "xielu", [("eager", "forward", 2.0, 0.02)]))
    r = _cli("compare", "relu2", "xielu", "--results", str(tmp_path), "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["baseline"] == "relu2" and doc["alpha"] == 0.05 and set(doc) >= {"kernel", "memory", "lm"}
    assert doc["lm"]["rows"][1]["verdict"] == "better" and doc["lm"]["verdicts"] and doc["memory"]["rows"] == []
    assert doc["kernel"]["rows"][1]["verdict"] == "slower" and "2.00x" in doc["kernel"]["verdicts"][0]
    df = pd.read_csv(io.StringIO(compare_results(["relu2", "xielu"], tmp_path, alpha=0.01).to_csv()))
    assert set(df["table"]) == {"kernel", "lm"} and len(df) == 4 and "verdict" in df
    assert json.loads(df.loc[df["activation"] == "relu2", "values"].dropna().iloc[0]) == pytest.approx(
        doc["lm"]["rows"][0]["values"])
    md = compare_results(["relu2", "xielu"], tmp_path).to_markdown()
    assert "### lm (baseline: relu2)" in md and "| suite |" in md and "nan" not in md.replace("dominant", "")


def test_missing_results_and_unknown_names_exit_2(tmp_path):
    r = _cli("compare", "relu2", "xielu", "--results", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr
    write_lm(tmp_path / "run", {"relu2": 0.0, "xielu": -0.03}, seeds=2)
    r = _cli("compare", "relu2", "xielo", "--results", str(tmp_path))
    assert r.returncode == 2 and "did you mean 'xielu'" in r.stderr


def test_a_plugin_activation_in_the_results_needs_no_plugin(tmp_path):
    write_lm(tmp_path / "run", {"relu2": 0.0, "cube": -0.03}, seeds=3, noise_sd=0.002)
    r = _cli("compare", "relu2", "cube", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "cube vs relu2" in r.stdout and "better" in r.stdout
    with pytest.raises(UserError, match="did you mean 'cube'"):
        compare_results(["relu2", "cueb"], tmp_path)
    assert build_report(tmp_path / "run", tmp_path / "rep")["comparison"].frames["lm"]["verdict"].tolist() == ["baseline", "better"]


HOSTILE = [b"[1,2,3]", b"42", b'{"status":"ok"}', b'{"trial_id":"x","status":"ok","config":"notadict"}',
           b'{"trial_id":"y","status":"ok","kind":"lm","config":{"activation":"\xff\xfe"}}', b'"just a string"',
           b'{"trial_id":"z","status":"ok","kind":"kernel","config":{},"rows":[1,2]}']


def test_lines_that_are_not_records_are_skipped_with_one_warning(tmp_path):
    write_lm(tmp_path / "run", {"relu2": 0.0, "xielu": -0.03}, seeds=3)
    path = tmp_path / "run" / "trials.jsonl"
    good = path.read_bytes()
    path.write_bytes(b"\n".join(HOSTILE) + b"\n" + good + b'{"torn": ')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, _ = load_tables(tmp_path)
    assert len(trials) == 6
    assert len(caught) == 1 and caught[0].category is ResultsWarning
    message = str(caught[0].message)
    assert message.startswith(f"{path}:1: skipped {len(HOSTILE)} line(s)") and "\n" not in message
    for cmd in (["compare", "relu2", "xielu", "--results", str(tmp_path)], ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rep")]):
        r = _cli(*cmd)
        assert r.returncode == 0, r.stderr
        warning_lines = [line for line in r.stderr.splitlines() if "warning" in line]
        assert len(warning_lines) == 1 and f"{path}:1:" in warning_lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_series_of_other_shapes_do_not_break_compare(tmp_path):
    store = ResultStore(tmp_path / "run")
    for seed in range(3):
        store.append(lm_record("relu2", seed, 1.5 + seed / 100), series={"eval_chunks": "garbage", "val_argmax": [[1]]})
        store.append(lm_record("xielu", seed, 1.4 + seed / 100), series={"eval_chunks": {"nats": [1.0], "bytes": [1.0, 2.0]}})
    (tmp_path / "run" / "series" / next(iter((tmp_path / "run" / "series").iterdir())).name).write_text("{not json")
    x = _row(compare_results(["relu2", "xielu"], tmp_path), "xielu")
    assert x["verdict"] == "better" and x["delta"] == pytest.approx(-0.1) and math.isnan(x["eval_ci95"])
    assert x["eval_note"] == "no eval_chunks in the series"


def test_metrics_and_series_of_odd_types_and_names_do_not_break_compare_or_loading(tmp_path):
    """A record with a string where a number is expected is set aside with one warning (issue 26:
    record.FIELDS); a series column named `value` and a config field named like a record field:
    compare and the loaders take them in stride."""
    store = ResultStore(tmp_path / "run")
    for seed in range(3):
        for act, bpb in (("relu2", 1.5), ("xielu", 1.4)):
            rec = msgspec.structs.replace(lm_record(act, seed, bpb + seed / 100), config={**lm_record(act, seed, 0).config, "status": "queued"})
            store.append(rec, series={"val": {"step": [1, 2], "value": [0.5, 0.4], "metric": [1, 2], "bpb": [bpb + 0.1, bpb]}})
    odd = lm_record("xielu", 3, 1.0)
    store.append(msgspec.structs.replace(odd, metrics={**odd.metrics, "tokens_per_s": "fast"}))
    with pytest.warns(ResultsWarning, match=r"trials.jsonl:7: skipped 1 line\(s\) .* metrics.tokens_per_s is text, not a number"):
        x = _row(compare_results(["relu2", "xielu"], tmp_path), "xielu")
    assert x["verdict"] == "better" and x["delta"] == pytest.approx(-0.1) and x["n"] == 3
    trials = load(tmp_path)
    assert set(trials["status"]) == {"ok"}  # the record's status, not the config's
    long = series(tmp_path)
    assert sorted(set(long["metric"])) == ["bpb", "metric", "value"] and len(long) == 6 * 2 * 3


def test_alpha_outside_0_1_is_refused(tmp_path):
    write_lm(tmp_path / "run", {"relu2": 0.0, "xielu": -0.03}, seeds=2)
    with pytest.raises(UserError, match="--alpha"):
        compare_results(["relu2", "xielu"], tmp_path, alpha=1.5)
