"""One candidate's records in an lm table reduced to one value per seed (its metric, validation
chunks, predictions, throughput and curve slope), and what compare computes over paired seeds from
them: the evaluation-set bootstrap interval, the throughput ratio, the difference at equal
wall-clock, the seed noise, and the skewness limit of the paired test (a fixed-seed simulation kept
in the cache of computed figures)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actbench.analysis import stats
from actbench.report.series import FIRST
from actbench.results.seriescache import ArrayCache

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.series import Series

CHURN_SEEDS = 8
"""Prediction churn is the mean over pairs of the first (lowest) this many seeds of a row."""


@dataclass
class PerSeed:
    """One candidate's ok records in one table, reduced to one value per seed."""

    value: dict[int, float] = field(default_factory=dict)
    chunks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # seed -> (nats, weight)
    preds: dict[int, np.ndarray] = field(default_factory=dict)
    speed: dict[int, float] = field(default_factory=dict)  # tokens/s
    slope: dict[int, float] = field(default_factory=dict)  # d metric / d ln(tokens) before the LR decay


def per_seed(ok: "pd.DataFrame", metric: str, series: "Series") -> PerSeed:
    """Per seed: the mean of its records' metric (several records only with merge), the mean
    per-chunk losses where the records agree on the chunks, argmax predictions, throughput and the
    slope of its validation curve."""
    import pandas as pd

    out = PerSeed()
    weight = "bytes" if metric == "val_bpb" else "tokens"
    curve = "bpb" if metric == "val_bpb" else "loss"
    g = ok[[c for c in dict.fromkeys(("seed", f"metric.{metric}", "metric.tokens_per_s", "results_dir", "config", "series_file")) if c in ok]]
    g = g.dropna(subset=["seed"])  # of the columns read here only: the rest are not copied
    if g.empty:
        return out
    codes, keys = pd.factorize(g["seed"], sort=True)  # grouped by seed as numpy index arrays: a pandas group of each costs more than its work
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    groups = np.split(order, starts[1:])
    single = np.diff(np.r_[starts, len(order)]) == 1
    value, has_value = _seed_means(numbers(g[f"metric.{metric}"]), groups, order[starts], single)
    speed, has_speed = _seed_means(numbers(g["metric.tokens_per_s"]) if "metric.tokens_per_s" in g else np.full(len(g), np.nan),
                                   groups, order[starts], single)
    dirs, configs = g["results_dir"].to_numpy(dtype=object), g["config"].to_numpy(dtype=object)
    files = g["series_file"].to_numpy(dtype=object) if "series_file" in g else np.full(len(g), None, dtype=object)
    for j in np.flatnonzero(has_value):
        s, at = int(keys[j]), groups[j]
        out.value[s] = float(value[j])
        if has_speed[j]:
            out.speed[s] = float(speed[j])
        chunks, preds, slopes = [], None, []
        for d, f, cfg in zip(dirs[at], files[at], configs[at]):
            trial = series.get(d, f, FIRST)
            c = trial.chunk_arrays(weight)
            if c is not None:
                chunks.append(c)
            if preds is None and len(out.preds) < CHURN_SEEDS:  # churn looks at a bounded number of seeds
                preds = series.get(d, f, ("argmax",)).argmax
            slope = trial.stable_slope(curve, cfg if isinstance(cfg, dict) else {})
            if slope is not None:
                slopes.append(slope)
        if len(chunks) == 1:  # one record's (the mean of one array is that array)
            out.chunks[s] = (chunks[0][0].copy(), chunks[0][1])
        elif chunks and all(len(c[0]) == len(chunks[0][0]) and np.array_equal(c[1], chunks[0][1]) for c in chunks):
            out.chunks[s] = (np.mean([c[0] for c in chunks], axis=0), chunks[0][1])
        if preds is not None:
            out.preds[s] = preds
        if slopes:
            out.slope[s] = slopes[0] if len(slopes) == 1 else float(np.mean(slopes))
    return out


def _seed_means(values: np.ndarray, groups: list[np.ndarray], firsts: np.ndarray, single: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per group of records (`firsts`: the first of each, `single`: whether it is alone), the
    nanmean of their values and whether any is finite: a lone record's is its own value (what
    nanmean gives for one), taken for every such group at once."""
    finite = np.isfinite(values)
    mean, has = values[firsts].copy(), finite[firsts].copy()
    for j in np.flatnonzero(~single):
        has[j] = finite[groups[j]].any()
        if has[j]:
            mean[j] = np.nanmean(values[groups[j]])
    return mean, has


@functools.lru_cache(maxsize=64)
def skew_limit(n: int) -> float:
    """`stats.skew_limit` (a simulation with a fixed seed: the same for every table of n pairs), once per n,
    kept in the cache of computed figures for later calls of the same code (stats, numpy and scipy)."""
    cache = ArrayCache.computed(_stats_version())
    key = f"stats.skew_limit {n}"
    kept = cache.load(key, b"") if cache is not None else None
    if kept is not None and set(kept) == {"limit"} and kept["limit"].shape == (1,) and kept["limit"].dtype == float:
        return float(kept["limit"][0])
    value = stats.skew_limit(n)
    if cache is not None:
        cache.store(key, b"", {"limit": np.array([value], dtype=float)})
    return value


@functools.lru_cache(maxsize=1)
def _stats_version() -> str:
    """A digest of the code a simulated figure comes from: `analysis.stats`, numpy's and scipy's versions."""
    import hashlib

    import scipy

    return hashlib.sha256(Path(stats.__file__ or "").read_bytes() + f" {np.__version__} {scipy.__version__}".encode()).hexdigest()[:16]


def numbers(values: "pd.Series") -> np.ndarray:
    """A metric column as floats: anything that is not a number (a string a plugin recorded, say) is NaN."""
    import pandas as pd

    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def eval_interval(base: PerSeed, cand: PerSeed, seeds: list[int], metric: str, level: float) -> tuple[float, float, float, str | None]:
    """(estimate, low, high, why-not) of the mean difference from a paired bootstrap over
    validation chunks of the per-chunk loss difference averaged over the paired seeds."""
    usable = [s for s in seeds if s in base.chunks and s in cand.chunks]
    if not usable:
        return np.nan, np.nan, np.nan, "no eval_chunks in the series"
    if len(usable) < len(seeds):
        return np.nan, np.nan, np.nan, f"eval_chunks for {len(usable)} of {len(seeds)} paired seeds"
    shapes = {(len(base.chunks[s][0]), len(cand.chunks[s][0])) for s in usable}
    w0 = base.chunks[usable[0]][1]
    if len(shapes) != 1 or any(not np.array_equal(base.chunks[s][1], w0) or not np.array_equal(cand.chunks[s][1], w0) for s in usable):
        return np.nan, np.nan, np.nan, "validation chunks differ between trials"
    diff = np.mean([cand.chunks[s][0] - base.chunks[s][0] for s in usable], axis=0)
    scale = 1 / np.log(2) if metric == "val_bpb" else 1.0
    est, low, high = stats.chunk_bootstrap(diff, w0, scale=scale, level=level)
    return float(est), float(low), float(high), None


def cost_and_noise(base: PerSeed, cand: PerSeed, seeds: list[int], level: float) -> dict[str, float]:
    """The throughput ratio (candidate / baseline tokens/s: geometric mean over paired seeds, t
    interval on its log), the difference at equal wall-clock (each seed's difference plus the
    candidate's slope times ln of its ratio: the loss it reaches on the tokens it trains in the
    baseline's time), and the seed noise: the correlation of paired seeds and the share of the
    seed variance that pairing removed (1 - var(diff) / (var(candidate) + var(baseline)))."""
    out = {k: np.nan for k in ("speed_ratio", "speed_low", "speed_high", "delta_wall", "delta_wall_ci95", "pair_corr", "pairing_gain")}
    timed = [s for s in seeds if s in base.speed and s in cand.speed and base.speed[s] > 0 and cand.speed[s] > 0]
    if timed:
        log_ratio = np.log([cand.speed[s] / base.speed[s] for s in timed])
        m, half, _ = stats.mean_ci(log_ratio, level)
        out.update(speed_ratio=float(np.exp(m)), speed_low=float(np.exp(m - half)), speed_high=float(np.exp(m + half)))
        walled = [s for s in timed if s in cand.slope]
        if walled:
            wall = [cand.value[s] - base.value[s] + cand.slope[s] * np.log(cand.speed[s] / base.speed[s]) for s in walled]
            m, half, _ = stats.mean_ci(wall, level)
            out.update(delta_wall=m, delta_wall_ci95=half)
    if len(seeds) >= 3:
        c, b = np.array([cand.value[s] for s in seeds]), np.array([base.value[s] for s in seeds])
        if c.std() > 0 and b.std() > 0:
            out["pair_corr"] = float(np.corrcoef(c, b)[0, 1])
            out["pairing_gain"] = float(1 - np.var(c - b, ddof=1) / (np.var(c, ddof=1) + np.var(b, ddof=1)))
    return out
