"""lm results side by side: one table per suite, *setup* and results folder, where the setup is every
config field except the candidate's identity, the seed and fields without effect (the kind says
which, `KindSpec.identity` / `no_effect`), and except the fields a suite tuned per candidate. Within
a table seed s of a candidate is paired with seed s of the baseline (same data order and initial
weights). Per candidate: its mean with a t interval over seeds, the paired difference against the
baseline with its t interval, test and Cohen's dz, the evaluation-set uncertainty (a paired
bootstrap over validation chunks), the measured throughput ratio and the difference at equal
wall-clock (from its validation curve's slope against log tokens before its LR decay), and where
the seed noise comes from (the correlation of paired seeds and the share of the seed variance that
pairing removed). The verdicts are `actbench.report.verdicts`'.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import msgspec
import numpy as np

from actbench.analysis import stats
from actbench.analysis.failures import Failures
from actbench.core.kinds import kind_spec
from actbench.report.frames import prepared
from actbench.report.seeds import CHURN_SEEDS, PerSeed, cost_and_noise, eval_interval, numbers, per_seed, skew_limit
from actbench.report.verdicts import decide_table

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.series import Series

PAIRING_FIELDS = ("seed",)
"""Config fields that pair records across candidates."""
MATCH_TOLERANCE_PCT = 0.5
"""Parameters or FLOPs/token further than this from the baseline's make a row UNMATCHED."""
SHOULD_TUNE = ("lr",)
"""Fields that favour whichever candidate they happen to suit when shared: a table that compares
candidates at one shared value of one of these, untuned, says so beside its verdicts."""
LM_COLUMNS = ("kind", "activation", "config", "suite", "results_dir", "run_id", "trial_id", "status", "seed", "series_file", "env", "d_ff",
              *SHOULD_TUNE, "_ignore", "_extra", "_designed", "_verdict", "_tuned")
"""The columns of the trial records that lm tables read besides their metrics: the others are not copied with their rows."""


def _canonical(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def setup_fields(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> dict[str, str]:
    """The fields of an lm config that define its experimental setup, as canonical text: every
    field except the candidate's identity, the pairing key, fields without effect and `ignore`."""
    kind = kind_spec("lm")
    skip = {*kind.identity, *PAIRING_FIELDS, *kind.no_effect, *ignore}
    return {k: _canonical(config[k]) for k in sorted(config) if k not in skip and config[k] is not None}


def setups(configs: Iterable[Any], ignores: Iterable[Iterable[str]]) -> list[dict[str, str]]:
    """`setup_fields` of each config (of an empty one where it is not an object), computed once
    per distinct config but for the fields it leaves out (told apart by their JSON values as
    msgpack encodes them: NaN and null apart). The dicts are shared: replace them, never change them."""
    kind = kind_spec("lm")
    fixed = {*kind.identity, *PAIRING_FIELDS, *kind.no_effect}
    done: dict[bytes, dict[str, str]] = {}
    out = []
    for config, ignore in zip(configs, ignores):
        config = config if isinstance(config, dict) else {}
        skip = fixed.union(ignore)
        try:
            key = msgspec.msgpack.encode({k: v for k, v in config.items() if k not in skip})
        except (TypeError, ValueError, OverflowError):
            out.append(setup_fields(config, ignore))
            continue
        found = done.get(key)
        if found is None:
            found = done[key] = setup_fields(config, ignore)
        out.append(found)
    return out


def setup_key(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """The grouping key of lm records: records with equal keys (and suite) form one comparison
    table, paired by seed. Two learning rates are two setups; pass `ignore=("lr",)` to compare
    each candidate at its own learning rate."""
    return " ".join(f"{k}={v}" for k, v in setup_fields(config, ignore).items())


def _split_variants(t: "pd.DataFrame", fields: dict[Any, dict[str, str]]) -> None:
    """Where one activation of a table ran with more than one value of another identity field
    (impl: [auto, eager] swept, say, or two d_ff), that field joins the setup of every row of the
    table: each variant is its own comparison, never averaged with the other per seed."""
    config = {i: c if isinstance(c, dict) else {} for i, c in zip(t.index, t["config"])}
    variant = [f for f in kind_spec("lm").identity if f != "activation"]
    tables: dict[tuple, list[Any]] = {}
    items: dict[int, tuple] = {}  # of each distinct dict of fields (rows of one setup share theirs)
    for i, suite, d in zip(t.index, t["suite"], t["results_dir"]):
        setup = items.get(id(fields[i])) or items.setdefault(id(fields[i]), tuple(fields[i].items()))
        tables.setdefault((suite, setup, d), []).append(i)
    activation = dict(zip(t.index, t["activation"]))
    for rows in tables.values():
        values: dict[tuple[str, Any], set[str]] = {}
        for i in rows:
            for f in variant:
                values.setdefault((f, activation[i]), set()).add(_canonical(config[i].get(f)))
        split = sorted({f for (f, _), v in values.items() if len(v) > 1})
        for i in rows if split else ():  # without a split each row's fields stay as they are (sorted by name)
            fields[i] = dict(sorted({**fields[i], **{f: _canonical(config[i].get(f)) for f in split}}.items()))


def _finite_mean(values: np.ndarray) -> float:
    """The mean of the finite values (NaN where there are none)."""
    return float(np.nanmean(values)) if np.isfinite(values).any() else np.nan


def _first(series: "pd.Series") -> Any:
    s = series.dropna()
    return s.iloc[0] if len(s) else None


def _pct(value: Any, reference: Any) -> float:
    try:
        return (float(value) / float(reference) - 1) * 100
    except (TypeError, ValueError, ZeroDivisionError):
        return float("nan")


def labels(tables: list[tuple[str, dict[str, str]]]) -> list[str]:
    """Per table, the setup fields that differ from other tables of the same suite."""
    out = []
    for suite, fields in tables:
        others = [f for s, f in tables if s == suite]
        varying = [k for k in fields if any(o.get(k) != fields[k] for o in others)]
        varying += [k for o in others for k in o if k not in fields and k not in varying]
        out.append(" ".join(f"{k}={fields.get(k, '-')}" for k in dict.fromkeys(varying)))
    return out


def _shared_untuned(table: "pd.DataFrame", ignored: Iterable[str]) -> str | None:
    """What a table shares untuned among SHOULD_TUNE (e.g. "lr=0.003 shared, not tuned per activation")."""
    shared = [f"{k}={_canonical(table[k].dropna().iloc[0])}" for k in SHOULD_TUNE
              if k not in ignored and k in table and table[k].nunique() == 1 and table["activation"].nunique() > 1]
    return f"{', '.join(shared)} shared by every activation, not tuned per activation: the verdicts hold at that value" if shared else None


def lm_frame(trials: "pd.DataFrame", names: list[str], root: Path, merge: bool = False, alpha: float = 0.05,
             level: float = 0.95, series: "Series | None" = None, margin: float | None = None) -> "pd.DataFrame":
    """One row per activation of every lm table (suite, setup, results folder), compared on
    seeds paired with the baseline (names[0]); see the module docstring. `series` reads the
    series files (each once; pass one to share what it read); `margin`: the equivalence margin of
    tables whose suite states no decision rule of its own."""
    import pandas as pd

    from actbench.report.series import Series

    series = series if series is not None else Series()
    if trials.empty or "kind" not in trials or "activation" not in trials:
        return pd.DataFrame()
    t = trials.loc[(trials["kind"] == "lm") & trials["activation"].isin(names), [c for c in trials if c in LM_COLUMNS or str(c).startswith("metric.")]]
    if t.empty:
        return pd.DataFrame()
    ignore = t["_ignore"] if "_ignore" in t else [()] * len(t)
    fields = dict(zip(t.index, setups(t["config"], ignore)))
    if not merge:
        _split_variants(t, fields)
    t = prepared(t.assign(setup=[" ".join(f"{k}={v}" for k, v in fields[i].items()) for i in t.index]), root, merge, ["suite"])
    tables = list(t.groupby(["suite", "setup", "results"], sort=False))
    table_labels = labels([(suite, fields[g.index[0]]) for (suite, _, _), g in tables])
    out = []
    for ((suite, setup, results), table), label in zip(tables, table_labels):
        ok = table[table["status"] == "ok"]
        extra = ok[ok["_extra"] == True] if "_extra" in ok else ok.iloc[:0]  # noqa: E712 - seeds past a rule's need: counted apart
        ok = ok.drop(extra.index)
        designed = bool(table["_designed"].any()) if "_designed" in table else False
        rule = next((v for v in table["_verdict"] if v is not None), None) if "_verdict" in table else None
        no_verdict = _why_no_verdict(rule, names[0], merge and table["results_dir"].astype(str).nunique() > 1) if designed else None
        has_bpb = "metric.val_bpb" in ok and len(ok) and ok["metric.val_bpb"].notna().all()
        metric = rule.metric if rule is not None and no_verdict is None else "val_bpb" if has_bpb else "val_loss"
        present = [n for n in names if n in set(table["activation"])]
        ok_of = {n: ok[ok["activation"] == n] for n in dict.fromkeys([names[0], *present])}  # each candidate's ok records, filtered once
        per = {n: per_seed(ok_of[n], metric, series) if f"metric.{metric}" in ok else PerSeed() for n in present}
        base_ok = ok_of[names[0]]
        base_params, base_flops = (_first(base_ok[c]) if c in base_ok else None for c in ("metric.params", "metric.flops_per_token"))
        shared = _shared_untuned(table, table["_ignore"].iloc[0] if "_ignore" in table else ())
        on_shared_gpu = {n: _shared_gpu(ok_of[n]) for n in present}
        counted = table.loc[~table.index.isin(extra.index), ["activation", "seed", "status"]]  # what seed_failures reads, but the extra seeds
        rows = []
        for n in present:
            recs, good, seeds = table[table["activation"] == n], ok_of[n], per[n]
            m, half, _ = stats.mean_ci(list(seeds.value.values()), level)
            params = _first(good["metric.params"]) if "metric.params" in good else None
            flops = _first(good["metric.flops_per_token"]) if "metric.flops_per_token" in good else None
            d_ff = _first(recs["d_ff"]) if "d_ff" in recs else None
            mean_of = lambda c: _finite_mean(numbers(good[c])) if c in good else np.nan  # noqa: E731
            impls = sorted({str(v) for v in good["metric.impl_used"].dropna()}) if "metric.impl_used" in good else []
            row: dict[str, Any] = {
                "suite": suite, "setup": setup, "setup_label": label, "results": results, "activation": n,
                "d_ff": int(d_ff) if d_ff is not None else None, "params": params, "params_diff_pct": _pct(params, base_params),
                "flops_per_token": flops, "flops_diff_pct": _pct(flops, base_flops),
                "lr": ", ".join(sorted({_canonical(v) for v in recs["lr"].dropna()})) if "lr" in recs else None,
                "tuned": _first(recs["_tuned"][recs["_tuned"] != ""]) if "_tuned" in recs else None, "shared": shared,
                "impl": ", ".join(impls) or None,
                "metric": metric, "n": len(seeds.value), "mean": m, "ci95": half, "values": [seeds.value[s] for s in sorted(seeds.value)],
                "trials": int(recs["_trial"].nunique()), "runs": int(recs["_run"].nunique()), "not_ok": int((recs["status"] != "ok").sum()),
                "pairs": 0, "delta": np.nan, "delta_ci95": np.nan, "low": np.nan, "high": np.nan, "dz": np.nan, "p": np.nan,
                "p_holm": np.nan, "eval_delta": np.nan, "eval_low": np.nan, "eval_high": np.nan, "eval_ci95": np.nan, "eval_note": None,
                "dominant": None, "sd_diff": np.nan, "detectable": np.nan, "seeds_needed": None, "needed_for": None, "test_level": np.nan, "alpha": np.nan, "paired_seeds": [],
                "skew": np.nan, "skew_limit": np.nan,
                "design": None, "look": None, "margin": np.nan, "extra_pairs": 0, "failures": None, "recorded": None, "blocked": False, "_diffs": [], "_failures": None,
                "tokens_per_s": mean_of("metric.tokens_per_s"), "mfu": mean_of("metric.mfu"), "ppl": mean_of("metric.val_ppl"),
                "epochs": mean_of("metric.epochs"),
                "shared_gpu": on_shared_gpu[n] + (on_shared_gpu.get(names[0], 0) if n != names[0] else 0),
                "alpha_p": mean_of("metric.alpha_p_mean"), "alpha_n": mean_of("metric.alpha_n_mean"),
                "churn": stats.churn([seeds.preds[s] for s in sorted(seeds.preds)], CHURN_SEEDS),
                "device": ", ".join(sorted({str(v) for v in good["metric.device"].dropna()})) if "metric.device" in good else None,
                **{k: np.nan for k in ("speed_ratio", "speed_low", "speed_high", "delta_wall", "delta_wall_ci95", "pair_corr", "pairing_gain")},
            }
            matched = (abs(row["params_diff_pct"]) <= MATCH_TOLERANCE_PCT and abs(row["flops_diff_pct"]) <= MATCH_TOLERANCE_PCT)
            row["matched"] = bool(matched) if np.isfinite(row["params_diff_pct"]) and np.isfinite(row["flops_diff_pct"]) else None
            verdict = _first(recs["_verdict"]) if "_verdict" in recs and no_verdict is None else None
            if n != names[0] and names[0] in per:
                base = per[names[0]]
                common = sorted(set(base.value) & set(seeds.value))
                if verdict is not None:  # a designed comparison: the seeds of the look that decided it, the others counted
                    more = {int(s) for s in extra.loc[extra["activation"] == n, "seed"]}
                    row["extra_pairs"] = len(more & ({int(s) for s in extra.loc[extra["activation"] == names[0], "seed"]} | set(base.value)))
                    common = [s for s in verdict.seeds if s in common]
                row["pairs"] = len(common)
                row["paired_seeds"] = common
                row["_diffs"] = [seeds.value[s] - base.value[s] for s in common]
                if verdict is None:  # a designed comparison's failures are its look's (`_from_verdict`)
                    row["_failures"] = seed_failures(counted, n, names[0], seeds, base, metric)
                if common:
                    test = stats.paired_t(row["_diffs"], level)
                    row.update(delta=float(test.mean), delta_ci95=float(test.half), dz=float(test.dz), p=float(test.p), sd_diff=float(test.sd),
                               skew=stats.skewness(row["_diffs"]), skew_limit=skew_limit(len(common)))
                    est, low, high, why = eval_interval(base, seeds, common, metric, level)
                    row.update(eval_delta=est, eval_low=low, eval_high=high, eval_ci95=(high - low) / 2, eval_note=why)
                    if np.isfinite(row["eval_ci95"]) and np.isfinite(row["delta_ci95"]):
                        row["dominant"] = "seeds" if row["delta_ci95"] >= row["eval_ci95"] else "eval set"
                    row.update(cost_and_noise(base, seeds, common, level))
            row["_verdict"] = verdict
            row["_no_verdict"] = no_verdict
            rows.append(row)
        decide_table(rows, names[0], alpha, margin)
        out.extend(rows)
    return pd.DataFrame(out).astype({"seeds_needed": float}).drop(columns=["_verdict", "_diffs", "_no_verdict", "_failures"])


def seed_failures(table: "pd.DataFrame", candidate: str, baseline: str, cand: PerSeed, base: PerSeed, metric: str) -> Failures | None:
    """The seeds of a table where each side failed (its record not ok, or no finite `metric`), over
    the seeds either side has a record of (None: none failed): the failure rule's input
    (`actbench.analysis.failures`), so a failed seed is an outcome, never a dropped pair."""
    import pandas as pd

    failed: list[tuple[tuple[int, str], ...]] = []
    seeds: set[int] = set()
    activation, seed_of, status_of = (table[c].to_numpy(dtype=object) for c in ("activation", "seed", "status"))
    for name, per in ((candidate, cand), (baseline, base)):
        whys: dict[int, str] = {}
        at = activation == name
        for seed, status in zip(seed_of[at], status_of[at]):
            if pd.isna(seed):
                continue
            s = int(seed)
            seeds.add(s)
            if s not in per.value:  # a seed with no finite value: the first failed status among its records says why
                whys[s] = whys.get(s) or (str(status) if status != "ok" else "")
        failed.append(tuple((s, why or f"no finite {metric}") for s, why in sorted(whys.items())))
    return Failures(len(seeds), *failed) if any(failed) else None


def _shared_gpu(records: "pd.DataFrame") -> int:
    """How many of these records ran beside other trials on their GPU (`env.shared_gpu`, packed GPUs)."""
    if "env" not in records:
        return 0
    return sum(1 for env in records["env"] if isinstance(env, dict) and isinstance(env.get("shared_gpu"), int) and env["shared_gpu"] > 0)


def _why_no_verdict(rule: Any, baseline: str, merged: bool) -> str | None:
    """Why a table whose seeds a suite's rule stopped gets no verdict (None: the rule's verdict
    stands). Those seeds were chosen by looking at the rule's comparisons: a fixed-seed test of
    another comparison on them has no valid error rate. `merged`: the table pools several folders."""
    if merged:
        return "merged folders: the suite's rule stopped each folder's seeds on its own comparisons"
    if rule is None:
        return None
    if rule.field != "activation":
        return f"the suite's rule compares values of {rule.field}, not activations: its seeds were stopped on those comparisons"
    if rule.baseline_value != baseline:
        return f"the suite's rule compares with {rule.baseline_value}, and its seeds were stopped on that: name it first"
    return None
