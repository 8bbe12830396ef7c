"""lm curves: the validation curve is the periodic slice of the test part, so each curve also
carries (and the figure marks) the final whole-split value the table reports."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.report.plots.lm import figures, lm_curves
from actbench.results.frames import load
from actbench.results.store import ResultStore

from ..synthetic import lm_record


def test_each_validation_curve_carries_the_final_whole_split_value(tmp_path):
    store = ResultStore(tmp_path / "run")
    steps = [25, 50, 75, 100, 125, 150, 175, 200]
    for act, final in (("relu2", 2.81), ("xielu", 2.90)):
        for seed in range(2):
            curve = [3.6 - 0.1 * i for i in range(len(steps))]  # the slice: ends at 2.9, not at the whole split's value
            store.append(lm_record(act, seed, final + seed / 100),
                         series={"val": {"step": steps, "tokens": [s * 2048 for s in steps], "time_s": [s / 4 for s in steps],
                                         "loss": curve, "bpb": curve},
                                 "train": {"step": list(range(200)), "loss": [3.0] * 200, "tokens": [2048 * (i + 1) for i in range(200)],
                                           "time_s": [i / 4 for i in range(200)]}})
    trials = load(tmp_path / "run")
    (fig,) = figures(trials)
    assert fig.val_metric == "bpb" and set(fig.curves) == {"relu2", "xielu"}
    assert fig.curves["relu2"]["final"] == pytest.approx(2.815) and fig.curves["xielu"]["final"] == pytest.approx(2.905)
    assert all(np.allclose(c[2][-1], 2.9) for c in fig.curves["relu2"]["val_tokens"])  # the curve's own last point differs
    (png,) = lm_curves(trials, tmp_path / "out")
    assert png.stat().st_size > 10_000
