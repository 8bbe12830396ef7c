"""plots.base.band: the mean line and min-max band over seeds at the steps every seed has, whether
the seeds' curves share their steps (the usual case, taken as one array) or not."""

from __future__ import annotations

import numpy as np

from actbench.report.plots.base import band, plt


def _drawn(curves):
    fig, ax = plt.subplots()
    line = band(ax, curves, "relu2")
    verts = ax.collections[0].get_paths()[0].vertices if ax.collections else None
    plt.close(fig)
    return line, verts


def _reference(curves, steps):
    """Per step: mean x, mean y, min y, max y over the curves, by a plain loop in float64."""
    rows = []
    for s in steps:
        at = [(float(x[list(step).index(s)]), float(y[list(step).index(s)])) for step, x, y in curves]
        ys = [y for _, y in at]
        rows.append((np.mean([x for x, _ in at]), np.mean(ys), min(ys), max(ys)))
    return np.array(rows)


def test_curves_on_the_same_steps_give_the_mean_and_the_band_at_each():
    rng = np.random.default_rng(0)
    step = np.arange(0, 50, 5)
    curves = [(step, step * 100 + rng.integers(0, 9, len(step)), rng.normal(3, 0.5, len(step))) for _ in range(5)]
    line, verts = _drawn(curves)
    ref = _reference(curves, step)
    assert line.get_label() == "relu2 (n=5)"
    np.testing.assert_allclose(line.get_xdata(), ref[:, 0], rtol=1e-12)
    np.testing.assert_allclose(line.get_ydata(), ref[:, 1], rtol=1e-12)
    assert np.isclose(verts[:, 1].min(), ref[:, 2].min()) and np.isclose(verts[:, 1].max(), ref[:, 3].max())


def test_curves_on_other_steps_or_out_of_order_meet_at_the_steps_all_have():
    a = (np.array([0, 10, 20, 30]), np.array([0.0, 1.0, 2.0, 3.0]), np.array([4.0, 3.0, 2.0, 1.0]))
    b = (np.array([0, 10, 20]), np.array([0.5, 1.5, 2.5]), np.array([5.0, 4.0, 3.0]))  # stopped early
    c = (np.array([20, 0, 10, 30]), np.array([2.2, 0.2, 1.2, 3.2]), np.array([2.5, 4.5, 3.5, 1.5]))  # rows out of order
    line, verts = _drawn([a, b, c])
    ref = _reference([a, b, c], [0, 10, 20])
    np.testing.assert_allclose(line.get_xdata(), ref[:, 0], rtol=1e-12)
    np.testing.assert_allclose(line.get_ydata(), ref[:, 1], rtol=1e-12)
    assert np.isclose(verts[:, 1].min(), 2.0) and np.isclose(verts[:, 1].max(), 5.0)


def test_curves_with_no_step_in_common_draw_nothing():
    a = (np.array([0, 10]), np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    b = (np.array([5, 15]), np.array([0.0, 1.0]), np.array([1.0, 2.0]))
    assert _drawn([a, b]) == (None, None)
