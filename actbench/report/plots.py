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


def _margins(fig: plt.Figure, legend_room: float = 0.0, left: float = 0.8, top: float = 0.8, bottom: float = 0.6,
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


def _save(fig: plt.Figure, path: Path, legend_room: float = 0.0, fixed: dict[str, float] | None = None) -> Path:
    """Lay out (keeping the right `legend_room` of the figure for a legend outside the axes;
    with `fixed`, those `subplots_adjust` margins instead of a tight layout) and write a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fixed is not None:
        fig.subplots_adjust(**fixed)
    else:
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


def _values_at(curve: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """The values of a (step, value) curve at `steps`, all of which it has."""
    order = np.argsort(curve[:, 0], kind="stable")
    return curve[order[np.searchsorted(curve[order, 0], steps)], 1]


def _band(ax: plt.Axes, curves: list[np.ndarray], label: str, color: Any = None, **line: Any) -> Any:
    """Mean line and min-max band over seeds of curves given as (step, x, y) rows, at the steps
    every curve has (x: the mean over seeds of each step's x, e.g. its wall-clock time)."""
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
    (drawn,) = ax.plot(xs, ys.mean(0), label=f"{label} (n={len(curves)})", color=color, **line)
    if len(curves) > 1:
        ax.fill_between(xs, ys.min(0), ys.max(0), color=drawn.get_color(), alpha=0.2, lw=0)
    return drawn


def _legend_column(fig: plt.Figure, ax: plt.Axes, handles: list[Any], title: str) -> None:
    """A legend in its own axes column, outside the data."""
    ax.axis("off")
    ax.legend(handles, [h.get_label() for h in handles], loc="center left", fontsize=8, frameon=False, title=title, title_fontsize=8)


def _lm_groups(trials: pd.DataFrame, merge: bool = False) -> dict[str, tuple[str, dict[str, list[tuple[str, str]]]]]:
    """Figure name -> (title, curve label -> [(results folder, series file)]) of the ok lm
    trials: one figure per suite, results folder (unless `merge`) and setup (the config but the
    activation, seed and fields without effect; tuned fields, listed in a `_ignore` column by
    `compare.select_tuned`, are left out and named in the label), one curve per activation."""
    from actbench.report.compare import _labels, setup_fields

    if trials.empty or not {"kind", "status", "series_file", "config", "suite", "results_dir"} <= set(trials.columns):
        return {}
    lm = trials[(trials["kind"] == "lm") & (trials["status"] == "ok") & trials["series_file"].notna()]
    ignores = lm["_ignore"] if "_ignore" in lm else pd.Series([()] * len(lm), index=lm.index)
    out: dict[str, tuple[str, dict[str, list[tuple[str, str]]]]] = {}
    for suite, by_suite in lm.groupby("suite", sort=False):
        folders = [(None, by_suite)] if merge else list(by_suite.groupby("results_dir", sort=False))
        setups: dict[tuple[Any, str], tuple[dict[str, str], dict[str, list[tuple[str, str]]]]] = {}
        for folder, g in folders:
            for c, ignore, d, f in zip(g["config"], ignores[g.index], g["results_dir"], g["series_file"]):
                c = c if isinstance(c, dict) else {}
                fields = setup_fields(c, ignore)
                key = (folder, " ".join(f"{k}={v}" for k, v in fields.items()))
                tuned = " ".join(f"{k}={c.get(k)}" for k in ignore)
                label = str(c.get("activation", "?")) + (f"\n{tuned} (tuned)" if tuned else "")
                setups.setdefault(key, (fields, {}))[1].setdefault(label, []).append((str(d), f))
        labels = _labels([(str(suite), fields) for fields, _ in setups.values()])
        for i, ((folder, _), (_, groups)) in enumerate(setups.items()):
            where = f" ({folder})" if len(folders) > 1 else (" (results folders merged)" if merge and by_suite["results_dir"].nunique() > 1 else "")
            title = f"{suite}{where}{f' [{labels[i]}]' if labels[i] else ''}"
            out[f"{suite}_{i + 1}" if len(setups) > 1 else str(suite)] = (title, groups)
    return out


def lm_curves(trials: pd.DataFrame, out: Path, series: Any = None, merge: bool = False) -> list[Path]:
    """Per lm suite and results folder (per suite with `merge`): training loss and validation
    bits per byte against training tokens, and validation bits per byte against wall-clock time,
    one line per activation (and setup) with a band over seeds; and the alphas of activations
    that learn them, per layer, from step 0. `series` (`report.series.Series`) shares the files
    compare already read. Series that cannot be read (another shape) are left out; validation
    loss replaces bits per byte in a figure where any curve lacks them (one unit per axis)."""
    from actbench.report.series import Series

    series = series if series is not None else Series()
    paths = []
    for name, (title, groups) in _lm_groups(trials, merge).items():
        parsed = {label: [series.get(d, f) for d, f in members] for label, members in groups.items()}
        vals = [s.val for members in parsed.values() for s in members if s.val is not None and {"tokens", "time_s"} <= set(s.val)]
        val_metric = "bpb" if all("bpb" in v and np.isfinite(v["bpb"]).all() for v in vals) else "loss"
        curves: dict[str, dict[str, list[np.ndarray]]] = {}
        alphas: dict[tuple[str, int], dict[str, list[np.ndarray]]] = {}
        for label, members in parsed.items():
            c = curves.setdefault(label, {"train": [], "val_tokens": [], "val_time": []})
            for s in members:
                if s.train is not None and {"loss", "tokens"} <= set(s.train):
                    c["train"].append(np.column_stack([s.train["step"], s.train["tokens"], s.train["loss"]]))
                if s.val is not None and {"tokens", "time_s", val_metric} <= set(s.val):
                    y = s.val[val_metric]
                    c["val_tokens"].append(np.column_stack([s.val["step"], s.val["tokens"], y]))
                    c["val_time"].append(np.column_stack([s.val["step"], s.val["time_s"], y]))
                a = s.alphas
                if a is not None and {"layer", "alpha_p", "alpha_n"} <= set(a):
                    for layer in np.unique(a["layer"]).astype(int):
                        sel = a["layer"] == layer
                        per = alphas.setdefault((label, int(layer)), {"alpha_p": [], "alpha_n": []})
                        for p in ("alpha_p", "alpha_n"):
                            per[p].append(np.column_stack([a["step"][sel], a["step"][sel], a[p][sel]]))
        if not any(v for c in curves.values() for v in c.values()):
            continue
        paths.append(_lm_figure(name, title, curves, val_metric, out))
        if alphas:
            paths.append(_alpha_figure(name, title, alphas, out))
    return paths


def _lm_figure(name: str, title: str, curves: dict[str, dict[str, list[np.ndarray]]], val_metric: str, out: Path) -> Path:
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.8), gridspec_kw={"width_ratios": [1, 1, 1, 0.45]})
    ax_t, ax_v, ax_w, ax_l = axes
    handles = []
    val_label = "validation bits per byte" if val_metric == "bpb" else "validation loss (nats/token)"
    for i, (label, c) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        drawn = [_band(ax_t, c["train"], label, colour, lw=0.9) if c["train"] else None,
                 _band(ax_v, c["val_tokens"], label, colour, marker="o", ms=3) if c["val_tokens"] else None,
                 _band(ax_w, c["val_time"], label, colour, marker="o", ms=3) if c["val_time"] else None]
        first = next((h for h in drawn if h is not None), None)
        if first is not None:
            handles.append(first)
    tokens = matplotlib.ticker.EngFormatter(sep="")
    losses = np.concatenate([c[:, 2] for v in curves.values() for c in v["train"]] or [np.zeros(0)])
    clipped = ""
    if len(losses) and np.isfinite(losses).any():  # the first steps' loss would squash the rest of the curve
        top = float(np.nanpercentile(losses, 98))
        if top < np.nanmax(losses):
            ax_t.set_ylim(top=top + 0.05 * (top - float(np.nanmin(losses))))
            clipped = " (first steps above the axis)"
    ax_t.set(title=f"training loss against tokens{clipped}", xlabel="training tokens", ylabel="training loss (nats/token)")
    ax_v.set(title=f"{val_label} against tokens", xlabel="training tokens", ylabel=val_label)
    ax_w.set(title=f"{val_label} against wall-clock", xlabel="wall-clock since training started (s)", ylabel=val_label)
    for ax in (ax_t, ax_v):
        ax.xaxis.set_major_formatter(tokens)
    for ax in (ax_t, ax_v, ax_w):
        ax.grid(alpha=0.3)
    _legend_column(fig, ax_l, handles, "activation (seeds)")
    fig.suptitle(f"{title}\nline: mean over seeds, band: min to max over seeds", fontsize=10)
    return _save(fig, out / f"lm_{name}.png", fixed=_margins(fig))


def _alpha_figure(name: str, title: str, alphas: dict[tuple[str, int], dict[str, list[np.ndarray]]], out: Path) -> Path:
    fig, (ax_p, ax_n, ax_l) = plt.subplots(1, 3, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1, 0.3]})
    handles = []
    for i, ((label, layer), per) in enumerate(alphas.items()):
        h = _band(ax_p, per["alpha_p"], f"{label} layer {layer}", f"C{i % 10}", marker=".", ms=4)
        _band(ax_n, per["alpha_n"], f"{label} layer {layer}", f"C{i % 10}", marker=".", ms=4)
        if h is not None:
            handles.append(h)
    ax_p.set(title="alpha_p (positive side) per layer", xlabel="training step (0: initial value)", ylabel="alpha_p")
    ax_n.set(title="alpha_n (negative side) per layer", xlabel="training step (0: initial value)", ylabel="alpha_n")
    for ax in (ax_p, ax_n):
        ax.grid(alpha=0.3)
    _legend_column(fig, ax_l, handles, "activation, layer (seeds)")
    fig.suptitle(f"{title}\nlearned activation parameters from initialisation; line: mean over seeds, band: min to max", fontsize=10)
    return _save(fig, out / f"alphas_{name}.png", fixed=_margins(fig))


def kernel_throughput(rows: pd.DataFrame, out: Path) -> list[Path]:
    """Per dtype, achieved GB/s and % of the device copy against size (log x) for each mode, one
    line per activation x impl (median over repeats), the copy dashed: one figure per dtype."""
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
                ax_g.plot(c.index, c.values, "k--", marker="x", lw=1, label="device copy" if mode == modes[0] else None)
            ax_c.axhline(100, color="k", ls="--", lw=1)
            ax_g.set(title=f"{dtype} {mode}: achieved GB/s (minimal bytes)", ylabel="GB/s", xscale="log")
            ax_c.set(title=f"{dtype} {mode}: % of a device copy in the same trial", ylabel="% of copy", xscale="log")
        for ax in axes[-1]:
            ax.set_xlabel("input size (elements, log scale)")
        acts, impls = ", ".join(g["activation"].unique()), ", ".join(g["impl"].unique())
        fig.suptitle(f"{dtype} kernels compared: {acts} (impls: {impls}); median over repeats against input size{pooled}")
        fig.legend(fontsize=7, loc="center left", bbox_to_anchor=(0.86, 0.5))
        paths.append(_save(fig, out / f"kernel_{dtype}.png", fixed=_margins(fig, legend_room=0.14, top=0.75, between=0.75)))
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
        colours: dict[str, str] = {}  # one colour per activation; its groups (ladder rungs, ...) told apart by line style
        styles: dict[str, int] = {}
        for group in sorted({c.group for c in last.candidates}):
            cands = [c for c in last.candidates if c.group == group and metric_of.get(c.trial.id) is not None]
            xs = sorted({c.values[0] for c in cands})
            if not xs:
                continue
            act = str(getattr(cands[0].trial.config, "activation", ""))
            colour = colours.setdefault(act, f"C{len(colours) % 10}")
            k = styles[act] = styles.get(act, -1) + 1
            means = [np.mean([metric_of[c.trial.id] for c in cands if c.values[0] == x]) for x in xs]
            (line,) = ax.plot(xs, means, marker="os^Dv<>p"[k % 8], ls=("-", "--", ":", "-.")[k % 4], color=colour,
                              label=_group_label(suite, group))
            ax.plot([c.values[0] for c in cands], [metric_of[c.trial.id] for c in cands], ".", color=line.get_color(), alpha=0.5)
            if chosen.get(group):
                x = chosen[group][0]
                ax.plot([x], [means[xs.index(x)]] if x in xs else [], "*", ms=14, color=line.get_color())
        positive = all(isinstance(v, (int, float)) and v > 0 for v in tune.fields[key])
        warn = f"; {edges} choice(s) on the edge of the grid: widen it" if edges else ""
        ax.set(xscale="log" if positive else "linear", xlabel=key + (" (log)" if positive else ""), ylabel=tune.metric,
               title=f"{name}: {tune.metric} of the tuning trials against {key}\n(line: mean over seeds, dots: seeds, star: chosen){warn}")
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

