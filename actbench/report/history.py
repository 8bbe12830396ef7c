"""The regress history: one JSON-lines file per GPU model and environment fingerprint (driver,
CUDA, torch, triton) in a folder the user names, one line per night (its commit, date, every
row's figure with its own noise and n, the rows accepted that night, whether it was a machine
event). The folder is data from strangers like a results folder: each file is read through the
results gate (no link followed, lines bounded), a line that is not a night is skipped with one
warning, and a file's name is made here from sanitised text and a hash, never from a fingerprint
string as it is."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import warnings
from collections import Counter
from pathlib import Path
from typing import Annotated, Iterable

import msgspec

from actbench.core.record import LIMIT, Record, encode
from actbench.errors import UserError
from actbench.results import gate
from actbench.results.gate import ResultsWarning

FINGERPRINT = ("gpu_name", "driver", "cuda", "torch", "triton")
"""The environment a history belongs to: a night on another of these starts another history."""
MAX_NIGHTS = 10_000
"""Nights read from one history file (the last ones; 27 years of nights)."""
MAX_KEY_CHARS = 500

Figure = Annotated[float, msgspec.Meta(gt=0, le=LIMIT)]
"""A night's figure: above 0, as `alerts.night_rows` keeps them (a level of 0 or below cannot be judged)."""
Text = Annotated[str, msgspec.Meta(max_length=MAX_KEY_CHARS)]


class Point(msgspec.Struct, forbid_unknown_fields=False):
    """One row's figure on one night: the value, its relative noise (the standard error of the
    figure: a kernel row's median from its spread and repeats, an lm row's mean of seeds), and how
    many measurements it summarises."""

    value: Figure
    noise: Annotated[float, msgspec.Meta(ge=0, le=LIMIT)] = 0.0
    n: Annotated[int, msgspec.Meta(ge=1, le=2**31)] = 1


class Night(msgspec.Struct, forbid_unknown_fields=False):
    """One line of a history: a regress run."""

    commit: Text
    date: Text
    rows: dict[Text, Point]
    fingerprint: dict[Text, Text | None] = {}
    accepted: list[Text] = []
    machine_event: bool = False
    run: Text = ""
    """The run's identity (`run_digest`): a run already in the history is not added again."""


_DECODER = msgspec.json.Decoder(Night)


def fingerprint(records: Iterable[Record]) -> dict[str, str | None]:
    """The most common environment among a run's records (`FINGERPRINT` fields, as text)."""
    seen = Counter(tuple(None if r.env.get(k) is None else str(r.env.get(k))[:MAX_KEY_CHARS] for k in FINGERPRINT) for r in records)
    values = seen.most_common(1)[0][0] if seen else (None,) * len(FINGERPRINT)
    return dict(zip(FINGERPRINT, values))


def run_digest(records: Iterable[Record]) -> str:
    """A run's identity: a hash of its records (each trial's last attempt) as written, so the same
    results folder judged twice has the same one and another night (other run ids, times and
    figures) another."""
    digest = hashlib.sha256()
    for line in sorted(encode(r) for r in records):
        digest.update(hashlib.sha256(line).digest())
    return digest.hexdigest()[:24]


def file_name(fp: dict[str, str | None]) -> str:
    """The history file of an environment: its GPU model as [a-z0-9-] (at most 40 characters,
    `cpu` without one) and a hash of the whole fingerprint, e.g. `nvidia-h100-80gb-hbm3-3f2a9c01d4.jsonl`."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(fp.get("gpu_name") or "cpu").lower()).strip("-")[:40].strip("-") or "gpu"
    digest = hashlib.sha256(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:10]
    return f"{slug}-{digest}.jsonl"


def read_nights(folder: str | Path, name: str) -> list[Night]:
    """The nights of one history file, oldest first (the last `MAX_NIGHTS`); [] when it is missing.
    Lines that are not nights (not JSON, another shape, a figure not above 0 or beyond the bound, too long) are
    skipped, with one warning naming the file, the first such line and the count. A later line of
    a run already read (`--accept` of a night already recorded) only adds its accepted rows to it."""
    numbered = gate.lines(folder, name)
    if numbered is None:
        return []
    nights: list[Night] = []
    bad: list[int] = []
    seen: dict[str, Night] = {}
    for n, raw in numbered:  # line by line: a long file is never held whole
        if raw is not None and not raw.strip():
            continue
        try:
            if raw is None:  # longer than gate.MAX_LINE
                raise msgspec.DecodeError
            night = _DECODER.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            bad.append(n)
            continue
        first = seen.get(night.run) if night.run else None
        if first is not None:
            first.accepted = [*first.accepted, *(k for k in night.accepted if k not in first.accepted)]
        else:
            nights.append(night)
            if night.run:
                seen[night.run] = night
        if len(nights) > 2 * MAX_NIGHTS:
            nights = nights[-MAX_NIGHTS:]
            seen = {x.run: x for x in nights if x.run}
    if bad:
        warnings.warn(f"{Path(folder) / name}:{bad[0]}: skipped {len(bad)} line(s) that are not history nights", ResultsWarning, stacklevel=2)
    return nights[-MAX_NIGHTS:]


def append_night(folder: str | Path, name: str, night: Night) -> Path:
    """Append `night` to `folder/name` (both made if missing), on a line of its own even after a
    torn last line. The file is opened through no link and only when it is a regular file;
    UserError naming --history otherwise, before a byte is written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"--history {folder}: not a folder this can write to ({e.strerror or e})") from None
    try:
        fd = os.open(name, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY,
                     0o644, dir_fd=dfd)
    except OSError as e:
        raise UserError(f"--history {folder / name}: not written: {e.strerror or e} (a link or not a file?)") from None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "ab") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"--history {folder / name}: not written: not a regular file")
        line = encode(night) + b"\n"
        if len(line) > gate.MAX_LINE:  # it could never be read back: the run would be judged as new every time
            raise UserError(f"--history {folder / name}: not written: this night's {len(night.rows):,} rows take {len(line) / 2**20:.0f} MiB "
                            f"as one line, more than a history line may hold ({gate.MAX_LINE / 2**20:.0f} MiB); judge each suite's "
                            "results folder on its own")
        torn = info.st_size > 0 and os.pread(fd, 1, info.st_size - 1) != b"\n"  # a last line cut by a killed write
        f.write(b"\n" * torn + line)
    return folder / name

