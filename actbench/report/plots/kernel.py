"""Kernel throughput against input size: achieved GB/s and % of the device copy, per dtype and mode."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from actbench.report.plots.base import literal, margins, plt, png, save


def kernel_throughput(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Per dtype, achieved GB/s and % of the device copy against size (log x) for each mode, one
    line per activation x impl (median over repeats; colour: activation, line style and marker:
    impl), the copy black dashed: one figure per dtype."""
    used = [c for c in ("results_dir", "dtype", "mode", "activation", "impl", "size", "gbps", "pct_copy") if c in rows]
    k = rows.loc[rows["kind"] == "kernel", used] if not rows.empty and "kind" in rows else rows
    if k.empty:
        return []
    folders = k["results_dir"].nunique() if "results_dir" in k else 1
    pooled = f" (medians over {folders} results folders)" if folders > 1 else ""
    copy = k[k["impl"] == "copy"].groupby(["dtype", "size"])["gbps"].median()
    paths = []
    for dtype, g in k[k["impl"] != "copy"].groupby("dtype"):
        modes = list(g["mode"].unique())
        med = g.groupby(["mode", "activation", "impl", "size"])[["gbps", "pct_copy"]].median()
        fig, axes = plt.subplots(len(modes), 2, figsize=(14, 3.4 * len(modes)), squeeze=False)
        colours = {act: f"C{i % 10}" for i, act in enumerate(g["activation"].unique())}  # colour: activation; style: impl
        styles = {impl: (("-", "--", ":", "-.")[i % 4], "os^Dv<>p"[i % 8]) for i, impl in enumerate(g["impl"].unique())}
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
            ax_g.set(title=f"{literal(dtype)} {literal(mode)}: achieved GB/s (minimal bytes)", ylabel="GB/s", xscale="log")
            ax_c.set(title=f"{literal(dtype)} {literal(mode)}: % of a device copy in the same trial", ylabel="% of copy", xscale="log")
        for ax in axes[-1]:
            ax.set_xlabel("input size (elements, log scale)")
        acts, impls = ", ".join(map(literal, g["activation"].unique())), ", ".join(map(literal, g["impl"].unique()))
        fig.suptitle(f"{literal(dtype)} kernels compared: {acts} (impls: {impls}); median over repeats against input size{pooled}")
        fig.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.86, 0.5))
        paths.append(save(fig, png(out, f"kernel_{dtype}"), fixed=margins(fig, legend_room=0.14, top=0.75, between=0.75)))
    return paths
