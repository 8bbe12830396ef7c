"""A printed verdict never moves: a sequential run records each look's decision as it makes it
(`decisions.jsonl`), a resumed run and compare's replay take the record, a trial added to a past
look afterwards is shown, not folded in, and a record that its trials do not give is no verdict.
Real runs of the probe kind, one of whose trials fails once (a retry succeeds)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from actbench import api
from actbench.core.record import Record
from actbench.errors import UserError
from actbench.planner.plan import plan
from actbench.results import decisions
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite
from tests.planner.interrupted import InterruptedAfter

SUITE = """\
name: q
kind: probe
defaults: {noise: 0.3}
zip:
  tag: [base, worse]
  x: [0.0, 2.0]
  fail: [none, raise]
  fail_seeds: [null, [0]]
  fail_marker: [null, once]
seeds: {min: 3, max: 9, round: 3}
decide: {field: tag, baseline: base, metric: objective, margin: 0.2}
"""


def looks_printed(err: str) -> list[str]:
    return re.findall(r"^look \d.*$", err, re.M)


def replayed(path: Path, out: Path):  # noqa: ANN201 - the candidate's Verdict as compare replays the folder
    suite = load_suite(path)
    records = ResultStore(out).latest()
    return next(iter(plan(suite, records, set(records), recorded=decisions.read(out)).seeds.verdicts.values())), suite


@pytest.fixture
def stopped(tmp_path: Path, capsys) -> tuple[Path, Path, list[str]]:
    """The suite, its results folder and the looks printed by a run stopped (Ctrl-C) in look 2,
    after look 1 was decided with the candidate's seed 0 failed."""
    path = tmp_path / "q.yaml"
    path.write_text(SUITE)
    out = tmp_path / "out"
    first = api.run(load_suite(path), out=out, executor=InterruptedAfter(8))
    assert first.interrupted and any(r.status == "failed" for r in first.records)
    printed = looks_printed(capsys.readouterr().err)
    assert len(printed) == 1 and ": continue, " in printed[0] and "worse failed 1 of 3 seeds (failed at seed 0)" in printed[0]
    return path, out, printed


def test_a_resumed_run_keeps_the_looks_it_printed_and_compare_replays_them(stopped, capsys):
    path, out, before = stopped
    again = api.run(load_suite(path), out=out, executor=InlineExecutor())
    assert again.exit_code == 0
    after = looks_printed(capsys.readouterr().err)
    assert after[0] == before[0]  # look 1 as printed before the stop: 2 paired seeds, seed 0 counted as failed
    seed0 = [r for r in iter_records(out / "trials.jsonl") if r.config["tag"] == "worse" and r.config["seed"] == 0]
    assert len(seed0) == 1 and seed0[0].status == "failed"  # the look counted it: not run again
    verdict, suite = replayed(path, out)
    assert verdict.decision.verdict == "worse" and verdict.decision.look == 2 and verdict.describe(suite) == after[-1]

    # an older actbench resumed the folder and reran the failed trial, ok this time: it is shown, not folded in
    ResultStore(out).append(Record(trial_id=seed0[0].trial_id, suite="q", kind="probe", config=seed0[0].config, status="ok", attempt=2,
                                   metrics={"objective": 4.0}))
    later, _ = replayed(path, out)
    assert later.decision == verdict.decision and later.seeds == verdict.seeds
    assert "seed 0 of worse rerun after the look that decided it: added afterwards, not used" in later.describe(suite)
    (out / decisions.DECISIONS).unlink()  # an older folder, without the record: replayed anew, the rerun folded into look 1
    anew, _ = replayed(path, out)
    assert anew.decision.look == 1 and anew.decision.interval.n == 3


def test_a_look_the_run_stopped_before_recording_is_pending_until_a_run_decides_it(stopped, capsys):
    path, out, _ = stopped
    api.run(load_suite(path), out=out, executor=InlineExecutor())
    lines = (out / decisions.DECISIONS).read_bytes().splitlines(keepends=True)
    (out / decisions.DECISIONS).write_bytes(b"".join(lines[:-1]))  # killed after the look's records, before its decision
    capsys.readouterr()
    verdict, suite = replayed(path, out)
    assert verdict.decision.verdict == "continue" and verdict.unrecorded
    assert "look 2 is complete but its run stopped before recording a decision for it: run the suite again" in verdict.describe(suite)
    again = api.run(load_suite(path), out=out, executor=InlineExecutor())
    assert not again.records and "look 2 of 3" in looks_printed(capsys.readouterr().err)[-1]
    assert replayed(path, out)[0].decision.verdict == "worse"


@pytest.mark.parametrize("edit, why", [
    (lambda e: e.update(verdict="better"), "look 2 is recorded better, its trials give worse"),
    (lambda e: e["candidate_trials"][3].__setitem__(2, 9.0), "is recorded otherwise in the trials"),
    (lambda e: e["candidate_trials"][4].__setitem__(1, 7), "attempt 7 is recorded nowhere in the trials"),
    (lambda e: e["baseline_trials"].reverse(), "look 2 names other trials than the suite plans for it"),
    (lambda e: e.update(crit=e["crit"] / 2, low=e["mean"] - (e["mean"] - e["low"]) / 2), "at critical value"),
])
def test_a_recorded_decision_its_trials_do_not_give_is_no_verdict(stopped, capsys, edit, why):
    path, out, _ = stopped
    api.run(load_suite(path), out=out, executor=InlineExecutor())
    file = out / decisions.DECISIONS
    lines = file.read_text().splitlines()
    entry = json.loads(lines[-1])
    edit(entry)
    file.write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
    verdict, suite = replayed(path, out)
    assert verdict.problem and why in verdict.problem
    assert verdict.describe(suite).endswith(f": no verdict (the recorded decision does not match its trials: {verdict.problem})")
    capsys.readouterr()
    again = api.run(load_suite(path), out=out, executor=InlineExecutor())  # the run says so too, and runs nothing more for it
    assert not again.records and "no verdict (the recorded decision does not match its trials" in capsys.readouterr().err


def test_a_decisions_file_that_is_no_file_is_not_read_and_a_bad_line_is_skipped(stopped):
    """A link or a FIFO in its place is not read (one warning; the folder replays as an older one),
    a line that is not a decision is skipped with one warning."""
    path, out, _ = stopped
    file = out / decisions.DECISIONS
    kept = file.read_bytes()
    file.unlink()
    os.symlink(out / "trials.jsonl", file)
    with pytest.warns(UserWarning, match=r"decisions.jsonl: not read: a symbolic link"):
        assert decisions.read(out) is None
    file.unlink()
    os.mkfifo(file)
    with pytest.warns(UserWarning, match=r"decisions.jsonl: not read: a FIFO, not a regular file"):
        assert decisions.read(out) is None
    with pytest.raises(UserError, match=r"decisions.jsonl: cannot record a decision"):  # the run says so, once, before it runs anything
        api.run(load_suite(path), out=out, executor=InlineExecutor())
    file.unlink()
    file.write_bytes(b'{"type": "look", "suite": 3}\n' + kept)
    with pytest.warns(UserWarning, match=r"decisions.jsonl:1: skipped 1 line\(s\) that are not decisions"):
        recorded = decisions.read(out)
    assert len(recorded.looks) == 1 and "q" in recorded.started
