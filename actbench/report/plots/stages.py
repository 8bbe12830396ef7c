"""Plots of staged and laddered suites: loss against training compute with each activation's fitted
curve (ladders), and the tuning metric against the tuned value with each point's choice (tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.ticker
import numpy as np
import pandas as pd

from actbench.report.plots.base import drawing, literal, plain_log_ticks, plt, png, save

if TYPE_CHECKING:
    from actbench.planner.plan import Plan
    from actbench.suite import Suite


@drawing()
def scaling_plot(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Per ladder suite: loss against training compute (log-log), every seed a point, the fitted
    L = E + A (C/C0)^-alpha of each activation a line."""
    paths = []
    for (suite, results), g in frame.groupby(["suite", "results"], sort=False) if not frame.empty else []:
        fig, ax = plt.subplots(figsize=(11, 5.5))
        for r in g.itertuples():
            compute, losses = np.asarray(r.compute, dtype=float), np.asarray(r.losses, dtype=float)
            xs = np.repeat(compute[:, None], losses.shape[1], axis=1)
            (pts,) = ax.plot(xs.ravel(), losses.ravel(), "o", ms=4, alpha=0.6, label=f"{literal(r.activation)} (seeds)")
            if np.isfinite(r.alpha):
                grid = np.geomspace(np.nanmin(compute), np.nanmax(compute), 100)
                ax.plot(grid, r.E + r.A * (grid / r.C0) ** -r.alpha, color=pts.get_color(),
                        label=f"{literal(r.activation)} fit: E={r.E:.3g}, alpha={r.alpha:.2f}, R2={r.r2:.3f}")
        ax.set(xscale="log", yscale="log", xlabel="training compute (FLOPs, log)", ylabel=f"validation {literal(g.iloc[0].metric)} (log)",
               title=f"{literal(suite)}: loss against training compute, each fitted as E + A (C/C0)^-alpha")
        plain_log_ticks(ax)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        paths.append(save(fig, png(out, f"scaling_{suite}"), legend_room=0.0))
    return paths


@drawing()
def tuning_plot(trials: pd.DataFrame, suites: "dict[tuple[str, str], Suite]", plans: "dict[tuple[str, str], Plan]",
                out: Path) -> list[Path]:
    """Per tuned suite: the metric tuning selects on against the (first) tuned field at the last
    tuning rung with every trial recorded, log-x for positive values, one line per point (mean
    over seeds, seeds as points), the chosen value starred; the title warns when a choice lies on
    the edge of the grid."""
    paths = []
    for key, suite in suites.items():
        tune, p = suite.spec.tune, plans.get(key)
        if tune is None or p is None or p.tuning is None:
            continue
        d, name = key
        recs = trials[(trials["results_dir"].astype(str) == d) & (trials["suite"] == name)]
        selected_on = suite.kind.tuning_metric(tune.metric)
        column = f"metric.{selected_on}"
        values = recs[column].astype(float) if column in recs else pd.Series(np.nan, index=recs.index)
        metric_of = {t: float(v) for t, st, v in zip(recs["trial_id"], recs["status"], values) if st == "ok" and np.isfinite(v)}
        recorded = set(recs["trial_id"])
        rungs = sorted({c.rung for c in p.tuning.candidates})
        complete = [r for r in rungs if all(c.trial.id in recorded for c in p.tuning.candidates if c.rung == r)]
        if not complete:
            continue
        last = [c for c in p.tuning.candidates if c.rung == complete[-1]]
        field = next(iter(tune.fields))
        fig, ax = plt.subplots(figsize=(11, 5.5))
        decisions = p.tuning.decisions
        edges = sum(bool(dec.edges) for dec in decisions.values())
        colours: dict[str, str] = {}  # one colour per activation; its points (ladder rungs, ...) told apart by line style
        styles: dict[str, int] = {}
        for group in sorted({c.group for c in last}):
            cands = [c for c in last if c.group == group and c.trial.id in metric_of]
            xs = sorted({c.values[0] for c in cands})
            if not xs:
                continue
            act = str(suite.value(group, "activation") or "")
            colour = colours.setdefault(act, f"C{len(colours) % 10}")
            k = styles[act] = styles.get(act, -1) + 1
            means = [np.mean([metric_of[c.trial.id] for c in cands if c.values[0] == x]) for x in xs]
            (line,) = ax.plot(xs, means, marker="os^Dv<>p"[k % 8], ls=("-", "--", ":", "-.")[k % 4], color=colour, label=literal(suite.label(group)))
            ax.plot([c.values[0] for c in cands], [metric_of[c.trial.id] for c in cands], ".", color=line.get_color(), alpha=0.5)
            chosen = decisions[group].values if group in decisions else None
            if chosen:
                ax.plot([chosen[0]], [means[xs.index(chosen[0])]] if chosen[0] in xs else [], "*", ms=14, color=line.get_color())
        positive = all(isinstance(v, (int, float)) and v > 0 for v in tune.fields[field])
        warn = f"; {edges} choice(s) on the edge of the grid: widen it" if edges else ""
        ax.set(xscale="log" if positive else "linear", xlabel=literal(field) + (" (log)" if positive else ""), ylabel=literal(selected_on),
               title=f"{literal(name)}: {literal(selected_on)} of the tuning trials against {literal(field)}\n(line: mean over seeds, dots: seeds, star: chosen){warn}")
        if positive:
            ax.set_xticks(sorted(tune.fields[field]), [f"{v:g}" for v in sorted(tune.fields[field])])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        paths.append(save(fig, png(out, f"tuning_{name}")))
    return paths


