"""Statistics against ground truth: simulated seed sets and evaluation sets with a known answer,
through the same functions `compare` uses (paired_t -> holm -> lm_verdicts, chunk_bootstrap,
kernel_summary -> kernel_verdicts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from actbench.analysis import stats

ALPHA = 0.05


def _binomial_band(p: float, n: int, z: float = 3.5) -> float:
    return z * np.sqrt(p * (1 - p) / n)


def test_known_answers():
    m, half, n = stats.mean_ci([1.0, 2.0, 3.0, np.nan])
    assert (m, n) == (2.0, 3) and half == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert stats.churn([[1, 2, 3, 4], [1, 2, 0, 4]]) == 0.25
    assert stats.churn([[1, 2], [1, 2], [0, 0]]) == pytest.approx((0 + 1 + 1) / 3)
    assert stats.churn([[1, 2, 3]]) is None
    # Holm by hand: sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, max(0.06, 0.04)
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(stats.holm([[0.2, np.nan, 0.01]]), [[0.2, np.nan, 0.02]])
    # G*Power: a paired t-test of dz = 0.5 at alpha 0.05 needs 34 pairs for 80% power
    assert stats.seeds_needed(0.5, 1.0, 0.05) == 34
    mde = stats.detectable_difference(2.0, 10, 0.05)
    assert float(stats.paired_power(mde, 2.0, 10, 0.05)) == pytest.approx(0.8, abs=1e-6)


def test_paired_t_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (50, 6)), rng.normal(0.3, 1, (50, 6))
    test = stats.paired_t(b - a)
    ref = sps.ttest_rel(b, a, axis=-1)
    np.testing.assert_allclose(test.p, ref.pvalue, rtol=1e-10)
    np.testing.assert_allclose(test.t, ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(test.dz, (b - a).mean(-1) / (b - a).std(-1, ddof=1))
    assert float(stats.paired_t([0.0, 0.0, 0.0]).p) == 1.0  # identical runs: nothing to detect
    assert float(stats.paired_t([0.1, 0.1, 0.1]).p) == 0.0  # an exact, noise-free difference
    assert np.isnan(stats.paired_t([0.1]).p)  # one pair: no test


def _simulated_verdicts(effects: list[float], sets: int, seeds: int, rng: np.random.Generator) -> np.ndarray:
    """Verdicts of k candidates against a baseline over many simulated seed sets: a shared
    per-seed effect (data order, initialisation) plus independent noise per trial."""
    seed_effect = rng.normal(0, 0.05, (sets, 1, seeds))
    noise = rng.normal(0, 0.01, (sets, len(effects) + 1, seeds))
    values = 1.5 + seed_effect + noise + np.array([0.0, *effects])[None, :, None]
    test = stats.paired_t(values[:, 1:] - values[:, :1])
    return stats.lm_verdicts(test.mean, stats.holm(test.p), ALPHA)


def test_identical_activations_under_other_names_are_no_detectable_difference():
    sets = 2000
    verdicts = _simulated_verdicts([0.0, 0.0], sets, seeds=5, rng=np.random.default_rng(2))
    family_error = float((verdicts != "no detectable difference").any(axis=1).mean())
    # Holm bounds the family-wise error by alpha; it is at least P(one test < alpha/2) = alpha/2
    band = _binomial_band(ALPHA, sets)
    assert ALPHA / 2 - band <= family_error <= ALPHA + band, family_error
    assert (verdicts == "no detectable difference").mean() > 0.95


def test_a_planted_difference_is_detected_at_the_predicted_power():
    sets, seeds, sd_diff = 4000, 6, 0.01 * np.sqrt(2)
    delta = -0.012  # better by 0.012 bpb
    verdicts = _simulated_verdicts([delta], sets, seeds, rng=np.random.default_rng(3))
    detected = float((verdicts[:, 0] == "better").mean())
    predicted = float(stats.paired_power(delta, sd_diff, seeds, ALPHA))
    assert 0.3 < predicted < 0.9  # a test where power matters
    assert abs(detected - predicted) <= _binomial_band(predicted, sets), (detected, predicted)
    assert (verdicts[:, 0] == "worse").mean() < 0.001  # the wrong direction essentially never


def test_chunk_bootstrap_covers_a_known_eval_set_difference_at_its_nominal_rate():
    rng = np.random.default_rng(4)
    datasets, chunks, true_rate = 400, 200, -0.01  # bits per byte
    weight = rng.integers(500, 4000, (datasets, chunks)).astype(float)
    # per-chunk nats difference: proportional to bytes on average, heteroscedastic noise
    diff = true_rate * np.log(2) * weight + rng.normal(0, 1, (datasets, chunks)) * np.sqrt(weight) * 0.5
    est, low, high = stats.chunk_bootstrap(diff, weight, scale=1 / np.log(2))
    coverage = float(((low <= true_rate) & (true_rate <= high)).mean())
    assert abs(coverage - 0.95) <= _binomial_band(0.95, datasets) + 0.01, coverage
    assert abs(float(np.mean(est)) - true_rate) < 0.001


def test_kernel_intervals_same_faster_noisy():
    rows = pd.DataFrame({
        "name": ["base", "base", "close", "fast", "wild", "flagged", "split", "split"],
        "ms_p20": [0.98, 0.97, 0.99, 0.49, 0.5, 0.7, 0.59, 0.99],
        "ms_p50": [1.00, 1.00, 1.01, 0.50, 1.0, 0.7, 0.60, 1.00],
        "ms_p80": [1.02, 1.03, 1.03, 0.51, 1.6, 0.7, 0.61, 1.01],
        "noisy": [False, False, False, False, False, True, False, False],
    })
    s = stats.kernel_summary(rows.groupby("name"))
    assert s.loc["base", "ms_p50"] == 1.0 and s.loc["base", "ms_low"] == pytest.approx(0.975)
    # two repeats that disagree (p50 0.6 and 1.0, each tight): the interval spans them (0.68-0.92)
    assert s.loc["split", ["ms_low", "ms_high"]].tolist() == pytest.approx([0.68, 0.92])
    b = s.loc["base"]
    verdict, ratio = stats.kernel_verdicts(s["ms_p50"], s["ms_low"], s["ms_high"], s["noisy"], b["ms_p50"], b["ms_low"], b["ms_high"], False)
    got = dict(zip(s.index, verdict))
    assert got == {"base": "same", "close": "same", "fast": "faster", "wild": "noisy", "flagged": "noisy", "split": "noisy"}
    assert dict(zip(s.index, ratio))["fast"] == pytest.approx(0.5)
    assert stats.kernel_verdicts(2.0, 1.9, 2.1, False, np.nan, np.nan, np.nan, False)[0] == "no baseline"


def _one_sided_null_rates(draws: np.ndarray, looks: tuple[int, ...], level: float) -> tuple[float, float]:
    """Rates of false "better" and "worse" of the sequential design (no margin) over rows of null differences."""
    from actbench.analysis.sequential import boundaries

    decided = np.zeros(len(draws), dtype=int)  # 1 better, 2 worse
    for n, c in zip(looks, boundaries(looks, looks[-1], level)):
        d = draws[:, :n]
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
        new = (decided == 0) & (np.abs(t) >= c)
        decided[new] = np.where(t[new] < 0, 1, 2)
    return float((decided == 1).mean()), float((decided == 2).mean())


def _gamma(skew: float, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    k = 4 / skew**2  # skewness 2 / sqrt(k), centred (a seed much worse now and then)
    return rng.standard_gamma(k, size) - k


def test_skew_tolerated_is_where_one_direction_starts_to_leave_its_share():
    """Right-skewed null differences (looks 4..12 by 2, level 0.025: each direction's share
    0.0125): at SKEW_TOLERATED the false "better" rate is within about 1.25 times its share; at a
    skewness of 1 it is more than twice it, and "worse" falls below its share."""
    looks, level, experiments = (4, 6, 8, 10, 12), 0.025, 60_000
    share, band = level / 2, _binomial_band(level / 2, experiments, 3.0)
    better, worse = _one_sided_null_rates(_gamma(stats.SKEW_TOLERATED, np.random.default_rng(3), (experiments, 12)), looks, level)
    assert share - band <= better <= 1.3 * share + band and worse <= share + band, (better, worse)
    better, worse = _one_sided_null_rates(_gamma(1.0, np.random.default_rng(4), (experiments, 12)), looks, level)
    assert better > 2 * share and worse < share - band, (better, worse)


@pytest.mark.parametrize("n", [4, 8, 12])
def test_the_skew_check_fires_beyond_the_tolerated_skew(n):
    """|skewness| > skew_limit(n) for 5% of samples of a gamma law of skewness SKEW_TOLERATED (on
    other draws than the limit's), fewer for normal ones, more for one seed in ten far worse."""
    draws = 20_000
    rng = np.random.default_rng(100 + n)
    limit = stats.skew_limit(n)

    def rate(x: np.ndarray) -> float:
        return float((np.abs(sps.skew(x, axis=1, bias=False)) > limit).mean())

    assert abs(rate(_gamma(stats.SKEW_TOLERATED, rng, (draws, n))) - 0.05) <= 4 * np.sqrt(0.05 * 0.95 * 2 / draws)
    assert rate(rng.standard_normal((draws, n))) <= 0.05
    assert rate(rng.standard_normal((draws, n)) + 4 * (rng.random((draws, n)) < 0.1)) > 0.05
    worse = np.zeros(n)
    worse[-1] = 1.0  # one seed far worse than the others, which agree
    assert stats.skewness(worse) > limit and stats.skewness(-worse) < -limit


def test_skewness():
    x = np.random.default_rng(5).standard_normal(9)
    assert stats.skewness(x) == pytest.approx(float(sps.skew(x, bias=False)))
    assert np.isnan(stats.skewness([1.0, 2.0])) and np.isnan(stats.skewness([0.5] * 5)) and np.isnan(stats.skew_limit(2))


@pytest.mark.parametrize("n", [3, 7, 200, 5243, 2**20 // 3 + 1])
def test_skew_limit_drawn_in_parts_is_the_limit_drawn_at_once(n):
    """The simulation is drawn ~1M numbers at a time to bound its memory; the stream and the limit
    are those of drawing all of it at once (parts of one row each, and a last part shorter)."""
    sims = 64
    k = 4 / stats.SKEW_TOLERATED ** 2
    draws = np.random.default_rng((stats.SEED_SKEW, n)).standard_gamma(k, (sims, n))
    at_once = float(np.quantile(np.abs(sps.skew(draws, axis=1, bias=False)), stats.SKEW_SURE))
    assert stats.skew_limit(n, sims=sims) == at_once
