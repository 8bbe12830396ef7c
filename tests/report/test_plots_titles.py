"""A figure's title made of names from the results is wrapped to the figure's width (every word
kept, none split), so the figure is drawn once and its PNG is no wider than the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.image import imread

from actbench.report.plots.base import DPI, fit_width, literal, plt
from actbench.report.plots.kernel import kernel_throughput

NAMES = [f"plugin_act_{i}" for i in range(24)] + ["cost_$5$"]  # 25 names: a title twice the width of the figure


def _rows() -> pd.DataFrame:
    rows = [{"kind": "kernel", "dtype": "float32", "mode": mode, "activation": act, "impl": impl, "size": size,
             "gbps": 1000.0 + i, "pct_copy": 50.0} for mode in ("forward", "backward") for i, act in enumerate(NAMES)
            for impl in ("eager", "triton") for size in (2 ** 16, 2 ** 20)]
    rows += [{"kind": "kernel", "dtype": "float32", "mode": "copy", "activation": a, "impl": "copy", "size": s, "gbps": 2000.0,
              "pct_copy": 100.0} for a in NAMES[:1] for s in (2 ** 16, 2 ** 20)]
    return pd.DataFrame(rows)


def test_a_title_longer_than_the_figure_is_wrapped_to_its_width_every_word_kept():
    fig = plt.figure(figsize=(6, 3))
    text = " ".join(literal(n) for n in NAMES)
    title = fig.suptitle(text)
    added = fit_width(title, 5.5)
    renderer = fig.canvas.get_renderer()
    lines = title.get_text().split("\n")
    assert len(lines) > 3 and added == (len(lines) - 1) * 1.2 * title.get_fontsize() / 72
    assert " ".join(lines) == text and r"cost_\$5\$" in lines[-1]  # no word split, no escape cut from its `$`
    widths = [renderer.get_text_width_height_descent(line.replace(r"\$", "$"), title.get_fontproperties(), ismath=False)[0]
              for line in lines]
    assert max(widths) <= 5.5 * renderer.dpi
    assert max(widths[:-1]) - min(widths[:-1]) < 0.5 * max(widths)  # lines of about even length, not one full and one short
    plt.close(fig)


def test_a_short_title_is_kept_as_it_is():
    fig = plt.figure(figsize=(6, 3))
    title = fig.suptitle("a  short\ntitle")
    assert fit_width(title, 5.5) == 0 and title.get_text() == "a  short\ntitle"
    plt.close(fig)


def test_a_word_wider_than_the_figure_is_left_whole_on_its_line():
    fig = plt.figure(figsize=(6, 3))
    title = fig.suptitle(f"the results of {'a' * 150} against the rest of the names, and more")
    fit_width(title, 5.5)
    assert title.get_text().split("\n") == ["the results of", "a" * 150, "against the rest of the names, and more"]
    plt.close(fig)


def test_the_kernel_figure_of_many_long_names_is_no_wider_than_the_figure_its_title_whole(tmp_path):
    (path,) = kernel_throughput(_rows(), tmp_path)
    rgb = imread(path)[..., :3]
    assert rgb.shape[1] <= 14 * DPI  # before: the title ran past both edges, and savefig's tight box widened the PNG to hold it
    assert min(rgb[:3].min(), rgb[-3:].min(), rgb[:, :3].min(), rgb[:, -3:].min()) > 0.95  # no ink cut at an edge
    assert np.isfinite(rgb).all()


def test_a_title_above_the_axes_stays_clear_of_the_y_labels_which_are_plain_numbers():
    from actbench.report.plots.base import title_above

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [2.80001, 2.80004, 2.80002])  # a range matplotlib would label as an offset, "+2.8", above the axis
    title_above(ax, "validation bits per byte against tokens, a title as wide as the axes")
    fig.subplots_adjust(left=0.25, right=0.95, bottom=0.15, top=0.85)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert ax.yaxis.get_offset_text().get_text() == ""
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(label.startswith("2.80") for label in labels)
    assert ax.title.get_window_extent(renderer).y0 >= ax.get_window_extent(renderer).y1  # above the axes
    plt.close(fig)


def test_a_kernel_figure_of_a_hundred_activations_is_saved_its_title_naming_twelve(tmp_path, monkeypatch):
    """A sweep of many activations is ordinary input: the title names the first TITLE_NAMES and how many
    more (the legend names them all), and a title or legend taller than the figure makes it taller,
    never a layout error (before: `bottom cannot be >= top`)."""
    from actbench.report.plots import kernel

    names = [f"activation_{i:03d}" for i in range(100)]
    rows = pd.DataFrame([{"kind": "kernel", "dtype": "float32", "mode": "forward", "activation": a, "impl": "eager", "size": s,
                          "gbps": 1000.0, "pct_copy": 50.0} for a in names for s in (2 ** 16, 2 ** 20)])
    seen, real = [], kernel.save
    monkeypatch.setattr(kernel, "save", lambda fig, path, **kw: seen.append(fig._suptitle.get_text()) or real(fig, path, **kw))
    (path,) = kernel_throughput(rows, tmp_path)
    assert imread(path).shape[0] > 100
    title = " ".join(seen[0].split("\n"))
    assert "activation_011 and 88 more" in title and "activation_012" not in title


def test_a_legend_taller_than_its_figure_makes_the_figure_taller_and_is_kept_whole(tmp_path):
    from actbench.report.plots.base import margins, save

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot([0, 1], [0, 1], label="TOP" + "\n" * 150 + "BOTTOM")  # blank lines where the canvas would end: no ink at its edge
    fig.legend(loc="center left", bbox_to_anchor=(0.75, 0.5))
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer()).height / fig.dpi
    fixed = margins(fig, bottom=0.75 + legend)
    assert fixed["top"] > fixed["bottom"] and fig.get_figheight() > legend
    rgb = imread(save(fig, tmp_path / "tall.png", fixed=fixed))[..., :3]
    assert rgb.shape[0] / DPI > legend  # the whole legend: before, the crop kept the axes and cut the legend away


def test_huge_values_are_labelled_in_powers_of_ten_plain_ones_plainly():
    from actbench.report.plots.base import title_above

    for values, offset in (([0.0, 1e308], "1e308"), ([0.5, 2.5], "")):
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.plot([0, 1], values)
        title_above(ax, "t")
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert ax.yaxis.get_offset_text().get_text() == offset and max(map(len, labels)) <= 6  # not 309 digits a label
        plt.close(fig)
