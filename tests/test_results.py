"""Reading results: `parse_json` gives what json.loads gives, and loading folders in worker
processes gives the tables, warnings and fallbacks of loading them here."""

from __future__ import annotations

import json
import math
import os
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

from actbench import results
from actbench.results import ResultsWarning, load_tables, parse_json

TEXTS = [b'{"a": 1, "a": 2}', b"NaN", b"[Infinity, -Infinity]", b"1e400", b"123456789012345678901234567890",
         b"-9223372036854775809", b"18446744073709551616", b'"\\ud800"', b'\xef\xbb\xbf{"a": 1}', b'{"s": "\\u00e9\\ud83d\\ude00\\t"}',
         b"[1.0000000000000002, 5e-324, 2.5e-400, -0.0, 1E2]", b"[" * 5000 + b"]" * 5000, b'"\xff"', b"[1,]", b"", b'{"a": 1} x',
         "{\"é\": [true, false, null]}".encode(), b"0.1e1"]


def _outcome(fn, raw):
    try:
        value = fn(raw)
    except Exception as e:  # noqa: BLE001 - the kind of failure is what is compared
        return type(e)
    return json.dumps(value, allow_nan=True), type(value)


@pytest.mark.parametrize("raw", TEXTS)
def test_parse_json_gives_what_json_gives(raw):
    assert _outcome(parse_json, raw) == _outcome(json.loads, raw)


def test_parse_json_reads_every_double_and_long_decimal_as_json_does():
    rng = np.random.default_rng(0)
    doubles = np.frombuffer(rng.bytes(8 * 20000), dtype=np.float64)
    doubles = [float(v) for v in doubles[np.isfinite(doubles)]] + list(rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000))
    decimals = ["0." + "".join(map(str, rng.integers(0, 10, 30))) + f"e{int(e)}" for e in rng.integers(-330, 310, 5000)]
    for text in (json.dumps(doubles), "[" + ",".join(decimals) + "]", json.dumps([int(v) for v in rng.integers(-2**62, 2**62, 1000)])):
        got, want = parse_json(text.encode()), json.loads(text)
        assert got == want and [type(v) for v in got] == [type(v) for v in want]


def _record(tid: str, kind: str, i: int, status: str = "ok") -> dict:
    config = {"activation": ("relu2", "xielu")[i % 2], "size": 2 ** (10 + i % 3), "impls": ["eager", "triton"], "seed": i}
    rows = [{"impl": impl, "mode": "forward", "ms_p50": 0.1 + i / 100, "gated": False} for impl in ("eager", "triton")]
    return {"trial_id": tid, "attempt": 1, "run_id": "r", "kind": kind, "suite": "s", "config": config, "status": status,
            "metrics": {"eager.ms_p50": 0.1 + i / 100, "nan": math.nan} if status == "ok" else {}, "rows": rows if kind == "kernel" else [],
            "error": None if status == "ok" else {"type": "RuntimeError", "message": "injected"},
            "env": {"hostname": "h", "gpu_name": None, "big": 2**70}}


def _folders(root, n_folders: int = 4, per: int = 25):
    """Folders of kernel and memory records with a failed trial, a retried one (the later attempt
    counts), a line that is not a record and a torn last line in every folder."""
    for f in range(n_folders):
        d = root / f"run{f}"
        d.mkdir(parents=True)
        lines = [json.dumps(_record(f"t{f}_{i}", ("kernel", "memory")[f % 2], i, "failed" if i == 3 else "ok")) for i in range(per)]
        lines.insert(5, json.dumps({"trial_id": "not a record", "status": "ok", "config": [1]}))
        lines.append(json.dumps(_record(f"t{f}_3", "kernel", 3)))  # the retry of the failed trial
        (d / results.RECORDS).write_text("\n".join(lines) + '\n{"trial_id": "torn', encoding="utf-8")
    return root


def _load(root, parallel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, rows = load_tables(root, parallel=parallel)
    return trials, rows, sorted(str(w.message) for w in caught if issubclass(w.category, ResultsWarning))


def test_loading_in_workers_gives_the_same_tables_and_warnings(tmp_path, monkeypatch):
    root = _folders(tmp_path)
    monkeypatch.setattr(results, "PARALLEL_MIN_BYTES", 0)
    assert results._load_workers(results.result_dirs(root)) == min(4, len(os.sched_getaffinity(0)))
    here, there = _load(root, parallel=False), _load(root, parallel=True)
    pd.testing.assert_frame_equal(here[0], there[0])
    pd.testing.assert_frame_equal(here[1], there[1])
    assert here[2] == there[2] and len(here[2]) == 4  # each folder's skipped line, named once
    assert len(here[0]) == 4 * 25 and (here[0]["status"] == "ok").all()  # retries count once, as their later attempt


def _die(d, latest_only):
    os._exit(9)  # in the forked worker: the pool breaks


def test_a_killed_worker_falls_back_to_loading_here(tmp_path, monkeypatch):
    root = _folders(tmp_path)
    monkeypatch.setattr(results, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(results, "_load_folder_in_worker", _die)
    trials, rows, caught = _load(root, parallel=True)
    want = _load(root, parallel=False)
    pd.testing.assert_frame_equal(trials, want[0])
    pd.testing.assert_frame_equal(rows, want[1])
    assert caught == want[2]


def test_workers_only_where_they_pay_and_forking_is_safe(tmp_path, monkeypatch):
    dirs = results.result_dirs(_folders(tmp_path))
    assert results._load_workers(dirs) == 1  # a few KB of records
    monkeypatch.setattr(results, "PARALLEL_MIN_BYTES", 0)
    assert results._load_workers(dirs[:1]) == 1  # one folder
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert results._load_workers(dirs) == 1  # another thread: no fork
    finally:
        stop.set()
        other.join()
    assert results._load_workers(dirs) > 1 or len(os.sched_getaffinity(0)) == 1


def test_lines_that_are_not_records_are_named_and_a_torn_last_line_is_not(tmp_path):
    good = json.dumps(_record("a", "memory", 1))
    path = tmp_path / results.RECORDS
    path.write_bytes(b"\n".join([good.encode(), b"{not json", b"", good.replace('"a"', '"b"').encode(), b'{"x": "\xff"}', b"[1]",
                                 b'{"trial_id": "c", "status": "ok", "con', b"  ", b""]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = [r["trial_id"] for r in results.iter_records(path)]
    assert ids == ["a", "b"]
    (w,) = caught
    assert str(w.message) == (f"{path}:2: skipped 3 line(s) that are not trial records (line 2: not JSON (a torn record of an "
                              "earlier crash?); line 5: not UTF-8; line 6: a JSON list, not an object)")
