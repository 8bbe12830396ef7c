"""Strings from files are data, through the real CLI (in process): a suite value and the
activation names, suites, dtypes and messages of a results folder holding rich markup, ANSI/OSC
escape sequences, bidi overrides and mathtext go through `run`, `compare` (every format) and
`report` as text: no crash, no control character on the terminal, figures drawn."""

from __future__ import annotations

import html
import json
import re
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest

from actbench import cli
from actbench.core.text import Terminal
from actbench.report.formats import markdown
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record

HOSTILE = "[/x]\x1b]52;c;AAAA\x07 $\\frac{$ \u202eevil"
SHOWN = "[/x]\\x1b]52;c;AAAA\\x07 $\\frac{$ \\u202eevil"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def actbench(capfd, monkeypatch, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `actbench ARGS` run in this process."""
    monkeypatch.setattr(sys, "argv", ["actbench", *args])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    monkeypatch.setattr(cli, "console", Terminal(width=160))  # fresh ones on this test's captured stdout and stderr
    monkeypatch.setattr(cli, "err_console", Terminal(stderr=True, width=160))
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:  # as outside pytest
                        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))
    capfd.readouterr()
    with pytest.raises(SystemExit) as e, warnings.catch_warnings():
        warnings.simplefilter("always")
        cli.main()
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    assert not CONTROL.search(out + err), [line for line in (out + err).splitlines() if CONTROL.search(line)]
    return e.value.code, out, err


def test_a_hostile_swept_value_runs_and_reports_as_text(tmp_path, capfd, monkeypatch):
    suite = tmp_path / "hostile.yaml"
    suite.write_text("name: hostile\nkind: probe\nmatrix:\n  tag: [" + json.dumps(HOSTILE) + ", plain]\n  fail: [none, raise]\n")
    out_dir = tmp_path / "out"
    code, out, err = actbench(capfd, monkeypatch, "run", str(suite), "--out", str(out_dir), "--dry-run", "-k", "fail=none or \x1b[2J")
    assert code == 0 and SHOWN in " ".join(out.split()) and "(-k 'fail=none or \\x1b[2J')" in out
    code, out, err = actbench(capfd, monkeypatch, "run", str(suite), "--executor", "inline", "--out", str(out_dir))
    assert code == 1  # the injected failures; every trial ran and is recorded
    assert f"ok probe tag={SHOWN} fail=none" in err and f"failed probe tag={SHOWN} fail=raise" in err
    assert "2 failed, 2 ok" in out and "injected failure in probe" in out
    assert [json.loads(line)["config"]["tag"] for line in (out_dir / "trials.jsonl").read_text().splitlines()].count(HOSTILE) == 2
    code, out, err = actbench(capfd, monkeypatch, "report", str(out_dir))
    assert code == 0 and "injected failure in probe '[/x]\\x1b]52;c;AAAA\\x07" in out  # the message quotes the repr


def _hostile_results(root: Path) -> None:
    """A kernel and an lm results folder (with curves) whose activation, dtype and suite names are hostile."""
    kernels = ResultStore(root / "k")
    for i, act in enumerate(["relu2", HOSTILE]):
        rec = kernel_record(f"k{i}", act, [("eager", "fwd", 0.1 + i / 100, 0.05)])
        rec.config["dtype"] = "$bf16$"
        kernels.append(rec)
    lm = ResultStore(root / "lm")
    steps = [10, 20, 30]
    for seed in range(2):
        for act, bpb in (("relu2", 1.5), (HOSTILE, 1.6)):
            lm.append(lm_record(act, seed, bpb + seed / 100, suite="s$x$"),
                      series={"val": {"step": steps, "tokens": [s * 64 for s in steps], "time_s": steps, "loss": [2.0] * 3, "bpb": [bpb] * 3},
                              "train": {"step": steps, "loss": [3.0, 2.5, 2.0], "tokens": [s * 64 for s in steps], "time_s": steps}})


def test_hostile_names_in_results_compare_and_report_as_text(tmp_path, capfd, monkeypatch):
    _hostile_results(tmp_path)
    code, out, err = actbench(capfd, monkeypatch, "compare", "relu2", HOSTILE, "--results", str(tmp_path))
    assert code == 0 and f"kernel: {SHOWN} (best of eager) vs relu2" in " ".join(out.split())
    code, md, _ = actbench(capfd, monkeypatch, "compare", "relu2", HOSTILE, "--results", str(tmp_path), "--format", "md")
    assert code == 0 and f"| {SHOWN} | eager |" in md
    code, doc, _ = actbench(capfd, monkeypatch, "compare", "relu2", HOSTILE, "--results", str(tmp_path), "--format", "json")
    assert code == 0 and HOSTILE in {r["activation"] for r in json.loads(doc)["kernel"]["rows"]}  # the data itself, escaped by JSON
    for folder in ("k", "lm"):
        code, out, err = actbench(capfd, monkeypatch, "report", str(tmp_path / folder), "--out", str(tmp_path / f"report_{folder}"))
        assert code == 0
        pngs = list((tmp_path / f"report_{folder}").glob("*.png"))
        assert pngs and all(p.stat().st_size > 0 for p in pngs)
        assert html.escape(HOSTILE) in (tmp_path / f"report_{folder}" / "report.html").read_text()  # the page holds the data, escaped
    assert any(p.name.startswith("lm_") for p in (tmp_path / "report_lm").glob("*.png"))  # the curves, hostile labels and all


def test_error_and_warning_lines_show_file_values_as_text(tmp_path, capfd, monkeypatch):
    _hostile_results(tmp_path)
    lines = (tmp_path / "k" / "trials.jsonl").read_text().splitlines(True)
    lines.insert(1, "\x1b[31mnot a record\x07 $\\frac{$\n")  # a damaged line between records: one warning
    (tmp_path / "k" / "trials.jsonl").write_text("".join(lines))
    code, out, err = actbench(capfd, monkeypatch, "report", str(tmp_path / "k"), "--out", str(tmp_path / "r"))
    assert code == 0 and "actbench: warning: " in err and "skipped 1 line(s)" in err
    assert cli._warning_line(f"glyph {HOSTILE} missing\nsecond line", UserWarning, "f.py", 1) == \
        f"actbench: warning: glyph {SHOWN} missing\\nsecond line\n"  # one line, whatever a library quotes
    code, out, err = actbench(capfd, monkeypatch, "report", str(tmp_path / "lm"), "--baseline", "nope")  # the error lists the names
    assert code == 2 and err.startswith("actbench: error: --baseline: ") and f"activations in these results: relu2, {SHOWN}" in err


def test_markdown_cells_stay_one_cell_of_one_row():
    table = markdown(pd.DataFrame({"activation": ["a|b\nc\x1b[31m"], "x|y": [1.5]}))
    assert table.splitlines() == ["| activation | x\\|y |", "|---|---|", "| a\\|b\\nc\\x1b[31m | 1.5 |"]
