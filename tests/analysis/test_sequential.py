"""Ground truth by simulation for the group-sequential comparisons: independent null paths, runner
loops calling `decide` look by look, and the vectorised `operating` checked against both."""

import math

import numpy as np
import pytest
from scipy import stats

from actbench.analysis import calibration
from actbench.analysis.calibration import calibrate, spending_of, spent
from actbench.analysis.sequential import (
    HINT_SIMS,
    Design,
    boundaries,
    decide,
    extended,
    operating,
    seeds_to_decide,
)
from actbench.analysis.stats import HINT_CAP, seeds_needed

LOOKS = tuple(range(3, 25, 3))


def se(p: float, n: int, n_other: float = math.inf) -> float:
    """Monte-Carlo standard error of a proportion from n (and, when it is also simulated, n_other) draws."""
    return math.sqrt(p * (1 - p) * (1 / n + 1 / n_other))


def abs_t(diffs: np.ndarray, n: int) -> np.ndarray:
    """|mean / (sd / sqrt(n))| of the first n differences along the last axis."""
    d = diffs[..., :n]
    return np.abs(d.mean(axis=-1)) / (d.std(axis=-1, ddof=1) / math.sqrt(n))


def shared_baseline(rng: np.random.Generator, experiments: int) -> np.ndarray:
    """Differences (experiments, 2 candidates, 24 seeds) of two candidates with one baseline: a seed
    effect shared by all three (it cancels) plus each run's own noise, so the two candidates'
    differences are correlated (0.5) through the baseline's noise."""
    seed_effect = rng.normal(0, 0.05, (experiments, 1, 24))
    base = 1.0 + seed_effect + rng.normal(0, 0.01, (experiments, 1, 24))
    return 1.0 + seed_effect + rng.normal(0, 0.01, (experiments, 2, 24)) - base


def runner(diffs: np.ndarray, present: np.ndarray, design: Design) -> list[str]:
    """Each candidate's verdict when `decide` is called after every round, as a suite runner does,
    until it stops saying "continue"; present[j, s]: whether seed s gave candidate j a pair."""
    verdicts = []
    for d, ok in zip(diffs, present):
        looks: list[np.ndarray] = []
        for n in design.looks:
            looks.append(d[:n][ok[:n]])
            decision = decide(looks, design, hint=False)
            if decision.verdict != "continue":
                break
        verdicts.append(decision.verdict)
    return verdicts


def false_positive_rate(missing: float, experiments: int, seed: int) -> tuple[float, float]:
    """Family-wise rate of any better/worse claim by 2 null candidates whose trials fail with
    probability `missing`, and of a fixed-n t-test at alpha / 2 repeated after every round on the
    same experiments (with every pair present). The trials that fail are one of 4 patterns drawn
    once (each a different calibration: the design holds given any pattern the values do not choose)."""
    rng = np.random.default_rng(seed)
    design = Design(LOOKS, alpha=0.05, candidates=2)
    diffs = shared_baseline(rng, experiments)
    patterns = (rng.random((4, 1, 24)) >= missing) & (rng.random((4, 2, 24)) >= missing)
    present = patterns[rng.integers(0, len(patterns), experiments)]
    sequential = np.mean([any(v in ("better", "worse") for v in runner(d, ok, design))
                          for d, ok in zip(diffs, present)])
    repeated = np.zeros(experiments, dtype=bool)
    for n in LOOKS:
        repeated |= (abs_t(diffs, n) >= stats.t.ppf(1 - design.level / 2, n - 1)).any(axis=1)
    return float(sequential), float(repeated.mean())


def test_boundaries_spend_the_planned_alpha_on_independent_paths():
    level, sims = 0.025, 200_000
    cal = calibrate(LOOKS, 24, level, "pocock")
    z = np.random.default_rng(1).standard_normal((sims, 24))
    running, crossed = np.ones(sims, dtype=bool), []
    for n, c in zip(LOOKS, cal.crit):
        hit = running & (abs_t(z, n) >= c)
        crossed.append(hit.mean())
        running &= ~hit
    planned = np.diff(spent(np.array(LOOKS) / 24, level, "pocock"), prepend=0.0)
    for n, p, q, e in zip(LOOKS, crossed, planned, cal.se):
        assert abs(p - q) <= 4 * math.hypot(se(q, sims), e), (n, p, q)
    assert abs(sum(crossed) - level) <= 4 * math.hypot(se(level, sims), cal.se.sum()), sum(crossed)
    # a look's boundary depends only on the looks so far, computed afresh or extended from a shorter calibration
    assert np.array_equal(boundaries(LOOKS[:3], 24, level, "pocock"), cal.crit[:3])
    calibrate.cache_clear()
    calibration._RUNNING.clear()
    assert np.array_equal(boundaries(LOOKS[:3], 24, level, "pocock"), cal.crit[:3])


@pytest.mark.parametrize("pairs, n_max, level, spending", [
    ((2, 4, 6, 8, 10, 12), 12, 0.1, "pocock"), ((3, 6, 9), 9, 0.05 / 3, "pocock"), (LOOKS, 24, 0.025, "obrien_fleming"), ((5, 8), 8, 0.5, "pocock")])
def test_the_first_look_is_the_exact_t_quantile(pairs, n_max, level, spending):
    """At 2 pairs and level 0.1 the plain simulation gave 24.44 for the exact 25.27 (3% liberal);
    O'Brien-Fleming's tiny first spend gives a huge but finite value, not infinity."""
    p = float(spent(pairs[0] / n_max, level, spending))
    exact = stats.t.isf(p / 2, pairs[0] - 1)
    assert boundaries(pairs, n_max, level, spending)[0] == pytest.approx(exact, rel=1e-9)


def test_a_look_that_spends_less_than_the_paths_resolve_keeps_the_t_bound():
    """O'Brien-Fleming's second look at 8 of 100 pairs spends ~1e-12: no path of 10,000 can cross
    near it, so it gets the t quantile at that alpha (which spends at most it), not a failed search."""
    total = spent(np.array([4, 8]) / 100, 0.025, "obrien_fleming")
    crit = calibrate((4, 8), 100, 0.025, "obrien_fleming", paths=10_000).crit
    assert crit[1] == pytest.approx(stats.t.isf((total[1] - total[0]) / 2, 7), rel=1e-9)


@pytest.mark.parametrize("pairs, n_max, level", [((4, 6, 8, 10, 12), 12, 0.025), ((3, 5, 9, 12, 16), 20, 0.1)])
def test_later_looks_spend_their_alpha_within_the_stated_error(pairs, n_max, level):
    """Each look's spent alpha, estimated on other paths than the calibration's, is its target
    within the two calibrations' stated standard errors; those are what the README states (4.6e-5
    per look at level 0.025, at most 2% of the look's alpha)."""
    cal = calibrate(pairs, n_max, level, "pocock")
    target = np.diff(spent(np.array(pairs) / n_max, level, "pocock"), prepend=0.0)
    check, check_se = spending_of(pairs, cal.crit)
    assert cal.se[0] == 0 and check[0] == pytest.approx(target[0], rel=1e-9)
    assert (cal.se[1:] <= 0.02 * target[1:]).all() and (cal.se[1:] > 0).all(), cal.se / target
    if level == 0.025:
        assert cal.se.max() <= 4.6e-5, cal.se
    error = 4 * np.hypot(cal.se, check_se) + 1e-12  # the first look is exact
    assert (np.abs(check - target) <= error).all(), (check - target) / error


def test_family_wise_error_under_optional_stopping():
    alpha, experiments = 0.05, 4000
    sequential, repeated = false_positive_rate(0.0, experiments, seed=2)
    assert sequential <= alpha + 2.5 * se(sequential, experiments), sequential
    assert repeated > 1.5 * alpha, repeated  # a fixed-n test after every round is not valid


def test_family_wise_error_with_missing_pairs():
    alpha, experiments = 0.05, 4000
    sequential, _ = false_positive_rate(0.1, experiments, seed=3)
    assert sequential <= alpha + 2.5 * se(sequential, experiments), sequential


def single(design: Design, delta: float, sd: float, experiments: int, seed: int) -> tuple[dict[str, float], np.ndarray]:
    """Rates of each verdict and the pairs used, one candidate with N(delta, sd^2) differences and
    no missing pairs, decided look by look like a runner does."""
    rng = np.random.default_rng(seed)
    verdicts, pairs = [], []
    for d in rng.normal(delta, sd, (experiments, design.n_max)):
        for k in range(1, len(design.looks) + 1):
            decision = decide([d[:n] for n in design.looks[:k]], design, hint=False)
            if decision.verdict != "continue":
                break
        verdicts.append(decision.verdict)
        pairs.append(decision.interval.n)
    rates = {v: verdicts.count(v) / experiments for v in ("better", "worse", "equivalent", "undecided")}
    return rates, np.array(pairs)


def test_planted_difference_agrees_with_operating_characteristics():
    design, experiments = Design.rounds(3, 12, 3, candidates=2, margin=0.01), 2000
    rates, pairs = single(design, 0.02, 0.016, experiments, seed=4)
    oc = operating(design, 0.02, 0.016, sims=20_000, seed=5)
    message = f"decide: {rates}, {pairs.mean():.3f} pairs; operating: {oc}"
    assert abs(rates["worse"] - oc.p_worse) <= 4 * se(oc.p_worse, experiments, oc.sims), message
    assert abs(pairs.mean() - oc.mean_pairs) <= 4 * pairs.std() * math.sqrt(1 / experiments + 1 / oc.sims), message
    assert rates["better"] == 0 and oc.p_better < 1e-3, message
    assert oc.max_pairs == 12 and oc.p_worse > 0.75, message


@pytest.mark.parametrize("fraction", [0.0, 0.25])
def test_equivalence_inside_the_margin_agrees_with_operating_characteristics(fraction):
    margin, sd, experiments = 0.02, 0.016, 1500
    design = Design(LOOKS, candidates=2, margin=margin)
    rates, _ = single(design, fraction * margin, sd, experiments, seed=6)
    oc = operating(design, fraction * margin, sd, sims=20_000, seed=7)
    message = f"decide: {rates}; operating: {oc}"
    assert abs(rates["equivalent"] - oc.p_equivalent) <= 4 * se(oc.p_equivalent, experiments, oc.sims), message
    assert oc.p_equivalent > 0.8, message


@pytest.mark.parametrize("spending", ["pocock", "obrien_fleming"])
def test_equivalence_is_rarely_claimed_on_the_margin(spending):
    design = Design(LOOKS, candidates=2, margin=0.02, spending=spending)
    oc = operating(design, 0.02, 0.016, sims=40_000, seed=8)
    assert oc.p_equivalent <= design.level + 3 * se(design.level, oc.sims), oc


def test_repeated_intervals_cover_the_true_difference_at_every_look_at_once():
    level, delta, sd, sims = 0.1, 0.3, 2.0, 100_000
    pairs, n_max = (3, 5, 9, 12, 16), 20  # irregular: a plan of 4, 8, ..., 20 with failed trials
    design = Design((4, 8, 12, 16, 20), alpha=level, spending="obrien_fleming")
    d = np.random.default_rng(9).normal(delta, sd, (sims, n_max))
    covered = np.ones(sims, dtype=bool)
    for n, c in zip(pairs, boundaries(pairs, n_max, level, "obrien_fleming")):
        mean, half = d[:, :n].mean(axis=1), c * d[:, :n].std(axis=1, ddof=1) / math.sqrt(n)
        covered &= (mean - half <= delta) & (delta <= mean + half)
    error = math.hypot(se(level, sims), calibrate(pairs, n_max, level, "obrien_fleming").se.sum())
    assert covered.mean() >= 1 - level - 3 * error, covered.mean()
    interval = decide([d[0, :n] for n in pairs], design, margin=None).interval
    assert interval.n == 16 and interval.low == pytest.approx(mean[0] - half[0]) and interval.high == pytest.approx(mean[0] + half[0])


def test_exact_and_degenerate_cases():
    plain, with_margin = Design.rounds(3, 12, 3), Design.rounds(3, 12, 3, margin=0.01)
    zeros = [[0.0] * n for n in plain.looks]
    decision = decide(zeros[:1], with_margin)
    assert (decision.verdict, decision.look, decision.interval.low, decision.interval.high) == ("equivalent", 1, 0.0, 0.0)
    decision = decide(zeros, plain)
    assert (decision.verdict, decision.look, decision.seeds_needed) == ("undecided", 4, None)
    assert decide([[0.1] * 3], plain).verdict == "worse"  # exact up to rounding: sd 0
    small = decide([[0.005, 0.0051, 0.0049]], with_margin)  # excludes 0, but the difference does not matter
    assert small.verdict == "equivalent" and small.interval.low > 0
    far = [0.99, 1.0, 1.01]  # mean 1, sd 0.01
    assert (decide([far], plain).verdict, decide([far], plain).look) == ("worse", 1)
    assert decide([[-x for x in far]], plain).verdict == "better"
    decision = decide([[0.5], far], plain)  # a look with 1 pair is skipped
    assert (decision.verdict, decision.look, decision.pairs, decision.interval.crit) == (
        "worse", 2, (3,), boundaries((3,), 12, 0.05)[0])
    noisy = [0.01, -0.02, 0.015, 0.0, 0.005, -0.01]
    decision = decide([noisy[:3], noisy[:3], noisy], plain)  # no new pairs at look 2: skipped
    assert (decision.verdict, decision.look, decision.pairs) == ("continue", 3, (3, 6))
    assert decision.seeds_needed is None  # a hint only once the design is undecided
    decision = decide([[1.0]], plain)
    assert (decision.verdict, decision.interval, decision.pairs, decision.seeds_needed) == ("continue", None, (), None)
    # margins per look override the design's: equivalent only once the margin is wide enough
    assert decide([noisy], with_margin, margin=[1.0]).verdict == "equivalent"
    assert decide([noisy[:3], noisy], with_margin, margin=[1e-3, 1.0]).look == 2
    assert decide([noisy], with_margin, margin=None).verdict == "continue"
    assert decide([[0.0] * 3], Design.rounds(3, 12, 3, spending="obrien_fleming")).verdict == "continue"
    with pytest.raises(ValueError):
        decide(zeros + zeros, plain)
    for bad in [{"looks": (3, 3, 6)}, {"looks": (1, 3)}, {"looks": (3,), "spending": "linear"}, {"looks": (3,), "alpha": 0}]:
        with pytest.raises(ValueError):
            Design(**bad)
    assert Design.rounds(3, 10, 3).looks == (3, 6, 9, 10) and Design.rounds(4, 12, 2).looks == (4, 6, 8, 10, 12)
    assert np.allclose(spent([0.0, 1.0, 2.0], 0.05, "pocock"), [0, 0.05, 0.05])
    assert np.allclose(spent([0.0, 1.0], 0.05, "obrien_fleming"), [0, 0.05])


@pytest.mark.parametrize("looks, margin, mean, sd", [((4, 6, 8, 10, 12), 0.02, 0.01, 0.02), ((4, 6, 8, 10, 12), None, 0.012, 0.02),
                                                      ((3, 6, 9, 10), 0.03, -0.004, 0.03), ((9,), 0.02, 0.0185, 0.0389)])
def test_the_hint_names_seeds_beyond_those_run_at_which_the_design_decides(looks, margin, mean, sd):
    """The design carried on to the named N decides with probability >= 80% in simulations on other
    seeds than the hint's (and with the precise boundaries), and one round fewer would not (both
    within the simulations' error); N is on the design's rounds and beyond every seed it ran.
    (`operating` is checked against runs of `decide` above.)"""
    design = Design(looks, alpha=0.05, candidates=2, margin=margin)
    n = seeds_to_decide(design, mean, sd, margin)
    step = looks[1] - looks[0] if len(looks) > 1 else 1
    assert n is not None and looks[-1] < n <= HINT_CAP and (n - looks[-1]) % step == 0, n
    sims = 20_000
    tolerance = 3 * math.sqrt(0.16 * (1 / sims + 1 / HINT_SIMS))
    assert 1 - operating(extended(design, n, margin), mean, sd, sims, seed=10, paths=100_000).p_undecided >= 0.8 - tolerance
    if n - step > looks[-1]:
        assert 1 - operating(extended(design, n - step, margin), mean, sd, sims, seed=11, paths=100_000).p_undecided < 0.8 + tolerance


def test_the_hint_of_an_undecided_look_and_where_it_cannot_stand_behind_a_number():
    design = Design.rounds(4, 12, 2, alpha=0.05, candidates=2, margin=0.02)
    d = np.array([0.03, -0.01, 0.02, 0.0, 0.025, -0.015, 0.01, 0.02, -0.005, 0.015, 0.0, 0.01])
    decision = decide([d[:n] for n in design.looks], design)
    assert decision.verdict == "undecided"
    assert decision.seeds_needed == seeds_to_decide(design, decision.interval.mean, decision.interval.sd, 0.02) > 12
    assert decide([d[:n] for n in design.looks], design, hint=False).seeds_needed is None
    assert seeds_to_decide(design, 0.001, 0.05, None) is None  # more than HINT_CAP: no number
    assert seeds_to_decide(design, 0.0, 0.0, None) is None  # no difference and no margin: never decided
    assert seeds_to_decide(design, math.nan, 0.01, 0.02) is None
    # a one-look design carried on is a fresh t-test: the Holm path's seeds_needed, never at or below the seeds run
    one = Design((6,), alpha=0.05, candidates=1)
    assert abs(seeds_to_decide(one, 0.5, 1.0, None) - seeds_needed(0.5, 1.0, 0.05)) <= 1
    assert seeds_needed(0.5, 1.0, 0.05, run=40) == 41 and seeds_needed(0.01, 1.0, 0.05) is None
