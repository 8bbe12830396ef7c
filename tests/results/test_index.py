"""The columnar index (`actbench.results.index`): the tables it serves are exactly those decoding
trials.jsonl through the gate gives (same records, same set-asides, same warning), after appends,
a torn or unterminated last line, a same-size rewrite, a truncation, and with its own files
damaged, truncated, empty, planted or written under another key; only appended bytes are parsed."""

from __future__ import annotations

import json
import os
import stat
import sys
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actbench.core.record import encode
from actbench.results import index, read
from actbench.results.frames import load_tables
from actbench.results.index import folder_frames
from actbench.results.read import RECORDS, ResultsWarning

pytest.importorskip("pyarrow")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "actbench"


def _record(i: int, kind: str = "kernel", status: str = "ok", tid: str | None = None) -> bytes:
    config = {"activation": ("relu2", "xielu", "swiglu")[i % 3], "size": 2 ** (10 + i % 3), "impls": ["eager", "triton"], "seed": i,
              **({"device": "cpu"} if i % 4 == 0 else {}), **({"scale": 0.5 if i % 2 else "half"} if i % 5 == 0 else {})}
    rows = [{"impl": impl, "mode": "forward", "ms_p50": 0.1 + i / 100, "gated": i % 2 == 0, **({"device": "cuda"} if j else {})}
            for j, impl in enumerate(("eager", "triton"))]
    return encode({"trial_id": tid or f"t{i}", "attempt": 1, "run_id": "r", "kind": kind, "suite": "s", "config": config,
                   "status": status, "metrics": {"eager.ms_p50": 0.1 + i / 100} if status == "ok" else {},
                   "rows": rows if kind == "kernel" and status == "ok" else [], "env": {"hostname": "h", "gpu_name": None, "n": i % 2},
                   "error": None if status == "ok" else {"type": "RuntimeError", "message": "boom"}})


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(_record(i, ("kernel", "memory", "lm")[i % 3], "failed" if i % 7 == 3 else "ok") + b"\n" for i in range(start, start + n))


def _decoded(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The reference: the folder's tables built from the records decoded from the JSON, and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        every, rows = folder_frames(list(read.iter_records(folder / RECORDS)))
    return every, rows, [str(w.message) for w in caught if issubclass(w.category, ResultsWarning)]


def _served(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        every, rows = index.folder_tables(folder)
    return every, rows, [str(w.message) for w in caught]


def _same(folder: Path) -> None:
    """The index serves what the JSON gives, both when it is brought up to date and when read as it
    is (the same values of the same types; a column that first appears in an appended record may
    come later in the order of columns)."""
    want = _decoded(folder)
    for _ in range(2):
        got = _served(folder)
        assert got[2] == want[2]
        for a, b in zip(got[:2], want[:2]):
            pd.testing.assert_frame_equal(a, b, check_like=True)


@pytest.fixture
def parsed(monkeypatch) -> list[bytes]:
    """Every line the record decoder is handed (the real decoder runs)."""
    seen: list[bytes] = []
    real = read.decode

    def counting(raw: bytes):
        seen.append(raw)
        return real(raw)

    monkeypatch.setattr(read, "decode", counting)
    return seen


def test_appends_parse_only_the_new_lines_and_serve_what_the_json_gives(tmp_path, parsed, cache):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(40))
    _same(folder)
    assert list(cache.glob("index/*/index.json")) and (cache / "index.key").stat().st_mode & 0o777 == 0o600
    with open(folder / RECORDS, "ab") as f:
        f.write(_lines(5, start=40) + _record(3, tid="t3") + b"\n")  # a retry of a failed trial among them
    parsed.clear()
    every, rows, _ = _served(folder)
    assert len(parsed) == 6 and len(every) == 46
    _same(folder)
    trials, measured = load_tables(folder)
    assert trials.loc[trials["trial_id"] == "t3", "status"].tolist() == ["ok"] and (measured["results_dir"] == str(folder)).all()


def test_torn_and_unterminated_last_lines(tmp_path, parsed):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(10) + b'{"trial_id": "torn')
    _same(folder)  # skipped silently
    parsed.clear()
    _served(folder)
    assert parsed == [b'{"trial_id": "torn']  # the torn line is not covered: parsed again, alone
    with open(folder / RECORDS, "ab") as f:  # the next record after it: the torn line is now a line set aside
        f.write(b"\n" + _lines(2, start=10))
    _same(folder)
    with open(folder / RECORDS, "ab") as f:  # a last record without its newline is served, not kept
        f.write(_record(20))
    _same(folder)
    with open(folder / RECORDS, "ab") as f:  # ... and later completed by more bytes of the same line
        f.write(b" \n" + _lines(1, start=21))
    _same(folder)


def test_a_same_size_rewrite_and_a_truncation_rebuild_it(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    data = _lines(30)
    (folder / RECORDS).write_bytes(data)
    _same(folder)
    middle = data.index(b'"relu2"', len(data) // 2)
    (folder / RECORDS).write_bytes(data[:middle] + b'"xielu"' + data[middle + 7:])  # same size, same time stamp resolution
    assert (folder / RECORDS).stat().st_size == len(data)
    _same(folder)
    assert (index.folder_tables(folder)[0]["activation"] == "xielu").sum() == 11
    for cut in (len(data) // 2, data.index(b"\n", len(data) // 3) + 1, 0):  # mid-line, at a line's end, empty
        (folder / RECORDS).write_bytes(data[:cut])
        _same(folder)


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "huge", "foreign", "other folder", "fifo", "link", "folder", "no key"])
def test_a_damaged_or_foreign_index_is_never_believed(tmp_path, cache, damage):
    folder, other = tmp_path / "run", tmp_path / "other"
    for d, n in ((folder, 12), (other, 5)):
        d.mkdir()
        (d / RECORDS).write_bytes(_lines(n))
        index.folder_tables(d)
    place, elsewhere = index.location(folder), index.location(other)
    meta = json.loads((place / index.META).read_bytes())
    if damage == "flip":
        raw = bytearray((place / index.TRIALS).read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        (place / index.TRIALS).write_bytes(bytes(raw))
    elif damage == "truncate":
        (place / index.ROWS).write_bytes((place / index.ROWS).read_bytes()[:100])
    elif damage == "empty":
        (place / index.META).write_bytes(b"")
    elif damage == "huge":  # sparse, 1.25 GiB: read no further than the size the index wrote
        with open(place / index.ROWS, "r+b") as f:
            f.truncate(5 * 2**28)
    elif damage == "foreign":  # a planted index that claims everything (and is signed with a guessed key)
        (place / index.TRIALS).write_bytes((elsewhere / index.TRIALS).read_bytes())
        import hashlib
        meta["trials"] = hashlib.sha256((place / index.TRIALS).read_bytes()).hexdigest()
        meta["sizes"][0] = (place / index.TRIALS).stat().st_size
        meta["hmac"] = index._signed(index.Meta(**{**meta, "bad": [], "sizes": tuple(meta["sizes"])}), b"0" * 32)
        (place / index.META).write_text(json.dumps(meta))
    elif damage == "other folder":  # another folder's whole, signed index
        for name in (index.TRIALS, index.ROWS, index.META):
            (place / name).write_bytes((elsewhere / name).read_bytes())
    elif damage == "fifo":
        (place / index.META).unlink()
        os.mkfifo(place / index.META)
    elif damage == "link":
        (place / index.TRIALS).unlink()
        (place / index.TRIALS).symlink_to(elsewhere / index.TRIALS)
    elif damage == "folder":
        (place / index.ROWS).unlink()
        (place / index.ROWS).mkdir()
    else:
        (cache / "index.key").write_bytes(os.urandom(32))
    _same(folder)  # served from the JSON, without a traceback or a warning
    if damage not in ("fifo", "folder"):  # rebuilt: believed again
        assert stat.S_ISREG((place / index.META).lstat().st_mode) and index._believed(place, folder, index.key()) is not None


def test_the_results_folder_is_never_written_and_a_file_planted_there_never_read(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(6))
    for name in (index.TRIALS, index.ROWS, index.META):
        (folder / name).write_bytes(b"planted")
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    folder.chmod(0o555)
    try:
        _same(folder)
    finally:
        folder.chmod(0o755)
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before


def test_without_a_usable_cache_or_pyarrow_it_reads_the_json(tmp_path, cache, monkeypatch):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(8))
    cache.mkdir(parents=True)
    (cache / "index.key").write_bytes(os.urandom(32))
    (cache / "index.key").chmod(0o644)  # readable by others: not a key to trust
    assert index.key() is None
    _same(folder)
    assert not (cache / "index").exists()
    (cache / "index.key").chmod(0o600)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # no pyarrow installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    _same(folder)
    assert not (cache / "index").exists()


LINES = st.one_of(
    st.integers(0, 40).map(lambda i: _record(i, ("kernel", "memory")[i % 2], "failed" if i % 5 == 4 else "ok", tid=f"t{i % 9}")),
    st.sampled_from([b'{"trial_id": "to', b"not json", b'{"trial_id": "x", "status": "ok", "config": [1]}', b"", b"  ", b"\xff\xfe"]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINES, max_size=12), cuts=st.lists(st.integers(0, 2000), max_size=3), end=st.booleans())
def test_written_in_any_number_of_steps_it_serves_what_the_json_gives(tmp_path_factory, lines, cuts, end):
    folder = tmp_path_factory.mktemp("run")
    data = b"\n".join(lines) + (b"\n" if end else b"")
    with open(folder / RECORDS, "wb") as f:
        for cut in sorted({min(c, len(data)) for c in cuts} | {len(data)}):
            f.write(data[f.tell():cut])
            f.flush()
            _same(folder)


JSON = st.recursive(st.none() | st.booleans() | st.text(max_size=3) | st.integers(-2**64, 2**64) |
                    st.floats(allow_nan=False, min_value=-1e160, max_value=1e160) | st.sampled_from([2**63 - 1, -2**63, 2**63, 1e150, -1e151]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=3), max_leaves=40)


@settings(max_examples=120, deadline=None)
@given(value=JSON, depth=st.integers(0, 34))
def test_series_files_are_bounded_as_records_are(value, depth):
    """The fast check of a series file (lists of numbers at C speed) agrees with the record's own."""
    from actbench.core.record import sane

    for _ in range(depth):
        value = [value]
    assert read._sane(value) == sane(value)


def test_index_command_prints_tables_that_pandas_opens(tmp_path, monkeypatch, capsys):
    """`actbench index` brings each folder's index up to date and prints its Parquet paths; read
    with plain pandas they hold every record and row of trials.jsonl (JSON columns as text)."""
    from actbench.cli import main

    for name, lines in (("a", _lines(5)), ("b\nc", _lines(4, 5))):  # a newline in a folder's name is printed escaped
        (tmp_path / name).mkdir()
        (tmp_path / name / RECORDS).write_bytes(lines)
    monkeypatch.setattr(sys, "argv", ["actbench", "index", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr().out.splitlines()
    assert e.value.code in (0, None) and len(out) == 2 and out[1].startswith(f"{tmp_path}/b\\nc: ")
    for line, name in zip(out, ("a", "b\nc")):
        trials_path, rows_path = line.rsplit(": ", 1)[1].split(" ")
        want_trials, want_rows, _ = _decoded(tmp_path / name)
        trials, rows = pd.read_parquet(trials_path), pd.read_parquet(rows_path)
        assert list(trials["trial_id"]) == list(want_trials["trial_id"]) and len(rows) == len(want_rows) > 0
        assert json.loads(trials["config"][0]) == want_trials["config"][0]
    monkeypatch.setattr(sys, "argv", ["actbench", "index", str(tmp_path / "none")])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2 and "no trials.jsonl" in capsys.readouterr().err


def test_an_index_built_by_other_code_is_rebuilt(tmp_path, parsed, cache, monkeypatch):
    """A later actbench that shapes its tables differently never serves a table in the old shape:
    the code that built an index is part of what it is believed for."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(20))
    _same(folder)
    parsed.clear()
    _served(folder)
    assert parsed == []  # believed as it stands
    monkeypatch.setattr(index, "code_version", lambda: "1-other-code")
    _served(folder)
    assert len(parsed) == 20  # rebuilt from the JSON
    _same(folder)


COLUMNS = ({"status", "config", "metric.eager.ms_p50", "results_dir", "absent"}, {"impl", "gated", "device", "size", "results_dir", "absent"})


def test_columns_read_are_the_whole_tables_columns(tmp_path, monkeypatch):
    """`columns=` gives exactly those columns of the whole tables (every attempt and last attempts
    alike), from the JSON, from a fresh index, from a believed one (no other column read) and
    while bringing it up to date; a column no record has is absent."""
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(40) + _record(3, tid="t3") + b"\n" + _record(41))  # a retry; a last line without its newline
    read_columns: list[str] = []
    real = index._arrow

    def spied(raw, columns=None):
        table = real(raw, columns)
        read_columns.extend(table.column_names)
        return table

    monkeypatch.setattr(index, "_arrow", spied)

    def same_as_whole() -> None:
        for latest_only in (True, False):
            read_columns.clear()
            got = load_tables(folder, latest_only, columns=COLUMNS)
            assert not set(read_columns) - COLUMNS[0] - COLUMNS[1] - {"trial_id", "_record"}
            whole = load_tables(folder, latest_only)
            for a, b, names in zip(got, whole, COLUMNS):
                assert "absent" not in a.columns and len(a.columns) >= 3
                pd.testing.assert_frame_equal(a, b[[c for c in b.columns if c in names]])

    (tmp_path / "not a folder").write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not a folder"))  # no cache can be made: the JSON is read
    same_as_whole()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    same_as_whole()  # written, then believed
    with open(folder / RECORDS, "ab") as f:  # brought up to date by a read of some columns: the index is kept whole
        f.write(b"\n" + _lines(4, start=42) + _record(10, tid="t10") + b"\n")
    got = index.folder_tables(folder, COLUMNS)
    assert [set(t.columns) for t in got] == [{"trial_id", "status", "config", "metric.eager.ms_p50", "results_dir"},
                                             {"_record", "impl", "gated", "device", "size", "results_dir"}]
    _same(folder)
    same_as_whole()


def test_a_cache_folder_others_may_open_is_made_private(tmp_path, cache):
    """A cache folder of this user's that group or others could open (made by hand, or by a umask)
    was used as it was: other users could read the parsed results or delete entries."""
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_record(0) + b"\n")
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    assert index.update(folder) is not None
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(index.location(folder)).st_mode) == 0o700


def _bytes_read() -> int:
    """Bytes this process has read through system calls so far (Linux: /proc/self/io)."""
    return int(Path("/proc/self/io").read_text().split("rchar:")[1].split()[0])


@pytest.fixture
def settle(monkeypatch):
    """`settle(True)`: files settle (`gate.settled`) 0.05 s after their last change (waited for),
    not 5 s: the real rule, sooner; `settle(False)`: no file settles (as when read at once)."""
    import time

    from actbench.results import gate

    def to(settled: bool) -> None:
        if settled:
            time.sleep(0.1)
        monkeypatch.setattr(gate, "SETTLED_S", 0.05 if settled else 3600.0)

    return to


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="counts the bytes read through /proc/self/io (Linux)")
def test_a_settled_unchanged_file_is_served_without_reading_its_bytes(tmp_path, settle):
    """Its bytes are vouched for by its settled identity (recorded when they were last hashed),
    not hashed again; a file read before it settled is hashed, and index.json signed again with the
    identity once it has settled."""
    settle(False)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RECORDS).write_bytes(_lines(20) + b"x" * 2**22 + b"\n" + _lines(5, start=20))  # a 4 MiB line set aside
    size = (folder / RECORDS).stat().st_size
    _same(folder)  # read at once: not settled, so no identity recorded
    place = index.location(folder)
    assert json.loads((place / index.META).read_bytes())["identity"] == ""
    before = _bytes_read()
    _served(folder)
    assert _bytes_read() - before > size  # hashed: nothing vouches for it yet
    settle(True)
    before = _bytes_read()
    _same(folder)  # hashed once more, and the identity recorded
    assert _bytes_read() - before > size and json.loads((place / index.META).read_bytes())["identity"] != ""
    for _ in range(2):
        before = _bytes_read()
        got = _served(folder)
        assert _bytes_read() - before < size // 4  # index.json and the Parquet files only
        want = _decoded(folder)
        for a, b in zip(got, want):
            if isinstance(a, list):
                assert a == b
            else:
                pd.testing.assert_frame_equal(a, b, check_like=True)


@pytest.mark.parametrize("change", ["append", "same size", "same size and time", "truncate", "rename over", "empty"])
def test_a_changed_file_is_never_served_stale_whenever_it_is_read(tmp_path, settle, change):
    """A change to trials.jsonl after its identity was recorded, read at once (inside the settle
    window), then again after it settled (its new identity recorded), and changed back: the tables
    are always those of the bytes now there."""
    folder = tmp_path / "run"
    folder.mkdir()
    path = folder / RECORDS
    data = _lines(30)
    path.write_bytes(data)
    settle(True)
    _same(folder)
    assert json.loads((index.location(folder) / index.META).read_bytes())["identity"] != ""  # vouched for from now on
    middle = data.index(b'"relu2"', len(data) // 2)
    changed = {"append": data + _lines(2, start=30), "same size": data[:middle] + b'"xielu"' + data[middle + 7:],
               "truncate": data[:data.index(b"\n", len(data) // 2) + 1], "empty": b""}
    changed["same size and time"] = changed["rename over"] = changed["same size"]
    for step in range(2):
        stamp = path.stat()
        if change == "rename over":  # another file, same size and times, renamed into place
            (folder / "new").write_bytes(changed[change] if step == 0 else data)
            os.utime(folder / "new", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
            os.replace(folder / "new", path)
        else:
            path.write_bytes(changed[change] if step == 0 else data)
            if change == "same size and time":
                os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
        settle(False)
        _same(folder)  # at once
        settle(True)
        _same(folder)  # settled: hashed, then vouched for
