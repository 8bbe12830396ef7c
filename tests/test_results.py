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


def _record(tid: str, kind: str, i: int, status: str = "ok", extra: dict | None = None) -> dict:
    config = {"activation": ("relu2", "xielu")[i % 2], "size": 2 ** (10 + i % 3), "impls": ["eager", "triton"], "seed": i, **(extra or {})}
    rows = [{"impl": impl, "mode": "forward", "ms_p50": 0.1 + i / 100, "gated": False} for impl in ("eager", "triton")]
    return {"trial_id": tid, "attempt": 1, "run_id": "r", "kind": kind, "suite": "s", "config": config, "status": status,
            "metrics": {"eager.ms_p50": 0.1 + i / 100, "nan": math.nan} if status == "ok" else {}, "rows": rows if kind == "kernel" else [],
            "error": None if status == "ok" else {"type": "RuntimeError", "message": "injected"},
            "env": {"hostname": "h", "gpu_name": None, "big": 2**70}}


EXTRA = [{}, {"width": 4096}, {"width": 0.5, "flag": True}, {"flag": "yes"}, {"device": "cpu"}]
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
        lines = [json.dumps(_record(f"t{f}_{i}", kind, i, "failed" if i == 3 else "ok", extra)) for i in range(per + f % 7)]
        lines.insert(5, json.dumps({"trial_id": "not a record", "status": "ok", "config": [1]}))
        lines.append(json.dumps(_record(f"t{f}_3", kind, 3, extra=extra)))  # the retry of the failed trial
        (d / results.RECORDS).write_text("\n".join(lines) + '\n{"trial_id": "torn', encoding="utf-8")
    return root


def _load(root, parallel):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, rows = load_tables(root, parallel=parallel)
    return trials, rows, sorted(str(w.message) for w in caught if issubclass(w.category, ResultsWarning))


@pytest.fixture
def two_cpus_no_threads(monkeypatch):
    """Forking allowed as in a fresh command: two CPUs, and no other Python thread (torch.compile,
    run earlier in this process by other tests, leaves threads behind). Returns the list of
    calls of `_load_in_workers` (which still runs as written)."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    calls, load_in_workers = [], results._load_in_workers
    monkeypatch.setattr(results, "_load_in_workers", lambda *a: calls.append(a) or load_in_workers(*a))
    return calls


def test_loading_in_workers_gives_the_same_tables_and_warnings(tmp_path, two_cpus_no_threads):
    root = _folders(tmp_path, n_folders=30)
    batches = results._batches(results.result_dirs(root), 2)
    assert len(batches) > 2 and max(map(len, batches)) > 1  # 30 folders: several batches, of several folders
    assert [d for b in batches for d in b] == results.result_dirs(root)
    here, there = _load(root, parallel=False), _load(root, parallel=True)
    assert len(two_cpus_no_threads) == 1
    pd.testing.assert_frame_equal(here[0], there[0])
    pd.testing.assert_frame_equal(here[1], there[1])
    assert here[2] == there[2] and len(here[2]) == 30  # each folder's skipped line, named once
    assert len(here[0]) == sum(25 + f % 7 for f in range(30)) and (here[0]["status"] == "ok").all()  # a retry counts once
    assert {"width", "flag", "device"} <= set(here[1].columns)


def _die(dirs, latest_only):
    os._exit(9)  # in the forked worker: the pool breaks


def test_a_killed_worker_falls_back_to_loading_here(tmp_path, monkeypatch, two_cpus_no_threads):
    root = _folders(tmp_path, n_folders=20)
    monkeypatch.setattr(results, "_load_batch", _die)
    trials, rows, caught = _load(root, parallel=True)
    assert len(two_cpus_no_threads) == 1
    want = _load(root, parallel=False)
    pd.testing.assert_frame_equal(trials, want[0])
    pd.testing.assert_frame_equal(rows, want[1])
    assert caught == want[2]


LOADED_HERE: list[str] = []  # folders `_unreadable_run07` loaded in this process (a forked worker appends to its own copy)


def _unreadable_run07(d, latest_only, load_folder=results._load_folder):
    LOADED_HERE.append(d.name)
    if d.name == "run07":
        raise PermissionError(f"[Errno 13] Permission denied: '{d / results.RECORDS}'")
    return load_folder(d, latest_only)


def test_an_error_in_a_worker_is_raised_as_in_one_process(tmp_path, monkeypatch, two_cpus_no_threads):
    root = _folders(tmp_path, n_folders=20)
    monkeypatch.setattr(results, "_load_folder", _unreadable_run07)  # inherited by the forked workers
    with pytest.raises(PermissionError, match="run07"):
        load_tables(root)
    assert LOADED_HERE[-1] == "run07"
    LOADED_HERE.clear()
    with pytest.raises(PermissionError, match="run07"):
        load_tables(root, parallel=True)
    assert len(two_cpus_no_threads) == 1 and LOADED_HERE == []  # raised from a worker, not loaded again here


def test_workers_only_where_they_pay_and_forking_is_safe(tmp_path, monkeypatch):
    few, many = results.result_dirs(_folders(tmp_path / "few")), results.result_dirs(_folders(tmp_path / "many", n_folders=16))
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # as in a fresh command
    assert results._batches(few, 2) == []  # 4 folders of a few KB
    assert results._batches(many, 2) and results._batches(many, 1) == []  # 16 folders; one CPU
    monkeypatch.setattr(results, "PARALLEL_MIN_BYTES", 0)
    assert results._batches(few, 2) and results._batches(few[:1], 2) == []  # enough bytes; one folder
    monkeypatch.undo()
    monkeypatch.setattr(results, "PARALLEL_MIN_BYTES", 0)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert results._batches(few, 2) == []  # another thread is running: no fork
    finally:
        stop.set()
        other.join()


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
