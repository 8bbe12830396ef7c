"""The noise a night states for a row is the noise of the night's figure (a median of repeats, a
mean of seeds), checked by simulation against the spread of that figure over many nights."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.core.record import Record
from actbench.report.alerts import night_rows

from .synthetic import lm_record


def _timing(rng, repeats: int, sd: float) -> dict:
    p20, p50, p80 = np.quantile(1 + rng.normal(0, sd, repeats), [0.2, 0.5, 0.8])
    return {"ms_p20": p20, "ms_p50": p50, "ms_p80": p80, "repeats": repeats}


@pytest.mark.parametrize("repeats", [10, 100])
def test_a_kernel_rows_noise_is_that_of_its_median_against_the_copys(repeats):
    rng = np.random.default_rng(repeats)
    figures, stated = [], []
    for night in range(1500):
        row, copy = _timing(rng, repeats, 0.05), _timing(rng, repeats, 0.02)
        row.update(impl="eager", mode="forward", pct_copy=100 * copy["ms_p50"] / row["ms_p50"])
        copy.update(impl="copy", mode="copy", gbps=1 / copy["ms_p50"])
        rec = Record(trial_id="t", attempt=1, kind="kernel", status="ok", suite="k", config={}, rows=[copy, row])
        points, _ = night_rows([rec])
        figures.append(points["k t eager forward | pct_copy"].value)
        stated.append(points["k t eager forward | pct_copy"].noise)
    truth = np.std(np.log(figures), ddof=1)  # the night-to-night sd of the figure itself
    assert np.median(stated) == pytest.approx(truth, rel=0.12)


def test_an_lm_rows_noise_is_that_of_its_mean_of_seeds():
    rng = np.random.default_rng(0)
    figures, stated = [], []
    for night in range(1500):
        recs = [lm_record("relu2", s, float(b)) for s, b in enumerate(1 + rng.normal(0, 0.03, 4))]
        points, _ = night_rows(recs)
        [key] = [k for k in points if k.endswith("| val_bpb")]
        figures.append(points[key].value)
        stated.append(points[key].noise)
    assert np.sqrt(np.mean(np.square(stated))) == pytest.approx(np.std(figures, ddof=1) / np.mean(figures), rel=0.1)
