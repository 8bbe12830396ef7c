"""`actbench compare`: activations side by side per trial kind (kernel, memory, lm), with the
baseline first, deltas, tests and one verdict line per candidate; as rich tables, markdown,
CSV or JSON."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from actbench import activations
from actbench.report.stats import churn, mean_ci, welch_p

if TYPE_CHECKING:
    import pandas as pd


SUITE_HINT = {"kernel": "suites/kernels.yaml (or suites/smoke.yaml on CPU)", "memory": "suites/memory.yaml",
              "lm": "suites/llm_small.yaml (or suites/llm_tiny.yaml on CPU)"}


def _kernel_frame(rows: "pd.DataFrame", names: list[str]) -> "pd.DataFrame":
    import pandas as pd

    r = rows[(rows["kind"] == "kernel") & rows["activation"].isin(names)]
    if r.empty:
        return pd.DataFrame()
    keys = ["activation", "impl", "dtype", "size", "mode", "gpu_name"]
    g = r.groupby(keys, dropna=False).agg(ms_p50=("ms_p50", "median"), ms_p20=("ms_p20", "median"), ms_p80=("ms_p80", "median"),
                                          gbps=("gbps", "median"), pct_copy=("pct_copy", "median"), gated=("gated", "first")).reset_index()
    g = g[g["impl"] != "copy"].copy()
    base = g[g["activation"] == names[0]].groupby(["dtype", "size", "mode", "gpu_name"], dropna=False)["ms_p50"].min()
    best_impl = g[g["activation"] == names[0]].sort_values("ms_p50").drop_duplicates(["dtype", "size", "mode", "gpu_name"])
    best = {(t.dtype, t.size, t.mode, t.gpu_name): t.impl for t in best_impl.itertuples()}
    g["vs_baseline"] = [row.ms_p50 / base.get((row.dtype, row.size, row.mode, row.gpu_name), float("nan")) for row in g.itertuples()]
    g["baseline_impl"] = [best.get((row.dtype, row.size, row.mode, row.gpu_name)) for row in g.itertuples()]
    order = {n: i for i, n in enumerate(names)}
    return g.sort_values(["dtype", "size", "mode", "activation", "impl"], key=lambda s: s.map(order) if s.name == "activation" else s).reset_index(drop=True)


def _memory_frame(rows: "pd.DataFrame", names: list[str]) -> "pd.DataFrame":
    import pandas as pd

    r = rows[(rows["kind"] == "memory") & rows["activation"].isin(names)]
    if r.empty:
        return pd.DataFrame()
    keys = ["activation", "impl", "dtype", "size", "gpu_name"]
    return r.groupby(keys, dropna=False).agg(peak_fwd_mb=("peak_fwd_mb", "median"), peak_fwd_bwd_mb=("peak_fwd_bwd_mb", "median"),
                                             saved_bytes_per_elem=("saved_bytes_per_elem", "median"), gated=("gated", "first")).reset_index()


def lm_groups(trials: "pd.DataFrame") -> "pd.DataFrame":
    """One row per (suite, activation, model setup) of ok lm trials, aggregated over seeds."""

    import pandas as pd

    from actbench.results import ResultStore

    t = trials[(trials["kind"] == "lm") & (trials["status"] == "ok")].copy()
    if t.empty:
        return pd.DataFrame()
    setup_cols = [c for c in ("d_model", "n_layers", "seq_len", "tokens", "reference", "reference_d_ff") if c in t]
    as_text = lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)  # noqa: E731
    t["setup"] = [" ".join(f"{c}={as_text(v)}" for c, v in zip(setup_cols, vals)) for vals in t[setup_cols].itertuples(index=False)]
    out = []
    for (suite, act, setup), g in t.groupby(["suite", "activation", "setup"], sort=False):
        preds = []
        for rec in g.itertuples():
            if isinstance(getattr(rec, "series_file", None), str):
                preds.append(ResultStore(rec.results_dir).series({"series_file": rec.series_file}).get("val_argmax", []))
        metric = "metric.val_bpb" if g["metric.val_bpb"].notna().any() else "metric.val_loss"
        m, half, n = mean_ci(g[metric])
        ppl, ppl_half, _ = mean_ci(g["metric.val_ppl"])
        out.append({
            "suite": suite, "activation": act, "setup": setup, "metric": metric.removeprefix("metric."), "n": n,
            "mean": m, "ci95": half, "values": g[metric].tolist(), "ppl": ppl, "ppl_ci95": ppl_half,
            "tokens_per_s": g["metric.tokens_per_s"].mean(), "mfu": g["metric.mfu"].mean() if "metric.mfu" in g else None,
            "params": g["metric.params"].iloc[0], "flops_per_token": g["metric.flops_per_token"].iloc[0], "d_ff": int(g["d_ff"].iloc[0]),
            "alpha_p": g["metric.alpha_p_mean"].mean() if "metric.alpha_p_mean" in g else None,
            "alpha_n": g["metric.alpha_n_mean"].mean() if "metric.alpha_n_mean" in g else None,
            "churn": churn(preds),
        })
    return pd.DataFrame(out)


def _lm_frame(trials: "pd.DataFrame", names: list[str]) -> "pd.DataFrame":
    import pandas as pd

    g = lm_groups(trials[trials["activation"].isin(names)]) if "activation" in trials else pd.DataFrame()
    if g.empty:
        return g
    deltas, ps = [], []
    for row in g.itertuples():
        base = g[(g["activation"] == names[0]) & (g["suite"] == row.suite) & (g["setup"] == row.setup)]
        if base.empty or row.activation == names[0]:
            deltas.append(None)
            ps.append(None)
            continue
        b = base.iloc[0]
        deltas.append(row.mean - b["mean"])
        ps.append(welch_p(pd.Series(row.values), pd.Series(b["values"])))
    g["delta"], g["p_value"] = deltas, ps
    order = {n: i for i, n in enumerate(names)}
    return g.sort_values(["suite", "setup", "activation"], key=lambda s: s.map(order) if s.name == "activation" else s).reset_index(drop=True)


def compare_frames(names: list[str], results_root: str | Path) -> dict[str, "pd.DataFrame"]:
    """The comparison of `names` (first = baseline) per trial kind, as DataFrames."""
    from actbench.results import load, load_rows

    for n in names:
        activations.spec(n)  # unknown names: a clear error with the closest ones
    trials, rows = load(results_root), load_rows(results_root)
    frames = {"kernel": _kernel_frame(rows, names) if not rows.empty else None,
              "memory": _memory_frame(rows, names) if not rows.empty else None,
              "lm": _lm_frame(trials, names) if not trials.empty else None}
    import pandas as pd

    return {k: (v if v is not None else pd.DataFrame()) for k, v in frames.items()}


def missing_hints(frames: dict[str, "pd.DataFrame"], names: list[str]) -> list[str]:
    """Which suite to run for names without results, per kind that has some results."""
    hints = []
    present_any = {n for f in frames.values() if not f.empty for n in f["activation"].unique()}
    for n in names:
        if n not in present_any:
            hints.append(f"no results for {n!r}: run actbench run {SUITE_HINT['kernel']} or {SUITE_HINT['lm']}")
    for kind, f in frames.items():
        if f.empty:
            continue
        for n in names:
            if n in present_any and n not in set(f["activation"]):
                hints.append(f"no {kind} results for {n!r}: run actbench run {SUITE_HINT[kind]}")
    return hints


def verdicts(frames: dict[str, "pd.DataFrame"], names: list[str], alpha: float = 0.05) -> dict[str, list[str]]:
    """One line per non-baseline activation and kind."""
    import numpy as np

    out: dict[str, list[str]] = {}
    k = frames.get("kernel")
    if k is not None and not k.empty:
        lines = []
        for n in names[1:]:
            best = k[k["activation"] == n].groupby(["dtype", "size", "mode", "gpu_name"], dropna=False)["vs_baseline"].min().dropna()
            if len(best):
                gm = float(np.exp(np.log(best).mean()))
                lines.append(f"{n} (best impl) takes {gm:.2f}x the time of {names[0]} (best impl), geometric mean over {len(best)} shape(s)")
        out["kernel"] = lines
    m = frames.get("memory")
    if m is not None and not m.empty:
        lines = []
        for n in names[1:]:
            a = m[m["activation"] == n]["saved_bytes_per_elem"].min()
            b = m[m["activation"] == names[0]]["saved_bytes_per_elem"].min()
            if a == a and b == b:
                lines.append(f"{n} saves {a:.1f} B/elem for backward (best impl) vs {b:.1f} for {names[0]}")
        out["memory"] = lines
    lm = frames.get("lm")
    if lm is not None and not lm.empty:
        lines = []
        for row in lm.itertuples():
            if row.delta is None or row.delta != row.delta:
                continue
            if row.p_value is None:
                sig = f"n={row.n}: too few seeds for a test"
            else:
                sig = f"Welch p={row.p_value:.3f}, {'significant' if row.p_value < alpha else 'not significant'}"
            better = "better" if row.delta < 0 else "worse"
            lines.append(f"{row.suite}: {row.activation} {row.delta:+.4f} {row.metric} vs {names[0]} ({better}; {sig})")
        out["lm"] = lines
    return out


def _fmt(v: object, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def compare_tables(frames: dict[str, "pd.DataFrame"], names: list[str]) -> list[Table]:
    """Rich tables of compare_frames, baseline first, deltas coloured."""
    tables = []
    k = frames["kernel"]
    if not k.empty:
        t = Table(title=f"kernel: p50 ms (p20-p80); ratio vs {names[0]}'s best impl at the same dtype, size, mode")
        for c in ("activation", "impl", "dtype", "size", "mode", "p50 ms (p20-p80)", "GB/s", "% copy", f"x {names[0]}"):
            t.add_column(c, justify="right" if c not in ("activation", "impl", "dtype", "mode") else "left")
        for r in k.itertuples():
            ratio = r.vs_baseline
            colour = "green" if ratio < 0.97 else "red" if ratio > 1.03 else "white"
            act = r.activation + (" (gated: 2x input)" if r.gated else "")
            t.add_row(act, r.impl, r.dtype, f"{r.size:,}", r.mode, f"{r.ms_p50:.4g} ({r.ms_p20:.3g}-{r.ms_p80:.3g})",
                      f"{r.gbps:.1f}", f"{r.pct_copy:.1f}%", f"[{colour}]{ratio:.2f}x[/] ({r.baseline_impl})")
        tables.append(t)
    m = frames["memory"]
    if not m.empty:
        t = Table(title="memory: peak above inputs (CUDA only) and bytes saved for backward per output element")
        for c in ("activation", "impl", "dtype", "size", "peak fwd MB", "peak fwd+bwd MB", "saved B/elem"):
            t.add_column(c)
        for r in m.itertuples():
            t.add_row(r.activation, r.impl, r.dtype, f"{r.size:,}", _fmt(r.peak_fwd_mb), _fmt(r.peak_fwd_bwd_mb), f"{r.saved_bytes_per_elem:.2f}")
        tables.append(t)
    lm = frames["lm"]
    if not lm.empty:
        t = Table(title=f"lm: mean ± 95% CI over seeds; delta vs {names[0]} with Welch's t-test")
        for c in ("suite", "activation", "d_ff", "params", "FLOPs/token", "n", "val (bpb or loss)", "ppl", f"delta vs {names[0]}", "p",
                  "tokens/s", "MFU", "alpha_p/alpha_n", "churn"):
            t.add_column(c)
        for r in lm.itertuples():
            delta = "-" if r.delta is None or r.delta != r.delta else f"[{'green' if r.delta < 0 else 'red'}]{r.delta:+.4f}[/]"
            alphas = "-" if r.alpha_p is None or r.alpha_p != r.alpha_p else f"{r.alpha_p:.3f}/{r.alpha_n:.3f}"
            t.add_row(r.suite, r.activation, str(r.d_ff), f"{r.params / 1e6:.3f}M", f"{r.flops_per_token / 1e6:.2f}M", str(r.n),
                      f"{r.mean:.4f} ± {_fmt(r.ci95, 2)} {r.metric}", f"{r.ppl:.3f}", delta, _fmt(r.p_value, 2),
                      _fmt(r.tokens_per_s, 4), _fmt(r.mfu, 3), alphas, _fmt(r.churn, 3))
        tables.append(t)
    return tables


def compare_text(frames: dict[str, "pd.DataFrame"], lines: dict[str, list[str]], fmt: str) -> str:
    """compare_frames as markdown (tables and verdicts), CSV sections, or JSON lines (one per kind)."""
    parts = []
    for kind, df in frames.items():
        if df.empty:
            continue
        if fmt == "md":
            verdict = "\n".join(f"- {line}" for line in lines.get(kind, []))
            parts.append(f"### {kind}\n\n{markdown(df.drop(columns=[c for c in ('values',) if c in df]))}\n\n{verdict}\n")
        elif fmt == "csv":
            parts.append(f"# {kind}\n{df.to_csv(index=False)}")
        else:
            parts.append(df.assign(kind=kind).to_json(orient="records"))
    return "\n".join(parts)


def markdown(df: "pd.DataFrame") -> str:
    """A GitHub markdown table of a DataFrame."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)
