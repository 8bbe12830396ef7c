"""Confirmed regression alerts (actbench.analysis.changepoint): known answers on hand-made
histories, then the issue's targets against ground truth by simulation (fixed seeds, binomial
Monte-Carlo error stated in each test)."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.analysis.changepoint import Night, judge, machine_nights, night_changes, single_night


def _history(seed: int = 0, nights: int = 30, noise: float = 0.01) -> list[float]:
    return list(100 * np.exp(np.random.default_rng(seed).normal(0, noise, nights)))


def _nights(values: list[float | None]) -> list[Night]:
    return [Night(v) for v in values]


def test_a_step_is_suspect_for_one_night_and_confirmed_by_the_second_or_a_rerun():
    base = _history()
    assert judge(_nights(base), higher_is_better=True).status == "ok"
    one = judge(_nights(base[:-1] + [base[-1] * 0.93]), higher_is_better=True)
    assert (one.status, one.first_bad, one.last_good, one.nights_confirmed) == ("suspect", 29, 28, 1)
    two = judge(_nights(base[:-2] + [base[-2] * 0.93, base[-1] * 0.93]), higher_is_better=True)
    assert (two.status, two.first_bad, two.last_good, two.nights_confirmed) == ("regression", 28, 27, 2)
    assert two.interval[0] < two.change < two.interval[1] and two.change == pytest.approx(-0.07, abs=0.015)
    rerun = judge(_nights(base[:-1] + [base[-1] * 0.93]), higher_is_better=True, rerun=Night(base[-1] * 0.94))
    assert (rerun.status, rerun.first_bad, rerun.nights_confirmed) == ("regression", 29, 2)
    # lower is better (bits per byte): a fall is an improvement
    assert judge(_nights(base[:-2] + [base[-2] * 0.93, base[-1] * 0.93]), higher_is_better=False).status == "improvement"


def test_missing_and_excluded_nights_are_skipped_and_indices_stay_those_given():
    base: list[float | None] = list(_history())
    base[-2:] = [base[-2] * 1.08, base[-1] * 1.08]
    base[-3] = None  # the row did not run the night before the step
    got = judge(_nights(base), higher_is_better=False, excluded=[26])
    assert (got.status, got.first_bad, got.last_good) == ("regression", 28, 25)
    assert judge(_nights(base[:4]), higher_is_better=True).status == "short"
    assert judge([], higher_is_better=True).status == "short"
    assert judge(_nights([None] * 20 + [1.0]), higher_is_better=True).status == "short"


def test_a_noisy_row_says_how_many_repeats_would_make_it_judgeable():
    got = judge(_nights(_history(noise=0.03)), higher_is_better=True)
    assert got.status == "noisy" and got.repeats_needed is not None and got.repeats_needed >= 4
    # the nights' own noise floors the estimate from the history
    quiet = [Night(v, noise=0.04) for v in _history(noise=0.002)]
    assert judge(quiet, higher_is_better=True).status == "noisy"


def test_machine_nights_need_most_rows_moving_together():
    changes = np.array([[0.0, 0.1, -0.1, 0.1], [0.0, 0.12, 0.1, np.nan], [0.01, 0.09, -0.1, np.nan], [0.0, 0.0, 0.0, np.nan]])
    got = machine_nights(changes, np.full(4, 0.03))
    assert got.tolist() == [False, True, False, False]  # night 3: one row with a figure is too few
    ch, limit = night_changes(_nights(_history() + [200.0]))
    assert np.isnan(ch[:5]).all() and ch[-1] == pytest.approx(1.0, abs=0.05) and 0.01 < limit < 0.04


def test_single_night_is_todays_rule():
    assert single_night(_nights([100.0, 94.0]), higher_is_better=True) == "regression"
    assert single_night(_nights([100.0, 96.0]), higher_is_better=True) == "ok"
    assert single_night([Night(100.0), Night(92.0, noise=0.1)], higher_is_better=True) == "ok"
    assert single_night(_nights([100.0, None, 106.0]), higher_is_better=False) == "regression"
    assert single_night(_nights([100.0]), higher_is_better=True) == "ok"
