"""Trees of many small results folders (`frames.load_tables`): their trials.jsonl read record by
record and made into tables in one batch give exactly the tables of reading each folder through its
columnar index (columns, order, dtypes, values, warnings), and thousands of them load in seconds."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from actbench.results import frames
from actbench.results.frames import load_tables
from actbench.results.read import RECORDS, ResultsWarning
from tests.results.test_index import _lines, _record

pytest.importorskip("pyarrow")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "actbench"


def _tree(root: Path) -> None:
    """Big folders (through their index) among small ones of every shape."""
    files = {
        "a_big": _lines(400),
        "b_small": _lines(3, start=7),
        "c_retried": _record(3, status="failed") + b"\n" + _record(4) + b"\n" + _record(3, tid="t3") + b"\n",
        "d_failed": _record(10, status="failed") + b"\n" + _record(11, "memory", status="failed") + b"\n",
        "e_torn": _lines(2, start=20) + b'{"trial_id": "torn',
        "f_set_aside": _lines(1, start=30) + b"not json\n" + _lines(2, start=31),
        "g_big": _lines(300, start=100) + b"[1]\n" + _record(101, tid="t100") + b"\n",
        "h_memory": _lines(1, start=1),
        "i_empty": b"",
        "j_lm": _record(5, "lm") + b"\n" + _record(6, tid="t0") + b"\n",
        "k_unterminated": _lines(1, start=40) + _record(41),
        "nested/l_small": _lines(4, start=50),
        **{f"m{i:02d}": _record(60 + i, status="failed" if i % 9 == 4 else "ok") + b"\n" for i in range(frames.MANY_FOLDERS)},
    }
    for name, data in files.items():
        (root / name).mkdir(parents=True)
        (root / name / RECORDS).write_bytes(data)
    assert (root / "a_big" / RECORDS).stat().st_size > frames.SMALL_FOLDER > (root / "b_small" / RECORDS).stat().st_size


def _loaded(root: Path, **kw) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trials, rows = load_tables(root, **kw)
    return trials, rows, [str(w.message) for w in caught if issubclass(w.category, ResultsWarning)]


@pytest.mark.parametrize("kw", [{}, {"latest_only": False},
                                {"columns": (["status", "activation", "scale", "metric.eager.ms_p50"], ["impl", "ms_p50", "device", "trial_id"])}])
def test_small_folders_in_one_batch_give_the_tables_of_each_folder_read_alone(tmp_path, monkeypatch, cache, kw):
    _tree(tmp_path)
    got = _loaded(tmp_path, **kw)
    assert len(list(cache.glob("index/*/index.json"))) == 2  # only the big folders read through an index
    monkeypatch.setattr(frames, "SMALL_FOLDER", -1)  # every folder through its index, one at a time
    for _ in range(2):  # the indexes written, then read
        want = _loaded(tmp_path, **kw)
        assert got[2] == want[2] and sum("f_set_aside" in w for w in got[2]) == 1 and len(got[2]) == 2
        for a, b in zip(got[:2], want[:2]):
            assert list(a.columns) == list(b.columns)
            pd.testing.assert_frame_equal(a, b, check_exact=True)
    if "columns" in kw:
        assert list(got[0].columns) == ["activation", "scale", "status", "metric.eager.ms_p50"]
        return
    assert set(got[0]["results_dir"]) == {str(p.parent) for p in tmp_path.rglob(RECORDS)} - {str(tmp_path / "i_empty")}
    retried = got[0][got[0]["results_dir"] == str(tmp_path / "c_retried")]
    assert retried["trial_id"].tolist() == (["t3", "t4"] if kw.get("latest_only", True) else ["t3", "t4", "t3"])
    assert retried["status"].tolist()[:2] == (["ok", "ok"] if kw.get("latest_only", True) else ["failed", "ok"])

def test_two_thousand_one_record_folders_load_in_seconds(tmp_path):
    """Each folder through its index cost 10-20 ms (~40 s here); read in one batch, ~1 s."""
    for i in range(2000):
        (tmp_path / f"f{i:04d}").mkdir()
        (tmp_path / f"f{i:04d}" / RECORDS).write_bytes(_record(i, tid="t") + b"\n")
    start = time.perf_counter()
    trials, rows = load_tables(tmp_path)
    assert time.perf_counter() - start < 6  # generous: a loaded CI machine
    assert len(trials) == 2000 and trials["results_dir"].is_unique and len(rows) == 2 * 2000
    assert (rows["results_dir"].to_numpy() == trials["results_dir"].repeat(2).to_numpy()).all()
