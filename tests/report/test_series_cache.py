"""The series cache (`actbench.results.seriescache` through `report.series.Series`): what a series
file parses to is served from the cache only for exactly the bytes read through the gate, never
from an entry this tool did not write, and a link or a changed file reads as without the cache."""

from __future__ import annotations

import hashlib
import os
import time
import warnings

import numpy as np
import pytest

from actbench.report import seeds as report_seeds
from actbench.report.series import FIRST, Series, TrialSeries, code_version, parse
from actbench.results import gate, index
from actbench.results.read import ResultsWarning, read_series
from actbench.results.seriescache import ArrayCache
from actbench.analysis import stats

from .synthetic import lm_record
from actbench.results.store import ResultStore

SERIES = {"train": {"step": [0, 1, 2], "loss": [3.0, 2.5, 2.25], "tokens": [0, 64, 128], "time_s": [0.0, 0.5, 1.0]},
          "val": {"step": [1, 2], "tokens": [64, 128], "time_s": [0.5, 1.0], "loss": [2.75, 2.5], "bpb": [1.5, 1.25]},
          "alphas": {"step": [0, 2], "layer": [0, 0], "alpha_p": [0.8, 0.75], "alpha_n": [0.8, 0.5]},
          "eval_chunks": {"nats": [1.5, 2.5, 3.5], "bytes": [10.0, 20.0, 30.0], "tokens": [5.0, 10.0, 15.0]},
          "val_argmax": [1, 7, 65535, 3]}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "actbench"


@pytest.fixture
def folder(tmp_path):
    ResultStore(tmp_path / "run").append(lm_record("relu2", 0, 1.5), series=SERIES)
    return tmp_path / "run"


def _file(folder) -> str:
    return f"series/{next((folder / 'series').iterdir()).name}"


def _arrays(t: TrialSeries) -> list[tuple[str, np.ndarray]]:
    out = [("argmax", t.argmax)] if t.argmax is not None else []
    return out + [(f"{name}.{c}", a) for name in ("chunks", "train", "val", "alphas") for c, a in (getattr(t, name) or {}).items()]


def _same(a: TrialSeries, b: TrialSeries) -> bool:
    x, y = _arrays(a), _arrays(b)
    return [n for n, _ in x] == [n for n, _ in y] and all(
        p.dtype == q.dtype and p.flags.writeable == q.flags.writeable and np.array_equal(p, q, equal_nan=True) for (_, p), (_, q) in zip(x, y))


def _entries(cache) -> list:
    return sorted((cache / "series").glob("*/*"))


def _entry(cache, folder, rel: str, part: str):
    """The cache file of one part ("first": what compare reads of every trial, "rest") of a series file."""
    place = ArrayCache.series(folder, code_version())
    return cache / "series" / index.location(folder).name / place._name(f"{rel}\x00{part}")


def _source(folder, rel: str) -> bytes:
    return hashlib.sha256((folder / rel).read_bytes()).digest()


def test_a_cached_series_is_served_as_a_parse_gives_it(folder, cache, settle):
    rel = _file(folder)
    first = Series().get(folder, rel)
    assert len(_entries(cache)) == 2 and all(_entry(cache, folder, rel, p).is_file() for p in ("first", "rest"))
    again = Series().get(folder, rel)  # a fresh reader: from the cache
    assert _same(again, parse(read_series(folder, rel))) and _same(again, first)
    assert again.argmax.dtype == np.uint16 and again.chunks["nats"].dtype == np.float64 and again.train["step"].flags.writeable
    compared = Series()
    part = compared.get(folder, rel, FIRST)  # what compare reads of every trial: the rest is read when asked for
    assert part.chunks is not None and part.val is not None and part.argmax is None and part.train is None
    assert compared.get(folder, rel, ("argmax",)) is part and _same(part, first)
    _entry(cache, folder, rel, "rest").unlink()  # gone: the file is read again for the rest
    compared = Series()
    assert _same(compared.get(folder, rel, FIRST), TrialSeries(chunks=first.chunks, val=first.val)) and _same(compared.get(folder, rel), first)
    # what it serves is the entry: one this tool signed for those bytes, with other arrays, is what comes back
    ArrayCache.series(folder, code_version()).store(f"{rel}\x00first", _source(folder, rel), {"chunks.nats": np.array([9.0])})
    assert Series().get(folder, rel).chunks == {"nats": np.array([9.0])}


@pytest.fixture(params=["within the settle window", "settled at once"])
def settle(request, monkeypatch):
    """Files read within `gate.SETTLED_S` of their last change (identities vouch for nothing: every
    file is read and hashed), or a window of 0 (every file settled: its identity may stand for its bytes)."""
    if request.param == "settled at once":
        monkeypatch.setattr(gate, "SETTLED_S", 0.0)
    return request.param


def _unread(monkeypatch) -> None:
    """Any read of a series file's bytes from here on fails the test."""
    def refuse(*_):
        raise AssertionError("the file's bytes were read")
    monkeypatch.setattr(gate, "read_open", refuse)


def test_a_settled_unchanged_file_is_served_without_reading_it_and_a_changed_one_is_read(folder, cache, monkeypatch):
    rel, path = _file(folder), folder / _file(folder)
    Series().get(folder, rel)  # just written: read and hashed, its identity not yet settled, so not recorded
    monkeypatch.setattr(gate, "SETTLED_S", 0.0)
    truth = Series().get(folder, rel)  # read and hashed again: now settled, its identity recorded with the entry
    with monkeypatch.context() as m:
        _unread(m)
        assert _same(Series().get(folder, rel), truth)
        compared = Series()
        assert _same(compared.get(folder, rel, FIRST), TrialSeries(chunks=truth.chunks, val=truth.val))
        assert _same(compared.get(folder, rel), truth)  # the rest: from its entry for the same digest
    text = path.read_text()
    for change in ("appended", "replaced"):
        time.sleep(0.05)  # past the file system's timestamp tick: the change time moves
        if change == "appended":
            path.write_text(text.replace("3.5", "4.5", 1) + " ")
        else:
            (folder / "new.json").write_text(text.replace("3.5", "5.5", 1))
            os.replace(folder / "new.json", path)
        assert Series().get(folder, rel).chunks["nats"].tolist()[-1] == (4.5 if change == "appended" else 5.5)


def test_a_first_parse_holds_only_what_compare_reads_and_the_rest_comes_from_its_entry(folder, cache, monkeypatch):
    rel = _file(folder)
    truth = parse(read_series(folder, rel))
    compared = Series()
    part = compared.get(folder, rel, FIRST)  # parsed now, and cached: held as one served from the cache
    assert part.chunks is not None and part.val is not None and part.argmax is None and part.train is None
    with monkeypatch.context() as m:
        _unread(m)  # the rest: from the entry just written, not from the file again
        assert _same(compared.get(folder, rel), truth)


def test_a_trials_parts_come_from_one_version_of_its_file(folder, cache):
    """Compare holds a trial's chunks; its rest comes later. If the rest's entry is gone and the file
    changed meanwhile, the new bytes' curves are not joined to the old chunks: they are left out, with
    a warning (before: the report's curves came from other bytes than its table)."""
    rel, path = _file(folder), folder / _file(folder)
    compared = Series()
    part = compared.get(folder, rel, FIRST)
    _entry(cache, folder, rel, "rest").unlink()
    path.write_text(path.read_text().replace("2.25", "9.25"))
    with pytest.warns(ResultsWarning, match="changed while these results were read"):
        whole = compared.get(folder, rel)
    assert whole is part and whole.chunks["nats"].tolist() == [1.5, 2.5, 3.5] and whole.train is None and whole.argmax is None


def test_a_file_changed_after_caching_is_read_again_even_with_its_size_and_times_restored(folder, cache, settle):
    rel = _file(folder)
    path = folder / rel
    assert Series().get(folder, rel).chunks["nats"].tolist() == [1.5, 2.5, 3.5]
    assert Series().get(folder, rel).chunks["nats"].tolist() == [1.5, 2.5, 3.5]  # settled at once: now served by its identity
    time.sleep(0.05)  # past the file system's timestamp tick (within it, the settle window is what guards)
    st = os.stat(path)
    text = path.read_text()
    changed = text.replace("3.5", "4.5", 1)
    assert len(changed) == len(text) and changed != text
    path.write_text(changed)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert Series().get(folder, rel).chunks["nats"].tolist() == [1.5, 2.5, 4.5]


@pytest.mark.parametrize("part", ["first", "rest"])
@pytest.mark.parametrize("forgery", ["other key", "bit flipped", "other folder's entry", "other code"])
def test_a_planted_or_forged_entry_is_not_believed(folder, cache, tmp_path, forgery, part):
    rel = _file(folder)
    truth = Series().get(folder, rel)
    entry = _entry(cache, folder, rel, part)
    key, planted = f"{rel}\x00{part}", {"argmax" if part == "rest" else "chunks.nats": np.array([9], dtype=np.uint16)}
    if forgery == "other key":
        ArrayCache(entry.parent, os.path.realpath(folder), code_version(), os.urandom(32)).store(key, _source(folder, rel), planted)
    elif forgery == "bit flipped":
        raw = bytearray(entry.read_bytes())
        raw[-40] ^= 1
        entry.write_bytes(bytes(raw))
    elif forgery == "other folder's entry":  # signed by this tool, for the same path and bytes in another folder
        ResultStore(tmp_path / "other").append(lm_record("relu2", 0, 1.5), series=SERIES)
        (tmp_path / "other" / rel).write_bytes((folder / rel).read_bytes())
        ArrayCache.series(tmp_path / "other", code_version()).store(key, _source(folder, rel), planted)
        os.replace(_entry(cache, tmp_path / "other", rel, part), entry)
    else:  # written by other code (another parse): never served to this one
        ArrayCache(entry.parent, os.path.realpath(folder), "0" * 16, index.key()).store(key, _source(folder, rel), planted)
    assert _same(Series().get(folder, rel), truth)


def test_a_link_planted_in_place_of_a_cached_series_file_is_refused_as_without_the_cache(folder, cache, tmp_path, settle):
    rel = _file(folder)
    assert Series().get(folder, rel).argmax is not None
    kept = tmp_path / "elsewhere.json"
    os.replace(folder / rel, kept)
    (folder / rel).symlink_to(kept)  # the same bytes, behind a link
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = Series().get(folder, rel)
    assert _same(got, TrialSeries())
    assert [str(w.message) for w in caught if w.category is ResultsWarning] == [
        f"{folder / rel}: not read: a symbolic link (links inside a results folder are not followed)"]


def test_a_refused_file_warns_on_every_read_and_is_never_cached(folder, cache):
    rel = _file(folder)
    (folder / rel).write_text('{"train": {"step": [1e200]}}')  # a number beyond the bound: refused with a warning
    for _ in range(2):
        with pytest.warns(ResultsWarning, match="not read: a number beyond"):
            assert _same(Series().get(folder, rel), TrialSeries())
    assert not _entries(cache)


def test_a_curve_of_nested_lists_is_another_shape_read_alike_with_and_without_the_cache(folder, cache):
    """A validation curve whose columns are lists of lists (2-D) is a table of another shape (None),
    as its chunks or predictions would be; the parse kept them 2-D, and the cache, which keeps 1-D
    arrays, served them cut to their first rows' length and shifted from column to column."""
    rel = _file(folder)
    (folder / rel).write_text('{"val": {"step": [[1, 2], [3, 4]], "tokens": [[64, 128], [192, 256]], "bpb": [[2, 1.5], [1.25, 1]]},'
                              ' "eval_chunks": {"nats": [1.5, 2.5], "bytes": [10, 20]}}')
    assert parse(read_series(folder, rel)).val is None
    cold = Series().get(folder, rel)
    assert _same(cold, parse(read_series(folder, rel))) and _same(Series().get(folder, rel), cold)


def test_an_entry_too_large_to_be_read_back_is_never_written(folder, cache):
    """Arrays whose entry would exceed what `load` reads (a series file of `gate.MAX_SERIES` bytes
    of "0," parses to four times that as float64) are not kept: such an entry was built (copies
    of every array in memory) and written on every read, then never served."""
    rel = _file(folder)
    Series().get(folder, rel)
    entry = _entry(cache, folder, rel, "first")
    entry.unlink()
    huge = np.broadcast_to(np.float64(1.0), (gate.MAX_SERIES // 8 + 1,))  # a view: 8 bytes held until it is copied
    ArrayCache.series(folder, code_version()).store(f"{rel}\x00first", _source(folder, rel), {"chunks.nats": huge})
    assert not entry.exists()


def test_skew_limits_are_kept_for_later_calls_and_a_forged_one_is_not_believed(cache):
    assert report_seeds.skew_limit.__wrapped__(5) == stats.skew_limit(5)
    entry, = (cache / "computed").iterdir()
    assert report_seeds.skew_limit.__wrapped__(5) == stats.skew_limit(5)  # served from the entry
    ArrayCache(entry.parent, "computed", report_seeds._stats_version(), os.urandom(32)).store("stats.skew_limit 5", b"", {"limit": np.array([9.0])})
    assert report_seeds.skew_limit.__wrapped__(5) == stats.skew_limit(5)
    ArrayCache.computed(report_seeds._stats_version()).store("stats.skew_limit 5", b"", {"limit": np.array([9.0])})
    assert report_seeds.skew_limit.__wrapped__(5) == 9.0  # what it serves is the signed entry


def test_the_code_version_changes_with_the_record_module_the_parse_checks_numbers_with(tmp_path, monkeypatch):
    """A series file is refused or decoded by `core.record` (decode_json, LIMIT, INT_LIMIT,
    MAX_DEPTH): entries parsed under another version of it are not served (a file the new bounds
    refuse would be served from an entry made before)."""
    from actbench.core import record

    code_version.cache_clear()
    before = code_version()
    changed = tmp_path / "record.py"
    changed.write_bytes(open(record.__file__, "rb").read().replace(b"LIMIT", b"LIMIT ", 1))
    monkeypatch.setattr(record, "__file__", str(changed))
    code_version.cache_clear()
    try:
        assert code_version() != before
    finally:
        monkeypatch.undo()
        code_version.cache_clear()
