"""Everything actbench prints or draws: activation tables, run summaries, comparisons, plots."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from actbench import activations

if TYPE_CHECKING:
    import pandas as pd

    from actbench.runner import SweepResult
    from actbench.suite import Suite


def activation_table() -> Table:
    """Rich table of every registered activation."""
    t = Table(title="actbench activations")
    for col in ("name", "family", "gated", "trainable params", "implementations", "paper"):
        t.add_column(col)
    for name in activations.names():
        s = activations.spec(name)
        impls = [i if s.unavailable_reason(i) is None else f"{i} (n/a here)" for i in s.impls]
        t.add_row(name, s.family, "yes" if s.gated else "", ", ".join(s.params), ", ".join(impls), s.paper or "")
    return t


def activation_info(name: str) -> Panel:
    """Formula, defaults, parameters and implementations of one activation."""
    s = activations.spec(name)
    lines = [
        Text(s.formula),
        Text(""),
        Text(f"family: {s.family}    gated: {'yes (input 2*d -> d, split [gate, value])' if s.gated else 'no'}"),
        Text(f"defaults: {s.defaults or '-'}"),
        Text(f"trainable parameters (fp32): {', '.join(s.params) or '-'}"),
    ]
    for impl in s.impls:
        why = s.unavailable_reason(impl)
        lines.append(Text(f"impl {impl}: " + ("available" if why is None else f"unavailable here ({why})")))
    lines.append(Text(f"paper: {s.paper or '-'}"))
    return Panel(Group(*lines), title=name)


def trial_table(suite: "Suite") -> Table:
    """The expanded trials of a suite and the resources each asks for (`run --dry-run`)."""
    from actbench.runner import varying_fields

    r = suite.spec.resources
    keys = varying_fields(suite)
    t = Table(title=f"{suite.name}: {len(suite.trials)} {suite.spec.kind} trial(s); each asks "
                    f"cpus={r.cpus:g} gpus={r.gpus:g} timeout_s={r.timeout_s:g} retries={r.retries}")
    t.add_column("#", justify="right")
    t.add_column("trial id")
    for k in keys:
        t.add_column(k)
    for i, trial in enumerate(suite.trials):
        cfg = trial.config_dict()
        t.add_row(str(i), trial.id, *(str(cfg.get(k)) for k in keys))
    return t


def print_summary(result: "SweepResult", out_dir: Path, console: Console) -> None:
    """Counts by status, and the trials that did not succeed with the reason."""
    recs = result.records
    counts: dict[str, int] = {}
    for r in recs:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    parts = [f"{n} {s}" for s, n in sorted(counts.items())] or ["nothing to run"]
    if result.skipped:
        parts.append(f"{result.skipped} already done")
    console.print(f"[bold]{', '.join(parts)}[/]; results in {out_dir}/trials.jsonl")
    bad = [r for r in recs if r["status"] != "ok"]
    if bad:
        t = Table(title="trials that did not succeed")
        for col in ("trial id", "status", "config", "reason", "traceback"):
            t.add_column(col)
        for r in bad:
            err = r.get("error") or {}
            cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items() if k not in ("impls", "modes"))
            reason = f"{err.get('type', '')}: {err.get('message', '')}".strip(": ") or r.get("note", "")
            t.add_row(r["trial_id"], r["status"], cfg, reason, err.get("traceback_file") or "")
        console.print(t)


def plan_table(suite: "Suite") -> Table:
    """`actbench lm plan`: matched widths, counts, difference from the reference, cost."""
    from actbench.lm.flops import plan

    df = plan(suite.trials)
    t = Table(title=f"{suite.name}: matched MLPs (GPU-hours at 40% MFU of an H100's 989 bf16 TFLOP/s)")
    for col in ("activation", "d_ff", "params", "MLP params", "FLOPs/token", "act FLOPs/token", "vs reference", "tokens/trial", "trials", "GPU-h/trial"):
        t.add_column(col, justify="left" if col == "activation" else "right")
    for r in df.itertuples():
        diff = f"{r.diff_pct:+.2f}%"
        t.add_row(r.activation + (" (gated)" if r.gated else ""), str(r.d_ff), f"{r.params / 1e6:.3f}M", f"{r.mlp_params / 1e6:.3f}M",
                  f"{r.flops_per_token / 1e6:.2f}M", f"{r.act_flops_per_token / 1e3:.1f}K", diff if abs(r.diff_pct) <= 0.5 else f"[red]{diff}[/]",
                  f"{r.tokens / 1e6:.2f}M", str(r.trials), f"{r.gpu_hours_per_trial:.3g}")
    t.caption = (f"reference: {df['reference'].iloc[0]}; FLOPs/token: forward matmuls and attention (x3 to train); act FLOPs: "
                 "approximate elementwise ops of the activation, not matched; red: more than 0.5% off (pick another ff_multiple)") if len(df) else None
    return t


# ---------------------------------------------------------------- compare

SUITE_HINT = {"kernel": "suites/kernels.yaml (or suites/smoke.yaml on CPU)", "memory": "suites/memory.yaml",
              "lm": "suites/llm_small.yaml (or suites/llm_tiny.yaml on CPU)"}


def mean_ci(values: "pd.Series", level: float = 0.95) -> tuple[float, float, int]:
    """Mean, half-width of the t-distribution confidence interval, and n."""
    import numpy as np
    from scipy import stats

    v = np.asarray(values.dropna(), dtype=float)
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n == 1:
        return float(v[0]), float("nan"), 1
    half = stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n)
    return float(v.mean()), float(half), n


def welch_p(a: "pd.Series", b: "pd.Series") -> float | None:
    """Two-sided p-value of Welch's t-test (unequal variances); None with fewer than 2 per side."""
    from scipy import stats

    a, b = a.dropna(), b.dropna()
    if len(a) < 2 or len(b) < 2:
        return None
    if a.std() == 0 and b.std() == 0:
        return 0.0 if a.mean() != b.mean() else 1.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def churn(preds: list[list[int]]) -> float | None:
    """Mean over seed pairs of the fraction of positions whose argmax prediction differs."""
    import itertools

    import numpy as np

    pairs = []
    for a, b in itertools.combinations([p for p in preds if p], 2):
        n = min(len(a), len(b))
        pairs.append(float(np.mean(np.asarray(a[:n]) != np.asarray(b[:n]))))
    return float(np.mean(pairs)) if pairs else None


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


# ---------------------------------------------------------------- report

def build_report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, object]:
    """Summary, failures, comparison tables, PNG plots, HTML page, CSV/Parquet exports."""
    import json


    from actbench import plots
    from actbench.results import load, load_rows

    run_dir = Path(run_dir)
    trials = load(run_dir)
    if trials.empty:
        from actbench.errors import UserError

        raise UserError(f"{run_dir}: no trials.jsonl with records below it")
    out = Path(out) if out else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = load_rows(run_dir)
    summary = trials.groupby(["suite", "kind", "status"]).size().rename("trials").reset_index()
    failed = trials[trials["status"] != "ok"]
    fail_cols = [c for c in ("suite", "trial_id", "activation", "status", "error_type", "error_message", "note") if c in failed]
    failures = failed[fail_cols].reset_index(drop=True)
    names = list(dict.fromkeys(trials["activation"].dropna())) if "activation" in trials else []
    frames = compare_frames(names, run_dir) if names else {}
    images = plots.lm_curves(run_dir, out) + plots.kernel_bars(rows, out)
    if names:
        images.append(plots.activation_shapes(names, out / "activations.png"))
    flat = trials.map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    flat.to_csv(out / "trials.csv", index=False)
    exports = [out / "trials.csv"]
    if not rows.empty:
        rows.to_csv(out / "rows.csv", index=False)
        exports.append(out / "rows.csv")
    try:
        flat.to_parquet(out / "trials.parquet", index=False)
        exports.append(out / "trials.parquet")
        if not rows.empty:
            rows.to_parquet(out / "rows.parquet", index=False)
            exports.append(out / "rows.parquet")
    except ImportError:
        pass  # pyarrow is the `parquet` extra
    sections = [("Summary", summary.to_html(index=False))]
    if not failures.empty:
        sections.append(("Trials that did not succeed", failures.to_html(index=False)))
    for kind, df in frames.items():
        if not df.empty:
            lines = "".join(f"<li>{line}</li>" for line in verdicts(frames, names).get(kind, []))
            sections.append((f"{kind} (baseline: {names[0]})", df.drop(columns=[c for c in ("values",) if c in df]).to_html(index=False, float_format=lambda v: f"{v:.4g}") + f"<ul>{lines}</ul>"))
    (out / "report.html").write_text(plots.html_page(f"actbench report: {run_dir}", sections, images))
    return {"summary": summary, "failures": failures, "frames": frames, "names": names, "images": images,
            "html": out / "report.html", "exports": exports, "out": out}


# ---------------------------------------------------------------- regress

def regress(baseline: str | Path, run_dir: str | Path, threshold: float = 0.05, bpb_tolerance: float = 0.02) -> "pd.DataFrame":
    """Compare a run with a baseline taken on the same GPU model, metric by metric.

    Times: SLOW when the median is worse by more than max(threshold, the p20-p80 spread of
    either side, relative to its median), FAST when better by as much, SAME otherwise.
    Memory: WORSE/BETTER beyond `threshold`. LM quality: WORSE/BETTER beyond `bpb_tolerance`
    bits (absolute); LM throughput: SLOW/FAST beyond `threshold`.
    """
    import pandas as pd

    from actbench.errors import UserError
    from actbench.results import gpu_name, iter_records, latest_records

    base_path = Path(baseline)
    if not base_path.is_file():
        raise UserError(f"--baseline {baseline}: no such file (create one with --update-baseline)")
    base = {r["trial_id"]: r for r in iter_records(base_path) if r.get("status") == "ok"}
    current = {r["trial_id"]: r for _, r in latest_records(run_dir)}
    out = []

    def add(rec: dict, label: str, metric: str, b: float, c: float, verdict: str, noise: float | None = None) -> None:
        change = (c / b - 1) * 100 if b else float("nan")
        out.append({"trial_id": rec["trial_id"], "kind": rec["kind"], "what": label, "metric": metric, "baseline": b,
                    "current": c, "change_pct": change, "noise_pct": None if noise is None else noise * 100, "verdict": verdict})

    for tid, rec in current.items():
        label = " ".join(f"{k}={v}" for k, v in rec["config"].items() if k in ("activation", "dtype", "size", "seed"))
        if rec.get("status") != "ok":
            out.append({"trial_id": tid, "kind": rec["kind"], "what": label, "metric": "status", "verdict": f"FAILED ({rec['status']})"})
            continue
        b = base.get(tid)
        if b is None:
            continue
        if gpu_name(b) != gpu_name(rec):
            out.append({"trial_id": tid, "kind": rec["kind"], "what": label, "metric": "-", "verdict": "SKIPPED (different GPU)"})
            continue
        if rec["kind"] == "kernel":
            brows = {(r["impl"], r["mode"]): r for r in b.get("rows", [])}
            for r in rec.get("rows", []):
                br = brows.get((r["impl"], r["mode"]))
                if br is None:
                    continue
                noise = max((r["ms_p80"] - r["ms_p20"]) / r["ms_p50"], (br["ms_p80"] - br["ms_p20"]) / br["ms_p50"])
                limit = max(threshold, noise)
                ratio = r["ms_p50"] / br["ms_p50"]
                verdict = "SLOW" if ratio > 1 + limit else "FAST" if ratio < 1 - limit else "SAME"
                add(rec, f"{label} {r['impl']} {r['mode']}", "ms_p50", br["ms_p50"], r["ms_p50"], verdict, noise)
        elif rec["kind"] == "memory":
            brows = {r["impl"]: r for r in b.get("rows", [])}
            for r in rec.get("rows", []):
                br = brows.get(r["impl"])
                for m in ("saved_bytes_per_elem", "peak_fwd_bwd_mb"):
                    if br is None or r.get(m) is None or br.get(m) in (None, 0):
                        continue
                    ratio = r[m] / br[m]
                    add(rec, f"{label} {r['impl']}", m, br[m], r[m], "WORSE" if ratio > 1 + threshold else "BETTER" if ratio < 1 - threshold else "SAME")
        elif rec["kind"] == "lm":
            q = "val_bpb" if rec["metrics"].get("val_bpb") is not None else "val_loss"
            bq, cq = b["metrics"].get(q), rec["metrics"].get(q)
            if bq is not None and cq is not None:
                add(rec, label, q, bq, cq, "WORSE" if cq > bq + bpb_tolerance else "BETTER" if cq < bq - bpb_tolerance else "SAME")
            bt, ct = b["metrics"].get("tokens_per_s"), rec["metrics"].get("tokens_per_s")
            if bt and ct:
                add(rec, label, "tokens_per_s", bt, ct, "SLOW" if ct < bt * (1 - threshold) else "FAST" if ct > bt * (1 + threshold) else "SAME")
    return pd.DataFrame(out, columns=["trial_id", "kind", "what", "metric", "baseline", "current", "change_pct", "noise_pct", "verdict"])


def regress_failed(df: "pd.DataFrame") -> bool:
    return bool(df["verdict"].str.startswith(("SLOW", "WORSE", "FAILED")).any()) if not df.empty else False


def regress_markdown(df: "pd.DataFrame", baseline: str | Path, run_dir: str | Path) -> str:
    """A summary for a CI job: counts per verdict and the rows that are not SAME."""
    if df.empty:
        return f"## actbench regress\n\nNo trial of {run_dir} has a baseline in {baseline} (same trial ids): nothing compared.\n"
    counts = df["verdict"].value_counts()
    head = ", ".join(f"{n} {v}" for v, n in counts.items())
    status = "FAIL" if regress_failed(df) else "PASS"
    notable = df[df["verdict"] != "SAME"]
    body = markdown(notable) if not notable.empty else "Every compared metric is SAME."
    return f"## actbench regress: {status}\n\nBaseline `{baseline}`, run `{run_dir}`: {head}.\n\n{body}\n"
