"""Statistics behind every verdict: confidence intervals, tests, prediction churn."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def mean_ci(values: "pd.Series", level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the t-distribution confidence interval, and n."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values.dropna(), dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


def welch_p(a: "pd.Series", b: "pd.Series") -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None with fewer than 2 per side."""
    from scipy import stats

    a, b = a.dropna(), b.dropna()
    if len(a) < 2 or len(b) < 2:
        return None
    if a.std() == 0 and b.std() == 0:
        return 0.0 if a.mean() != b.mean() else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def churn(preds: list[list[int]]) -> float | None:
    """Mean over seed pairs of the fraction of positions whose argmax prediction differs."""
    import itertools

    import numpy as np

    pairs = []
    for a, b in itertools.combinations([p for p in preds if p], 2):
        n = min(len(a), len(b))
        pairs.append(float(np.mean(np.asarray(a[:n]) != np.asarray(b[:n]))))
    return float(np.mean(pairs)) if pairs else None
