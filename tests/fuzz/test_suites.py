"""Hostile suites, `--set` values and `-k` expressions through the real CLI: `run --dry-run`, `lm
plan`, and a real inline run of the probe suites that pass validation (then `report` of what it
recorded). Every example must keep the promises of harness.check."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from actbench.core.record import NotARecord, decode

from .harness import OUT, Sandbox, fuzz
from .promises import WrongExit, collected, run_and_check
from .hostile import to_yaml
from .suites import ALL_BASES, base_suites, hostile_suite, k_expressions, runnable_probe_suite, set_values


def inputs(box: Sandbox) -> None:
    """What hostile suite paths point at inside the input folder: a FIFO, an empty file, a folder, a small corpus."""
    import os

    os.mkfifo(box.inp / "fifo")
    (box.inp / "empty").write_bytes(b"")
    (box.inp / "dir").mkdir()
    (box.inp / "corpus.txt").write_text("To be, or not to be, that is the question.\n" * 200)


def write_suite(box: Sandbox, text: str, name: str = "suite.yaml") -> Path:
    path = box.inp / name
    text = box.sub(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogatepass")
    path.write_bytes(raw)
    return path


def test_every_base_suite_is_valid(sandboxes):
    """The fuzzer plants its values in valid suites: each loads, lists its trials and (lm) plans."""
    for base in ALL_BASES:
        with Sandbox(sandboxes) as box:
            inputs(box)
            suite = write_suite(box, to_yaml(base))
            run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/results"], codes=(0,))
            if base["kind"] == "lm":
                run_and_check(box, ["lm", "plan", str(suite)], codes=(0,))


@fuzz(60)
@given(text=hostile_suite(), all_rows=st.booleans())
def test_hostile_suite_dry_run(sandboxes, text, all_rows):
    with Sandbox(sandboxes) as box:
        inputs(box)
        suite = write_suite(box, text)
        run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/results", *(["--all"] if all_rows else [])],
                      may_read_outside=True, example=text)


@fuzz(30)
@given(text=hostile_suite(kinds=("lm",)))
def test_hostile_lm_suite_plan(sandboxes, text):
    with Sandbox(sandboxes) as box:
        inputs(box)
        run_and_check(box, ["lm", "plan", str(write_suite(box, text))], may_read_outside=True, example=text)


@fuzz(40)
@given(base=base_suites(), sets=set_values(), select=st.one_of(st.none(), k_expressions()), plan=st.booleans())
def test_hostile_set_and_k(sandboxes, base, sets, select, plan):
    with Sandbox(sandboxes) as box:
        inputs(box)
        suite = write_suite(box, to_yaml(base))
        flags = [a for s in sets for a in ("--set", s)]
        if plan and base["kind"] == "lm":
            args = ["lm", "plan", str(suite), *flags]
        else:
            args = ["run", str(suite), "--dry-run", "--out", f"{OUT}/results", *flags, *(["-k", select] if select is not None else [])]
        run_and_check(box, args, may_read_outside=True, example=(base["name"], args[3:]))


@fuzz(8)
@given(text=runnable_probe_suite())
def test_hostile_probe_suite_runs_for_real(sandboxes, text):
    """A probe suite that passes validation runs for real (inline, 5 s a trial): exit 1 exactly
    when a trial did not succeed; then `report` of what it recorded keeps the promises too."""
    with Sandbox(sandboxes) as box:
        suite = write_suite(box, text)
        results = box.out / "results"
        if run_and_check(box, ["run", str(suite), "--dry-run", "--out", str(results)], example=text).code != 0:
            return
        o = run_and_check(box, ["run", str(suite), "--executor", "inline", "--out", str(results), "--set", "resources.timeout_s=5"],
                          codes=(0, 1, 2), example=text)
        records = {}
        if (results / "trials.jsonl").is_file():
            for line in (results / "trials.jsonl").read_bytes().splitlines():
                try:
                    r = decode(line)
                except NotARecord:  # set aside by every reader too (a number past the record bound, say)
                    continue
                records[r.trial_id] = r
        failed = any(not r.ok for r in records.values())
        if not o.broken and o.code in (0, 1) and o.code != failed:
            collected(WrongExit(f"exit {o.code} but {'a' if failed else 'no'} trial failed\n{o.describe()}"), text)
        if records:
            run_and_check(box, ["report", str(results), "--out", f"{OUT}/report"], example=text)
