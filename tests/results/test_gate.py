"""The one gate for reading a results folder, on real files: paths that land outside, links,
FIFOs, devices, folders and over-long lines are refused with one warning naming the file; the walk
below a root follows no link out of it and never loops; records holding numbers beyond the bound
are set aside like any line that is not a record; and `run` writes into no FIFO and through no
planted link in its folder."""

from __future__ import annotations

import json
import os
import signal
import warnings
from pathlib import Path

import pytest

from actbench import api
from actbench.core.record import LIMIT, NotARecord, Record, decode, encode
from actbench.errors import UserError
from actbench.results import gate, read
from actbench.results.read import ResultsWarning, iter_records, result_dirs
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor


@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) when the test blocks for 20 s."""
    def hung(*_: object) -> None:
        raise TimeoutError("blocked for 20 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def caught(fn, *args, **kw) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        value = fn(*args, **kw)
        value = list(value) if hasattr(value, "__next__") else value
    return value, [str(w.message) for w in seen if issubclass(w.category, ResultsWarning)]


def test_paths_from_records_stay_inside_their_folder():
    assert gate.relative("series/a.json") == Path("series/a.json") and gate.relative("series/../b.json") == Path("b.json")
    assert [gate.relative(p) for p in ("../x", "series/../../x", "/etc/passwd", "", ".", "a\x00b")] == [None] * 6
    assert gate.kept_suite("llm_tiny") == Path("suites/llm_tiny.yaml") and gate.kept_suite("s", ".activations.json").name == "s.activations.json"
    assert [gate.kept_suite(n) for n in ("../../secret", "a/b", "", ".hidden", 3, None)] == [None] * 6


def test_only_regular_files_inside_the_folder_are_read(tmp_path, deadline):
    folder, outside = tmp_path / "run", tmp_path / "outside.json"
    (folder / "series").mkdir(parents=True)
    outside.write_text('{"secret": 1}')
    (folder / "series" / "ok.json").write_text('{"a": 1}')
    (folder / "series" / "out.json").symlink_to(outside)
    (folder / "series" / "in.json").symlink_to(folder / "series" / "ok.json")  # a link, even one that stays inside
    (folder / "linked").symlink_to(folder / "series", target_is_directory=True)
    (folder / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.json")
    (folder / "big.json").write_bytes(b"x" * 2000)
    (folder / "file").write_text("")
    assert caught(gate.read_bytes, folder, "series/ok.json") == (b'{"a": 1}', [])
    assert caught(gate.read_bytes, folder, "series/missing.json") == (None, [])
    for rel, why in [("series/out.json", "a symbolic link"), ("series/in.json", "a symbolic link"), ("linked/ok.json", "a symbolic link"),
                     ("zero.json", "a symbolic link"), ("fifo.json", "a FIFO, not a regular file"), ("series", "a folder, not a regular file"),
                     ("../outside.json", "lands outside the results folder"), (str(outside), "lands outside the results folder"),
                     ("big.json", "larger than 1,000 bytes"), ("file/x.json", "a part of its path is not a folder")]:
        data, said = caught(gate.read_bytes, folder, rel, 1000)
        assert data is None and len(said) == 1 and said[0].startswith(f"{folder / rel}: not read: ") and why in said[0], (rel, said)
    assert caught(read.read_series, folder, "fifo.json")[0] == {} and caught(read.read_series, folder, "../outside.json")[0] == {}
    assert caught(gate.read_bytes, tmp_path / "none", "x.json") == (None, [])  # a folder that is gone: nothing to read


def test_records_stream_with_a_cap_per_line_and_a_fifo_or_device_is_refused(tmp_path, monkeypatch, deadline):
    ok = encode(Record(trial_id="a", status="ok", metrics={"x": 1.0}))
    (tmp_path / "trials.jsonl").write_bytes(ok + b"\n" + b"[" * 5000 + b"\n" + ok.replace(b'"a"', b'"b"') + b"\n")
    monkeypatch.setattr(gate, "MAX_LINE", 1000)
    records, said = caught(iter_records, tmp_path / "trials.jsonl")
    assert [r.trial_id for r in records] == ["a", "b"]
    assert said == [f"{tmp_path / 'trials.jsonl'}:2: skipped 1 line(s) that are not trial records (line 2: longer than 1,000 bytes)"]
    fifo = tmp_path / "f" / "trials.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert caught(iter_records, fifo) == ([], [f"{fifo}: not read: a FIFO, not a regular file"])
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "trials.jsonl").symlink_to("/dev/zero")
    assert caught(iter_records, tmp_path / "d" / "trials.jsonl") == \
        ([], [f"{tmp_path / 'd' / 'trials.jsonl'}: not read: a symbolic link (links inside a results folder are not followed)"])


def test_a_sparse_records_file_is_refused_at_once_not_scanned(tmp_path, deadline):
    """Terabytes of holes take no disk and no line end: every read would scan them all (hours)."""
    folder = tmp_path / "sparse"
    folder.mkdir()
    records = folder / "trials.jsonl"
    records.write_bytes(encode(Record(trial_id="a", status="ok")) + b"\n")
    with open(records, "r+b") as f:
        f.truncate(2**40)  # a terabyte, nearly all of it a hole
        if os.lseek(f.fileno(), 0, os.SEEK_HOLE) >= 2**40:
            pytest.skip("this file system keeps no holes")
    assert caught(iter_records, records) == ([], [f"{records}: not read: a sparse file (holes of zero bytes on no disk, which no text or JSON writer leaves)"])
    assert caught(gate.read_bytes, folder, "trials.jsonl")[0] is None


def test_the_walk_follows_no_link_out_of_the_root_and_never_loops(tmp_path):
    root, outside = tmp_path / "results", tmp_path / "outside"
    for d in (root / "a", root / "b" / "c", outside):
        d.mkdir(parents=True)
        (d / "trials.jsonl").write_text("")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)
    (root / "b" / "c" / "deeper").symlink_to(root / "b", target_is_directory=True)
    assert result_dirs(root) == [root / "a", root / "b" / "c"]
    assert result_dirs(root / "a" / "trials.jsonl") == [root / "a"] and result_dirs(root / "none") == []


@pytest.mark.parametrize("value, why", [
    ("1e308", "metrics.x is 1e+308, beyond the 1e+150 a number in a record may reach"),
    ("-1.7e308", "metrics.x is -1.7e+308, beyond the 1e+150 a number in a record may reach"),
    ("1" + "0" * 400, "metrics.x is an integer of 401 digits, beyond the 64 bits an integer in a record may take"),
    (str(2**63), "metrics.x is an integer of 19 digits, beyond the 64 bits an integer in a record may take"),
    ("1e400", "metrics holds a number beyond the range of a float"),
    ("[" * 40 + "1" + "]" * 40, "metrics.x" + "[0]" * 17 + "... is nested deeper than 32 levels"),
    ("[" * 5000 + "]" * 5000, "nested deeper than 32 levels"),
])
def test_a_record_beyond_the_number_bound_is_not_a_record(value, why):
    with pytest.raises(NotARecord) as e:
        decode(b'{"trial_id": "t", "status": "ok", "metrics": {"x": ' + value.encode() + b"}}")
    assert str(e.value) == why and not e.value.torn
    assert decode(json.dumps({"trial_id": "t", "status": "ok", "config": {"flops": LIMIT, "n": -(2**63)}, "env": {"big": 2**63 - 1}}).encode())


def test_run_refuses_a_fifo_for_its_records_and_writes_through_no_planted_link(tmp_path, deadline):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "trials.jsonl")
    with pytest.raises(UserError, match="results folder is not writable: not a regular file"):
        with ResultStore(out).lock():
            pass
    (out / "trials.jsonl").unlink()
    (out / "series").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UserError, match=r"a symbolic link is in the way \(refusing to write through it\) \(.*series\)"):
        with ResultStore(out).lock():
            pass
    (out / "series").unlink()
    with pytest.raises(ValueError, match="not a path inside the results folder"):
        ResultStore(out).write_side("series/../../escaped.json", b"{}")
    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\nkind: probe\nmatrix:\n  tag: [a]\n")
    (tmp_path / "victim.txt").write_text("untouched")
    (out / "run.log").symlink_to(tmp_path / "victim.txt")
    with pytest.raises(UserError, match="run.log: cannot write the run's log: a symbolic link is in the way"):
        api.run(str(suite), out=out, executor=InlineExecutor(), log=True)  # as the CLI runs
    assert (tmp_path / "victim.txt").read_text() == "untouched"
