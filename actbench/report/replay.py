"""The decisions of the suites a results folder ran, replayed from its records by the planner
(`actbench.planner.plan`), as the run made them: for every staged suite (tuned, with `auto`
choices, or deciding its seeds) only its final trials are compared, each candidate at its own
tuned values (the tuned fields leave the setup key) and, for a suite with `decide:`, with the
verdict its design reached, look by look as the run recorded it (`decisions.jsonl`, checked
against the trials each look names; a folder without one is replayed from its records). A run keeps the suite it used (`suites/<name>.yaml`) and the registry
facts of its activations beside its records, so reading them needs no plugin."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from actbench.activations.registry import remember
from actbench.core.record import Record, decode_json
from actbench.errors import UserError
from actbench.planner.plan import Plan, plan, ran_groups, staged
from actbench.results import decisions, gate
from actbench.suite import Suite, load_suite
from actbench.suite.schema import TUNE_SEED_BASE
from actbench.suite.yamlsafe import MAX_SUITE_BYTES

if TYPE_CHECKING:
    import pandas as pd


def saved_suites(trials: "pd.DataFrame") -> tuple[dict[tuple[str, str], Suite], list[str]]:
    """(results folder, suite name) -> the suite its run kept, for suites run in stages or on a
    ladder, and a warning per kept suite that cannot be read."""
    found: dict[tuple[str, str], Suite] = {}
    warnings: list[str] = []
    if trials.empty or "suite" not in trials:
        return found, warnings
    dirs, names = trials["results_dir"].astype(str), trials["suite"].astype(str)
    looked = trials[[c for c in ("kind", "seed") if c in trials]]  # what _looks_staged reads: a filter of every column costs more
    for d, name in trials[["results_dir", "suite"]].astype(str).drop_duplicates().itertuples(index=False):
        kept = gate.kept_suite(name)  # a suite field that is not a plain name names no file
        path = gate.check(d, kept, MAX_SUITE_BYTES) if kept is not None else None  # refused: a warning says why
        if path is None:
            missing = kept is not None and not os.path.lexists(Path(d) / kept)
            if missing and _looks_staged(looked[(dirs == d) & (names == name)]):
                warnings.append(f"{Path(d) / kept}: missing, but the records of {name} in {d} hold tuning or choice trials: without the "
                                "suite its run kept, its stages cannot be replayed, so every record is compared as a plain trial")
            continue
        try:
            known = decode_json(gate.read_bytes(d, gate.kept_suite(name, ".activations.json")) or b"{}")
        except ValueError:
            known = {}
        remember(known if isinstance(known, dict) else {})
        try:
            suite = load_suite(path, check_paths=False)  # checked by the gate just now: a regular file inside the folder
        except UserError as e:
            warnings.append(f"{path}: cannot read the suite kept by its run, so its stages and ladder are not analysed ({e})")
            continue
        if suite.spec.ladder is not None or staged(suite):
            found[(str(d), str(name))] = suite
    return found, warnings


def _looks_staged(frame: "pd.DataFrame") -> bool:
    """Whether records were planned in stages: helper trials of a choice, or trials on tuning seeds."""
    import pandas as pd

    seeds = pd.to_numeric(frame["seed"], errors="coerce") if "seed" in frame else pd.Series(dtype=float)
    return bool((frame["kind"] == "impl").any() or (seeds >= TUNE_SEED_BASE).any())


def records_of(frame: "pd.DataFrame") -> dict[str, Record]:
    """The records behind loaded trials (status and metrics: what the planner reads)."""
    metric_cols = [c for c in frame.columns if c.startswith("metric.")]
    out = {}
    for tid, status, *values in frame[["trial_id", "status", *metric_cols]].itertuples(index=False):
        metrics = {c[7:]: v for c, v in zip(metric_cols, values) if v is not None and not (isinstance(v, float) and np.isnan(v))}
        out[str(tid)] = Record(trial_id=str(tid), status=str(status), metrics=metrics)
    return out


def replay(trials: "pd.DataFrame", suites: dict[tuple[str, str], Suite]) -> tuple["pd.DataFrame", list[str], dict[tuple[str, str], Plan]]:
    """Keep of every staged suite only its final trials, with `_ignore` (the tuned fields, left out
    of the setup key), `_tuned` (what was tuned, and any value on the edge of its grid),
    `_verdict` (the verdict of a suite's design, on its candidates' trials), `_designed` (the
    trial's seeds were stopped by such a rule) and `_extra` (a final trial at a seed the suite's
    rule did not need, when the folder holds more); a suite whose tuning
    is incomplete is left out with a note. Also returns each suite's plan."""
    notes: list[str] = []
    plans: dict[tuple[str, str], Plan] = {}
    recorded: dict[str, decisions.Recorded | None] = {}
    trials = trials.assign(_ignore=[()] * len(trials), _tuned=[""] * len(trials), _verdict=[None] * len(trials), _extra=False,
                           _designed=False)
    for (d, name), suite in suites.items():
        if not staged(suite):
            continue
        folder = trials["results_dir"].astype(str) == d
        written = folder & (trials["suite"] == name)
        records = records_of(trials[folder])
        if d not in recorded:  # what the folder's runs recorded of their decisions (None: an older folder, replayed anew)
            recorded[d] = decisions.read(Path(d)) if suite.spec.decide is not None else None
        p = plan(suite, records, set(records), ran_groups(suite, records), recorded=recorded[d])
        plans[(d, name)] = p
        mine = written | (folder & trials["trial_id"].isin({t.id for t in p.planned}))
        owner = {t.id: g for g, ts in p.final.items() for t in ts}
        if p.seeds is None or not any(t in records for t in owner):
            stage = "tuning" if p.tuning is not None and p.tuning.pending else p.batch.name if p.batch else "its first stage"
            notes.append(f"{name} ({d}): {stage} is incomplete (run the suite again to finish it), so it is not compared")
            trials = trials[~mine]
            continue
        if p.batch is not None:
            notes.append(f"{name} ({d}): {p.batch.name} has {len(p.batch.trials)} trial(s) without a record (run the suite again to "
                         "finish it): what is recorded is compared, and undecided comparisons say so")
        extra = _extra_seeds(trials[mine], p) if suite.spec.decide is not None else {}
        keep = mine & (trials["trial_id"].isin(owner) | trials["trial_id"].isin(extra))
        trials.loc[keep & trials["trial_id"].isin(extra), "_extra"] = True
        trials.loc[keep, "_designed"] = suite.spec.decide is not None
        tune = suite.spec.tune
        what = (f"tuned per activation: {', '.join(tune.fields)} (best {suite.kind.tuning_metric(tune.metric)} over {len(tune.grid())} "
                "values, on tuning seeds)") if tune else ""
        verdicts = p.seeds.verdicts if p.seeds is not None else {}
        for i in trials.index[keep]:
            g = owner.get(trials.at[i, "trial_id"], extra.get(trials.at[i, "trial_id"]))
            if tune is not None:
                edges = p.tuning.decisions[g].edges
                trials.at[i, "_ignore"] = tuple(tune.fields)
                trials.at[i, "_tuned"] = what + (f"; edge: {'; '.join(edges)}" if edges else "")
            trials.at[i, "_verdict"] = verdicts.get(g)
        trials = trials[~(mine & ~keep)]
    return trials, notes, plans


def _extra_seeds(recs: "pd.DataFrame", p: Plan) -> dict[str, int]:
    """Trial id -> point of the recorded trials that repeat a point's final trials at seeds the plan
    does not need (a folder that holds more seeds than the rule needed): kept, and counted apart."""
    def key(config: dict[str, Any]) -> str:
        return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True)

    planned = {t.id for t in p.planned}
    point_of = {key(t.config_dict()): g for g, ts in p.final.items() for t in ts[:1]}
    return {tid: point_of[key(c)] for tid, c in zip(recs["trial_id"], recs["config"])
            if tid not in planned and isinstance(c, dict) and key(c) in point_of}


def describe_choices(plans: dict[tuple[str, str], Plan], suites: dict[tuple[str, str], Suite]) -> list[str]:
    """One line per point whose `auto` value a suite chose (e.g. the implementation of each activation)."""
    return [f"{name}: {c.describe(suites[(d, name)])}" for (d, name), p in plans.items() for c in p.chosen.values()]
