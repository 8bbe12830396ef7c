"""Files the user names for writing (`regress --summary`): appended to when they are regular
files (a link the user chose is followed), refused with exit 2 when they are a FIFO, a device or
a folder, before anything blocks."""

from __future__ import annotations

import os

import pytest

from actbench.errors import UserError
from actbench.report.output import append_user
from tests.report.test_hostile_folders import actbench, lm_folder


def test_regress_summary_naming_a_fifo_is_refused_not_a_hang(tmp_path, capfd, monkeypatch):
    run = lm_folder(tmp_path / "run")
    (tmp_path / "baseline.jsonl").write_bytes((run / "trials.jsonl").read_bytes())
    fifo = tmp_path / "summary.md"
    os.mkfifo(fifo)
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--baseline", str(tmp_path / "baseline.jsonl"),
                            "--summary", str(fifo), seconds=10)
    assert code == 2 and f"--summary {fifo}: not written: a FIFO, not a regular file" in err
    os.unlink(fifo)
    (tmp_path / "real.md").write_text("before\n")
    fifo.symlink_to(tmp_path / "real.md")  # a link the user chose is followed
    code, _, _ = actbench(capfd, monkeypatch, "regress", str(run), "--baseline", str(tmp_path / "baseline.jsonl"),
                            "--summary", str(fifo), seconds=30)
    text = (tmp_path / "real.md").read_text()
    assert code == 0 and text.startswith("before\n") and len(text) > 100


def test_append_user_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # with a reader the FIFO opens for writing: still refused
    try:
        with pytest.raises(UserError, match="--summary .*fifo: not written: a FIFO, not a regular file"):
            append_user(fifo, "x", "--summary")
        assert os.read(reader, 10) == b""
    finally:
        os.close(reader)
    with pytest.raises(UserError, match="not written: a folder, not a regular file"):
        append_user(tmp_path, "x", "--summary")
    with pytest.raises(UserError, match="not written: a device, not a regular file"):
        append_user("/dev/null", "x", "--summary")
    with pytest.raises(UserError, match="not written: No such file or directory"):
        append_user(tmp_path / "missing" / "s.md", "x", "--summary")
    append_user(tmp_path / "s.md", "a\n", "--summary")
    append_user(tmp_path / "s.md", "b\n", "--summary")
    assert (tmp_path / "s.md").read_text() == "a\nb\n"



def _fifo(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def _folder(tmp_path):
    (tmp_path / "folder").mkdir()
    return tmp_path / "folder"


def _under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    return tmp_path / "file" / "history.png"


@pytest.mark.parametrize(("flag", "make"), [("summary", _fifo), ("summary", _folder), ("plot", _folder), ("plot", _under_a_file)])
def test_regress_history_refuses_an_output_before_it_records_the_night(tmp_path, flag, make):
    """A --summary or --plot that cannot be written is refused (exit 2, not an internal error)
    before the night is added to the history: run again with the flag put right, the night is
    there once, so a one-night step is suspect, not confirmed by its own copy."""
    import numpy as np

    from actbench import api
    from tests.report.test_nightly_gate import _history, _night, _statuses

    rng = np.random.default_rng(5)
    _history(tmp_path, 7, rng)
    [history] = (tmp_path / "h").iterdir()
    before = history.read_bytes()
    run = _night(tmp_path, "bad", rng, slow={"relu2": 1.3})
    target = make(tmp_path)
    with pytest.raises(UserError, match=f"--{flag} {target}"):
        api.regress(run, history=tmp_path / "h", **{flag: target})
    assert history.read_bytes() == before
    r = api.regress(run, history=tmp_path / "h")
    assert r.exit_code == 0 and _statuses(r)["relu2"] == "suspect", r.markdown
