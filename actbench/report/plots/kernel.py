"""Kernel throughput against input size: achieved GB/s and % of the device copy, per dtype and mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from actbench.report.plots.base import drawing, fit_width, literal, margins, plt, png, save, title_above


@drawing()
def kernel_throughput(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Per dtype, achieved GB/s and % of the device copy against size (log x) for each mode, one
    line per activation x impl (median over repeats; colour: activation, line style and marker:
    impl), the copy black dashed: one figure per dtype."""
    keys = ["dtype", "mode", "activation", "impl", "size"]
    if rows.empty or "kind" not in rows or not {*keys, "gbps", "pct_copy"} <= set(rows.columns):
        return []
    kernel = (rows["kind"] == "kernel").to_numpy()
    if not kernel.any():
        return []
    folders = rows.loc[kernel, "results_dir"].nunique() if "results_dir" in rows else 1
    pooled = f" (medians over {folders} results folders)" if folders > 1 else ""
    copy_row = kernel & (rows["impl"] == "copy").to_numpy()
    copy = rows.loc[copy_row, ["dtype", "size", "gbps"]].groupby(["dtype", "size"])["gbps"].median()
    # the medians of every (dtype, mode, activation, impl, size) at once, in the order each first
    # appears (no copy of the rows): that order gives the modes, colours and styles
    measured = rows[["gbps", "pct_copy"]].groupby([rows[c] for c in keys] + [pd.Series(kernel & ~copy_row, index=rows.index)],
                                                  sort=False, dropna=False).median()
    measured = measured[measured.index.get_level_values(-1).to_numpy(dtype=bool)].droplevel(-1)
    paths = []
    for dtype, every in measured.groupby(level="dtype", sort=True):
        firsts = every.index.droplevel("dtype")
        med = every[firsts.to_frame().notna().all(axis=1).to_numpy()].droplevel("dtype").sort_index()
        modes = list(firsts.get_level_values("mode").unique())
        fig, axes = plt.subplots(len(modes), 2, figsize=(14, 3.4 * len(modes)), squeeze=False)
        colours = {act: f"C{i % 10}" for i, act in enumerate(firsts.get_level_values("activation").unique())}  # colour: activation; style: impl
        styles = {impl: (("-", "--", ":", "-.")[i % 4], "os^Dv<>p"[i % 8]) for i, impl in enumerate(firsts.get_level_values("impl").unique())}
        labelled: set[tuple[str, str]] = set()
        for (ax_g, ax_c), mode in zip(axes, modes):
            for (act, impl), line in med.loc[mode].groupby(level=["activation", "impl"]):
                sizes = line.index.get_level_values("size")
                ls, mk = styles[impl]
                ax_g.plot(sizes, line["gbps"], marker=mk, ms=4, ls=ls, lw=1.2, color=colours[act],
                          label=f"{literal(act)} {literal(impl)}" if (act, impl) not in labelled else None)
                labelled.add((act, impl))
                ax_c.plot(sizes, line["pct_copy"], marker=mk, ms=4, ls=ls, lw=1.2, color=colours[act])
            if dtype in copy.index.get_level_values("dtype"):
                c = copy.loc[dtype]
                ax_g.plot(c.index, c.values, "k--", marker="x", lw=1, label="device copy" if mode == modes[0] else None)
            ax_c.axhline(100, color="k", ls="--", lw=1)
            ax_g.set(ylabel="GB/s", xscale="log")
            ax_c.set(ylabel="% of copy", xscale="log")
            title_above(ax_g, f"{literal(dtype)} {literal(mode)}: achieved GB/s (minimal bytes)")
            title_above(ax_c, f"{literal(dtype)} {literal(mode)}: % of a device copy in the same trial")
        for ax in axes[-1]:
            ax.set_xlabel("input size (elements, log scale)")
        acts, impls = _listed(colours), _listed(styles)
        title = fig.suptitle(f"{literal(dtype)} kernels compared: {acts} (impls: {impls}); median over repeats against input size{pooled}")
        top = 0.75 + fit_width(title, fig.get_figwidth() - 0.5)
        fig.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.86, 0.5))
        paths.append(save(fig, png(out, f"kernel_{dtype}"), fixed=margins(fig, legend_room=0.14, top=top, between=0.75)))
    return paths


TITLE_NAMES = 12
"""The most activations or impls a kernel figure's title names (its legend names every one)."""


def _listed(names: dict[str, Any]) -> str:
    """The first `TITLE_NAMES` of `names`, made literal, and how many more."""
    shown = ", ".join(map(literal, list(names)[:TITLE_NAMES]))
    return shown if len(names) <= TITLE_NAMES else f"{shown} and {len(names) - TITLE_NAMES} more"
