"""Plots (matplotlib, Agg backend) and the self-contained HTML report of a results folder."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from actbench import activations  # noqa: E402
from actbench.results import ResultStore, latest_records  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def activation_shapes(names: list[str], path: Path, lo: float = -4.0, hi: float = 4.0) -> Path:
    """f(x) and f'(x) of each activation (gated ones as f([x, 1]), i.e. the gate with value 1)."""
    import torch

    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4.2))
    x = torch.linspace(lo, hi, 801, dtype=torch.float64)
    for name in names:
        module = activations.build(name).double()
        xi = x.clone().requires_grad_()
        gated = activations.spec(name).gated
        inp = torch.cat([xi, torch.ones_like(xi)]).reshape(1, -1) if gated else xi.reshape(1, -1)
        y = module(inp).reshape(-1)
        (dy,) = torch.autograd.grad(y.sum(), xi)
        ax_f.plot(x, y.detach(), label=name)
        ax_d.plot(x, dy, label=name)
    ax_f.set_title("f(x)")
    ax_d.set_title("f'(x)")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_xlabel("x")
        ax.legend(fontsize=8)
    ax_f.set_ylim(-2, 6)
    ax_d.set_ylim(-1.5, 3)
    return _save(fig, path)


def _lm_series(root: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, series) of the latest ok attempt of every lm trial in every results folder."""
    return [(r, ResultStore(d).series(r)) for d, r in latest_records(root)
            if r.get("kind") == "lm" and r.get("status") == "ok" and r.get("series_file")]


def _band(ax: plt.Axes, curves: list[np.ndarray], label: str) -> None:
    """Mean line and min-max band over seeds of curves given as (step, value) rows."""
    curves = [c for c in curves if len(c)]
    if not curves:
        return
    steps = sorted(set.intersection(*(set(c[:, 0].tolist()) for c in curves)))
    if not steps:
        return
    vals = np.array([[dict(zip(c[:, 0], c[:, 1]))[s] for s in steps] for c in curves])
    (line,) = ax.plot(steps, vals.mean(0), label=f"{label} (n={len(curves)})")
    if len(curves) > 1:
        ax.fill_between(steps, vals.min(0), vals.max(0), color=line.get_color(), alpha=0.2)


def _columns(series: dict[str, Any], table: str, *names: str) -> np.ndarray:
    """Columns of a series table as float rows (empty when the table is missing or of another shape)."""
    t = series.get(table)
    if not isinstance(t, dict) or not all(isinstance(t.get(n), list) for n in names):
        return np.empty((0, len(names)))
    return np.array([[np.nan if v is None else v for v in row] for row in zip(*(t[n] for n in names))], dtype=float).reshape(-1, len(names))


def lm_curves(root: Path, out: Path) -> list[Path]:
    """Train-loss and validation curves per activation with a band over seeds; xIELU alphas."""
    runs = _lm_series(root)
    if not runs:
        return []
    by_act: dict[str, list[dict[str, Any]]] = {}
    for rec, series in runs:
        by_act.setdefault(rec["config"]["activation"], []).append(series)
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
    for act, ss in by_act.items():
        _band(ax_t, [_columns(s, "train", "step", "loss") for s in ss], act)
        vals = [_columns(s, "val", "step", "bpb") for s in ss]
        use_bpb = all(not np.isnan(v[:, 1]).any() for v in vals)
        _band(ax_v, vals if use_bpb else [_columns(s, "val", "step", "loss") for s in ss], act)
    ax_t.set(title="train loss (nats/token)", xlabel="step")
    ax_v.set(title="validation bits per byte (loss where unknown)", xlabel="step")
    ax_t.legend(fontsize=8)
    ax_v.legend(fontsize=8)
    paths = [_save(fig, out / "lm_curves.png")]
    alpha_runs = [(rec, a) for rec, s in runs if len(a := _columns(s, "alphas", "step", "layer", "alpha_p", "alpha_n"))]
    if alpha_runs:
        fig, (ax_p, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
        for rec, a in alpha_runs:
            tag = f"{rec['config']['activation']} s{rec['config']['seed']}"
            for layer in np.unique(a[:, 1]).astype(int):
                rows = a[a[:, 1] == layer]
                ax_p.plot(rows[:, 0], rows[:, 2], label=f"{tag} L{layer}", lw=1)
                ax_n.plot(rows[:, 0], rows[:, 3], label=f"{tag} L{layer}", lw=1)
        ax_p.set(title="alpha_p per layer", xlabel="step")
        ax_n.set(title="alpha_n per layer", xlabel="step")
        ax_p.legend(fontsize=6, ncol=2)
        paths.append(_save(fig, out / "alphas.png"))
    return paths


def kernel_bars(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Achieved GB/s per activation and impl, one panel per (dtype, size, mode), copy marked."""
    k = rows[rows["kind"] == "kernel"] if not rows.empty else rows
    if k.empty:
        return []
    paths = []
    for (dtype, mode), g in k[k["impl"] != "copy"].groupby(["dtype", "mode"]):
        sizes = sorted(g["size"].unique())
        fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 4), squeeze=False)
        for ax, size in zip(axes[0], sizes):
            s = g[g["size"] == size].groupby(["activation", "impl"])["gbps"].median().unstack("impl")
            s.plot.bar(ax=ax, rot=45)
            copy = k[(k["impl"] == "copy") & (k["dtype"] == dtype) & (k["size"] == size)]["gbps"].median()
            ax.axhline(copy, color="k", ls="--", lw=1, label="device copy")
            ax.set(title=f"{dtype} {mode} size={size:,}", ylabel="GB/s (minimal bytes)")
            ax.legend(fontsize=7)
        paths.append(_save(fig, out / f"kernel_{dtype}_{mode}.png"))
    return paths


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}"><figcaption>{html.escape(path.name)}</figcaption></figure>'


def html_page(title: str, sections: list[tuple[str, str]], images: list[Path]) -> str:
    """A self-contained page: tables (HTML strings) and images embedded as base64."""
    body = "".join(f"<h2>{html.escape(h)}</h2>{content}" for h, content in sections)
    figs = "".join(_img(p) for p in images)
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;font-size:13px}"
             "td,th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}figure{margin:1em 0}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{style}</style></head>" \
           f"<body><h1>{html.escape(title)}</h1>{body}<h2>Plots</h2>{figs}</body></html>"

