"""Statistics behind every verdict, vectorised over leading axes so that ground-truth simulations
(thousands of synthetic comparisons) run in milliseconds.

LM quality, paired design (seed s of every activation shares data order and initial weights, so
per-seed differences cancel the seed's own luck):
- `paired_t`: mean difference, t interval, two-sided paired t-test p, Cohen's dz.
- `holm`: Holm's step-down adjustment of a family's p-values (family-wise error <= alpha).
- `lm_verdicts`: "better" / "worse" / "no detectable difference" at alpha (lower is better).
- `paired_power`, `detectable_difference`, `seeds_needed`: power of the two-sided paired t-test
  from the noncentral t distribution.
- `skewness`, `skew_limit`: whether the paired differences are skewed beyond what keeps each
  direction's false claims within their share of alpha (the t intervals assume symmetry).
- `chunk_bootstrap`: evaluation-set uncertainty, a paired bootstrap over validation chunks of the
  per-chunk loss difference (a ratio estimator: summed nats over summed bytes or tokens).
Kernels, as nvbench compares: `kernel_summary` pools repeats into a median with an interval,
`kernel_verdicts` says "same" where intervals overlap, "noisy" where an interval is too wide.
Diagnostics: `mean_ci`, `churn`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from scipy import optimize, stats

from actbench.core.trial import NOISY_SPREAD

if TYPE_CHECKING:
    import pandas as pd
    from pandas.core.groupby import DataFrameGroupBy



POWER = 0.8
"""The power at which detectable differences and the seeds needed are stated."""
HINT_CAP = 100
"""The most paired seeds a hint names: where more are needed, it says so."""


def mean_ci(values: Any, level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the t confidence interval, and n of the finite values."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


@dataclass(frozen=True)
class PairedTest:
    """The paired t-test of differences (arrays over the leading axes of the input)."""

    n: int
    mean: np.ndarray
    half: np.ndarray  # half-width of the t confidence interval of the mean difference
    sd: np.ndarray
    t: np.ndarray
    p: np.ndarray  # two-sided
    dz: np.ndarray  # Cohen's dz = mean / sd


def paired_t(diffs: Any, level: float = 0.95) -> PairedTest:
    """Paired t-test of the differences along the last axis. With fewer than 2 differences
    everything but the mean is nan (no test). Differences that are all equal give p = 1 when
    they are 0 and p = 0 otherwise (an exact, noise-free difference)."""
    d = np.asarray(diffs, dtype=float)
    n = d.shape[-1]
    mean = d.mean(axis=-1)
    if n < 2:
        nan = np.full_like(mean, np.nan)
        return PairedTest(n, mean, nan, nan, nan, nan, nan)
    sd = d.std(axis=-1, ddof=1)
    exact = sd <= 8 * np.finfo(float).eps * np.abs(d).max(axis=-1)
    sd = np.where(exact, 0.0, sd)
    se = sd / np.sqrt(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(exact, np.where(mean == 0, 0.0, np.sign(mean) * np.inf), mean / se)
        dz = np.where(exact, np.where(mean == 0, 0.0, np.sign(mean) * np.inf), mean / sd)
    p = np.where(exact, np.where(mean == 0, 1.0, 0.0), 2 * stats.t.sf(np.abs(t), n - 1))
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    return PairedTest(n, mean, half, sd, t, p, dz)


def holm(p: Any) -> np.ndarray:
    """Holm-adjusted p-values along the last axis (nan entries are not tests and stay nan): the
    i-th smallest of m p-values becomes max over j <= i of min(1, (m - j) p_(j))."""
    p = np.asarray(p, dtype=float)
    valid = ~np.isnan(p)
    m = valid.sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(valid, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)
    steps = m - np.arange(p.shape[-1])
    with np.errstate(invalid="ignore"):
        adjusted = np.maximum.accumulate(np.minimum(1.0, np.where(steps > 0, steps, 1) * np.nan_to_num(ranked, nan=1.0)), axis=-1)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(valid, out, np.nan)


def lm_verdicts(delta: Any, p_adjusted: Any, alpha: float) -> np.ndarray:
    """"better" (lower loss) / "worse" where the adjusted p is below alpha, else "no detectable
    difference"; "no test" where there is no p-value."""
    delta, p = np.asarray(delta, dtype=float), np.asarray(p_adjusted, dtype=float)
    return np.select([np.isnan(p), (p < alpha) & (delta < 0), (p < alpha) & (delta > 0)],
                     ["no test", "better", "worse"], "no detectable difference")


def paired_power(delta: Any, sd: Any, n: Any, alpha: float) -> np.ndarray:
    """Power of the two-sided paired t-test at level alpha for a true mean difference `delta`,
    standard deviation of differences `sd` and n pairs (noncentral t with n - 1 df)."""
    delta, sd, n = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (delta, sd, n)))
    df = n - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        ncp = np.abs(delta) / sd * np.sqrt(n)
    crit = stats.t.ppf(1 - alpha / 2, df)
    finite = np.isfinite(ncp)
    ncp_f = np.where(finite, ncp, 0.0)
    upper = stats.nct.sf(crit, df, ncp_f)
    upper = np.where(np.isnan(upper), 1 - stats.nct.cdf(crit, df, ncp_f), upper)
    lower = np.nan_to_num(stats.nct.cdf(-crit, df, ncp_f), nan=0.0)  # scipy gives nan deep in the far tail
    power = upper + lower
    return np.where(finite, power, np.where(np.abs(delta) > 0, 1.0, alpha))


def detectable_difference(sd: float, n: int, alpha: float, power: float = POWER) -> float:
    """The smallest true mean difference that n pairs detect with probability `power`."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    if sd == 0:
        return 0.0

    def gap(effect: float) -> float:
        return float(paired_power(effect, 1.0, n, alpha)) - power

    high = 1.0
    while gap(high) < 0:
        high *= 2
    return float(optimize.brentq(gap, 0.0, high, xtol=1e-10)) * sd


def seeds_needed(delta: float, sd: float, alpha: float, power: float = POWER, run: int = 1, cap: int = HINT_CAP) -> int | None:
    """The fewest paired seeds, more than the `run` already run and at most `cap`, with which a
    fresh two-sided paired t-test at alpha detects a true difference `delta` with probability
    `power` (None when none does: delta 0 or unknown, or more than `cap` needed)."""
    if not (np.isfinite(delta) and np.isfinite(sd)) or delta == 0:
        return None
    n = np.arange(max(2, run + 1), cap + 1)
    ok = paired_power(delta, sd, n, alpha) >= power
    return int(n[np.argmax(ok)]) if ok.any() else None


SKEW_TOLERATED = 0.2
"""The skewness of paired differences (of a gamma law) up to which each direction's false-claim
rate stays near its share of alpha (at most about 1.25 times it) in the designs that
`scripts/sequential_design.py --skew` simulates; a direction's rate grows with the skewness."""
SKEW_SURE = 0.95
SEED_SKEW = 7


def skewness(diffs: Any) -> float:
    """The sample skewness G1 (adjusted Fisher-Pearson, scipy's `skew(bias=False)`) of the
    differences; nan with fewer than 3 or when they are all equal."""
    d = np.asarray(diffs, dtype=float)
    if len(d) < 3 or np.ptp(d) <= 8 * np.finfo(float).eps * np.abs(d).max():
        return float("nan")
    return float(stats.skew(d, bias=False))


@functools.lru_cache(maxsize=256)
def skew_limit(n: int, sims: int = 20_000) -> float:
    """The |sample skewness| of n differences beyond which they are more skewed than SKEW_TOLERATED
    allows with confidence SKEW_SURE: the SKEW_SURE quantile of |G1| for n draws of a gamma law of
    that skewness (by simulation, a fixed seed); nan below 3. Drawn ~1M numbers at a time (the
    same stream as all at once: 20,000 x 200 draws and their skewness's temporaries took ~150 MB)."""
    if n < 3:
        return float("nan")
    k = 4 / SKEW_TOLERATED ** 2  # a gamma law of shape k has skewness 2 / sqrt(k)
    rng, rows = np.random.default_rng((SEED_SKEW, n)), max(1, 2**20 // n)
    skews = [np.abs(stats.skew(rng.standard_gamma(k, (min(rows, sims - at), n)), axis=1, bias=False)) for at in range(0, sims, rows)]
    return float(np.quantile(np.concatenate(skews), SKEW_SURE))


def chunk_bootstrap(diff: Any, weight: Any, *, scale: float = 1.0, level: float = 0.95, replicates: int = 2000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) of scale * sum(diff) / sum(weight) with a percentile bootstrap over
    chunks (the last axis): `diff` is a per-chunk loss difference in nats (averaged over paired
    seeds), `weight` the bytes (or tokens) each chunk scored. Leading axes of `diff` share the
    resampled chunks. Deterministic for a given `seed`."""
    diff, weight = np.asarray(diff, dtype=float), np.asarray(weight, dtype=float)
    chunks = diff.shape[-1]
    counts = np.random.default_rng(seed).multinomial(chunks, np.full(chunks, 1.0 / chunks), size=replicates).astype(float)
    estimate = scale * diff.sum(axis=-1) / weight.sum(axis=-1)
    boot = scale * (diff @ counts.T) / (weight @ counts.T if weight.ndim == 1 else np.einsum("...c,rc->...r", weight, counts))
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], axis=-1)
    return estimate, low, high


def kernel_summary(groups: "DataFrameGroupBy") -> "pd.DataFrame":
    """Median time of each group of kernel rows (repeats over trials) with an interval that holds
    both the spread within trials and between them: low = min(median p20, 20th percentile of
    the p50s), high = max(median p80, 80th percentile of the p50s). `spread` = (high - low) /
    median; `noisy` when it exceeds NOISY_SPREAD or any repeat was flagged noisy (the boolean
    `noisy` column of the rows, set by the kernel kind where it knows)."""
    import pandas as pd

    out = pd.DataFrame({
        "ms_p50": groups["ms_p50"].median(),
        "ms_low": np.minimum(groups["ms_p20"].median(), groups["ms_p50"].quantile(0.2)),
        "ms_high": np.maximum(groups["ms_p80"].median(), groups["ms_p50"].quantile(0.8)),
    })
    out["spread"] = (out["ms_high"] - out["ms_low"]) / out["ms_p50"]
    out["noisy"] = (out["spread"] > NOISY_SPREAD) | groups["noisy"].any()
    return out


def kernel_verdicts(mid: Any, low: Any, high: Any, noisy: Any, base_mid: Any, base_low: Any, base_high: Any,
                    base_noisy: Any) -> tuple[np.ndarray, np.ndarray]:
    """(verdict, ratio of medians) of rows against their baseline rows: "noisy" where either
    side is noisy, "same" where the intervals overlap, else "faster" / "slower"; "no baseline"
    where the baseline is missing (nan)."""
    mid, low, high, base_mid, base_low, base_high = (np.asarray(a, dtype=float) for a in (mid, low, high, base_mid, base_low, base_high))
    noisy = np.asarray(noisy, dtype=bool) | np.asarray(base_noisy, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mid / base_mid
    overlap = (low <= base_high) & (base_low <= high)
    verdict = np.select([np.isnan(base_mid), noisy, overlap, ratio < 1], ["no baseline", "noisy", "same", "faster"], "slower")
    return verdict, ratio


def churn(preds: Sequence[Any], max_seeds: int = 8) -> float | None:
    """Mean over pairs of seeds of the fraction of positions whose argmax prediction differs,
    over the first `max_seeds` non-empty prediction lists (bounded work), truncated to the
    shortest; None with fewer than two."""
    arrays = [np.asarray(p) for p in preds if p is not None and len(p)][:max_seeds]
    if len(arrays) < 2:
        return None
    length = min(len(a) for a in arrays)
    m = np.stack([a[:length] for a in arrays])
    i, j = np.triu_indices(len(m), k=1)
    return float((m[i] != m[j]).mean())
