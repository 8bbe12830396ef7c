"""`actbench compare`: activations side by side per trial kind (kernel, memory, lm), the baseline
first, with a verdict per row that a reviewer would accept; as rich tables, markdown, one CSV
table or one JSON document.

- lm: records are grouped into tables by (suite, `setup_key`, results folder) and paired by seed
  within a table. Per candidate: the paired difference against the baseline with its t interval,
  the paired t-test, Cohen's dz, Holm's adjustment over the table's candidates, the evaluation-
  set uncertainty (bootstrap over validation chunks) beside the seed uncertainty, and a verdict
  "better" / "worse" / "no detectable difference" at alpha (or "no test" below two pairs). Rows
  more than 0.5% off the baseline's parameters or FLOPs/token are marked UNMATCHED.
- kernel: medians with an interval over repeats, "same" where the intervals overlap, "noisy"
  where an interval is too wide (`stats.NOISY_SPREAD`), else "faster" / "slower" with the ratio.
- Results folders below the root are never pooled silently: each folder's rows stay separate
  (the `results` column) unless `merge=True`; every row counts its trials and runs.
- A tuned suite (its run keeps the suite in `<results>/suites/<name>.yaml`) is compared on its
  final trials only, each activation at its own tuned values (the tuned fields leave the setup
  key), as the recorded tuning trials decide them; while tuning is incomplete it is not compared.
- A ladder suite is compared at every rung, and its `scaling` frame (`actbench.report.scaling`)
  gives the fitted curves and the compute-equivalent gain of each candidate.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
from rich import box
from rich.table import Table

from actbench.errors import UserError
from actbench.report import stats

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.series import Series
    from actbench.select import TrialFilter

IDENTITY_FIELDS = ("activation", "d_ff", "impl")
"""Config fields that name the candidate itself: the rows of one table differ in these."""
PAIRING_FIELDS = ("seed",)
"""Config fields that pair records across candidates."""
NO_EFFECT_FIELDS = ("eval_every", "checkpoint_every", "churn_tokens", "device", "compile")
"""Config fields that do not change a trial's final result."""
MATCH_TOLERANCE_PCT = 0.5
"""Parameters or FLOPs/token further than this from the baseline's make a row UNMATCHED."""
KERNEL_SHAPE = ("dtype", "size", "width", "mode", "gpu_name")
MEMORY_SHAPE = ("dtype", "size", "width", "gpu_name")
CHURN_SEEDS = 8
"""Prediction churn is the mean over pairs of the first (lowest) this many seeds of a row."""
KINDS = ("kernel", "memory", "lm", "scaling")
SUITE_HINT = {"kernel": "suites/kernels.yaml (or suites/smoke.yaml on CPU)", "memory": "suites/memory.yaml",
              "lm": "suites/llm_small.yaml (or suites/llm_tiny.yaml on CPU)"}
MERGED = "merged"


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def setup_fields(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict[str, str]:
    """The fields of an lm config that define its experimental setup, as canonical text: every
    field except the candidate's identity (IDENTITY_FIELDS), the pairing key (PAIRING_FIELDS),
    fields without effect on the result (NO_EFFECT_FIELDS) and `ignore`."""
    skip = {*IDENTITY_FIELDS, *PAIRING_FIELDS, *NO_EFFECT_FIELDS, *ignore}
    return {k: _canonical(config[k]) for k in sorted(config) if k not in skip and config[k] is not None}


def setup_key(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """The grouping key of lm records: records with equal keys (and suite) form one comparison
    table, paired by seed. Two learning rates are two setups; pass `ignore=("lr",)` to compare
    each candidate at its own learning rate."""
    return " ".join(f"{k}={v}" for k, v in setup_fields(config, ignore).items())


def check_names(names: list[str], present: Iterable[str]) -> None:
    """Every name must be registered or present in the results (a plugin's activation needs no
    --plugin to be compared); otherwise a UserError with the closest known names."""
    from actbench.activations.registry import names as registered
    from actbench.activations.registry import unknown_message

    known = {*registered(), *present}
    for n in names:
        if n not in known:
            raise UserError(unknown_message(n, sorted(known)))
    if len(set(names)) != len(names):
        raise UserError(f"each activation once, please: {' '.join(names)}")


def saved_suites(trials: "pd.DataFrame") -> tuple[dict[tuple[str, str], Any], list[str]]:
    """(results folder, suite name) -> the suite its run kept (`suites/<name>.yaml`), for lm
    suites that tune or climb a ladder, and a warning per kept suite that cannot be read."""
    from actbench.suite import load_suite

    found, warnings = {}, []
    if trials.empty or "kind" not in trials:
        return found, warnings
    for d, name in trials.loc[trials["kind"] == "lm", ["results_dir", "suite"]].drop_duplicates().itertuples(index=False):
        path = Path(d) / "suites" / f"{name}.yaml"
        if not path.is_file():
            continue
        try:
            suite = load_suite(path, check_paths=False)
        except UserError as e:
            warnings.append(f"{path}: cannot read the suite kept by its run, so its tuning and ladder are not analysed ({e})")
            continue
        if suite.spec.tune is not None or suite.spec.ladder is not None:
            found[(str(d), str(name))] = suite
    return found, warnings


def select_tuned(trials: "pd.DataFrame", suites: dict[tuple[str, str], Any]) -> tuple["pd.DataFrame", list[str]]:
    """Keep of every tuned suite only its final trials (as its recorded tuning decides them),
    with `_ignore` (the tuned fields, left out of the setup key) and `_tuned` (what was tuned and
    any value on the edge of its grid); a suite whose tuning is incomplete is dropped with a note."""
    from actbench import tuning

    notes: list[str] = []
    trials = trials.assign(_ignore=[()] * len(trials), _tuned=[""] * len(trials))
    for (d, name), suite in suites.items():
        tune = suite.spec.tune
        if tune is None:
            continue
        mine = (trials["results_dir"].astype(str) == d) & (trials["suite"] == name) & (trials["kind"] == "lm")
        recs = trials[mine]
        metric = f"metric.{tune.metric}"
        values = recs[metric] if metric in recs else np.full(len(recs), np.nan)
        metric_of = {tid: (float(v) if st == "ok" and np.isfinite(v) else None)
                     for tid, st, v in zip(recs["trial_id"], recs["status"], np.asarray(values, dtype=float))}
        final = suite.final_stage(metric_of)
        if final is None:
            notes.append(f"{name} ({d}): tuning is incomplete (run the suite again to finish it), so it is not compared")
            trials = trials[~mine]
            continue
        decided = [dec for dec in final.decisions if dec.values is not None]  # the final stage: their seeds in order
        decision_of = {t.id: decided[i // len(suite.spec.seed_list)] for i, t in enumerate(final.trials)}
        keep = mine & trials["trial_id"].isin(decision_of)
        what = f"tuned per activation: {', '.join(tune.fields)} (best {tune.metric} over {len(tune.grid())} values)"
        for i in trials.index[keep]:
            edges = decision_of[trials.at[i, "trial_id"]].edges
            trials.at[i, "_ignore"] = tuple(tune.fields)
            trials.at[i, "_tuned"] = what + (f"; edge: {'; '.join(edges)}" if edges else "")
        trials = trials[~(mine & ~keep)]
    return trials, notes


def _source(folders: "pd.Series", root: Path, merge: bool) -> "pd.Series":
    """The `results` column: each results folder relative to the root, or "merged"."""
    if merge:
        return folders.map(lambda _: MERGED)
    base = str(root.resolve()) if root.exists() else str(root)
    return folders.map({d: os.path.relpath(d, base) for d in folders.unique()})


def _fill_keys(df: "pd.DataFrame", keys: list[str]) -> "pd.DataFrame":
    """Missing values of key columns as "-" so that groups and joins treat them alike."""
    df = df.copy()
    for c in keys:
        if c not in df:
            df[c] = "-"
        elif df[c].isna().any():
            df[c] = df[c].astype(object).where(df[c].notna(), "-")
    return df


def _counts(groups: Any) -> "pd.DataFrame":
    """How many trials and runs (results folder x run id) went into each group."""
    import pandas as pd

    return pd.DataFrame({"trials": groups["_trial"].nunique(), "runs": groups["_run"].nunique()})


def _prepared(df: "pd.DataFrame", root: Path, merge: bool, keys: list[str], columns: Iterable[str] = ()) -> "pd.DataFrame":
    """Rows with their `results` column, the identity of their trial record (`_trial`: results
    folder and trial id) and run (`_run`: results folder and run id), filled key columns, and
    `columns` present (nan where a kind's older records lack them)."""
    run = df["run_id"].astype(str) if "run_id" in df else "-"
    folder = df["results_dir"].astype(str) + "#"
    df = df.assign(results=_source(df["results_dir"], root, merge), _run=folder + run, _trial=folder + df["trial_id"].astype(str))
    for c in columns:
        if c not in df:
            df[c] = np.nan
    return _fill_keys(df, keys)


def kernel_frame(rows: "pd.DataFrame", names: list[str], root: Path, merge: bool = False) -> "pd.DataFrame":
    """One row per (activation, impl, shape, results) of kernel measurements, compared with the
    baseline's best impl at the same shape (the fastest of its non-noisy impls)."""
    import pandas as pd

    if rows.empty or "kind" not in rows:
        return pd.DataFrame()
    used = ["activation", "impl", *KERNEL_SHAPE, "results_dir", "run_id", "trial_id", "ms_p20", "ms_p50", "ms_p80", "gbps", "pct_copy",
            "gated", "noisy"]  # the columns read below: the others are not copied
    r = rows.loc[(rows["kind"] == "kernel") & rows["activation"].isin(names) & (rows["impl"] != "copy"), [c for c in used if c in rows]]
    if r.empty:
        return pd.DataFrame()
    shape = [*KERNEL_SHAPE, "results"]
    r = _prepared(r, root, merge, shape, ("gbps", "pct_copy", "gated"))
    r["noisy"] = r["noisy"].eq(True) if "noisy" in r else False
    groups = r.groupby(["activation", "impl", *shape], sort=False, dropna=False)
    g = stats.kernel_summary(groups).join(groups.agg(gbps=("gbps", "median"), pct_copy=("pct_copy", "median"), gated=("gated", "first")))
    g = g.join(_counts(groups)).reset_index()
    base = g[g["activation"] == names[0]].sort_values(["noisy", "ms_p50"]).drop_duplicates(shape)
    base = base[[*shape, "impl", "ms_p50", "ms_low", "ms_high", "noisy"]].rename(
        columns={"impl": "baseline_impl", "ms_p50": "_b50", "ms_low": "_blow", "ms_high": "_bhigh", "noisy": "_bnoisy"})
    g = g.merge(base, on=shape, how="left")
    verdict, ratio = stats.kernel_verdicts(g["ms_p50"], g["ms_low"], g["ms_high"], g["noisy"],
                                           g["_b50"], g["_blow"], g["_bhigh"], g["_bnoisy"].fillna(False))
    is_base = (g["activation"] == names[0]) & (g["impl"] == g["baseline_impl"])
    g["ratio"], g["verdict"] = ratio, np.where(is_base, "baseline", verdict)
    order = {n: i for i, n in enumerate(names)}
    g = g.drop(columns=["_b50", "_blow", "_bhigh", "_bnoisy"])
    return g.sort_values(["results", "dtype", "size", "mode", "activation", "impl"],
                         key=lambda s: s.map(order) if s.name == "activation" else s.astype(str)).reset_index(drop=True)


def memory_frame(rows: "pd.DataFrame", names: list[str], root: Path, merge: bool = False) -> "pd.DataFrame":
    """One row per (activation, impl, shape, results) of memory measurements (medians)."""
    import pandas as pd

    if rows.empty or "kind" not in rows:
        return pd.DataFrame()
    r = rows[(rows["kind"] == "memory") & rows["activation"].isin(names)]
    if r.empty:
        return pd.DataFrame()
    shape = [*MEMORY_SHAPE, "results"]
    r = _prepared(r, root, merge, shape, ("peak_fwd_mb", "peak_fwd_bwd_mb", "saved_bytes_per_elem", "gated"))
    groups = r.groupby(["activation", "impl", *shape], sort=False, dropna=False)
    g = groups.agg(peak_fwd_mb=("peak_fwd_mb", "median"), peak_fwd_bwd_mb=("peak_fwd_bwd_mb", "median"),
                   saved_bytes_per_elem=("saved_bytes_per_elem", "median"), gated=("gated", "first"))
    return g.join(_counts(groups)).reset_index()


@dataclass
class _Seeds:
    """One activation's ok records in one lm table, reduced to one value per seed."""

    value: dict[int, float] = field(default_factory=dict)
    chunks: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # seed -> (nats, weight)
    preds: dict[int, np.ndarray] = field(default_factory=dict)


def _seeds(ok: "pd.DataFrame", metric: str, series: "Series") -> _Seeds:
    """Per seed: the mean of its records' metric (several records only with merge), the mean
    per-chunk losses where the records agree on the chunks, and argmax predictions."""
    import pandas as pd

    out = _Seeds()
    weight = "bytes" if metric == "val_bpb" else "tokens"
    codes, seeds = pd.factorize(ok["seed"], sort=True)  # the groups of groupby("seed", sort=True): NaN seeds left out
    rows = np.flatnonzero(codes >= 0)
    rows = rows[np.argsort(codes[rows], kind="stable")]  # by seed, each seed's records in their order
    bounds = np.searchsorted(codes[rows], np.arange(len(seeds) + 1))
    values = ok[f"metric.{metric}"].iloc[rows].astype(float).to_numpy()
    dirs = ok["results_dir"].to_numpy()[rows]
    files = ok["series_file"].to_numpy()[rows] if "series_file" in ok else [None] * len(rows)
    for seed, lo, hi in zip(seeds, bounds[:-1], bounds[1:]):
        vals = values[lo:hi]
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            continue
        s = int(seed)
        out.value[s] = float(vals.mean())
        chunks, preds = [], None
        for d, f in zip(dirs[lo:hi], files[lo:hi]):
            trial = series.get(d, f)
            c = trial.chunk_arrays(weight)
            if c is not None:
                chunks.append(c)
            if preds is None and len(out.preds) < CHURN_SEEDS:  # churn looks at a bounded number of seeds
                preds = trial.argmax
        if chunks and all(len(c[0]) == len(chunks[0][0]) and np.array_equal(c[1], chunks[0][1]) for c in chunks):
            out.chunks[s] = (np.mean([c[0] for c in chunks], axis=0), chunks[0][1])
        if preds is not None:
            out.preds[s] = preds
    return out


def _eval_interval(base: _Seeds, cand: _Seeds, seeds: list[int], metric: str, level: float) -> tuple[float, float, float, str | None]:
    """(estimate, low, high, why-not) of the mean difference from a paired bootstrap over
    validation chunks of the per-chunk loss difference averaged over the paired seeds."""
    usable = [s for s in seeds if s in base.chunks and s in cand.chunks]
    if not usable:
        return np.nan, np.nan, np.nan, "no eval_chunks in the series"
    if len(usable) < len(seeds):
        return np.nan, np.nan, np.nan, f"eval_chunks for {len(usable)} of {len(seeds)} paired seeds"
    shapes = {(len(base.chunks[s][0]), len(cand.chunks[s][0])) for s in usable}
    w0 = base.chunks[usable[0]][1]
    if len(shapes) != 1 or any(not np.array_equal(base.chunks[s][1], w0) or not np.array_equal(cand.chunks[s][1], w0) for s in usable):
        return np.nan, np.nan, np.nan, "validation chunks differ between trials"
    diff = np.mean([cand.chunks[s][0] - base.chunks[s][0] for s in usable], axis=0)
    scale = 1 / np.log(2) if metric == "val_bpb" else 1.0
    est, low, high = stats.chunk_bootstrap(diff, w0, scale=scale, level=level)
    return float(est), float(low), float(high), None


def _first(series: "pd.Series") -> Any:
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def _pct(value: Any, reference: Any) -> float:
    try:
        return (float(value) / float(reference) - 1) * 100
    except (TypeError, ValueError, ZeroDivisionError):
        return float("nan")


def _labels(tables: list[tuple[str, dict[str, str]]]) -> list[str]:
    """Per table, the setup fields that differ from other tables of the same suite."""
    labels = []
    for suite, fields in tables:
        others = [f for s, f in tables if s == suite]
        varying = [k for k in fields if any(o.get(k) != fields[k] for o in others)]
        varying += [k for o in others for k in o if k not in fields and k not in varying]
        labels.append(" ".join(f"{k}={fields.get(k, '-')}" for k in dict.fromkeys(varying)))
    return labels


def lm_frame(trials: "pd.DataFrame", names: list[str], root: Path, merge: bool = False, alpha: float = 0.05,
             level: float = 0.95, series: "Series | None" = None) -> "pd.DataFrame":
    """One row per activation of every lm table (suite, setup, results folder), compared on
    seeds paired with the baseline (names[0]); see the module docstring. `series` reads the
    series files (each once; pass one to share what it read)."""
    import pandas as pd

    from actbench.report.series import Series

    series = series if series is not None else Series()
    if trials.empty or "kind" not in trials or "activation" not in trials:
        return pd.DataFrame()
    t = trials[(trials["kind"] == "lm") & trials["activation"].isin(names)]
    if t.empty:
        return pd.DataFrame()
    ignore = t["_ignore"] if "_ignore" in t else [()] * len(t)
    fields = dict(zip(t.index, (setup_fields(c if isinstance(c, dict) else {}, ig) for c, ig in zip(t["config"], ignore))))
    t = _prepared(t.assign(setup=[" ".join(f"{k}={v}" for k, v in fields[i].items()) for i in t.index]), root, merge, ["suite"])
    tables = list(t.groupby(["suite", "setup", "results"], sort=False))
    labels = _labels([(suite, fields[g.index[0]]) for (suite, _, _), g in tables])
    out = []
    for ((suite, setup, results), table), label in zip(tables, labels):
        ok = table[table["status"] == "ok"]
        has_bpb = "metric.val_bpb" in ok and len(ok) and ok["metric.val_bpb"].notna().all()
        metric = "val_bpb" if has_bpb else "val_loss"
        present = [n for n in names if n in set(table["activation"])]
        per = {n: _seeds(ok[ok["activation"] == n], metric, series) if f"metric.{metric}" in ok else _Seeds() for n in present}
        base_ok = ok[ok["activation"] == names[0]]
        base_params, base_flops = (_first(base_ok[c]) if c in base_ok else None for c in ("metric.params", "metric.flops_per_token"))
        rows = []
        for n in present:
            recs, good, seeds = table[table["activation"] == n], ok[ok["activation"] == n], per[n]
            m, half, _ = stats.mean_ci(list(seeds.value.values()), level)
            params = _first(good["metric.params"]) if "metric.params" in good else None
            flops = _first(good["metric.flops_per_token"]) if "metric.flops_per_token" in good else None
            d_ff = _first(recs["d_ff"]) if "d_ff" in recs else None
            mean_of = lambda c: float(good[c].astype(float).mean()) if c in good and good[c].notna().any() else np.nan  # noqa: E731
            row: dict[str, Any] = {
                "suite": suite, "setup": setup, "setup_label": label, "results": results, "activation": n,
                "d_ff": int(d_ff) if d_ff is not None else None, "params": params, "params_diff_pct": _pct(params, base_params),
                "flops_per_token": flops, "flops_diff_pct": _pct(flops, base_flops),
                "lr": ", ".join(sorted({_canonical(v) for v in recs["lr"].dropna()})) if "lr" in recs else None,
                "tuned": _first(recs["_tuned"][recs["_tuned"] != ""]) if "_tuned" in recs else None,
                "metric": metric, "n": len(seeds.value), "mean": m, "ci95": half, "values": [seeds.value[s] for s in sorted(seeds.value)],
                "trials": int(recs["_trial"].nunique()), "runs": int(recs["_run"].nunique()), "not_ok": int((recs["status"] != "ok").sum()),
                "pairs": 0, "delta": np.nan, "delta_ci95": np.nan, "dz": np.nan, "p": np.nan, "p_holm": np.nan,
                "eval_delta": np.nan, "eval_low": np.nan, "eval_high": np.nan, "eval_ci95": np.nan, "eval_note": None,
                "dominant": None, "sd_diff": np.nan, "detectable": np.nan, "seeds_needed": None, "test_level": np.nan, "paired_seeds": [],
                "tokens_per_s": mean_of("metric.tokens_per_s"), "mfu": mean_of("metric.mfu"), "ppl": mean_of("metric.val_ppl"),
                "alpha_p": mean_of("metric.alpha_p_mean"), "alpha_n": mean_of("metric.alpha_n_mean"),
                "churn": stats.churn([seeds.preds[s] for s in sorted(seeds.preds)], CHURN_SEEDS),
            }
            matched = (abs(row["params_diff_pct"]) <= MATCH_TOLERANCE_PCT and abs(row["flops_diff_pct"]) <= MATCH_TOLERANCE_PCT)
            row["matched"] = bool(matched) if np.isfinite(row["params_diff_pct"]) and np.isfinite(row["flops_diff_pct"]) else None
            if n != names[0] and names[0] in per:
                base = per[names[0]]
                common = sorted(set(base.value) & set(seeds.value))
                row["pairs"] = len(common)
                row["paired_seeds"] = common
                if common:
                    test = stats.paired_t([seeds.value[s] - base.value[s] for s in common], level)
                    row.update(delta=float(test.mean), delta_ci95=float(test.half), dz=float(test.dz), p=float(test.p), sd_diff=float(test.sd))
                    est, low, high, why = _eval_interval(base, seeds, common, metric, level)
                    row.update(eval_delta=est, eval_low=low, eval_high=high, eval_ci95=(high - low) / 2, eval_note=why)
                    if np.isfinite(row["eval_ci95"]) and np.isfinite(row["delta_ci95"]):
                        row["dominant"] = "seeds" if row["delta_ci95"] >= row["eval_ci95"] else "eval set"
            rows.append(row)
        _decide(rows, names[0], alpha)
        out.extend(rows)
    return pd.DataFrame(out).astype({"seeds_needed": float})


def _decide(rows: list[dict[str, Any]], baseline: str, alpha: float) -> None:
    """Holm over the table's tested candidates, then the verdict of every row."""
    tested = [r for r in rows if r["activation"] != baseline and r["pairs"] >= 2]
    adjusted = stats.holm([r["p"] for r in tested]) if tested else []
    for r, p in zip(tested, adjusted):
        r["p_holm"] = float(p)
        level = alpha / len(tested)  # Holm's most stringent step: what the data must beat
        r["detectable"] = stats.detectable_difference(r["sd_diff"], r["pairs"], level)
        r["seeds_needed"] = stats.seeds_needed(r["delta"], r["sd_diff"], level)
        r["test_level"] = level
    has_base = any(r["activation"] == baseline and r["n"] for r in rows)
    for r in rows:
        if r["activation"] == baseline:
            verdict = "baseline"
        elif not has_base:
            verdict = "no baseline"
        elif r["pairs"] == 0:
            verdict = "no paired seeds"
        elif r["pairs"] == 1:
            verdict = "no test"
        else:
            verdict = str(stats.lm_verdicts(r["delta"], r["p_holm"], alpha))
            if r["matched"] is False:
                verdict += " (UNMATCHED)"
        r["verdict"] = verdict


@dataclass
class Comparison:
    """Frames per kind (kernel, memory, lm; empty where none) and verdict lines."""

    names: list[str]
    root: Path
    alpha: float
    merge: bool
    frames: dict[str, "pd.DataFrame"]
    lines: dict[str, list[str]]
    series: "Series | None" = None

    @property
    def baseline(self) -> str:
        return self.names[0]

    def to_json(self) -> str:
        """One JSON document: baseline, alpha, and per kind its rows and verdict lines."""
        doc: dict[str, Any] = {"baseline": self.baseline, "candidates": self.names[1:], "alpha": self.alpha, "merged": self.merge,
                               "results": str(self.root)}
        for kind in KINDS:
            df = self.frames[kind]
            doc[kind] = {"rows": json.loads(df.to_json(orient="records")) if not df.empty else [], "verdicts": self.lines.get(kind, [])}
        return json.dumps(doc, indent=1, allow_nan=False)

    def to_csv(self) -> str:
        """One long-format table of every kind's rows, with a `table` column (lists as JSON)."""
        import pandas as pd

        parts = [df.assign(table=kind) for kind, df in self.frames.items() if not df.empty]
        if not parts:
            return "table\n"
        df = pd.concat(parts, ignore_index=True)
        df = df[["table", *[c for c in df.columns if c != "table"]]]
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
        return df.to_csv(index=False)

    def to_markdown(self) -> str:
        parts = []
        for kind, df in self.frames.items():
            if not df.empty:
                verdict = "\n".join(f"- {line}" for line in self.lines.get(kind, []))
                parts.append(f"### {kind} (baseline: {self.baseline})\n\n{markdown(df.drop(columns=LIST_COLUMNS, errors='ignore'))}\n\n{verdict}\n")
        return "\n".join(parts)

    def tables(self, max_rows: int | None = None) -> list[Table]:
        return compare_tables(self, max_rows)


LIST_COLUMNS = ["values", "paired_seeds", "setup", "compute", "losses", "shapes", "rung_gains"]


def build(names: list[str], trials: "pd.DataFrame", rows: "pd.DataFrame", root: str | Path, *, alpha: float = 0.05,
          merge: bool = False, series: "Series | None" = None, select: "TrialFilter | None" = None) -> Comparison:
    """The comparison of `names` (first = baseline) from loaded trials and rows, of the trials
    `select` matches (applied after each tuned suite's final trials are chosen from all its
    records, so -k does not make its tuning look incomplete); the series files it reads stay in
    `Comparison.series` (pass `series` to share them)."""
    if not 0 < alpha < 1:
        raise UserError(f"--alpha: {alpha} is not between 0 and 1")
    from actbench.report import scaling
    from actbench.report.series import Series

    series = series if series is not None else Series()
    root = Path(root)
    suites, notes = saved_suites(trials)
    trials, tuning_notes = select_tuned(trials, suites) if suites else (trials, [])
    if select is not None:
        from actbench.select import select_frames

        trials, rows = select_frames(select, trials, rows, empty_ok=True)
    frames = {"kernel": kernel_frame(rows, names, root, merge), "memory": memory_frame(rows, names, root, merge),
              "lm": lm_frame(trials, names, root, merge, alpha, series=series),
              "scaling": scaling.scaling_frame(trials, names, suites) if suites else pd_empty()}
    c = Comparison(names=names, root=root, alpha=alpha, merge=merge, frames=frames, lines={}, series=series)
    c.lines = verdicts(c)
    if notes or tuning_notes:
        c.lines["lm"] = [*notes, *tuning_notes, *c.lines.get("lm", [])]
    return c


def pd_empty() -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame()


def compare_results(names: list[str], results_root: str | Path, *, alpha: float = 0.05, merge: bool = False,
                    select: "TrialFilter | None" = None, parallel: bool = False) -> Comparison:
    """Load every results folder at or below `results_root` (`parallel`: see `load_tables`) and
    compare `names` (first = baseline), of the trials `select` matches. A UserError when there are
    no results there, none is selected or a name is unknown."""
    from actbench.results import gc_frozen, load_tables
    from actbench.select import select_frames

    trials, rows = load_tables(results_root, parallel=parallel)
    if trials.empty:
        raise UserError(f"--results {results_root}: no trial records in a trials.jsonl at or below it")
    with gc_frozen():
        chosen, _ = select_frames(select, trials, rows)
        check_names(names, chosen["activation"].dropna().unique() if "activation" in chosen else [])
        return build(names, trials, rows, results_root, alpha=alpha, merge=merge, select=select)


def missing_hints(c: Comparison) -> list[str]:
    """Which suite to run for names without results, per kind that has some results."""
    hints = []
    present_any = {n for f in c.frames.values() if not f.empty for n in f["activation"].unique()}
    for n in c.names:
        if n not in present_any:
            hints.append(f"no results for {n!r}: run actbench run {SUITE_HINT['kernel']} or {SUITE_HINT['lm']}")
    for kind, f in c.frames.items():
        for n in c.names:
            if not f.empty and n in present_any and n not in set(f["activation"]):
                hints.append(f"no {kind} results for {n!r}: run actbench run {SUITE_HINT[kind]}")
    return hints


def _num(v: Any, fmt: str = ".4g") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return format(v, fmt)


def _kernel_lines(k: "pd.DataFrame", names: list[str]) -> list[str]:
    """Per candidate: its best impl against the baseline's best impl at every shape."""
    shape = [*KERNEL_SHAPE, "results"]
    lines = []
    for n in names[1:]:
        best = k[k["activation"] == n].sort_values(["noisy", "ms_p50"]).drop_duplicates(shape)
        if best.empty:
            continue
        counts = best["verdict"].value_counts()
        parts = []
        for word in ("faster", "slower"):
            r = best.loc[best["verdict"] == word, "ratio"]
            if len(r):
                gm = float(np.exp(np.log(r).mean()))
                parts.append(f"{word} at {len(r)} ({_num(r.min(), '.2f')}x-{_num(r.max(), '.2f')}x, geometric mean {gm:.2f}x)")
        if counts.get("same"):
            parts.append(f"same at {counts['same']} (intervals overlap)")
        if counts.get("noisy"):
            parts.append(f"noisy at {counts['noisy']} (p20-p80 wider than {stats.NOISY_SPREAD:.0%} of the median: no ratio)")
        if counts.get("no baseline"):
            parts.append(f"no {names[0]} measurement at {counts['no baseline']}")
        lines.append(f"{n} (best impl) vs {names[0]} (best impl) over {len(best)} shape(s): " + "; ".join(parts))
    return lines


def _lm_line(r: Any, baseline: str) -> str | None:
    where = f"{r.suite}" + (f" [{r.setup_label}]" if r.setup_label else "") + (f" ({r.results})" if r.results not in (".", MERGED) else "")
    head = f"{where}: {r.activation} vs {baseline}"
    if r.verdict in ("baseline",):
        return None
    if r.verdict == "no baseline":
        return f"{head}: no ok {baseline} trial in this setup: no comparison"
    if r.verdict == "no paired seeds":
        return f"{head}: no seed ran for both (no paired seeds): no comparison"
    if r.verdict == "no test":
        return f"{head}: Δ {r.metric} {r.delta:+.4f} from 1 paired seed: no test (need >= 2 paired seeds)"
    seeds = f"{r.delta:+.4f} ± {r.delta_ci95:.4f} ({r.pairs} paired seeds)"
    if np.isfinite(r.eval_ci95):
        seeds += f", eval-set ± {r.eval_ci95:.4f} ({r.dominant} dominate{'s' if r.dominant == 'eval set' else ''})"
    text = f"{head}: Δ {r.metric} {seeds}, Holm p={r.p_holm:.3g}, dz={r.dz:+.2f}: {r.verdict}"
    if r.verdict.startswith("no detectable difference"):
        need = f"~{int(r.seeds_needed)} paired seeds would resolve {r.delta:+.4f}" if np.isfinite(r.seeds_needed) else \
            "no feasible number of seeds resolves the observed difference"
        text += (f"; with {r.pairs} seeds the smallest detectable Δ is {_num(r.detectable, '.4f')} "
                 f"(80% power, two-sided at alpha/k={r.test_level:.3g}); {need}")
    if r.matched is False:
        text += f" [UNMATCHED: params {r.params_diff_pct:+.2f}%, FLOPs/token {r.flops_diff_pct:+.2f}%]"
    return text


def verdicts(c: Comparison) -> dict[str, list[str]]:
    """One line per candidate and kind (per lm table for lm)."""
    out: dict[str, list[str]] = {}
    if not c.frames["kernel"].empty:
        out["kernel"] = _kernel_lines(c.frames["kernel"], c.names)
    m = c.frames["memory"]
    if not m.empty:
        lines = []
        for n in c.names[1:]:
            a = m[m["activation"] == n]["saved_bytes_per_elem"].min()
            b = m[m["activation"] == c.baseline]["saved_bytes_per_elem"].min()
            if np.isfinite(a) and np.isfinite(b):
                lines.append(f"{n} saves {a:.1f} B/elem for backward (best impl) vs {b:.1f} for {c.baseline}")
        out["memory"] = lines
    lm = c.frames["lm"]
    if not lm.empty:
        out["lm"] = [line for r in lm.itertuples() if (line := _lm_line(r, c.baseline))]
    if not c.frames["scaling"].empty:
        from actbench.report.scaling import scaling_lines

        out["scaling"] = scaling_lines(c.frames["scaling"], c.baseline)
    return out


def _colour(verdict: str) -> str:
    v = verdict.split(" (")[0]
    return {"better": "green", "faster": "green", "worse": "red", "slower": "red"}.get(v, "white")


def _first_rows(df: "pd.DataFrame", max_rows: int | None) -> tuple["pd.DataFrame", str | None]:
    """df's first `max_rows` rows (all when None), and a caption saying how many there are when some are left out."""
    if max_rows is None or len(df) <= max_rows:
        return df, None
    return df.head(max_rows), (f"the first {max_rows} of {len(df)} rows in table order: --all prints them all; the report's "
                               "HTML and exports, and compare --format md/csv/json, hold every row")


def compare_tables(c: Comparison, max_rows: int | None = None) -> list[Table]:
    """Rich tables: kernel and memory one each (their first `max_rows` rows, with a caption
    saying how many there are, when given), lm one per table (suite, setup, results)."""
    tables = []
    k, base = c.frames["kernel"], c.baseline
    if not k.empty:
        k, caption = _first_rows(k, max_rows)
        t = Table(title=f"kernel: median ms with its p20-p80 interval over repeats; verdict vs {base}'s best impl at the same shape "
                        "(same: intervals overlap; noisy: interval too wide)", caption=caption)
        for col in ("results", "activation", "impl", "dtype", "size", "mode", "ms p50 (interval)", "GB/s", "% copy", f"vs {base}", "trials", "runs"):
            t.add_column(col, justify="left" if col in ("results", "activation", "impl", "dtype", "mode", f"vs {base}") else "right")
        for r in k.itertuples():
            word = r.verdict if r.verdict not in ("faster", "slower") else f"{r.verdict} {r.ratio:.2f}x"
            shown = f"[{_colour(r.verdict)}]{word}[/]" + (f" ({r.baseline_impl})" if r.verdict not in ("baseline", "no baseline") else "")
            act = r.activation + (" (gated: 2x input)" if r.gated is True else "")
            t.add_row(str(r.results), act, str(r.impl), str(r.dtype), _num(r.size, ","), str(r.mode),
                      f"{_num(r.ms_p50)} ({_num(r.ms_low, '.3g')}-{_num(r.ms_high, '.3g')})", _num(r.gbps, ".1f"), _num(r.pct_copy, ".1f"),
                      shown, str(r.trials), str(r.runs))
        tables.append(t)
    m = c.frames["memory"]
    if not m.empty:
        m, caption = _first_rows(m, max_rows)
        t = Table(title="memory: peak above inputs (CUDA only) and bytes saved for backward per output element", caption=caption)
        for col in ("results", "activation", "impl", "dtype", "size", "peak fwd MB", "peak fwd+bwd MB", "saved B/elem", "trials", "runs"):
            t.add_column(col)
        for r in m.itertuples():
            t.add_row(str(r.results), r.activation, str(r.impl), str(r.dtype), _num(r.size, ","), _num(r.peak_fwd_mb), _num(r.peak_fwd_bwd_mb),
                      _num(r.saved_bytes_per_elem, ".2f"), str(r.trials), str(r.runs))
        tables.append(t)
    lm = c.frames["lm"]
    for (suite, setup, results), g in (lm.groupby(["suite", "setup", "results"], sort=False) if not lm.empty else []):
        first = g.iloc[0]
        where = f"{suite}" + (f" [{first.setup_label}]" if first.setup_label else "") + (f", results {results}" if results != "." else "")
        t = Table(title=f"lm {where}: {first.metric} mean ± 95% CI over seeds; Δ vs {base} on paired seeds ± 95% t CI "
                        f"(and ± the eval-set bootstrap CI); Holm-adjusted p; verdict at alpha={c.alpha:g}",
                  caption=f"params, FLOPs/token: % vs {base}; UNMATCHED: more than {MATCH_TOLERANCE_PCT}% off; lower {first.metric} is better; "
                          "trials/runs (not ok)" + (f"; {first.tuned}" if first.tuned else ""), box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
        for col in ("activation", "d_ff", "params", "FLOPs/token", "lr", "seeds", first.metric, f"Δ vs {base}", "eval-set ±", "p Holm",
                    "verdict", "tokens/s", "trials/runs"):
            t.add_column(col, justify="left" if col in ("activation", "verdict") else "right",
                         no_wrap=col not in ("verdict", "lr"))
        for r in g.itertuples():
            is_base = r.activation == base
            delta = "-" if not np.isfinite(r.delta) else f"[{_colour(r.verdict)}]{r.delta:+.4f}[/]±{_num(r.delta_ci95, '.4f')}"
            diff = lambda v, pct: _num(v / 1e6 if v is not None else None, ".3f") + "M" + ("" if is_base or not np.isfinite(pct) else f" {pct:+.1f}%")  # noqa: E731
            t.add_row(r.activation, _num(r.d_ff, "d"), diff(r.params, r.params_diff_pct), diff(r.flops_per_token, r.flops_diff_pct), str(r.lr or "-"),
                      str(r.n), f"{_num(r.mean, '.4f')}±{_num(r.ci95, '.4f')}", delta, _num(r.eval_ci95, ".4f"), _num(r.p_holm, ".3g"),
                      f"[{_colour(r.verdict)}]{r.verdict}[/]", _num(r.tokens_per_s, ",.0f"), f"{r.trials}/{r.runs}" + (f" ({r.not_ok})" if r.not_ok else ""))
        tables.append(t)
    sc = c.frames["scaling"]
    if not sc.empty:
        from actbench.report import scaling
    for (suite, results), g in (sc.groupby(["suite", "results"], sort=False) if not sc.empty else []):
        t = Table(title=f"scaling {suite}: {g.iloc[0].metric} = E + A (C/C0)^-alpha per activation; compute-equivalent gain vs {base} "
                        "(the compute the baseline needs to reach the candidate's loss, / the candidate's) with 95% paired-bootstrap CIs",
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
        for col in ("activation", "rungs", "seeds", "E", "alpha", "R2", "max |resid|", "gain per rung", "gain at target"):
            t.add_column(col, justify="left" if col in ("activation", "gain per rung", "gain at target") else "right")
        for r in g.itertuples():
            per_rung = " ".join(f"{v:.3g}x" for v, _, _ in r.rung_gains) if r.rung_gains else "-"
            target = "-" if not r.target_compute or r.activation == base else \
                (r.target_note or f"{scaling.gain_text(r.target_gain, r.target_low, r.target_high, short=True)}, {r.extrapolation:.3g}x beyond")
            t.add_row(r.activation, str(r.rungs), str(r.seeds), _num(r.E, ".4g"), _num(r.alpha, ".3g"), _num(r.r2, ".3f"),
                      _num(r.max_residual, ".2g"), per_rung, target)
        tables.append(t)
    return tables


def fmt_cell(v: Any, digits: int = 4) -> str:
    """A table cell as text: "-" for missing values (None, nan), never "nan" or "None"."""
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_cell(x, digits) for x in v) or "-"
    return str(v)


def display(df: "pd.DataFrame", digits: int = 4) -> "pd.DataFrame":
    """A copy of df with every cell as text from `fmt_cell` (for printed and HTML tables)."""
    return df.astype(object).map(lambda v: fmt_cell(v, digits))


def markdown(df: "pd.DataFrame") -> str:
    """A GitHub markdown table of a DataFrame."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in display(df).itertuples(index=False):
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
