"""Reading results folders: each line of a trials.jsonl checked by the record's one decoder (lines
that are not records named once per file, a torn last line skipped silently), the last attempt of
every trial, and the tables of many folders of different kinds."""

from __future__ import annotations

import json
import math
import warnings

from actbench.core.record import encode
from actbench.results import read
from actbench.results.frames import load_tables
from actbench.results.read import ResultsWarning


def _record(tid: str, kind: str, i: int, status: str = "ok", extra: dict | None = None) -> dict:
    config = {"activation": ("relu2", "xielu")[i % 2], "size": 2 ** (10 + i % 3), "impls": ["eager", "triton"], "seed": i, **(extra or {})}
    rows = [{"impl": impl, "mode": "forward", "ms_p50": 0.1 + i / 100, "gated": False} for impl in ("eager", "triton")]
    return {"trial_id": tid, "attempt": 1, "run_id": "r", "kind": kind, "suite": "s", "config": config, "status": status,
            "metrics": {"eager.ms_p50": 0.1 + i / 100, "nan": math.nan} if status == "ok" else {}, "rows": rows if kind == "kernel" else [],
            "error": None if status == "ok" else {"type": "RuntimeError", "message": "injected"},
            "env": {"hostname": "h", "gpu_name": None, "big": 2**60}}


EXTRA = [{}, {"scale": 4096}, {"scale": 0.5, "flag": True}, {"flag": "yes"}, {"device": "cpu"}]
"""Config fields some folders have and others lack, of different types: how the tables join them
must not depend on how the folders are grouped."""


def _folders(root, n_folders: int = 4, per: int = 25):
    """Folders of kernel, memory and rowless records (config fields varying between folders) with a
    failed trial, a retried one (the later attempt counts), a line that is not a record and a
    torn last line in every folder."""
    for f in range(n_folders):
        d = root / f"run{f:02d}"
        d.mkdir(parents=True)
        kind, extra = ("kernel", "memory", "lm")[f % 3], EXTRA[f % len(EXTRA)]
        lines = [encode(_record(f"t{f}_{i}", kind, i, "failed" if i == 3 else "ok", extra)).decode() for i in range(per + f % 7)]
        lines.insert(5, json.dumps({"trial_id": "not a record", "status": "ok", "config": [1]}))
        lines.append(encode(_record(f"t{f}_3", kind, 3, extra=extra)).decode())  # the retry of the failed trial
        (d / read.RECORDS).write_text("\n".join(lines) + '\n{"trial_id": "torn', encoding="utf-8")
    return root


def test_folders_of_every_kind_load_with_their_last_attempts_and_one_warning_each(tmp_path):
    root = _folders(tmp_path, n_folders=6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, rows = load_tables(root)
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, ResultsWarning))
    assert len(messages) == 6 and all("skipped 1 line(s) that are not trial records (line 6: config is a list, not an object)" in m
                                      for m in messages)
    per_folder = trials.groupby("results_dir").size()
    assert list(per_folder) == [25 + f % 7 for f in range(6)]  # one row per trial: the retry replaced the failed attempt
    assert (trials["status"] == "ok").all() and trials["metric.nan"].isna().all()  # NaN was written as null
    assert set(trials.loc[trials["kind"] == "memory", "scale"].dropna()) == {4096}  # a field of some folders only
    kernel = trials[trials["kind"] == "kernel"]
    assert len(rows) == 2 * len(kernel) and set(rows["impl"]) == {"eager", "triton"}  # rows of kernel trials only, with their config
    assert (rows["suite"] == "s").all() and rows["trial_id"].isin(kernel["trial_id"]).all()
    everything, _ = load_tables(root, latest_only=False)
    assert len(everything) == len(trials) + 6  # the failed attempts too


def test_lines_that_are_not_records_are_named_and_a_torn_last_line_is_not(tmp_path):
    good = encode(_record("a", "memory", 1)).decode()
    path = tmp_path / read.RECORDS
    path.write_bytes(b"\n".join([good.encode(), b"{not json", b"", good.replace('"a"', '"b"').encode(), b'{"x": "\xff"}', b"[1]",
                                 b'{"trial_id": "c", "status": "ok", "con', b"  ", b""]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = [r.trial_id for r in read.iter_records(path)]
    assert ids == ["a", "b"]
    (w,) = caught
    assert str(w.message) == (f"{path}:2: skipped 3 line(s) that are not trial records (line 2: not JSON (a torn record of an "
                              "earlier crash?); line 5: not UTF-8; line 6: a JSON list, not an object)")
