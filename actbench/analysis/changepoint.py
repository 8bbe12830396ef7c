"""Confirmed regression alerts over a row's nightly history (issue 28), vectorised over rows so
that ground-truth simulations (`scripts/regress_sim.py`) judge thousands of histories at once.

The rule, in log space (a change is a ratio: a rise and a fall of the same size weigh alike), on
the usable nights (with a figure, not excluded as machine events: `machine_nights`):
- level: the median of the `window` nights before the night or step judged;
- noise: the row's per-night noise, the median absolute night-to-night difference of the last
  `noise_window` nights / 0.954 (normal noise), floored by the median of the nights' own noise;
- a step starts on a night beyond `NIGHT_Z` noises from the level before it, and holds while every
  night since stays beyond `HOLD_Z` noises on the same side (one night nearer the old level does
  not end it); of the first candidate starts the earliest whose run is itself a step wins, so a
  step stays an alert until the figure comes back (or the caller accepts it by passing only the
  nights from it on);
- a step whose median is at least `min_effect` from the level is "suspect"; it is confirmed (a
  "regression" or an "improvement") once it has `confirm` nights (a rerun counts as one, but not in the
  standard error: it shares its night's conditions) and its size is `STEP_Z` standard errors (the
  step's median against the level's: a t quantile on the number of differences the noise rests on, and on the nights stating their own noise where that
  noise governs);
- a row where a step of `min_effect` is within `NOISY_Z` noises is "noisy": averaging
  `repeats_needed` runs a night would make it judgeable.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

NIGHT_Z = 2.5
"""A night is beyond the limit at this many per-night noises from the level."""
NOISY_Z = 2.0
"""A row is "noisy" when a step of `min_effect` is within this many per-night noises (it would
pass the limit on fewer than a third of nights; at 3%, a noise above 1.5%)."""
STEP_Z = 3.5
"""A step is confirmed when its size is this many standard errors (normal quantile; a t quantile
where the noise rests on few nights)."""
HOLD_Z = NIGHT_Z / 2
"""A step holds while its nights stay beyond this many noises on its side (so that one night
nearer the old level does not end an alert)."""
MIN_HISTORY = 5
"""Usable nights a level needs (fewer: "short")."""
MAD_TO_SD = 0.6744897501960817 * math.sqrt(2)
"""Median |difference| of two independent normal nights, in units of their sd."""
INTERVAL_Z = 1.959963984540054
"""The interval on a change is a 95% normal interval."""
START_CANDIDATES = 3
"""The earliest candidate starts of a step compared (`_step_start`)."""
STATUSES = ("short", "ok", "noisy", "suspect", "regression", "improvement")


@dataclass(frozen=True)
class Night:
    """One row's figure on one night: `value` None when the row did not run or gave no figure
    (a value that is not finite and positive counts as missing); `noise` the row's own relative
    noise that night (kernel: repeat spread; lm: seed sd / mean) if known."""

    value: float | None
    noise: float | None = None


@dataclass(frozen=True)
class Judgement:
    """A row's state after its last night. `status`: "short" (fewer than MIN_HISTORY usable nights
    before it), "ok", "noisy", "suspect", "regression" or "improvement" (confirmed steps). `level`:
    the median before the step (or before the last night); `current`: the step's median (or the
    last night); `change` = current / level - 1 (positive: the figure rose) with its 95%
    `interval`; `noise`: the relative per-night noise used; `first_bad` / `last_good`: indices into
    the nights given (a rerun is index len(nights)); `nights_confirmed`: the step's nights so far;
    `repeats_needed`: where the row is too noisy, the runs a night whose mean would judge it."""

    status: str
    level: float | None
    current: float | None
    change: float | None
    interval: tuple[float, float] | None
    noise: float | None
    first_bad: int | None
    last_good: int | None
    nights_confirmed: int
    repeats_needed: int | None


@dataclass(frozen=True)
class Judged:
    """`judge_arrays`'s answer: one entry per row (NaN or -1 where not applicable)."""

    status: np.ndarray
    level: np.ndarray
    current: np.ndarray
    change: np.ndarray
    low: np.ndarray
    high: np.ndarray
    noise: np.ndarray
    first_bad: np.ndarray
    last_good: np.ndarray
    nights_confirmed: np.ndarray
    repeats_needed: np.ndarray


def _nanmedian(a: np.ndarray) -> np.ndarray:
    """Median over the last axis ignoring NaN (NaN where none): np.nanmedian, without its slow
    path for small rows."""
    if not a.shape[-1]:
        return np.full(a.shape[:-1], np.nan)
    s = np.sort(a, axis=-1)  # NaN last
    count = np.isfinite(s).sum(-1)
    lo = np.take_along_axis(s, (np.maximum(count - 1, 0) // 2)[..., None], -1)[..., 0]
    hi = np.take_along_axis(s, (count // 2)[..., None], -1)[..., 0]
    return np.where(count > 0, (lo + np.where(count > 1, hi, lo)) / 2, np.nan)


def _levels(x: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """For each compacted column: the median of the `window` columns before it and their usable
    count."""
    before = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (window, 0)), constant_values=np.nan),
                                                       window, axis=1)[:, :x.shape[1]]
    return _nanmedian(before), np.isfinite(before).sum(-1)


def _compact(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the order that puts each row's usable nights last, in their order; their logs so placed)."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    v = np.where(np.isfinite(v) & (v > 0), v, np.nan)
    order = np.argsort(np.isfinite(v), axis=1, kind="stable")
    return order, np.log(np.take_along_axis(v, order, 1))


def _step_se(noise: np.ndarray, k: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The standard error of a step: the median of its `k` nights against that of the `m` nights in
    the level's window."""
    return noise * np.sqrt(np.where(k > 2, math.pi / 2, 1.0) / k + (math.pi / 2) / np.maximum(m, 1))


def _step_start(x: np.ndarray, level: np.ndarray, m: np.ndarray, noise: np.ndarray, candidates: np.ndarray,
                need: float, critical: np.ndarray) -> np.ndarray:
    """Each row's step start (its number of columns where none): of the first START_CANDIDATES
    candidate starts, the earliest whose run's median is a step (at least `need` from its level and
    `critical` standard errors, its first night nearer that median than the level), else the one
    whose median is the most standard errors from its level. Taking the earliest alone let a noise night just before a large step start a run whose
    median, with the step only two nights old, was still the old level."""
    rows, n = x.shape
    ar = np.arange(rows)[:, None]
    first = np.argsort(~candidates, axis=1, kind="stable")[:, :START_CANDIDATES]
    valid = candidates[ar, first]
    runs = np.where(np.arange(n)[None, None, :] >= first[..., None], x[:, None, :], np.nan)
    k = n - first
    median, before, night = _nanmedian(runs), level[ar, first], x[ar, first]
    shift = np.abs(median - before)
    with np.errstate(divide="ignore", invalid="ignore"):  # a row without noise: 0/0 scores 0, a step over no noise inf
        score = np.where(valid, np.nan_to_num(shift / _step_se(noise[:, None], k, m[ar, first]), nan=0.0), -np.inf)
    step = (shift >= need) & (score >= critical[:, None]) & (np.abs(night - median) <= np.abs(night - before))
    best = np.where(step.any(1), step.argmax(1), score.argmax(1))
    return np.where(valid.any(1), first[ar[:, 0], best], n)


def judge_arrays(values: np.ndarray, own_noise: np.ndarray | None = None, *, higher_is_better: bool,
                 min_effect: float = 0.03, confirm: int = 2, window: int = 14, noise_window: int = 56,
                 rerun: bool = False) -> Judged:
    """`judge` for many rows: `values` (rows, nights), NaN where missing or excluded; `own_noise`
    the same shape, NaN where unknown; `rerun`: the last column is an immediate rerun of the night
    before it (one more night towards `confirm`, no more evidence in the step's standard error)."""
    order, x = _compact(values)
    rows, n = x.shape
    own = np.full(x.shape, np.nan) if own_noise is None else np.atleast_2d(np.asarray(own_noise, dtype=float))
    own = np.log1p(np.take_along_axis(np.where(np.isfinite(own) & (own >= 0), own, np.nan), order, 1))
    own = np.where(np.isfinite(x), own, np.nan)  # a night without a figure tells no noise
    first = n - np.isfinite(x).sum(1)  # each row's first usable compacted column
    ar = np.arange(rows)
    recent, recent_own = x[:, max(0, n - noise_window):], own[:, max(0, n - noise_window):]
    spread, floor = _nanmedian(np.abs(np.diff(recent, axis=1))) / MAD_TO_SD, _nanmedian(recent_own)
    noise = np.fmax(spread, floor)
    limit, hold = NIGHT_Z * noise, HOLD_Z * noise
    level, m = _levels(x, window)
    col = np.arange(n)[None, :]
    judged = (m >= MIN_HISTORY) & (col >= first[:, None])
    # a run may start at column c: night c beyond the limit from the level before it, and every
    # night since beyond `hold` on the same side (suffix minima and maxima)
    low_since = np.flip(np.fmin.accumulate(np.flip(x, 1), 1), 1)
    high_since = np.flip(np.fmax.accumulate(np.flip(x, 1), 1), 1)
    gap = x - level
    down = judged & (gap < -limit[:, None]) & (high_since - level < -hold[:, None])
    up = judged & (gap > limit[:, None]) & (low_since - level > hold[:, None])
    # the step's critical value, widened where the noise rests on few differences (t on their
    # number); where the nights' own noise governs, each night's stated noise is one more piece of evidence
    diffs = np.isfinite(np.diff(recent, axis=1)).sum(1)
    evidence = diffs + np.where(spread > floor, 0, np.isfinite(recent_own).sum(1))
    critical = stats.t.ppf(stats.norm.cdf(STEP_Z), np.maximum(evidence, 1))
    start = _step_start(x, level, m, noise, down | up, math.log1p(min_effect), critical)
    has_run = start < n
    at = np.minimum(start, n - 1)
    run_level = np.where(has_run, level[ar, at], level[:, -1])
    in_run = col >= start[:, None]
    run_vals = np.where(in_run, x, np.nan)
    current_log = np.where(has_run, _nanmedian(run_vals), x[:, -1])
    shift = current_log - run_level
    # the step's standard error: the median of k nights against that of the m in the level's window
    k = np.where(has_run, n - start, 1)
    # a rerun shares its night's conditions (machine state, load), so it tells whether the step
    # repeats, not its size: the step's standard error counts the nights alone
    se = _step_se(noise, np.maximum(k - rerun, 1), m[ar, np.where(has_run, at, n - 1)])
    short = m[:, -1] < MIN_HISTORY
    stepped = has_run & (np.abs(shift) >= math.log1p(min_effect)) & ~short
    confirmed = stepped & (k >= confirm) & (np.abs(shift) >= critical * se)
    noisy = NOISY_Z * noise > math.log1p(min_effect)
    worse = (shift < 0) if higher_is_better else (shift > 0)
    status = np.select([short, confirmed & worse, confirmed, stepped, noisy], [0, 4, 5, 3, 2], default=1)
    first_bad = np.where(stepped, order[ar, at], -1)
    last_good = np.where(stepped & (start - 1 >= first), order[ar, np.maximum(start - 1, 0)], -1)
    with np.errstate(all="ignore"):
        need = np.ceil((NOISY_Z * noise / math.log1p(min_effect)) ** 2)
    return Judged(
        status=np.asarray(STATUSES, dtype=object)[status],
        level=np.where(short, np.nan, np.exp(run_level)),
        current=np.where(short, np.nan, np.exp(current_log)),
        change=np.where(short, np.nan, np.expm1(shift)),
        low=np.where(short, np.nan, np.expm1(shift - INTERVAL_Z * se)),
        high=np.where(short, np.nan, np.expm1(shift + INTERVAL_Z * se)),
        noise=np.where(short, np.nan, np.expm1(noise)),
        first_bad=first_bad,
        last_good=last_good,
        nights_confirmed=np.where(stepped, k, 0),
        repeats_needed=np.where(noisy & ~short, need, -1).astype(int),
    )


def judge(nights: Sequence[Night], *, higher_is_better: bool, min_effect: float = 0.03, confirm: int = 2,
          window: int = 14, excluded: Collection[int] = (), rerun: Night | None = None, noise_window: int = 56) -> Judgement:
    """A row's state after its last night (see the module's rule). `excluded`: indices of machine
    events, never judged and never in the level. `rerun`: an immediate rerun of the row on the
    same machine after the last night, counted as one more night towards `confirm` (index
    len(nights)) but not in the step's standard error, so that a step decisive on its own night
    can be confirmed the night it appears."""
    if confirm < 1 or min(window, noise_window) < MIN_HISTORY or not 0 < min_effect < 1:
        raise ValueError(f"confirm >= 1, window and noise_window >= {MIN_HISTORY}, 0 < min_effect < 1 "
                         f"(got {confirm}, {window}, {noise_window}, {min_effect})")
    all_nights = [*nights, *([rerun] if rerun is not None else [])]
    skip = set(excluded)
    values = np.array([np.nan if i in skip or night.value is None else night.value for i, night in enumerate(all_nights)], dtype=float)
    noise = np.array([np.nan if night.noise is None else night.noise for night in all_nights], dtype=float)
    if not len(values):
        return Judgement("short", None, None, None, None, None, None, None, 0, None)
    j = judge_arrays(values[None, :], noise[None, :], higher_is_better=higher_is_better, min_effect=min_effect,
                     confirm=confirm, window=window, noise_window=noise_window, rerun=rerun is not None)

    def num(a: np.ndarray) -> float | None:
        return float(a[0]) if np.isfinite(a[0]) else None

    low, high = num(j.low), num(j.high)
    return Judgement(
        status=str(j.status[0]), level=num(j.level), current=num(j.current), change=num(j.change),
        interval=(low, high) if low is not None and high is not None else None, noise=num(j.noise),
        first_bad=int(j.first_bad[0]) if j.first_bad[0] >= 0 else None,
        last_good=int(j.last_good[0]) if j.last_good[0] >= 0 else None,
        nights_confirmed=int(j.nights_confirmed[0]),
        repeats_needed=int(j.repeats_needed[0]) if j.repeats_needed[0] >= 0 else None)


def machine_nights(changes: np.ndarray, limits: np.ndarray, *, share: float = 0.5, min_rows: int = 3,
                   copy: Sequence[int] = ()) -> np.ndarray:
    """Nights (columns) that are machine events: of the rows with a figure that night (finite
    change; at least `min_rows` of them), more than `share` moved beyond their limit in the same
    direction (and so did more than `share` of the `copy` rows, the device copy bandwidths, on a
    night where any of them has a figure), and they did not
    stay there the next night with figures (a move that persists is a step: judged, not excluded;
    the last night, with no next one yet, counts as an event until then). `changes`: (rows,
    nights) relative changes against each row's level (`level_changes`); `limits`: each row's
    limit, (rows,) or (rows, nights)."""
    c = np.atleast_2d(np.asarray(changes, dtype=float))
    lim = np.asarray(limits, dtype=float)
    lim = lim[:, None] if lim.ndim == 1 else lim
    has = np.isfinite(c)
    n = has.sum(0)
    moved = []
    copies = list(copy)
    copies_with = has[copies].sum(0)
    for up in (c > lim, c < -lim):
        together = (n >= min_rows) & ((has & up).sum(0) > share * n)
        moved.append(together & ((copies_with == 0) | ((has & up)[copies].sum(0) > share * copies_with)))
    out = np.zeros(c.shape[1], dtype=bool)
    with_figures = np.flatnonzero(n >= min_rows)
    for pos, night in enumerate(with_figures):
        after = with_figures[pos + 1] if pos + 1 < len(with_figures) else None
        out[night] = any(m[night] and (after is None or not m[after]) for m in moved)
    return out


def level_changes(values: np.ndarray, *, window: int = 14) -> tuple[np.ndarray, np.ndarray]:
    """For many rows (`values` (rows, nights), NaN where missing or excluded): each night's
    relative change against the median of the `window` usable nights before it (NaN where
    missing or with fewer than MIN_HISTORY before it), and each row's limit (NIGHT_Z per-night
    noises from its whole history, NaN if unknown): `machine_nights`' input."""
    order, x = _compact(values)
    level, m = _levels(x, window)
    noise = _nanmedian(np.abs(np.diff(x, axis=1))) / MAD_TO_SD
    out = np.empty_like(x)
    np.put_along_axis(out, order, np.where(m >= MIN_HISTORY, np.expm1(x - level), np.nan), 1)
    return out, np.expm1(NIGHT_Z * noise)


def single_night_arrays(values: np.ndarray, own_noise: np.ndarray | None = None, *, higher_is_better: bool,
                        threshold: float = 0.05) -> np.ndarray:
    """`single_night` for many rows: `values` (rows, nights), NaN where missing."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    usable = np.isfinite(v) & (v > 0)
    own = np.zeros_like(v) if own_noise is None else np.nan_to_num(np.atleast_2d(np.asarray(own_noise, dtype=float)), nan=0.0)
    order = np.argsort(usable, axis=1, kind="stable")
    vc, oc = np.take_along_axis(np.where(usable, v, np.nan), order, 1), np.take_along_axis(own, order, 1)
    if v.shape[1] < 2:
        return np.full(len(v), "ok", dtype=object)
    with np.errstate(invalid="ignore"):
        change = vc[:, -1] / vc[:, -2] - 1
        beyond = np.abs(change) > np.maximum(threshold, np.maximum(oc[:, -1], oc[:, -2]))
    worse = (change < 0) if higher_is_better else (change > 0)
    return np.select([beyond & worse, beyond], ["regression", "improvement"], "ok").astype(object)


def single_night(nights: Sequence[Night], *, higher_is_better: bool, threshold: float = 0.05) -> str:
    """Today's rule, for comparison: the last night with a figure against the one before it (the
    baseline), flagged beyond max(threshold, the larger of their own noises)."""
    v = np.array([np.nan if n.value is None else n.value for n in nights], dtype=float)
    o = np.array([np.nan if n.noise is None else n.noise for n in nights], dtype=float)
    return str(single_night_arrays(v[None, :], o[None, :], higher_is_better=higher_is_better, threshold=threshold)[0])
