"""plots.base.save: a figure is drawn once, and its PNG is the picture cut to what is drawn plus
the blank margin (the size matplotlib's tight box gives); a figure with ink past its edge is laid
out again so that nothing is cut."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.image import imread

from actbench.report.plots.base import DPI, PAD, plt, save


MARGINS = {"left": 0.15, "right": 0.6, "bottom": 0.2, "top": 0.85}


def _figure(legend_at: float) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([1, 2, 3], [3, 1, 2], label="a line")
    ax.set(title="a title", xlabel="x label", ylabel="y label")
    fig.legend(loc="center left", bbox_to_anchor=(legend_at, 0.5))
    return fig


def _drawn_by_save(fig: plt.Figure, path) -> int:
    draws = []
    fig.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    save(fig, path, fixed=MARGINS)
    return len(draws)


def _tight_shape(fig: plt.Figure) -> tuple[int, ...]:
    buf = io.BytesIO()
    fig.subplots_adjust(**MARGINS)
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD)
    plt.close(fig)
    buf.seek(0)
    return imread(buf).shape


def _edge_ink(png) -> float:
    rgb = imread(png)[..., :3]
    return float(min(rgb[:3].min(), rgb[-3:].min(), rgb[:, :3].min(), rgb[:, -3:].min()))


def test_a_figure_is_drawn_once_and_cut_to_the_size_of_its_tight_box(tmp_path):
    assert _drawn_by_save(_figure(0.65), tmp_path / "inside.png") == 1
    assert imread(tmp_path / "inside.png").shape == _tight_shape(_figure(0.65))
    assert _edge_ink(tmp_path / "inside.png") > 0.95


def test_a_legend_past_the_edge_is_kept_whole(tmp_path):
    save(_figure(0.97), tmp_path / "outside.png", fixed=MARGINS)  # the legend starts near the right edge and runs past it
    png = imread(tmp_path / "outside.png")
    assert png.shape == _tight_shape(_figure(0.97))
    assert png.shape[1] > 7 * DPI and _edge_ink(tmp_path / "outside.png") > 0.95
    assert np.isfinite(png).all()
