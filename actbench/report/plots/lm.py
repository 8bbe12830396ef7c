"""lm training curves: training loss and validation bits per byte against training tokens and
against wall-clock time, one line per activation with a band over seeds, the final whole-split
value (what the table reports) marked at the end of each validation curve; and the learned
activation parameters (xIELU's alphas) per layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.ticker
import numpy as np
import pandas as pd

from actbench.report.lm import labels, setup_fields
from actbench.report.plots.base import Curve, band, drawing, legend_column, literal, margins, plt, png, save, title_above, wrap

Member = tuple[str, str, float]
"""(results folder, series file, final whole-split value of the metric) of one trial."""


def _lm_groups(trials: pd.DataFrame, merge: bool = False) -> dict[str, tuple[str, dict[str, list[Member]]]]:
    """Figure name -> (title, curve label -> [Member]) of the ok lm trials: one figure per suite,
    results folder (unless `merge`) and setup (the config but the activation, seed and fields
    without effect; tuned fields, listed in an `_ignore` column by `replay`, are left out and
    named in the label), one curve per activation."""
    if trials.empty or not {"kind", "status", "series_file", "config", "suite", "results_dir"} <= set(trials.columns):
        return {}
    lm = trials[(trials["kind"] == "lm") & (trials["status"] == "ok") & trials["series_file"].notna()]
    ignores = lm["_ignore"] if "_ignore" in lm else pd.Series([()] * len(lm), index=lm.index)
    out: dict[str, tuple[str, dict[str, list[Member]]]] = {}
    for suite, by_suite in lm.groupby("suite", sort=False):
        folders = [(None, by_suite)] if merge else list(by_suite.groupby("results_dir", sort=False))
        setups: dict[tuple[Any, str], tuple[dict[str, str], dict[str, list[Member]]]] = {}
        for folder, g in folders:
            final = g["metric.val_bpb"] if "metric.val_bpb" in g else pd.Series(np.nan, index=g.index)
            for c, ignore, d, f, v in zip(g["config"], ignores[g.index], g["results_dir"], g["series_file"], final.astype(float)):
                c = c if isinstance(c, dict) else {}
                fields = setup_fields(c, ignore)
                key = (folder, " ".join(f"{k}={v}" for k, v in fields.items()))
                tuned = " ".join(f"{k}={c.get(k)}" for k in ignore)
                label = str(c.get("activation", "?")) + (f"\n{tuned} (tuned)" if tuned else "")
                setups.setdefault(key, (fields, {}))[1].setdefault(label, []).append((str(d), f, float(v)))
        named = labels([(str(suite), fields) for fields, _ in setups.values()])
        for i, ((folder, _), (_, groups)) in enumerate(setups.items()):
            where = f" ({folder})" if len(folders) > 1 else (" (results folders merged)" if merge and by_suite["results_dir"].nunique() > 1 else "")
            title = f"{suite}{where}{f' [{named[i]}]' if named[i] else ''}"
            out[f"{suite}_{i + 1}" if len(setups) > 1 else str(suite)] = (title, groups)
    return out


@dataclass
class Figure:
    """What one lm figure draws: per curve label its training and validation curves (a `Curve`,
    step, x, y columns, per trial) and `final`, the mean final whole-split value of its trials;
    per (label, layer) the alphas."""

    name: str
    title: str
    val_metric: str
    curves: dict[str, dict[str, Any]]
    alphas: dict[tuple[str, int], dict[str, list[Curve]]]


def figures(trials: pd.DataFrame, series: Any = None, merge: bool = False) -> list[Figure]:
    """The lm figures of `trials` (see `lm_curves`), their data only."""
    from actbench.report.series import Series

    series = series if series is not None else Series()
    out = []
    for name, (title, groups) in _lm_groups(trials, merge).items():
        parsed = {label: [series.get(d, f) for d, f, _ in members] for label, members in groups.items()}
        vals = [s.val for members in parsed.values() for s in members if s.val is not None and {"tokens", "time_s"} <= set(s.val)]
        val_metric = "bpb" if all("bpb" in v and np.isfinite(v["bpb"]).all() for v in vals) else "loss"
        fig = Figure(name, title, val_metric, {}, {})
        for label, members in parsed.items():
            finals = [v for _, _, v in groups[label]]
            c = fig.curves.setdefault(label, {"train": [], "val_tokens": [], "val_time": [],
                                              "final": float(np.mean(finals)) if val_metric == "bpb" and np.isfinite(finals).all() else np.nan})
            for s in members:
                t, v, a = s.train, s.val, s.alphas
                if t is not None and "loss" in t and "tokens" in t:
                    c["train"].append((t["step"], t["tokens"], t["loss"]))
                if v is not None and "tokens" in v and "time_s" in v and val_metric in v:
                    c["val_tokens"].append((v["step"], v["tokens"], v[val_metric]))
                    c["val_time"].append((v["step"], v["time_s"], v[val_metric]))
                if a is not None and "layer" in a and "alpha_p" in a and "alpha_n" in a:
                    for layer in np.unique(a["layer"]).astype(int):
                        sel = a["layer"] == layer
                        step = a["step"][sel]
                        per = fig.alphas.setdefault((label, int(layer)), {"alpha_p": [], "alpha_n": []})
                        per["alpha_p"].append((step, step, a["alpha_p"][sel]))
                        per["alpha_n"].append((step, step, a["alpha_n"][sel]))
        if any(c[k] for c in fig.curves.values() for k in ("train", "val_tokens", "val_time")):
            out.append(fig)
    return out


@drawing()
def lm_curves(trials: pd.DataFrame, out: Path, series: Any = None, merge: bool = False) -> list[Path]:
    """Per lm suite and results folder (per suite with `merge`): training loss and validation
    bits per byte against training tokens, and validation bits per byte against wall-clock time,
    one line per activation (and setup) with a band over seeds, and the final whole-split value
    (the mean over seeds, as the table reports it; the curve is the periodic slice) marked at the
    end of each validation curve; and the alphas of activations that learn them, per layer, from
    step 0. `series` (`report.series.Series`) shares the files compare already read. Series that
    cannot be read (another shape) are left out; validation loss replaces bits per byte in a
    figure where any curve lacks them (one unit per axis)."""
    paths = []
    for fig in figures(trials, series, merge):
        paths.append(_lm_figure(fig.name, fig.title, fig.curves, fig.val_metric, out))
        if fig.alphas:
            paths.append(_alpha_figure(fig.name, fig.title, fig.alphas, out))
    return paths


def _lm_figure(name: str, title: str, curves: dict[str, dict[str, Any]], val_metric: str, out: Path) -> Path:
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.45]})
    ax_t, ax_v, ax_w, ax_l = axes
    handles = []
    val_label = "validation bits per byte" if val_metric == "bpb" else "validation loss (nats/token)"
    for i, (label, c) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        drawn = [band(ax_t, c["train"], label, colour, lw=0.9) if c["train"] else None,
                 band(ax_v, c["val_tokens"], label, colour, marker="o", ms=3) if c["val_tokens"] else None,
                 band(ax_w, c["val_time"], label, colour, marker="o", ms=3) if c["val_time"] else None]
        if np.isfinite(c["final"]) and c["val_tokens"]:
            end = (np.mean([v[1][-1] for v in c["val_tokens"]]), np.mean([v[1][-1] for v in c["val_time"]]) if c["val_time"] else np.nan)
            for ax, x in ((ax_v, end[0]), (ax_w, end[1])):
                if np.isfinite(x):
                    ax.plot([x], [c["final"]], "D", ms=8, mfc="none", mew=1.8, color=colour, zorder=5)
                    ax.annotate(f"{c['final']:.3f}", (x, c["final"]), textcoords="offset points", xytext=(6, -3), fontsize=7, color=colour)
        first = next((h for h in drawn if h is not None), None)
        if first is not None:
            handles.append(first)
    tokens = matplotlib.ticker.EngFormatter(sep="")
    losses = np.concatenate([c[2] for v in curves.values() for c in v["train"]] or [np.zeros(0)]).astype(float)
    clipped = ""
    if len(losses) and np.isfinite(losses).any():  # the first steps' loss would squash the rest of the curve
        top = float(np.nanpercentile(losses, 98))
        if top < np.nanmax(losses):
            ax_t.set_ylim(top=top + 0.05 * (top - float(np.nanmin(losses))))
            clipped = " (first steps above the axis)"
    ax_t.set(xlabel="training tokens", ylabel="training loss (nats/token)")
    ax_v.set(xlabel="training tokens", ylabel=val_label)
    ax_w.set(xlabel="wall-clock since training started (s)", ylabel=val_label)
    for ax, what in ((ax_t, f"training loss against tokens{clipped}"), (ax_v, f"{val_label} against tokens"), (ax_w, f"{val_label} against wall-clock")):
        title_above(ax, what)
    for ax in (ax_t, ax_v):
        ax.xaxis.set_major_formatter(tokens)
    for ax in (ax_t, ax_v, ax_w):
        ax.grid(alpha=0.3)
    if any(np.isfinite(c["final"]) for c in curves.values()):
        handles.append(ax_l.plot([], [], "D", ms=8, mfc="none", mew=1.8, color="0.3", label="final, whole test split\n(the table's value)")[0])
    legend_column(fig, ax_l, handles, "activation (seeds)")
    fig.suptitle(f"{literal(title)}\nline: mean over seeds, band: min to max over seeds; curve: the periodic slice of the test split, "
                 "diamond: the final whole-split value", fontsize=10)
    return save(fig, png(out, f"lm_{name}"), fixed=margins(fig))


def _alpha_figure(name: str, title: str, alphas: dict[tuple[str, int], dict[str, list[Curve]]], out: Path) -> Path:
    fig = alpha_figure(title, alphas)
    legend = fig.legends[0].get_window_extent(fig.canvas.get_renderer()).height / fig.dpi  # inches under the axes' labels
    return save(fig, png(out, f"alphas_{name}"), fixed=margins(fig, left=1.0, bottom=0.75 + legend))


def alpha_figure(title: str, alphas: dict[tuple[str, int], dict[str, list[Curve]]]) -> plt.Figure:
    """alpha_p and alpha_n per layer: one colour per activation (and setup), one line style per
    layer, each line's end labelled with its layer; the legend (activations, then layers) below
    the axes, its long labels wrapped, so it stays inside the figure."""
    actions = list(dict.fromkeys(label for label, _ in alphas))
    layers = sorted({layer for _, layer in alphas})
    styles = {layer: ("-", "--", ":", "-.")[i % 4] for i, layer in enumerate(layers)}
    marks = {layer: "o^sDv<>p"[i % 8] for i, layer in enumerate(layers)}
    fig, (ax_p, ax_n) = plt.subplots(1, 2, figsize=(13, 4.8 + 0.25 * -(-(len(actions) + len(layers)) // 4)))
    for (label, layer), per in alphas.items():
        colour = f"C{actions.index(label) % 10}"
        for ax, key in ((ax_p, "alpha_p"), (ax_n, "alpha_n")):
            drawn = band(ax, per[key], f"{label} layer {layer}", colour, ls=styles[layer], marker=marks[layer], ms=3, markevery=0.2)
            if drawn is not None:
                x, y = drawn.get_xdata()[-1], drawn.get_ydata()[-1]
                ax.annotate(f"L{layer}", (x, y), textcoords="offset points", xytext=(4, 0), fontsize=7, color=colour, va="center")
    ax_p.set(xlabel="training step (0: initial value)", ylabel="alpha_p")
    ax_n.set(xlabel="training step (0: initial value)", ylabel="alpha_n")
    title_above(ax_p, "alpha_p (positive side) per layer")
    title_above(ax_n, "alpha_n (negative side) per layer")
    for ax in (ax_p, ax_n):
        ax.grid(alpha=0.3)
    handles = [ax_p.plot([], [], color=f"C{i % 10}", lw=2, label=literal(wrap(label), multiline=True))[0] for i, label in enumerate(actions)]
    handles += [ax_p.plot([], [], color="0.35", ls=styles[layer], marker=marks[layer], ms=3, label=f"layer {layer} (L{layer})")[0] for layer in layers]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False,
               title="colour: activation (seeds: band); line style and end label: layer", title_fontsize=8)
    fig.suptitle(f"{literal(title)}\nlearned activation parameters from initialisation; line: mean over seeds, band: min to max", fontsize=10)
    return fig
