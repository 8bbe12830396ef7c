"""`actbench regress --history`: every row of a run judged over its history (`analysis.changepoint`),
machine events told apart from code regressions, and the alerts with their commits and commands.

A night's rows: kernel rows on their % of the device copy measured in the same trial (noise: the
standard error of the row's and the copy's medians, `median_noise`, in quadrature), the copy's own
GB/s (only to recognise a machine event, never an alert), memory rows exact (their two byte
figures), lm rows per config over seeds (the mean, its noise the seeds' sd / sqrt(n) over the mean). A row's level restarts at the last night it was
accepted (`--accept`)."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from actbench.analysis import changepoint as cp
from actbench.core.record import Record
from actbench.core.trial import trial_id
from actbench.report.history import MAX_KEY_CHARS, Night, Point
from actbench.report.regression import spread

CONFIRM, WINDOW = 2, 14
"""A step is confirmed by its second night (or an immediate rerun); the level is the median of 14 nights."""
MIN_EFFECT = 0.03
"""The smallest step of a timing or throughput row that counts: a step is confirmed only when its
median is this far from the level, so a step equal to it is confirmed about half the time; 3%
confirms a 5% step at 1% noise within 2 nights 97% of the time (5%: 64%; scripts/regress_sim.py)."""
MEMORY_EFFECT = 0.001
"""Memory figures are exact: any change of more than 0.1% is a step."""
LOWER_IS_BETTER = ("val_bpb", "val_loss", "saved_bytes_per_elem", "peak_fwd_bwd_mb")
LABEL_FIELDS = ("activation", "dtype", "size", "d_model")
COPY_SUFFIX = " copy | gbps"
"""How a kernel trial's device copy row's key ends."""
P20_P80_SDS, MEDIAN_EFFICIENCY = 1.683, 1.2533
"""The p20-p80 width of normal noise in standard deviations; the median's standard error over the mean's (sqrt(pi / 2))."""


@dataclass(frozen=True)
class Row:
    """What a night's row is: the record it came from (for its repro command), its label, metric
    and kind (`copy` rows only tell machine events)."""

    key: str
    record: Record
    label: str
    metric: str
    kind: str

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER


def _label(rec: Record, *extra: Any) -> str:
    return " ".join(str(x) for x in [rec.suite, *(rec.config[k] for k in LABEL_FIELDS if k in rec.config), *extra] if x not in (None, ""))


def median_noise(row: dict[str, Any] | None) -> float:
    """The relative standard error of a timing row's median over its `repeats` (1 where unknown),
    from its p20-p80 spread: the noise of the figure, not of single calls."""
    repeats = (row or {}).get("repeats")
    r = repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 1 else 1
    return spread(row) / P20_P80_SDS * MEDIAN_EFFICIENCY / math.sqrt(r)


def night_rows(records: Iterable[Record]) -> tuple[dict[str, Point], dict[str, Row]]:
    """The figures of a run's ok records, by row key, and what each row is (a row whose key would
    be longer than a history keeps is left out, so that every night written is read back)."""
    points: dict[str, Point] = {}
    rows: dict[str, Row] = {}
    seeds: dict[tuple[str, str], list[Record]] = defaultdict(list)

    def add(key: str, rec: Record, label: str, metric: str, kind: str, value: Any, noise: float = 0.0, n: Any = 1) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e150 and len(key) <= MAX_KEY_CHARS:
            points[key] = Point(float(value), noise, n if isinstance(n, int) and 1 <= n < 2**31 else 1)
            rows[key] = Row(key, rec, label, metric, kind)

    for rec in records:
        if not rec.ok:
            continue
        if rec.kind == "kernel":
            copy = next((x for x in rec.rows if x.get("impl") == "copy"), None)
            if copy is not None:
                add(f"{rec.suite} {rec.trial_id}{COPY_SUFFIX}", rec, _label(rec, "copy"), "gbps", "copy", copy.get("gbps"),
                    median_noise(copy), copy.get("repeats"))
            for r in rec.rows:
                if r is not copy:
                    what = f"{r.get('impl')} {r.get('mode')}"
                    add(f"{rec.suite} {rec.trial_id} {what} | pct_copy", rec, _label(rec, what), "pct_copy", "kernel",
                        r.get("pct_copy"), math.hypot(median_noise(r), median_noise(copy)), r.get("repeats"))
        elif rec.kind == "memory":
            for r in rec.rows:
                for m in ("saved_bytes_per_elem", "peak_fwd_bwd_mb"):
                    add(f"{rec.suite} {rec.trial_id} {r.get('impl')} | {m}", rec, _label(rec, r.get("impl")), m, "memory", r.get(m))
        elif rec.kind == "lm":
            group = trial_id(rec.kind, {k: v for k, v in rec.config.items() if k != "seed"})
            seeds[(rec.suite, group)].append(rec)
    for (suite, group), recs in seeds.items():
        for m in ("val_bpb" if any(r.metric("val_bpb") is not None for r in recs) else "val_loss", "tokens_per_s"):
            values = [v for r in recs if (v := r.metric(m)) is not None and v > 0]
            if values:
                mean = statistics.fmean(values)
                noise = statistics.stdev(values) / math.sqrt(len(values)) / mean if len(values) > 1 else 0.0
                add(f"{suite} {group} | {m}", recs[0], _label(recs[0], f"{len(values)} seed(s)"), m, "lm", mean, noise, len(values))
    return points, rows


@dataclass
class Verdict:
    """A row's judgement after tonight (and its rerun, if any), with the commits of its step."""

    row: Row
    judgement: cp.Judgement
    last_good: str | None = None
    first_bad: str | None = None
    rerun: bool = False


@dataclass
class Judged:
    """Tonight judged: each row's verdict, the rows whose trial failed, and whether tonight (or
    an earlier night) was a machine event."""

    verdicts: list[Verdict]
    machine_event: bool
    machine_nights: list[int] = field(default_factory=list)
    moved: tuple[int, int] = (0, 0)

    def with_status(self, *statuses: str) -> list[Verdict]:
        return [v for v in self.verdicts if v.judgement.status in statuses]


def _series(nights: list[Night], key: str) -> tuple[int, list[cp.Night]]:
    """(first index, the row's nights from its last accepted night on)."""
    start = max((i for i, n in enumerate(nights) if key in n.accepted), default=0)
    return start, [cp.Night(n.rows[key].value, n.rows[key].noise or None) if key in n.rows else cp.Night(None) for n in nights[start:]]


def machine_events(nights: list[Night]) -> tuple[list[int], tuple[int, int]]:
    """Indices of the nights that were machine events (`changepoint.machine_nights`: most rows
    moved together beyond their limits, and so did most of the device copy bandwidths on a night
    with a kernel suite, and they did not stay there the next night; the flag a night was recorded
    with is what was reported then, not used here), and how many rows moved on the last night, of
    how many. Told by the last night's rows (the ones judged): rows that are gone since cannot
    make a history of many distinct rows cost its square."""
    keys = sorted(nights[-1].rows) if nights else []
    if not keys or len(nights) <= cp.MIN_HISTORY:
        return [], (0, 0)
    changes = np.full((len(keys), len(nights)), np.nan)
    limits = np.full(len(keys), np.nan)
    for r, key in enumerate(keys):
        start, series = _series(nights, key)
        changes[r, start:], limits[r] = cp.night_changes(series, window=WINDOW)
    found = cp.machine_nights(changes, limits, copy=[r for r, key in enumerate(keys) if key.endswith(COPY_SUFFIX)])
    last = changes[:, -1]
    has = np.isfinite(last)
    moved = int(max((has & (last > limits)).sum(), (has & (last < -limits)).sum()))
    return [int(i) for i in np.flatnonzero(found)], (moved, int(has.sum()))


def judge_night(history: list[Night], tonight: Night, rows: dict[str, Row], *, min_effect: float = MIN_EFFECT,
                bpb_tolerance: float = 0.02, rerun: dict[str, Point] | None = None) -> Judged:
    """Every row of tonight judged over `history` + tonight; a row in `rerun` (an immediate rerun
    of it on this machine) gets the rerun as one more night, which confirms a suspect step."""
    nights = [*history, tonight]
    excluded, moved = machine_events(nights)
    if len(nights) - 1 in excluded:
        return Judged([], True, excluded, moved)
    verdicts = []
    for key, row in rows.items():
        if row.kind == "copy":
            continue
        start, series = _series(nights, key)
        skip = [i - start for i in excluded if i >= start]
        level = statistics.median(n.value for n in series if n.value is not None)
        effect = MEMORY_EFFECT if row.kind == "memory" else min(0.5, bpb_tolerance / level) if row.metric in LOWER_IS_BETTER else min_effect
        again = rerun.get(key) if rerun else None
        j = cp.judge(series, higher_is_better=row.higher_is_better, min_effect=effect, confirm=CONFIRM, window=WINDOW, excluded=skip,
                     rerun=cp.Night(again.value, again.noise or None) if again else None)
        commits = [n.commit for n in nights[start:]] + [tonight.commit]  # the rerun is index len(series), tonight's commit
        verdicts.append(Verdict(row, j, None if j.last_good is None else commits[j.last_good],
                                None if j.first_bad is None else commits[j.first_bad], again is not None))
    return Judged(verdicts, False, excluded, moved)
