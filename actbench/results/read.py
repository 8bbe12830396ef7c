"""Reading results folders, through `gate`: the records of a trials.jsonl (each line checked by
the record's one decoder), the folders below a root, the last attempt of every trial, and series
files (their numbers within the bound of a record's)."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from actbench.core.record import INT_LIMIT, LIMIT, MAX_DEPTH, NotARecord, Record, decode, decode_json, sane
from actbench.results import gate
from actbench.results.gate import ResultsWarning

RECORDS = "trials.jsonl"


@dataclass(frozen=True)
class Settled:
    """How far a parse of a trials.jsonl is settled: its first `end` bytes (`lines` lines), up to
    the last line that ends in a newline with no torn line pending before it, so that what follows
    can be parsed alone later; `bad`: the first three lines set aside there (line, why), of
    `bad_count`."""

    end: int = 0
    lines: int = 0
    bad: tuple[tuple[int, str], ...] = ()
    bad_count: int = 0


class Scan:
    """One pass over the lines of an open trials.jsonl from a settled point (the file positioned
    at its `end`): iterating yields its records, `settled` and `kept` (how many records came before
    it) follow the pass, and `warning` says which lines were set aside, counting those before the
    starting point."""

    def __init__(self, f: BinaryIO, start: Settled = Settled()):
        self._f, self.kept = f, 0
        self._bad, self._count = list(start.bad), start.bad_count
        self._at = (start.end, start.lines, len(self._bad), self._count)  # where it settled (bytes, lines, first set-asides listed, count)

    @property
    def settled(self) -> Settled:
        end, lines, listed, count = self._at
        return Settled(end, lines, tuple(self._bad[:listed]), count)

    def _set_aside(self, n: int, why: str) -> None:
        self._count += 1
        if len(self._bad) < 3:
            self._bad.append((n, why))

    def __iter__(self) -> Iterator[Record]:
        f, n, records = self._f, self._at[1], self.kept
        torn: tuple[int, str] | None = None  # not JSON: skipped silently if it is the last line
        while raw := f.readline(gate.MAX_LINE + 1):  # line by line: a large file is never held whole
            n += 1
            if len(raw) > gate.MAX_LINE and not raw.endswith(b"\n"):
                while (raw := f.readline(1 << 20)) and not raw.endswith(b"\n"):
                    pass
                self._set_aside(n, f"longer than {gate.MAX_LINE:,} bytes")
            elif raw.strip():
                if torn is not None:
                    self._set_aside(*torn)
                    torn = None
                try:
                    record = decode(raw)
                except NotARecord as e:
                    if e.torn:
                        torn = (n, str(e))
                    else:
                        self._set_aside(n, str(e))
                else:
                    records += 1
                    yield record
            if torn is None and raw.endswith(b"\n"):
                self._at, self.kept = (f.tell(), n, len(self._bad), self._count), records

    def warning(self, path: Path) -> str | None:
        """The one line naming the lines set aside (file:first line, the count, the first three reasons)."""
        if not self._count:
            return None
        listed = "; ".join(f"line {n}: {why}" for n, why in self._bad) + ("; ..." if self._count > 3 else "")
        return f"{path}:{self._bad[0][0]}: skipped {self._count} line(s) that are not trial records ({listed})"


def iter_records(path: str | Path, *, user: bool = False) -> Iterator[Record]:
    """Records of one trials.jsonl, read through `gate` (a regular file inside its folder, reached
    through no link; `user`: a file named on the command line, such as a regress baseline, may be
    a link). A torn last line (a crash mid-write) is skipped silently; every other line that is
    not a trial record (not UTF-8, not JSON, not an object, no trial_id or status, a config that
    is not an object, a number beyond `record.LIMIT`, longer than `gate.MAX_LINE`, ...) is
    skipped, and the file gets one `ResultsWarning` line naming the first such line (file:line),
    the count and the reasons."""
    path = Path(path)
    f = gate.open_file(path.parent, path.name, user=user)
    if f is None:
        return
    with f:
        scan = Scan(f)
        yield from scan
    if message := scan.warning(path):
        warnings.warn(message, ResultsWarning, stacklevel=2)


def latest(records: Iterator[Record] | list[Record]) -> dict[str, Record]:
    """Trial id -> its last attempt."""
    return {r.trial_id: r for r in records}


def attempts(records: list[Record]) -> dict[str, int]:
    """Trial id -> how many attempts it has."""
    return dict(Counter(r.trial_id for r in records))


def result_dirs(root: str | Path) -> list[Path]:
    """Every folder at or below `root` that holds a trials.jsonl (`root` may be the file itself),
    found without following a link to a folder (`gate.folders`)."""
    root = Path(root)
    if root.name == RECORDS and not root.is_dir():
        return [root.parent] if root.exists() or root.is_symlink() else []
    return gate.folders(root, RECORDS) if root.is_dir() else []


def gpu_name(record: Record) -> str:
    """The GPU model a record ran on; "cpu" for CPU runs."""
    return record.env.get("gpu_name") or "cpu"


def latest_records(root: str | Path) -> Iterator[tuple[Path, Record]]:
    """(results folder, record) for the last attempt of every trial id in each folder below root."""
    for d in result_dirs(root):
        for r in latest(iter_records(d / RECORDS)).values():
            yield d, r


def read_series(results_dir: str | Path, series_file: Any) -> dict[str, Any]:
    """The per-step series of a record (`series_file` is relative to its results folder), read
    through `gate` (at most `gate.MAX_SERIES` bytes); {} when there is none, it is refused (outside
    the folder, a link, not a regular file, too large: with a warning), or it is not a JSON object.
    Readers must still check the shape of what they take from it."""
    if not isinstance(series_file, str) or not series_file:
        return {}
    raw = gate.read_bytes(results_dir, series_file, gate.MAX_SERIES)
    try:
        return series_data(raw, Path(results_dir) / series_file) if raw is not None else {}
    except ValueError:  # msgspec.DecodeError is a ValueError
        return {}


def _sane(value: Any, depth: int = 0) -> bool:
    """`record.sane`, with a list of numbers checked at C speed (its smallest and largest values
    within the integer bound, which is inside the float bound): a series file holds lists of
    thousands of numbers."""
    kind = type(value)
    if kind is not list and kind is not dict:
        return sane(value)
    if depth >= MAX_DEPTH:
        return False
    if kind is list and value:
        try:
            if -INT_LIMIT <= min(value) and max(value) < INT_LIMIT:  # decoded JSON holds no NaN, which min and max would pass over
                return True
        except TypeError:  # not all numbers (or all text, which compares)
            pass
    return all(_sane(item, depth + 1) for item in (value if kind is list else value.values()))


def series_data(raw: bytes, path: Path) -> dict[str, Any]:
    """A series file's JSON object ({} when it is another JSON value); ValueError when it is not
    JSON; {} with a warning when it holds a number beyond the bound of a record's numbers
    (`record.sane`: the figures would overflow)."""
    data = decode_json(raw)
    if not _sane(data):
        warnings.warn(f"{path}: not read: a number beyond ±{LIMIT:g} or nesting deeper than {MAX_DEPTH} levels", ResultsWarning,
                      stacklevel=3)
        return {}
    return data if isinstance(data, dict) else {}
