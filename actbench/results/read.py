"""Reading results folders, through `gate`: the records of a trials.jsonl (each line checked by
the record's one decoder), the folders below a root, the last attempt of every trial, and series
files (their numbers within the bound of a record's)."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from actbench.core.record import LIMIT, MAX_DEPTH, NotARecord, Record, decode, decode_json, sane
from actbench.results import gate
from actbench.results.gate import ResultsWarning

RECORDS = "trials.jsonl"


def iter_records(path: str | Path, *, user: bool = False) -> Iterator[Record]:
    """Records of one trials.jsonl, read through `gate` (a regular file inside its folder, reached
    through no link; `user`: a file named on the command line, such as a regress baseline, may be
    a link). A torn last line (a crash mid-write) is skipped silently; every other line that is
    not a trial record (not UTF-8, not JSON, not an object, no trial_id or status, a config that
    is not an object, a number beyond `record.LIMIT`, longer than `gate.MAX_LINE`, ...) is
    skipped, and the file gets one `ResultsWarning` line naming the first such line (file:line),
    the count and the reasons."""
    path = Path(path)
    numbered = gate.lines(path.parent, path.name, user=user)
    if numbered is None:
        return
    bad: list[tuple[int, str]] = []
    torn: tuple[int, str] | None = None  # not JSON: skipped silently if it is the last line
    for n, raw in numbered:  # line by line: a large file is never held whole
        if raw is None:
            bad.append((n, f"longer than {gate.MAX_LINE:,} bytes"))
            continue
        if not raw.strip():
            continue
        if torn is not None:
            bad.append(torn)
            torn = None
        try:
            yield decode(raw)
        except NotARecord as e:
            if e.torn:
                torn = (n, str(e))
            else:
                bad.append((n, str(e)))
    if bad:
        listed = "; ".join(f"line {n}: {why}" for n, why in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        warnings.warn(f"{path}:{bad[0][0]}: skipped {len(bad)} line(s) that are not trial records ({listed})",
                      ResultsWarning, stacklevel=2)


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


def series_data(raw: bytes, path: Path) -> dict[str, Any]:
    """A series file's JSON object ({} when it is another JSON value); ValueError when it is not
    JSON; {} with a warning when it holds a number beyond the bound of a record's numbers
    (`record.sane`: the figures would overflow)."""
    data = decode_json(raw)
    if not sane(data):
        warnings.warn(f"{path}: not read: a number beyond ±{LIMIT:g} or nesting deeper than {MAX_DEPTH} levels", ResultsWarning,
                      stacklevel=3)
        return {}
    return data if isinstance(data, dict) else {}
