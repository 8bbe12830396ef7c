"""Scaling fits and compute-equivalent gains against synthetic ladders with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.report import scaling as sc

COMPUTE = np.geomspace(1e12, 1e15, 5)
TRUE = sc.PowerLaw(E=1.5, A=2.0, alpha=0.3, C0=float(np.exp(np.log(COMPUTE).mean())))


def test_exact_power_law_is_recovered_with_r2_one():
    f = sc.fit(COMPUTE, TRUE.loss(COMPUTE))
    assert f.law.E == pytest.approx(1.5, abs=1e-5) and f.law.alpha == pytest.approx(0.3, rel=1e-5)
    assert f.law.A == pytest.approx(2.0, rel=1e-5) and f.r2 == pytest.approx(1.0) and f.dof == 2
    assert np.abs(f.residuals).max() < 1e-6


@pytest.mark.parametrize("k", [0.7, 1.0, 1.3, 2.5])
def test_gain_of_a_curve_shifted_in_compute_is_the_shift(k):
    ref = sc.fit(COMPUTE, TRUE.loss(COMPUTE)).law
    losses = TRUE.loss(COMPUTE * k)  # the candidate reaches at C what the reference reaches at kC
    assert [sc.gain(ref, loss, c) for loss, c in zip(losses, COMPUTE)] == pytest.approx([k] * 5, rel=1e-4)
    cand = sc.fit(COMPUTE, losses).law
    assert sc.gain(ref, float(cand.loss(1e17)), 1e17) == pytest.approx(k, rel=1e-3)


def test_loss_below_the_reference_asymptote_is_an_infinite_gain():
    assert sc.gain(TRUE, 1.4, 1e14) == float("inf")


def test_too_few_rungs_or_a_rising_curve_gives_no_fit():
    assert sc.fit(COMPUTE[:2], TRUE.loss(COMPUTE[:2])) is None
    assert sc.fit(COMPUTE, TRUE.loss(COMPUTE)[::-1]) is None  # loss grows with compute


def test_bootstrap_interval_covers_the_planted_multiplier_in_most_draws():
    """5 rungs x 5 paired seeds (a shared per-seed effect plus independent noise), k = 1.3:
    the 95% paired-bootstrap interval must contain k at every rung and at 10x beyond the ladder
    in most draws (percentile intervals from 5 seeds run a little narrow: >= 80% required)."""
    k, draws, seeds = 1.3, 60, 5
    cand_true = TRUE.loss(COMPUTE * k)
    covered = np.zeros(len(COMPUTE) + 1)
    for d in range(draws):
        rng = np.random.default_rng(100 + d)
        seed_effect = rng.normal(0, 0.01, seeds)[None, :]
        ref = sc.Ladder(COMPUTE, TRUE.loss(COMPUTE)[:, None] + seed_effect + rng.normal(0, 0.005, (5, seeds)))
        cand = sc.Ladder(COMPUTE, cand_true[:, None] + seed_effect + rng.normal(0, 0.005, (5, seeds)))
        rungs, ext, _ = sc.bootstrap_gains(ref, cand, [COMPUTE[-1] * 10], replicates=300, seed=d)
        covered += [g.low <= k <= g.high for g in rungs + ext]
    assert (covered / draws >= 0.8).all(), covered / draws


def test_identical_activations_have_gain_one_inside_the_interval():
    rng = np.random.default_rng(7)
    losses = TRUE.loss(COMPUTE)[:, None] + rng.normal(0, 0.01, (5, 4))
    rungs, ext, _ = sc.bootstrap_gains(sc.Ladder(COMPUTE, losses), sc.Ladder(COMPUTE, losses.copy()), [1e16], replicates=200)
    for g in rungs + ext:
        assert g.value == pytest.approx(1.0, rel=1e-6) and g.low <= 1.0 <= g.high


def test_gain_text_says_unbounded_and_never_inf_or_nan():
    inf, nan = float("inf"), float("nan")
    assert sc.gain_text(1.42, 1.1, 1.9, short=True) == "1.42x (1.1x-1.9x)"
    assert sc.gain_text(inf, 4.5, inf, short=True) == "unbounded (4.5x-unbounded)"
    assert sc.gain_text(inf, inf, inf, short=True) == "unbounded (unbounded-unbounded)"
    assert sc.gain_text(2.0, nan, nan) == "2x (95% CI no interval)"
    assert "levels off" in sc.gain_text(inf, 4.5, inf) and not any(w in sc.gain_text(inf, 4.5, inf) for w in ("inf ", "nan"))
