"""What every plot shares: matplotlib on the Agg backend, fixed margins (a fraction of the cost of
a tight layout), PNG files, mean lines with min-max bands over seeds, legends in their own column
and log axes labelled with plain numbers."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.image
import matplotlib.ticker

matplotlib.use("Agg")
matplotlib.rcParams["text.usetex"] = False  # labels hold strings from files: never hand them to LaTeX
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from actbench.core.text import label as literal  # noqa: E402
from actbench.report import output  # noqa: E402


def margins(fig: plt.Figure, legend_room: float = 0.0, left: float = 0.8, top: float = 0.8, bottom: float = 0.6,
             between: float = 0.85) -> dict[str, float]:
    """Fixed margins in inches (around the axes, `between` rows and columns) as the fractions
    `subplots_adjust` takes: a fixed layout is a fraction of the cost of tight_layout, which draws
    every tick label twice (most of the time of a report with many lines)."""
    w, h = fig.get_size_inches()
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry() if fig.axes else (1, 1)
    right = 1 - legend_room - 0.15 / w
    ax_w = (right - left / w) * w / (cols + (cols - 1) * 0.3)
    ax_h = (1 - (top + bottom) / h) * h / (rows + (rows - 1) * 0.3)
    return {"left": left / w, "right": right, "top": 1 - top / h, "bottom": bottom / h,
            "wspace": between / ax_w, "hspace": between / ax_h}


def png(out: Path, stem: str) -> Path:
    """The PNG file of the output folder `out` named from `stem` (which may hold a suite name or a
    dtype from the results: sanitised, so it names no path; `output.file_name`)."""
    return output.inside(out, stem, ".png")


def save(fig: plt.Figure, path: Path, legend_room: float = 0.0, fixed: dict[str, float] | None = None) -> Path:
    """Lay out (keeping the right `legend_room` of the figure for a legend outside the axes;
    with `fixed`, those `subplots_adjust` margins instead of a tight layout) and write a PNG,
    atomically and through no link (`output.write`). A report names `path` with `png`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fixed is not None:
        fig.subplots_adjust(**fixed)
    else:
        fig.tight_layout(rect=(0, 0, 1 - legend_room, 1))
    try:
        pixels = _tight_pixels(fig)
        if pixels is not None:
            output.write(path, lambda f: matplotlib.image.imsave(f, pixels, format="png", dpi=DPI))
        else:  # something drawn outside the figure: matplotlib lays it out again on a canvas that holds it
            output.write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD))
    finally:
        plt.close(fig)
    return path


DPI, PAD = 110, 0.15
"""The PNGs' dots per inch, and the blank margin (inches) around what is drawn."""


def _tight_pixels(fig: plt.Figure) -> np.ndarray | None:
    """The figure drawn once, cut to what is drawn plus `PAD` (the picture `savefig(bbox_inches=
    "tight")` gives, which draws everything twice: once to find that box), as RGBA rows, the margin
    beyond the figure's edge (if any) blank; None when anything drawn reaches past the edge (a long
    legend or title), which a cut cannot hold."""
    fig.set_dpi(DPI)
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    pixels = np.asarray(fig.canvas.buffer_rgba())
    height, width = pixels.shape[:2]
    if drawn.x0 * DPI < -0.5 or drawn.y0 * DPI < -0.5 or drawn.x1 * DPI > width + 0.5 or drawn.y1 * DPI > height + 0.5:
        return None
    box = drawn.padded(PAD)
    w, h = int(box.width * DPI), int(box.height * DPI)
    left, top = round(box.x0 * DPI), round(height - box.y0 * DPI - h)
    cut = np.empty((h, w, 4), np.uint8)
    cut[:] = np.round(np.asarray(matplotlib.colors.to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
    rows, cols = slice(max(top, 0), min(top + h, height)), slice(max(left, 0), min(left + w, width))
    cut[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = pixels[rows, cols]
    return cut


def wrap(text: str, width: int = 40) -> str:
    """Each line of `text` wrapped at `width` characters (before `literal`, so no escape is split)."""
    return "\n".join(textwrap.fill(line, width) or line for line in str(text).split("\n"))


def _values_at(curve: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The values of a (step, value) curve at `steps`, all of which it has."""
    order = np.argsort(curve[:, 0], kind="stable")
    return curve[order[np.searchsorted(curve[order, 0], steps)], 1]


def band(ax: plt.Axes, curves: list[np.ndarray], label: str, color: Any = None, **line: Any) -> Any:
    """Mean line and min-max band over seeds of curves given as (step, x, y) rows, at the steps
    every curve has (x: the mean over seeds of each step's x, e.g. its wall-clock time);
    `label` (from the results, lines kept) is drawn literally."""
    steps = curves[0][:, 0]
    aligned = bool((np.diff(steps) > 0).all()) and all(np.array_equal(c[:, 0], steps) for c in curves[1:])
    if not aligned:
        for c in curves[1:]:
            steps = np.intersect1d(steps, c[:, 0])
    if not len(steps):
        return None
    if aligned:  # the usual case: every curve has these steps in this order, so its rows are the values
        xs, ys = np.array([c[:, 1] for c in curves]).mean(0), np.array([c[:, 2] for c in curves])
    else:
        xs = np.array([_values_at(c[:, [0, 1]], steps) for c in curves]).mean(0)
        ys = np.array([_values_at(c[:, [0, 2]], steps) for c in curves])
    (drawn,) = ax.plot(xs, ys.mean(0), label=f"{literal(wrap(label), multiline=True)} (n={len(curves)})", color=color, **line)
    if len(curves) > 1:
        ax.fill_between(xs, ys.min(0), ys.max(0), color=drawn.get_color(), alpha=0.2, lw=0)
    return drawn


def legend_column(fig: plt.Figure, ax: plt.Axes, handles: list[Any], title: str) -> None:
    """A legend in its own axes column, outside the data."""
    ax.axis("off")
    ax.legend(handles, [h.get_label() for h in handles], loc="center left", fontsize=8, frameon=False, title=title, title_fontsize=8)


def plain_log_ticks(ax: plt.Axes) -> None:
    """Log axes labelled with plain numbers at the decades only (no crowded minor labels)."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
