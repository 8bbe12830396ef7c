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


def _label_parts(rec: Record) -> list[str]:
    """A record's part of its rows' labels: its suite and `LABEL_FIELDS`, those that are not None or empty."""
    return [str(x) for x in [rec.suite, *(rec.config[k] for k in LABEL_FIELDS if k in rec.config)] if x not in (None, "")]


def _label(parts: list[str], *extra: Any) -> str:
    return " ".join([*parts, *(str(x) for x in extra if x not in (None, ""))])


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
            parts = _label_parts(rec)
            copy = next((x for x in rec.rows if x.get("impl") == "copy"), None)
            copy_noise = median_noise(copy)
            if copy is not None:
                add(f"{rec.suite} {rec.trial_id}{COPY_SUFFIX}", rec, _label(parts, "copy"), "gbps", "copy", copy.get("gbps"),
                    copy_noise, copy.get("repeats"))
            for r in rec.rows:
                if r is not copy:
                    what = f"{r.get('impl')} {r.get('mode')}"
                    add(f"{rec.suite} {rec.trial_id} {what} | pct_copy", rec, _label(parts, what), "pct_copy", "kernel",
                        r.get("pct_copy"), math.hypot(median_noise(r), copy_noise), r.get("repeats"))
        elif rec.kind == "memory":
            parts = _label_parts(rec)
            for r in rec.rows:
                for m in ("saved_bytes_per_elem", "peak_fwd_bwd_mb"):
                    add(f"{rec.suite} {rec.trial_id} {r.get('impl')} | {m}", rec, _label(parts, r.get("impl")), m, "memory", r.get(m))
        elif rec.kind == "lm":
            group = trial_id(rec.kind, {k: v for k, v in rec.config.items() if k != "seed"})
            seeds[(rec.suite, group)].append(rec)
    for (suite, group), recs in seeds.items():
        for m in ("val_bpb" if any(r.metric("val_bpb") is not None for r in recs) else "val_loss", "tokens_per_s"):
            values = [v for r in recs if (v := r.metric(m)) is not None and v > 0]
            if values:
                mean = statistics.fmean(values)
                noise = statistics.stdev(values) / math.sqrt(len(values)) / mean if len(values) > 1 else 0.0
                add(f"{suite} {group} | {m}", recs[0], _label(_label_parts(recs[0]), f"{len(values)} seed(s)"), m, "lm", mean, noise, len(values))
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


def _starts(nights: list[Night], keys: list[str]) -> np.ndarray:
    """Each row's first night: the last night that accepted its step (0 where none did)."""
    start: dict[str, int] = {}
    for i, n in enumerate(nights):
        start.update(dict.fromkeys(n.accepted, i))
    return np.array([start.get(k, 0) for k in keys], dtype=int)


def _figures(nights: list[Night], keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, nights) figures of each row and their own noise, NaN where a night has none (or states no noise)."""
    values, noise = np.full((len(keys), len(nights)), np.nan), np.full((len(keys), len(nights)), np.nan)
    for j, n in enumerate(nights):
        points = [n.rows.get(k) for k in keys]
        values[:, j] = [np.nan if p is None else p.value for p in points]
        noise[:, j] = [np.nan if p is None else p.noise or np.nan for p in points]
    return values, noise


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
    values, starts = _figures(nights, keys)[0], _starts(nights, keys)
    for start in np.unique(starts):  # the rows whose level restarts on the same night, at once
        r = starts == start
        changes[r, start:], limits[r] = cp.level_changes(values[r, start:], window=WINDOW)
    found = cp.machine_nights(changes, limits, copy=[r for r, key in enumerate(keys) if key.endswith(COPY_SUFFIX)])
    last = changes[:, -1]
    has = np.isfinite(last)
    moved = int(max((has & (last > limits)).sum(), (has & (last < -limits)).sum()))
    return [int(i) for i in np.flatnonzero(found)], (moved, int(has.sum()))


def _judgements(j: cp.Judged) -> list[cp.Judgement]:
    """`changepoint.judge_arrays`'s answer, row by row, as `changepoint.judge` gives each."""
    def num(a: np.ndarray) -> list[float | None]:
        out = a.astype(object)
        out[~np.isfinite(a)] = None
        return [None if x is None else float(x) for x in out]

    def index(a: np.ndarray) -> list[int | None]:
        return [None if x < 0 else x for x in a.tolist()]

    return [cp.Judgement(status=str(status), level=level, current=current, change=change,
                         interval=(low, high) if low is not None and high is not None else None, noise=noise, first_bad=first_bad,
                         last_good=last_good, nights_confirmed=confirmed, repeats_needed=repeats)
            for status, level, current, change, low, high, noise, first_bad, last_good, confirmed, repeats in zip(
                j.status, num(j.level), num(j.current), num(j.change), num(j.low), num(j.high), num(j.noise), index(j.first_bad),
                index(j.last_good), j.nights_confirmed.tolist(), index(j.repeats_needed))]


def judge_night(history: list[Night], tonight: Night, rows: dict[str, Row], *, min_effect: float = MIN_EFFECT,
                bpb_tolerance: float = 0.02, rerun: dict[str, Point] | None = None) -> Judged:
    """Every row of tonight judged over `history` + tonight; a row in `rerun` (an immediate rerun
    of it on this machine) gets the rerun as one more night, which confirms a suspect step."""
    nights = [*history, tonight]
    excluded, moved = machine_events(nights)
    if len(nights) - 1 in excluded:
        return Judged([], True, excluded, moved)
    keys = [key for key, row in rows.items() if row.kind != "copy"]
    values, noise = _figures(nights, keys)
    starts = _starts(nights, keys)
    again = [rerun.get(key) if rerun else None for key in keys]
    groups: dict[tuple[int, bool, bool, float], list[int]] = defaultdict(list)
    for i, key in enumerate(keys):  # rows judged alike (the same nights, rule and effect) are judged at once
        row, start = rows[key], int(starts[i])
        if row.kind == "memory":
            effect = MEMORY_EFFECT
        elif row.metric in LOWER_IS_BETTER:
            effect = min(0.5, bpb_tolerance / statistics.median(v for v in values[i, start:].tolist() if not math.isnan(v)))
        else:
            effect = min_effect
        groups[(start, again[i] is not None, row.higher_is_better, effect)].append(i)
    values[:, excluded] = np.nan
    judgements: list[cp.Judgement | None] = [None] * len(keys)
    for (start, with_rerun, higher_is_better, effect), members in groups.items():
        if not 0 < effect < 1:
            raise ValueError(f"0 < min_effect < 1 (got {effect})")
        x, own = values[members, start:], noise[members, start:]
        if with_rerun:
            x = np.column_stack([x, [again[i].value for i in members]])  # type: ignore[union-attr]
            own = np.column_stack([own, [again[i].noise or np.nan for i in members]])  # type: ignore[union-attr]
        j = cp.judge_arrays(x, own, higher_is_better=higher_is_better, min_effect=effect, confirm=CONFIRM, window=WINDOW,
                            rerun=with_rerun)
        for i, judgement in zip(members, _judgements(j)):
            judgements[i] = judgement
    verdicts = []
    commits = [n.commit for n in nights] + [tonight.commit]  # a row's night i is its start + i; the rerun's is tonight's commit
    for key, j, start, rerun_point in zip(keys, judgements, starts.tolist(), again):
        verdicts.append(Verdict(rows[key], j, None if j.last_good is None else commits[start + j.last_good],  # type: ignore[union-attr]
                                None if j.first_bad is None else commits[start + j.first_bad], rerun_point is not None))  # type: ignore[union-attr]
    return Judged(verdicts, False, excluded, moved)
