"""`plot-activation`: xIELU's slope is its analytic derivative (no spike at 0); the figure says
what it compares, labels its axes and keeps the legend off the data."""

from __future__ import annotations

import numpy as np

from actbench.report.plots.activation import activation_curves, activation_figure, activation_shapes


def test_xielu_slope_is_analytic_without_a_spike_at_zero():
    curves = activation_curves(["xielu", "relu2", "swiglu"], -4, 4, points=801)
    x, _, dy, how = curves["xielu"]
    assert how == "analytic"
    at0 = np.argmin(np.abs(x))
    assert abs(dy[at0] - 0.5) < 1e-6  # alpha_n expm1(eps) + beta; autograd gives beta - alpha_n = -0.3
    assert np.abs(np.diff(dy)).max() < 0.05  # continuous: no jump anywhere on the grid
    x, y, dy, how = curves["relu2"]
    assert how == "autograd" and np.allclose(dy, 2 * np.maximum(x, 0)) and np.allclose(y, np.maximum(x, 0) ** 2)
    x, y, _, _ = curves["swiglu"]
    assert np.allclose(y, x / (1 + np.exp(-x)))  # the gate with value 1


def test_figure_is_titled_labelled_and_its_legend_is_outside_the_data(tmp_path):
    fig = activation_figure(["xielu", "relu2", "swiglu"])
    assert "compared" in fig._suptitle.get_text()
    ax_f, ax_d, ax_legend = fig.axes
    for ax in (ax_f, ax_d):
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    legend = ax_legend.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["xielu (f' analytic)", "relu2", "swiglu (gated: f([x, 1]))"]
    fig.canvas.draw()
    box = legend.get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in (ax_f, ax_d))
    path = activation_shapes(["xielu"], tmp_path / "a.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
