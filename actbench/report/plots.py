"""Plots (matplotlib, Agg backend) and the self-contained HTML report of a results folder."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Iterator

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from actbench import activations  # noqa: E402
from actbench.results import read_series  # noqa: E402


def _save(fig: plt.Figure, path: Path, legend_room: float = 0.0) -> Path:
    """Lay out (keeping the right `legend_room` of the figure for a legend outside the axes)
    and write a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0, 1 - legend_room, 1))
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


def _lm_series(trials: pd.DataFrame) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(config, series) of every ok lm trial of a loaded trials frame (`results.load`), read one
    at a time (a caller keeps only what it draws)."""
    if trials.empty or not {"kind", "status", "series_file", "config"} <= set(trials.columns):
        return
    lm = trials[(trials["kind"] == "lm") & (trials["status"] == "ok") & trials["series_file"].notna()]
    for c, d, f in zip(lm["config"], lm["results_dir"], lm["series_file"]):
        yield (c if isinstance(c, dict) else {}), read_series(d, f)


_LEGACY_SERIES = {"train": ("train_loss", ("step", "loss")), "val": ("val", ("step", "loss", "bpb")),
                  "alphas": ("alphas", ("step", "layer", "alpha_p", "alpha_n"))}


def _series_columns(series: dict[str, Any], table: str) -> dict[str, np.ndarray] | None:
    """One table of a series as float columns: the column format {table: {column: [...]}} or the
    older list of unnamed rows; None where it is absent or has another shape."""
    data = series.get(table)
    legacy_key, names = _LEGACY_SERIES[table]
    try:
        if isinstance(data, dict):
            cols = {c: np.asarray([np.nan if v is None else v for v in data[c]], dtype=float) for c in names if c in data}
        else:
            rows = np.asarray([[np.nan if v is None else v for v in r] for r in series.get(legacy_key) or []], dtype=float)
            cols = {c: rows[:, i] for i, c in enumerate(names) if rows.ndim == 2 and i < rows.shape[1]}
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    if "step" not in cols or len({len(v) for v in cols.values()}) != 1 or not len(cols["step"]):
        return None
    return cols


def _values_at(curve: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The values of a (step, value) curve at `steps`, all of which it has."""
    order = np.argsort(curve[:, 0], kind="stable")
    return curve[order[np.searchsorted(curve[order, 0], steps)], 1]


def _band(ax: plt.Axes, curves: list[np.ndarray], label: str) -> None:
    """Mean line and min-max band over seeds of curves given as (step, value) rows, at the
    steps every curve has."""
    steps = curves[0][:, 0]
    for c in curves[1:]:
        steps = np.intersect1d(steps, c[:, 0])
    if not len(steps):
        return
    vals = np.array([_values_at(c, steps) for c in curves])
    (line,) = ax.plot(steps, vals.mean(0), label=f"{label} (n={len(curves)})")
    if len(curves) > 1:
        ax.fill_between(steps, vals.min(0), vals.max(0), color=line.get_color(), alpha=0.2)


def lm_curves(trials: pd.DataFrame, out: Path) -> list[Path]:
    """Train-loss and validation curves per activation with a band over seeds; xIELU alphas.
    Series that cannot be read (another shape) are left out."""
    train: dict[str, list[np.ndarray]] = {}
    val: dict[str, list[dict[str, np.ndarray]]] = {}
    alphas: dict[tuple[str, int], dict[str, list[np.ndarray]]] = {}
    for cfg, series in _lm_series(trials):
        act = cfg.get("activation", "?")
        if (t := _series_columns(series, "train")) is not None and "loss" in t:
            train.setdefault(act, []).append(np.column_stack([t["step"], t["loss"]]))
        if (v := _series_columns(series, "val")) is not None:
            val.setdefault(act, []).append(v)
        a = _series_columns(series, "alphas")
        if a is not None and {"layer", "alpha_p", "alpha_n"} <= set(a):
            for layer in np.unique(a["layer"]).astype(int):
                sel = a["layer"] == layer
                curves = alphas.setdefault((act, int(layer)), {"alpha_p": [], "alpha_n": []})
                for name in ("alpha_p", "alpha_n"):
                    curves[name].append(np.column_stack([a["step"][sel], a[name][sel]]))
    if not train and not val:
        return []
    fig, (ax_t, ax_v) = plt.subplots(1, 2, figsize=(11, 4.2))
    for act, curves in train.items():
        _band(ax_t, curves, act)
    for act, vs in val.items():
        use_bpb = all("bpb" in v and np.isfinite(v["bpb"]).all() for v in vs)
        curves = [np.column_stack([v["step"], v["bpb"] if use_bpb else v["loss"]]) for v in vs if use_bpb or "loss" in v]
        if curves:
            _band(ax_v, curves, act)
    ax_t.set(title="train loss (nats/token)", xlabel="step")
    ax_v.set(title="validation bits per byte (loss where unknown)", xlabel="step")
    ax_t.legend(fontsize=8)
    ax_v.legend(fontsize=8)
    paths = [_save(fig, out / "lm_curves.png")]
    if alphas:
        fig, (ax_p, ax_n) = plt.subplots(1, 2, figsize=(11, 4.2))
        for (act, layer), curves in alphas.items():
            _band(ax_p, curves["alpha_p"], f"{act} L{layer}")
            _band(ax_n, curves["alpha_n"], f"{act} L{layer}")
        ax_p.set(title="alpha_p per layer (mean, min-max over seeds)", xlabel="step")
        ax_n.set(title="alpha_n per layer (mean, min-max over seeds)", xlabel="step")
        ax_p.legend(fontsize=6, ncol=2)
        paths.append(_save(fig, out / "alphas.png"))
    return paths


def kernel_throughput(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Per dtype, achieved GB/s and % of the device copy against size (log x) for each mode, one
    line per activation x impl (median over repeats), the copy dashed: one figure per dtype."""
    k = rows[rows["kind"] == "kernel"] if not rows.empty and "kind" in rows else rows
    if k.empty:
        return []
    folders = k["results_dir"].nunique() if "results_dir" in k else 1
    pooled = f" (medians over {folders} results folders)" if folders > 1 else ""
    copy = k[k["impl"] == "copy"].groupby(["dtype", "size"])["gbps"].median()
    paths = []
    for dtype, g in k[k["impl"] != "copy"].groupby("dtype"):
        modes = list(dict.fromkeys(g["mode"]))
        med = g.groupby(["mode", "activation", "impl", "size"])[["gbps", "pct_copy"]].median()
        fig, axes = plt.subplots(len(modes), 2, figsize=(14, 3.4 * len(modes)), squeeze=False)
        colours: dict[tuple[str, str], Any] = {}
        for (ax_g, ax_c), mode in zip(axes, modes):
            for (act, impl), line in med.loc[mode].groupby(level=["activation", "impl"]):
                sizes = line.index.get_level_values("size")
                (drawn,) = ax_g.plot(sizes, line["gbps"], marker="o", lw=1.2, color=colours.get((act, impl)),
                                     label=f"{act} {impl}" if (act, impl) not in colours else None)
                colours.setdefault((act, impl), drawn.get_color())
                ax_c.plot(sizes, line["pct_copy"], marker="o", lw=1.2, color=drawn.get_color())
            if dtype in copy.index.get_level_values("dtype"):
                c = copy.loc[dtype]
                ax_g.plot(c.index, c.values, "k--", lw=1, label="device copy" if mode == modes[0] else None)
            ax_c.axhline(100, color="k", ls="--", lw=1)
            ax_g.set(title=f"{dtype} {mode}: achieved GB/s (minimal bytes)", ylabel="GB/s", xscale="log")
            ax_c.set(title=f"{dtype} {mode}: % of a device copy in the same trial", ylabel="% of copy", xscale="log")
        for ax in axes[-1]:
            ax.set_xlabel("elements")
        fig.suptitle(f"kernel throughput, {dtype}{pooled}")
        fig.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.86, 0.5))
        paths.append(_save(fig, out / f"kernel_{dtype}.png", legend_room=0.14))
    return paths


def scaling_plot(frame: pd.DataFrame, out: Path) -> list[Path]:
    """Per ladder suite: loss against training compute (log-log), every seed a point, the fitted
    L = E + A (C/C0)^-alpha of each activation a line."""
    paths = []
    for (suite, results), g in frame.groupby(["suite", "results"], sort=False) if not frame.empty else []:
        fig, ax = plt.subplots(figsize=(11, 5.5))
        for r in g.itertuples():
            compute, losses = np.asarray(r.compute, dtype=float), np.asarray(r.losses, dtype=float)
            xs = np.repeat(compute[:, None], losses.shape[1], axis=1)
            (pts,) = ax.plot(xs.ravel(), losses.ravel(), "o", ms=4, alpha=0.6, label=f"{r.activation} (seeds)")
            if np.isfinite(r.alpha):
                grid = np.geomspace(np.nanmin(compute), np.nanmax(compute), 100)
                ax.plot(grid, r.E + r.A * (grid / r.C0) ** -r.alpha, color=pts.get_color(),
                        label=f"{r.activation} fit: E={r.E:.3g}, alpha={r.alpha:.2f}, R2={r.r2:.3f}")
        ax.set(xscale="log", yscale="log", xlabel="training compute (FLOPs, log)", ylabel=f"validation {g.iloc[0].metric} (log)",
               title=f"{suite}: loss against training compute, each fitted as E + A (C/C0)^-alpha")
        _plain_log_ticks(ax)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        paths.append(_save(fig, out / f"scaling_{suite}.png", legend_room=0.0))
    return paths


def tuning_plot(trials: pd.DataFrame, suites: dict[tuple[str, str], Any], out: Path) -> list[Path]:
    """Per tuned suite: the tuning metric against the (first) tuned field at the last tuning
    rung, log-x for positive values, one line per group (mean over seeds, seeds as points), the
    chosen value starred; the title warns when a choice lies on the edge of the grid."""
    from actbench import tuning

    paths = []
    for (d, name), suite in suites.items():
        tune = suite.spec.tune
        if tune is None:
            continue
        recs = trials[(trials["results_dir"].astype(str) == d) & (trials["suite"] == name)]
        metric = f"metric.{tune.metric}"
        value_of = dict(zip(recs["trial_id"], recs[metric] if metric in recs else [np.nan] * len(recs)))
        ok = dict(zip(recs["trial_id"], recs["status"] == "ok"))
        metric_of = {t: (float(v) if ok[t] and np.isfinite(v) else None) for t, v in value_of.items()}
        last = final = None
        for stage in suite.stages(lambda: metric_of):
            if stage.name == "final":
                final = stage
                break
            if any(t.id not in metric_of for t in stage.trials):
                break
            last = stage
        if last is None:
            continue
        key = next(iter(tune.fields))
        fig, ax = plt.subplots(figsize=(11, 5.5))
        chosen = {dec.group: dec.values for dec in final.decisions} if final else {}
        edges = sum(bool(dec.edges) for dec in final.decisions) if final else 0
        for group in sorted({c.group for c in last.candidates}):
            cands = [c for c in last.candidates if c.group == group and metric_of.get(c.trial.id) is not None]
            xs = sorted({c.values[0] for c in cands})
            if not xs:
                continue
            means = [np.mean([metric_of[c.trial.id] for c in cands if c.values[0] == x]) for x in xs]
            (line,) = ax.plot(xs, means, marker="o", label=_group_label(suite, group))
            ax.plot([c.values[0] for c in cands], [metric_of[c.trial.id] for c in cands], ".", color=line.get_color(), alpha=0.5)
            if chosen.get(group):
                x = chosen[group][0]
                ax.plot([x], [means[xs.index(x)]] if x in xs else [], "*", ms=14, color=line.get_color())
        positive = all(isinstance(v, (int, float)) and v > 0 for v in tune.fields[key])
        warn = f"; {edges} choice(s) on the edge of the grid: widen it" if edges else ""
        ax.set(xscale="log" if positive else "linear", xlabel=key + (" (log)" if positive else ""), ylabel=tune.metric,
               title=f"{name}: {tune.metric} of the tuning trials against {key} (line: mean over seeds, star: chosen){warn}")
        if positive:
            ax.set_xticks(sorted(tune.fields[key]), [f"{v:g}" for v in sorted(tune.fields[key])])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
        paths.append(_save(fig, out / f"tuning_{name}.png"))
    return paths


def _group_label(suite: Any, group: int) -> str:
    """A tuning group's name: its activation, model shape on a ladder, and other swept values."""
    point = suite.build(group, dict(zip(suite.spec.tune.fields, suite.spec.tune.grid()[0])), suite.spec.seed_list[0], 1.0).config
    swept = [k for k in (*suite.spec.matrix, *suite.spec.zip) if k != "activation"]
    shape = [f"{point.d_model}x{point.n_layers}"] if suite.spec.ladder is not None else []
    return " ".join([str(getattr(point, "activation", "")), *shape, *(f"{k}={getattr(point, k)}" for k in swept)]).strip()


def _plain_log_ticks(ax: plt.Axes) -> None:
    """Log axes labelled with plain numbers at the decades only (no crowded minor labels)."""
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))


HIGHER_IS_BETTER = {"pct_copy": True, "tokens_per_s": True, "val_bpb": False, "val_loss": False,
                    "saved_bytes_per_elem": False, "peak_fwd_bwd_mb": False}


def history_plot(entries: list[dict[str, Any]], path: Path, labelled: int = 8) -> Path:
    """Trend of every figure over the runs of a regress history (asv style): one panel per
    metric, each row's figure as % change from its first run; the `labelled` rows that moved
    most are named in the legend, the others drawn thin and grey."""
    metrics = sorted({key.rsplit(" | ", 1)[-1] for e in entries for key in e["figures"]})
    fig, axes = plt.subplots(len(metrics) or 1, 1, figsize=(11, 3.2 * max(1, len(metrics))), squeeze=False)
    ticks = [f"{str(e.get('commit', '?'))[:8]}\n{str(e.get('date', ''))[:10]}" for e in entries]
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
                ax.plot(range(len(entries)), change, marker="o", lw=1.5, label=k.rsplit(" | ", 1)[0])
            else:
                ax.plot(range(len(entries)), change, color="0.75", lw=0.8)
        better = HIGHER_IS_BETTER.get(metric)
        direction = "" if better is None else (" (higher is better)" if better else " (lower is better)")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(title=f"{metric}: change from each row's first run{direction}; {len(series)} row(s)", ylabel="% change")
        ax.set_xticks(range(len(entries)), ticks, fontsize=7)
        if moved:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title=f"moved most (of {len(series)})", title_fontsize=7)
    return _save(fig, path, legend_room=0.3)


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

