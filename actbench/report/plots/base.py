"""What every plot shares: matplotlib on the Agg backend, fixed margins (a fraction of the cost of
a tight layout), PNG files, mean lines with min-max bands over seeds, legends in their own column
and log axes labelled with plain numbers."""

from __future__ import annotations

import functools
import gc
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import matplotlib.colors
import matplotlib.text
import matplotlib.ticker

matplotlib.use("Agg")
matplotlib.rcParams["text.usetex"] = False  # labels hold strings from files: never hand them to LaTeX
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402

from actbench.core.text import label as literal  # noqa: E402
from actbench.report import output  # noqa: E402


MIN_AXES = 1.5
"""The least height in inches `margins` leaves a row of axes."""


def margins(fig: plt.Figure, legend_room: float = 0.0, left: float = 0.8, top: float = 0.8, bottom: float = 0.6,
             between: float = 0.85) -> dict[str, float]:
    """Fixed margins in inches (around the axes, `between` rows and columns) as the fractions
    `subplots_adjust` takes: a fixed layout is a fraction of the cost of tight_layout, which draws
    every tick label twice (most of the time of a report with many lines). A figure too short for
    its margins (a title or legend of many lines from the results) is made taller, so each row of
    axes keeps `MIN_AXES` inches."""
    w, h = fig.get_size_inches()
    rows, cols = fig.axes[0].get_subplotspec().get_gridspec().get_geometry() if fig.axes else (1, 1)
    if (needed := top + bottom + rows * MIN_AXES + (rows - 1) * between) > h:
        h = needed
        fig.set_size_inches(w, h)
    right = 1 - legend_room - 0.15 / w
    ax_w = (right - left / w) * w / (cols + (cols - 1) * 0.3)
    ax_h = (1 - (top + bottom) / h) * h / (rows + (rows - 1) * 0.3)
    return {"left": left / w, "right": right, "top": 1 - top / h, "bottom": bottom / h,
            "wspace": between / ax_w, "hspace": between / ax_h}


@contextmanager
def drawing() -> Iterator[None]:
    """While figures are made: the objects alive before (a report's tables, ~650k of them at
    100k records) kept out of the garbage collector's passes (`gc.freeze`), which otherwise went
    through them all every few thousand new figure objects (~12% of drawing a report's figures);
    the figures' own garbage is collected as before. Use as a decorator or a `with` block."""
    if gc.get_freeze_count():  # frozen by someone else: theirs to thaw
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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
    for axis in (axis for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)):
        if not isinstance(axis.get_major_formatter(), matplotlib.ticker.FixedFormatter):  # labels by position: keep every one
            axis.set_major_locator(InView(axis.get_major_locator()))
        if not isinstance(axis.get_minor_formatter(), matplotlib.ticker.FixedFormatter):
            axis.set_minor_locator(InView(axis.get_minor_locator()))
    try:
        pixels = _cut_to_ink(fig)
        if pixels is not None:
            output.write(path, lambda f: _write_png(f, pixels))
        else:  # something drawn outside the figure: matplotlib lays it out again on a canvas that holds it
            output.write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", pad_inches=PAD,
                                                     pil_kwargs={"compress_level": PNG_LEVEL}))
    finally:
        plt.close(fig)
    return path


DPI, PAD = 110, 0.15
"""The PNGs' dots per inch, and the blank margin (inches) around what is drawn."""
PNG_LEVEL = 3
"""zlib level of the PNGs: a figure is as small as at PIL's default (6, stored as RGBA) once stored
as RGB, and written in three quarters of the time."""


class InView(matplotlib.ticker.Locator):
    """The locations of `locator` inside the axis's view. matplotlib makes a tick (3 lines and 2
    texts, ~1 ms) for every location a locator gives, those it will not draw too: a log axis's
    LogLocator gives a decade more below and two above the view, its minor ticks 8 a decade, so
    most of a kernel figure's ticks were never drawn."""

    def __init__(self, locator: matplotlib.ticker.Locator) -> None:
        self.locator = locator.locator if isinstance(locator, InView) else locator

    def set_axis(self, axis: Any) -> None:
        super().set_axis(axis)
        self.locator.set_axis(axis)

    def __call__(self) -> Any:
        locs = np.asarray(self.locator(), dtype=float)
        if self.axis is None or not len(locs):
            return locs
        transform = self.axis.get_transform()
        low, high = np.sort(transform.transform(np.asarray(self.axis.get_view_interval(), dtype=float)))
        slack = 1e-6 * (high - low)  # matplotlib draws a tick within 1e-10 of the view's edge: keep a few more
        with np.errstate(invalid="ignore", divide="ignore"):
            at = transform.transform(locs)
        return locs[(at >= low - slack) & (at <= high + slack)]

    def tick_values(self, vmin: float, vmax: float) -> Any:
        return self.locator.tick_values(vmin, vmax)


def _cut_to_ink(fig: plt.Figure) -> np.ndarray | None:
    """The figure drawn once, cut to its ink (the rows and columns with a pixel not of the
    figure's facecolor) plus `PAD`, as RGB(A) rows, the margin beyond the figure's edge (if any)
    blank: the picture `savefig(bbox_inches="tight")` gives, which draws everything twice (once
    to find that box) and measures every text again. None when ink reaches the figure's edge
    (a long legend or title runs past it), which a cut cannot hold."""
    fig.set_dpi(DPI)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())
    face = np.round(np.asarray(matplotlib.colors.to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
    ink = pixels.view(np.uint32)[..., 0] != face.view(np.uint32)[0]
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    height, width = ink.shape
    if _beyond_canvas(fig, width, height):
        return None
    if not len(rows):
        rows, cols = np.array([0, height - 1]), np.array([0, width - 1])
    elif rows[0] == 0 or cols[0] == 0 or rows[-1] == height - 1 or cols[-1] == width - 1:
        return None
    pad = round(PAD * DPI)
    top, bottom, left, right = rows[0] - pad, rows[-1] + 1 + pad, cols[0] - pad, cols[-1] + 1 + pad
    cut = np.empty((bottom - top, right - left, 4), np.uint8)
    cut[:] = face  # the margin beyond the figure's edge, if any
    y0, y1, x0, x1 = max(top, 0), min(bottom, height), max(left, 0), min(right, width)
    cut[y0 - top:y1 - top, x0 - left:x1 - left] = pixels[y0:y1, x0:x1]
    return cut if face[3] < 255 else cut[..., :3]


def _beyond_canvas(fig: plt.Figure, width: int, height: int) -> bool:
    """Whether a legend or a text of the figure, as just drawn, reaches past its canvas (`width` x
    `height` pixels): ink may not show it where the canvas ends in a blank line of a long legend."""
    renderer = fig.canvas.get_renderer()
    artists = [*fig.legends, *fig.texts, *(ax.get_legend() for ax in fig.axes), *(t for ax in fig.axes for t in ax.texts)]
    for artist in artists:
        if artist is None or not artist.get_visible():
            continue
        box = artist.get_window_extent(renderer)
        if box.x0 < 0 or box.y0 < 0 or box.x1 > width or box.y1 > height:
            return True
    return False


def _write_png(f: Any, pixels: np.ndarray) -> None:
    """`pixels` (rows of RGB or RGBA) as a PNG of `DPI` dots per inch into the open file `f`."""
    PIL.Image.fromarray(np.ascontiguousarray(pixels)).save(f, format="png", dpi=(DPI, DPI), compress_level=PNG_LEVEL)


def wrap(text: str, width: int = 40) -> str:
    """Each line of `text` wrapped at `width` characters (before `literal`, so no escape is split)."""
    return "\n".join(textwrap.fill(line, width) or line for line in str(text).split("\n"))


def fit_width(title: matplotlib.text.Text, inches: float) -> float:
    """Wrap `title` (made `literal` already) at its spaces so that each line fits `inches` as
    drawn; the height in inches of the lines it added (room to make above the axes). A line that
    fits is kept as it is; a word is never split (an escape such as `\\$` stays whole), so a
    word wider than `inches` is left to `save`, which then lays the figure out around it."""
    renderer, font = title.figure.canvas.get_renderer(), title.get_fontproperties()
    room = inches * renderer.dpi

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line.replace(r"\$", "$"), font, ismath=False)[0] <= room

    lines = []
    for line in title.get_text().split("\n"):
        chars = len(line)
        wrapped = [line]
        while any(" " in w and not fits(w) for w in wrapped) and chars > 1:  # a word alone wider than `inches` stays
            chars = max(1, chars * 9 // 10)
            wrapped = _wrap_words(line, chars)
        for even in range(-(-len(line) // len(wrapped)), chars):  # lines of even length, as few
            if len(candidate := _wrap_words(line, even)) == len(wrapped) and all(map(fits, candidate)):
                wrapped = candidate
                break
        lines += wrapped
    added = len(lines) - title.get_text().count("\n") - 1
    title.set_text("\n".join(lines))
    return added * 1.2 * title.get_fontsize() / 72


def _wrap_words(line: str, chars: int) -> list[str]:
    return textwrap.wrap(line, chars, break_long_words=False, break_on_hyphens=False) or [line]


Curve = tuple[np.ndarray, np.ndarray, np.ndarray]
"""One trial's curve as its (step, x, y) columns, e.g. step, training tokens, training loss."""


def _values_at(step: np.ndarray, values: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The `values` (one per `step`) at `steps`, all of which `step` has."""
    order = np.argsort(step, kind="stable")
    return np.asarray(values)[order[np.searchsorted(np.asarray(step)[order], steps)]]


def band(ax: plt.Axes, curves: list[Curve], label: str, color: Any = None, **line: Any) -> Any:
    """Mean line and min-max band over seeds of curves given as (step, x, y) columns, at the
    steps every curve has (x: the mean over seeds of each step's x, e.g. its wall-clock time);
    `label` (from the results, lines kept) is drawn literally."""
    steps = np.asarray(curves[0][0])
    aligned = bool((np.diff(steps) > 0).all()) and all(len(c[0]) == len(steps) for c in curves) \
        and bool((np.array([c[0] for c in curves]) == steps).all())
    if not aligned:
        steps = functools.reduce(np.intersect1d, [c[0] for c in curves])
    if not len(steps):
        return None
    if aligned:  # the usual case: every curve has these steps in this order, so its columns are the values
        xs, ys = np.array([c[1] for c in curves], dtype=float).mean(0), np.array([c[2] for c in curves], dtype=float)
    else:
        xs = np.array([_values_at(c[0], c[1], steps) for c in curves], dtype=float).mean(0)
        ys = np.array([_values_at(c[0], c[2], steps) for c in curves], dtype=float)
    (drawn,) = ax.plot(xs, ys.mean(0), label=f"{literal(wrap(label), multiline=True)} (n={len(curves)})", color=color, **line)
    if len(curves) > 1:
        ax.fill_between(xs, ys.min(0), ys.max(0), color=drawn.get_color(), alpha=0.2, lw=0)
    return drawn


def title_above(ax: plt.Axes, title: str) -> None:
    """`title` right above `ax`, its y axis labelled in plain numbers from 1e-4 to 1e6 (no offset
    or power of ten drawn above the axis: matplotlib measures every y tick label again at each
    drawing to keep a title clear of one, ~10% of drawing an lm figure), in powers of ten beyond
    (a value from the results may be up to 1e150: written out, its labels would cover the figure)."""
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-4, 6), useOffset=False)
    ax.set_title(title, y=1.0)


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
