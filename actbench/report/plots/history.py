"""The trend of a regress history: every compared figure as % change from its first run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from actbench.report.plots.base import literal, plt, save

HIGHER_IS_BETTER = {"pct_copy": True, "gbps": True, "tokens_per_s": True, "val_bpb": False, "val_loss": False,
                    "saved_bytes_per_elem": False, "peak_fwd_bwd_mb": False}
"""The metrics of a history's rows, a panel each (a row of another metric, planted, is not drawn)."""
MAX_TICKS = 16
"""Nights named on the x axis at most (every k-th night past that)."""


def history_plot(entries: list[dict[str, Any]], path: Path, labelled: int = 8) -> Path:
    """Trend of every figure over the runs of a regress history (asv style): one panel per
    metric, each row's figure as % change from its first run; the `labelled` rows that moved
    most are named in the legend, the others drawn thin and grey. Only the metrics of
    HIGHER_IS_BETTER get a panel and at most MAX_TICKS nights a label, so a history's lines
    bound the figure by their number, not by what they name."""
    metrics = sorted({m for e in entries for key in e["figures"] if (m := key.rsplit(" | ", 1)[-1]) in HIGHER_IS_BETTER})
    fig, axes = plt.subplots(len(metrics) or 1, 1, figsize=(11, 3.2 * max(1, len(metrics))), squeeze=False)
    ticks = [f"{literal(str(e.get('commit', '?'))[:8])}\n{literal(str(e.get('date', ''))[:10])}" for e in entries]
    for ax, metric in zip(axes[:, 0], metrics):
        keys = sorted({k for e in entries for k in e["figures"] if k.rsplit(" | ", 1)[-1] == metric})
        series = {}
        for k in keys:
            values = np.array([e["figures"].get(k, np.nan) for e in entries], dtype=float)
            first = values[np.isfinite(values)][:1]
            if len(first) and first[0]:
                series[k] = (values / first[0] - 1) * 100
        moved = sorted(series, key=lambda k: -np.nanmax(np.abs(series[k])) if np.isfinite(series[k]).any() else 0)[:labelled]
        for k, change in series.items():
            if k in moved:
                ax.plot(range(len(entries)), change, marker="o", lw=1.5, label=literal(k.rsplit(" | ", 1)[0]))
            else:
                ax.plot(range(len(entries)), change, color="0.75", lw=0.8)
        better = HIGHER_IS_BETTER.get(metric)
        direction = "" if better is None else (" (higher is better)" if better else " (lower is better)")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=f"{literal(metric)}: change from each row's first run{direction}; {len(series)} row(s)", ylabel="% change")
        every = max(1, -(-len(entries) // MAX_TICKS))
        ax.set_xticks(range(0, len(entries), every), ticks[::every], fontsize=7)
        if moved:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=f"moved most (of {len(series)})", title_fontsize=7)
    return save(fig, path, legend_room=0.3)
