"""Confirmed regression alerts over a row's nightly history (issue 28), vectorised over rows so
that ground-truth simulations (`scripts/regress_sim.py`) judge thousands of histories at once.

The rule, in log space (a change is a ratio, so a rise and a fall of the same size weigh alike):
- the level is the median of the `window` usable nights before the nights being judged; a night
  is usable when it has a figure and is not excluded (a machine event, see `machine_nights`);
- the row's per-night noise is the median absolute night-to-night difference of the
  `noise_window` usable nights before them (a longer window: the median of 13 differences is
  uncertain by a third, of 55 by a sixth), scaled to a standard deviation (/ 0.954, as for normal noise), floored by the median of the
  nights' own noise where they state one;
- a night is beyond the limit when it is more than `NIGHT_Z` noises from the level;
- the run: the latest nights, counted back from the last while each is beyond the limit in the
  same direction, each against the level of the window before the run;
- a run whose median is at least `min_effect` from the level is "suspect" until it holds
  `confirm` nights, then a confirmed "regression" or "improvement";
- a row whose limit exceeds `min_effect` is "noisy" (a step of `min_effect` would stay within its
  limit most nights): averaging `repeats_needed` runs a night would make it judgeable.
A confirmed step stays an alert while its nights are beyond the level of the window before them:
once the step fills most of the window (about window / 2 nights) the level has moved to it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Collection, Sequence

import numpy as np

NIGHT_Z = 2.5
"""A night is beyond the limit at this many per-night noises from the level."""
MIN_HISTORY = 5
"""Usable nights a level needs (fewer: "short")."""
MAD_TO_SD = 0.6744897501960817 * math.sqrt(2)
"""Median |difference| of two independent normal nights, in units of their sd."""
INTERVAL_Z = 1.959963984540054
"""The interval on a change is a 95% normal interval."""
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
    """A row's state after its last night; indices are into the nights given (a rerun is
    index len(nights)). `change` is current / level - 1 (positive: the figure rose)."""

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


def _before(a: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
    """The `width` compacted columns of `a` before column `end` of each row (NaN before the first)."""
    cols = end[:, None] - width + np.arange(width)[None, :]
    return np.where(cols >= 0, np.take_along_axis(a, np.clip(cols, 0, a.shape[1] - 1), 1), np.nan)


def _window_stats(x: np.ndarray, own: np.ndarray, end: np.ndarray, window: int, noise_window: int) -> tuple[np.ndarray, ...]:
    """Level (median log) and usable count of the `window` compacted columns before `end`, and the
    noise of the `noise_window` ones."""
    w, nw = _before(x, end, window), _before(x, end, noise_window)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows give NaN
        level = np.nanmedian(w, 1)
        noise = np.nanmedian(np.abs(np.diff(nw, axis=1)), 1) / MAD_TO_SD
        floor = np.nanmedian(_before(own, end, window), 1)
    return level, np.fmax(noise, floor), np.isfinite(w).sum(1)


def judge_arrays(values: np.ndarray, own_noise: np.ndarray | None = None, *, higher_is_better: bool,
                 min_effect: float = 0.03, confirm: int = 2, window: int = 14, noise_window: int = 56) -> Judged:
    """`judge` for many rows: `values` (rows, nights), NaN where missing or excluded; `own_noise`
    the same shape, NaN where unknown."""
    v = np.asarray(values, dtype=float)
    v = np.atleast_2d(np.where(np.isfinite(v) & (v > 0), v, np.nan))
    rows, n = v.shape
    own = np.full_like(v, np.nan) if own_noise is None else np.atleast_2d(np.asarray(own_noise, dtype=float))
    own = np.where(np.isfinite(own) & (own >= 0), own, np.nan)
    usable = np.isfinite(v)
    order = np.argsort(usable, axis=1, kind="stable")  # usable nights last, in their order
    x = np.log(np.take_along_axis(v, order, 1))
    own = np.log1p(np.take_along_axis(own, order, 1))
    count = usable.sum(1)
    first = n - count  # the first usable compacted column
    ar = np.arange(rows)

    def beyond(k: np.ndarray) -> tuple[np.ndarray, ...]:
        level, noise, m = _window_stats(x, own, n - k, window, noise_window)
        night = x[ar, np.clip(n - k, 0, n - 1)] - level
        ok = (m >= MIN_HISTORY) & (n - k >= first)
        return ok & (np.abs(night) > NIGHT_Z * noise), np.sign(night), level, noise, m

    k = np.ones(rows, dtype=int)
    hit, direction, level, noise, m = beyond(k)
    short = (m < MIN_HISTORY) | (count < MIN_HISTORY + 1)
    run = np.where(hit & ~short, 1, 0)
    run_level, run_noise, run_m = level.copy(), noise.copy(), m.copy()
    active = run == 1
    while active.any():
        k = run + 1
        h, d, lv, nz, mm = beyond(k)
        grow = active & h & (d == direction)
        run = np.where(grow, k, run)
        run_level = np.where(grow, lv, run_level)
        run_noise = np.where(grow, nz, run_noise)
        run_m = np.where(grow, mm, run_m)
        active = grow
    # the run's median against the level before it
    cols = n - run[:, None] + np.arange(n)[None, :]
    in_run = cols < n
    run_vals = np.where(in_run, np.take_along_axis(x, np.clip(cols, 0, n - 1), 1), np.nan)
    has_run = run > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        current_log = np.where(has_run, np.nanmedian(np.where(has_run[:, None], run_vals, 0.0), 1), x[:, -1])
    lev = np.where(has_run, run_level, level)
    nz = np.where(has_run, run_noise, noise)
    shift = current_log - lev
    stepped = has_run & (np.abs(shift) >= math.log1p(min_effect)) & ~short
    limit = NIGHT_Z * nz
    noisy = limit > math.log1p(min_effect)
    worse = (shift < 0) if higher_is_better else (shift > 0)
    status = np.select(
        [short, stepped & (run >= confirm) & worse, stepped & (run >= confirm), stepped, noisy],
        [0, 4, 5, 3, 2], default=1)
    k_eff = np.where(has_run, run, 1)
    factor = np.where(k_eff > 2, math.pi / 2, 1.0)
    se = nz * np.sqrt(factor / k_eff + (math.pi / 2) / np.maximum(np.where(has_run, run_m, m), 1))
    first_bad = np.where(stepped, order[ar, np.clip(n - run, 0, n - 1)], -1)
    last_good = np.where(stepped & (n - run - 1 >= first), order[ar, np.clip(n - run - 1, 0, n - 1)], -1)
    with np.errstate(all="ignore"):
        need = np.ceil((limit / math.log1p(min_effect)) ** 2)
    return Judged(
        status=np.asarray(STATUSES, dtype=object)[status],
        level=np.where(short, np.nan, np.exp(lev)),
        current=np.where(short, np.nan, np.exp(current_log)),
        change=np.where(short, np.nan, np.expm1(shift)),
        low=np.where(short, np.nan, np.expm1(shift - INTERVAL_Z * se)),
        high=np.where(short, np.nan, np.expm1(shift + INTERVAL_Z * se)),
        noise=np.where(short, np.nan, np.expm1(nz)),
        first_bad=first_bad,
        last_good=last_good,
        nights_confirmed=np.where(stepped, run, 0),
        repeats_needed=np.where(noisy & ~short & (status == 2), need, -1).astype(int),
    )


def judge(nights: Sequence[Night], *, higher_is_better: bool, min_effect: float = 0.03, confirm: int = 2,
          window: int = 14, excluded: Collection[int] = (), rerun: Night | None = None, noise_window: int = 56) -> Judgement:
    """A row's state after its last night (see the module's rule). `excluded`: indices of machine
    events, never judged and never in the level. `rerun`: an immediate rerun of the row on the
    same machine after the last night, counted as one more night (index len(nights)): it confirms
    a suspect step at once."""
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
                     confirm=confirm, window=window, noise_window=noise_window)

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
                   copy: int | None = None) -> np.ndarray:
    """Nights (columns) that are machine events: of the rows with a figure that night (finite
    change; at least `min_rows` of them), more than `share` moved beyond their limit in the same
    direction (and so did row `copy`, the device copy bandwidth, where given), and they did not
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
    for up in (c > lim, c < -lim):
        together = (n >= min_rows) & ((has & up).sum(0) > share * n)
        if copy is not None:
            together &= up[copy]
        moved.append(together)
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
    v = np.atleast_2d(np.asarray(values, dtype=float))
    v = np.where(np.isfinite(v) & (v > 0), v, np.nan)
    rows, n = v.shape
    order = np.argsort(np.isfinite(v), axis=1, kind="stable")
    x = np.log(np.take_along_axis(v, order, 1))
    before = np.lib.stride_tricks.sliding_window_view(np.pad(x, ((0, 0), (window, 0)), constant_values=np.nan), window, axis=1)[:, :n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.where(np.isfinite(before).sum(-1) >= MIN_HISTORY, np.nanmedian(before, -1), np.nan)
        noise = np.nanmedian(np.abs(np.diff(x, axis=1)), 1) / MAD_TO_SD
    out = np.empty_like(x)
    np.put_along_axis(out, order, np.expm1(x - level), 1)
    return out, np.expm1(NIGHT_Z * noise)


def night_changes(nights: Sequence[Night], *, window: int = 14, excluded: Collection[int] = ()) -> tuple[np.ndarray, float]:
    """`level_changes` for one row's nights (excluded ones count as missing)."""
    skip = set(excluded)
    v = np.array([np.nan if i in skip or n.value is None else n.value for i, n in enumerate(nights)], dtype=float)
    changes, limit = level_changes(v[None, :], window=window)
    return changes[0], float(limit[0])


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
