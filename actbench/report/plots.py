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


def activation_curves(names: list[str], lo: float = -4.0, hi: float = 4.0, points: int = 801
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """Per activation (x, f(x), f'(x), how f' was obtained), in float64. Gated activations are
    drawn as f([x, 1]) (the gate, value 1). f' is the module's analytic `derivative` where it has
    one (xIELU: autograd through its min(x, eps) would draw a spike to beta - alpha_n at 0),
    autograd otherwise."""
    import torch

    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    curves = {}
    for name in names:
        module = activations.build(name).double()
        xi = x.clone().requires_grad_()
        inp = torch.cat([xi, torch.ones_like(xi)]) if activations.spec(name).gated else xi
        y = module(inp.reshape(1, -1)).reshape(-1)
        if callable(getattr(module, "derivative", None)):
            dy, how = module.derivative(x).detach(), "analytic"
        else:
            (dy,) = torch.autograd.grad(y.sum(), xi)
            how = "autograd"
        curves[name] = (x.numpy(), y.detach().numpy(), dy.numpy(), how)
    return curves


def activation_figure(names: list[str], lo: float = -4.0, hi: float = 4.0) -> plt.Figure:
    """f(x) and f'(x) side by side, one colour per activation, the legend in its own column."""
    curves = activation_curves(names, lo, hi)
    fig, (ax_f, ax_d, ax_legend) = plt.subplots(1, 3, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1, 1, 0.32]})
    for name, (x, y, dy, how) in curves.items():
        label = name + (" (gated: f([x, 1]))" if activations.spec(name).gated else "") + (" (f' analytic)" if how == "analytic" else "")
        (line,) = ax_f.plot(x, y, label=label, lw=1.6)
        ax_d.plot(x, dy, color=line.get_color(), lw=1.6)
    fig.suptitle(f"Activation functions compared: value f(x) and slope f'(x) for x in [{lo:g}, {hi:g}]")
    ax_f.set(title="f(x)", xlabel="input x", ylabel="f(x)")
    ax_d.set(title="f'(x) = df/dx (autograd unless marked analytic)", xlabel="input x", ylabel="f'(x)")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.grid(alpha=0.3)
    # the shapes near 0 matter: clip the growth of quadratic ones, fit the negative side
    ax_f.set_ylim(max(-2.0, min(-0.5, *(float(c[1].min()) for c in curves.values())) - 0.2), 6.0)
    ax_d.set_ylim(max(-1.5, min(-0.5, *(float(c[2].min()) for c in curves.values())) - 0.2), 3.0)
    ax_legend.axis("off")
    ax_legend.legend(*ax_f.get_legend_handles_labels(), loc="center left", fontsize=8, frameon=False)
    return fig


def activation_shapes(names: list[str], path: Path, lo: float = -4.0, hi: float = 4.0) -> Path:
    """Write activation_figure as a PNG."""
    return _save(activation_figure(names, lo, hi), path)


def _lm_series(root: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(record, series) of the latest ok attempt of every lm trial in every results folder."""
    return [(r, ResultStore(d).series(r)) for d, r in latest_records(root)
            if r.get("kind") == "lm" and r.get("status") == "ok" and r.get("series_file")]


def _band(ax: plt.Axes, curves: list[np.ndarray], label: str) -> None:
    """Mean line and min-max band over seeds of curves given as (step, value) rows."""
    steps = sorted(set.intersection(*(set(c[:, 0].tolist()) for c in curves)))
    if not steps:
        return
    vals = np.array([[dict(zip(c[:, 0], c[:, 1]))[s] for s in steps] for c in curves])
    (line,) = ax.plot(steps, vals.mean(0), label=f"{label} (n={len(curves)})")
    if len(curves) > 1:
        ax.fill_between(steps, vals.min(0), vals.max(0), color=line.get_color(), alpha=0.2)


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
        _band(ax_t, [np.array(s["train_loss"], dtype=float) for s in ss], act)
        use_bpb = all(v[2] is not None for s in ss for v in s["val"])
        _band(ax_v, [np.array([[v[0], v[2] if use_bpb else v[1]] for v in s["val"]], dtype=float) for s in ss], act)
    ax_t.set(title="train loss (nats/token)", xlabel="step")
    ax_v.set(title="validation bits per byte (loss where unknown)", xlabel="step")
    ax_t.legend(fontsize=8)
    ax_v.legend(fontsize=8)
    paths = [_save(fig, out / "lm_curves.png")]
    alpha_runs = [(rec, s) for rec, s in runs if s.get("alphas")]
    if alpha_runs:
        fig, (ax_p, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
        for rec, s in alpha_runs:
            a = np.array(s["alphas"], dtype=float)
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

