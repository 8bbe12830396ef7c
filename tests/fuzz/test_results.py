"""Hostile results folders through the real CLI: a copy of a real folder (made once per session)
with hostile records, torn lines, FIFOs, links out and to /dev/zero, missing, empty and huge
files, planted names and hostile kept suites, read by `compare`, `report` and `regress` (with
hostile baselines and histories). Every example must keep the promises of harness.check."""

from __future__ import annotations

from hypothesis import given

from .folders import apply, folder_command, ops
from .harness import OUT, Sandbox, fuzz
from .promises import run_and_check


def codes_of(command: list[str]) -> tuple[int, ...]:
    """regress exits 1 on SLOW, WORSE or failed trials (documented); the others 0 or 2."""
    return (0, 1, 2) if command[0] == "regress" else (0, 2)


def test_real_results_read_cleanly(sandboxes, real_results):
    """The folder the fuzzer spoils is itself read without a word of complaint by every command."""
    with Sandbox(sandboxes) as box:
        apply(box, real_results, [])
        o = run_and_check(box, ["compare", "relu2", "xielu", "--results", "@IN@"], codes=(0,))
        assert "xielu" in o.stdout and "warning" not in o.stderr, o.describe()
        o = run_and_check(box, ["report", "@IN@", "--out", f"{OUT}/report"], codes=(0,))
        assert (box.out / "report" / "report.html").is_file(), o.describe()
        run_and_check(box, ["regress", "@IN@/k", "--baseline", "@IN@/baseline.jsonl"], codes=(0,))
        run_and_check(box, ["regress", "@IN@/k", "--history", f"{OUT}/history"], codes=(0,))


@fuzz(60)
@given(changes=ops(), command=folder_command())
def test_hostile_results_folder(sandboxes, real_results, changes, command):
    with Sandbox(sandboxes) as box:
        apply(box, real_results, changes)
        run_and_check(box, command, codes=codes_of(command), example=(changes, command))
