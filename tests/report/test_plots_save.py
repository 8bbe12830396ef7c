"""plots.base.save: a figure is drawn once, and its PNG is the picture cut to its ink plus the
blank margin (about the size matplotlib's tight box gives, which also counts the blank under a
text's baseline); a figure with ink past its edge is laid out again so that nothing is cut."""

from __future__ import annotations

import io

import numpy as np
import pytest
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


def _ink_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Blank rows above, below, columns left, right of the ink (pixels not white)."""
    ink = (rgb[..., :3] < 1.0).any(axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return rows[0], len(ink) - 1 - rows[-1], cols[0], ink.shape[1] - 1 - cols[-1]


def test_a_figure_is_drawn_once_and_cut_to_its_ink_plus_the_margin(tmp_path):
    assert _drawn_by_save(_figure(0.65), tmp_path / "inside.png") == 1
    png = imread(tmp_path / "inside.png")
    assert _ink_box(png) == (round(PAD * DPI),) * 4  # the tight box left more blank under the x label's baseline
    tight = _tight_shape(_figure(0.65))
    assert abs(png.shape[0] - tight[0]) <= 6 and abs(png.shape[1] - tight[1]) <= 6
    assert _edge_ink(tmp_path / "inside.png") > 0.95


def test_ink_near_the_edge_gets_a_blank_margin_beyond_it(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.set(xticks=[], yticks=[])
    save(fig, tmp_path / "edge.png", fixed={"left": 0.01, "right": 0.99, "bottom": 0.01, "top": 0.99})  # spines 3 px from the edge
    png = imread(tmp_path / "edge.png")
    assert _ink_box(png) == (round(PAD * DPI),) * 4 and png.shape[0] > 3 * DPI and png.shape[1] > 4 * DPI


def test_a_legend_past_the_edge_is_kept_whole(tmp_path):
    save(_figure(0.97), tmp_path / "outside.png", fixed=MARGINS)  # the legend starts near the right edge and runs past it
    png = imread(tmp_path / "outside.png")
    assert png.shape == _tight_shape(_figure(0.97))
    assert png.shape[1] > 7 * DPI and _edge_ink(tmp_path / "outside.png") > 0.95
    assert np.isfinite(png).all()


def test_while_drawing_the_objects_alive_before_are_left_out_of_the_collectors_passes():
    import gc

    from actbench.report.plots.base import drawing

    alive = [[i] for i in range(10_000)]
    with drawing():
        assert gc.get_freeze_count() >= len(alive)
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own freeze is theirs: kept as it was
    try:
        with drawing():
            pass
        assert gc.get_freeze_count() >= len(alive)
    finally:
        gc.unfreeze()


def test_a_log_axis_makes_only_the_ticks_it_draws(tmp_path):
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([2e4, 3e7], [1, 2])
    ax.set_xscale("log")
    save(fig, tmp_path / "log.png", fixed=MARGINS)
    low, high = ax.get_xlim()
    decades = 10.0 ** np.arange(4, 8)
    minor = [m * d for d in decades for m in range(2, 10) if low <= m * d <= high]
    assert [t.label1.get_text() for t in ax.xaxis.majorTicks] == [f"$\\mathdefault{{10^{{{k}}}}}$" for k in (5, 6, 7)]
    assert sorted(t.get_loc() for t in ax.xaxis.minorTicks) == minor  # before: a decade more below and two above, 56 minor ticks


def _positional_labels() -> plt.Figure:
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.plot([0, 4], [0, 1])
    ax.xaxis.set_major_locator(matplotlib.ticker.MultipleLocator(1))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FixedFormatter(list("abcdefgh")))  # the k-th location gets the k-th label
    ax.set_xlim(1.5, 4.5)  # the locator's first location lies outside the view
    return fig


@pytest.mark.filterwarnings("ignore:FixedFormatter should only be used together with FixedLocator")
def test_ticks_labelled_by_position_keep_their_labels_when_some_lie_outside_the_view(tmp_path):
    plain = _positional_labels()
    plain.canvas.draw()
    fig = _positional_labels()
    save(fig, tmp_path / "fixed.png", fixed=MARGINS)
    drawn = [{t.get_loc(): t.label1.get_text() for t in f.axes[0].xaxis.majorTicks} for f in (plain, fig)]
    assert drawn[0][2] == "b" and all(drawn[1][loc] == drawn[0][loc] for loc in (2, 3, 4))
    plt.close(plain)
