"""The decisions a sequential suite's run made, look by look, kept in its results folder
(`decisions.jsonl`, append-only, written when the run makes each one, before it prints it): which
trials a look used (id, attempt, the value or why it failed), the interval and the verdict. compare
and report replay this record, so that a verdict once printed never moves: a trial a resumed run
added later (a rerun of one the look counted as failed) does not fold into a look already decided.

The file is data from the folder like any other: the planner (`actbench.planner.seeds`) checks
every recorded look against the records of the trials it names before it uses it. It is read
through `gate`; a line that is not a decision is skipped with one warning (a torn last line
silently); the folder's records of every attempt come with it, for that check."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from actbench.core.record import Record, encode
from actbench.errors import UserError
from actbench.results import gate
from actbench.results.read import RECORDS, ResultsWarning, iter_records
from actbench.results.store import ResultStore

DECISIONS = "decisions.jsonl"
MAX_LINES = 200_000
"""The most lines read (a run records one per look and comparison): a longer file's rest is not read."""


class Outcome(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One trial as a look counted it: its last attempt then, and its value (None: it failed, `why`)."""

    trial_id: str
    attempt: int | None
    value: float | None
    why: str


class Start(msgspec.Struct, tag="start", kw_only=True, forbid_unknown_fields=True):
    """A run of this suite records its looks here: a complete look without a record was not decided yet."""

    suite: str


class Look(msgspec.Struct, tag="look", kw_only=True, forbid_unknown_fields=True):
    """One look of one comparison (candidate and baseline: points of the suite) as the run decided it."""

    suite: str
    candidate: int
    baseline: int
    look: int  # 1-based
    names: tuple[str, str]  # the candidate's and the baseline's value of decide.field, for a reader
    seeds: list[int]
    candidate_trials: list[Outcome]
    baseline_trials: list[Outcome]
    verdict: str  # better | worse | equivalent | continue | undecided | no baseline
    n: int = 0  # pairs both sides finished, and the interval on them (None: none, or infinite)
    mean: float | None = None
    sd: float | None = None
    crit: float | None = None
    low: float | None = None
    high: float | None = None
    margin: float | None = None
    at: str = ""

    @property
    def key(self) -> tuple[str, int, int, int]:
        return self.suite, self.candidate, self.baseline, self.look


_DECODER = msgspec.json.Decoder(Start | Look)


@dataclass
class Recorded:
    """What a folder's decisions.jsonl holds, and every attempt of its trials (to check it by).
    `writing`: the run that appends to it (a complete look it has not recorded is decided now);
    compare and report only read it (such a look is pending: the run stopped before deciding it)."""

    writing: bool = False
    started: set[str] = field(default_factory=set)
    looks: dict[tuple[str, int, int, int], Look] = field(default_factory=dict)
    conflicts: set[tuple[str, int, int, int]] = field(default_factory=set)  # recorded twice, differently
    history: dict[tuple[str, int], Record] = field(default_factory=dict)  # (trial id, attempt) -> record
    last: dict[str, int] = field(default_factory=dict)  # trial id -> its latest attempt

    def add(self, entry: Start | Look) -> None:
        self.started.add(entry.suite)
        if isinstance(entry, Look):
            seen = self.looks.setdefault(entry.key, entry)
            if msgspec.structs.replace(seen, at="") != msgspec.structs.replace(entry, at=""):
                self.conflicts.add(entry.key)

    def add_records(self, records: Iterable[Record]) -> None:
        for r in records:
            self.history[(r.trial_id, r.attempt)] = r
            self.last[r.trial_id] = max(self.last.get(r.trial_id, 0), r.attempt)

    def frozen(self, suite: str) -> set[str]:
        """The trial ids the recorded looks of `suite` name: their outcome is settled."""
        return {o.trial_id for k, lk in self.looks.items() if k[0] == suite for o in (*lk.candidate_trials, *lk.baseline_trials)}


def outcome(record: Record | None, metric: str) -> tuple[int | None, float | None, str]:
    """(attempt, value, why) of a trial's record: value None when it failed, with the status (or
    'no finite <metric>' for an ok record without one, 'no record' without a record)."""
    if record is None:
        return None, None, "no record"
    value = record.metric(metric)
    return record.attempt, value, "ok" if value is not None else record.status if not record.ok else f"no finite {metric}"


def append(store: ResultStore, entry: Start | Look) -> None:
    """Append one decision (or a run's start) to the folder's decisions.jsonl, fsynced."""
    if isinstance(entry, Look) and not entry.at:
        entry = msgspec.structs.replace(entry, at=time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        store.append_line(DECISIONS, encode(entry))
    except OSError as e:
        raise UserError(f"{store.root / DECISIONS}: cannot record a decision: {e.strerror or e} (nothing was lost: the trials are "
                        "recorded; run again once it can be written)") from e


def read(folder: str | Path, writing: bool = False, records: Iterable[Record] | None = None) -> Recorded | None:
    """The decisions of a results folder, with every attempt of its trials (`records`, else read
    from its trials.jsonl); None when it has no decisions.jsonl (an older folder: replay as before),
    or one that `gate` refuses (with a warning: a link, not a regular file)."""
    lines = gate.lines(folder, DECISIONS)
    if lines is None:
        return None
    out = Recorded(writing=writing)
    bad: list[tuple[int, str]] = []
    torn: tuple[int, str] | None = None
    for n, raw in lines:
        if n > MAX_LINES:
            bad.append((n, f"past the first {MAX_LINES:,} lines, the rest is not read"))
            break
        if raw is not None and not raw.strip():
            continue
        if torn is not None:
            bad.append(torn)
            torn = None
        if raw is None:
            bad.append((n, f"longer than {gate.MAX_LINE:,} bytes"))
            continue
        try:
            out.add(_DECODER.decode(raw))
        except msgspec.ValidationError as e:
            bad.append((n, str(e)))
        except msgspec.DecodeError:
            torn = (n, "not JSON")
    if bad:
        listed = "; ".join(f"line {n}: {why}" for n, why in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        warnings.warn(f"{Path(folder) / DECISIONS}:{bad[0][0]}: skipped {len(bad)} line(s) that are not decisions ({listed})",
                      ResultsWarning, stacklevel=2)
    out.add_records(iter_records(Path(folder) / RECORDS) if records is None else records)
    return out
