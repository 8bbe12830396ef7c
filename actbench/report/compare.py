"""`actbench compare`: activations side by side per trial kind (kernel, memory, lm, scaling), the
baseline first, with a verdict per row that a reviewer would accept.

- kernel and memory: `actbench.report.kernels`;
- lm: `actbench.report.lm` (tables and statistics) and `actbench.report.verdicts` (decisions),
  for staged suites on their final trials only, as their recorded decisions make them
  (`actbench.report.replay`);
- scaling: ladder suites, `actbench.report.scaling`.
Results folders below the root are never pooled silently: each folder's rows stay separate
(the `results` column) unless `merge=True`; every row counts its trials and runs. A comparison
prints as rich tables and lines (`present`), JSON, CSV or markdown (`formats`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from actbench.errors import UserError
from actbench.report import present
from actbench.report.cost import spent_lines
from actbench.report.formats import Comparison
from actbench.report.kernels import kernel_frame, memory_frame
from actbench.report.lm import lm_frame
from actbench.report.replay import describe_choices, replay, saved_suites

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.series import Series
    from actbench.select import TrialFilter

KINDS = ("kernel", "memory", "lm", "scaling")
SUITE_HINT = {"kernel": "suites/kernels.yaml (or suites/smoke.yaml on CPU)", "memory": "suites/memory.yaml",
              "lm": "suites/llm_small.yaml (or suites/llm_tiny.yaml on CPU)", "scaling": "suites/ladder_gpu.yaml (or suites/ladder_tiny.yaml on CPU)"}


def check_names(names: list[str], present_names: Iterable[str]) -> None:
    """Every name must be registered or present in the results (a plugin's activation needs no
    --plugin to be compared); otherwise a UserError with the closest known names."""
    from actbench.activations.registry import names as registered
    from actbench.activations.registry import unknown_message

    known = {*registered(), *present_names}
    for n in names:
        if n not in known:
            raise UserError(unknown_message(n, sorted(known)))
    if len(set(names)) != len(names):
        raise UserError(f"each activation once, please: {' '.join(names)}")


ALPHA_RANGE = (1e-6, 0.5)
"""--alpha: a family-wise error rate below the 80% power the hints are computed at (and above what the tests can resolve)."""
MAX_MARGIN = 1e100
"""--margin: finite, and far from where squaring it would overflow."""


def build(names: list[str], trials: "pd.DataFrame", rows: "pd.DataFrame", root: str | Path, *, alpha: float = 0.05,
          merge: bool = False, series: "Series | None" = None, select: "TrialFilter | None" = None,
          margin: float | None = None) -> Comparison:
    """The comparison of `names` (first = baseline) from loaded trials and rows, of the trials
    `select` matches (applied after each staged suite's final trials are chosen from all its
    records, so -k does not make its stages look incomplete); `margin`: the equivalence margin of
    lm tables whose suite states no decision rule; the series files it reads stay in
    `Comparison.series` (pass `series` to share them)."""
    import pandas as pd

    if not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
        raise UserError(f"--alpha: {alpha} is not between {ALPHA_RANGE[0]:g} and {ALPHA_RANGE[1]:g} (a family-wise error rate)")
    if margin is not None and not 0 < margin <= MAX_MARGIN:
        raise UserError(f"--margin: {margin} is not a positive difference up to {MAX_MARGIN:g}")
    from actbench.report import scaling
    from actbench.report.series import Series

    series = series if series is not None else Series()
    root = Path(root)
    suites, notes = saved_suites(trials)
    all_trials = trials
    trials, replay_notes, plans = replay(trials, suites)
    replayed = trials
    if plans and not rows.empty:  # the rows of trials that staged suites do not compare (tuning trials) go too
        kept = set(zip(trials["results_dir"].astype(str), trials["trial_id"]))
        rows = rows[[k in kept for k in zip(rows["results_dir"].astype(str), rows["trial_id"])]].reset_index(drop=True)
    if select is not None:
        from actbench.select import select_frames

        trials, rows = select_frames(select, trials, rows, empty_ok=True)
    ladders = {k: s for k, s in suites.items() if s.spec.ladder is not None}
    frames = {"kernel": kernel_frame(rows, names, root, merge), "memory": memory_frame(rows, names, root, merge),
              "lm": lm_frame(trials, names, root, merge, alpha, series=series, margin=margin),
              "scaling": scaling.scaling_frame(trials, names, ladders) if ladders else pd.DataFrame()}
    c = Comparison(names=names, root=root, alpha=alpha, merge=merge, frames=frames, lines={}, series=series, suites=suites, plans=plans,
                   replayed=replayed)
    c.lines = present.verdict_lines(c)
    extra = [*notes, *replay_notes, *describe_choices(plans, suites), *spent_lines(all_trials, plans)]
    if extra:
        c.lines["lm"] = [*extra, *c.lines.get("lm", [])]
    return c


def compare_results(names: list[str], results_root: str | Path, *, alpha: float = 0.05, merge: bool = False,
                    select: "TrialFilter | None" = None, margin: float | None = None) -> Comparison:
    """Load every results folder at or below `results_root` and compare `names` (first =
    baseline), of the trials `select` matches. A UserError when there are no results there, none
    is selected or a name is unknown."""
    from actbench.results.frames import load_tables
    from actbench.select import select_frames

    trials, rows = load_tables(results_root)
    if trials.empty:
        raise UserError(f"--results {results_root}: no trial records in a trials.jsonl at or below it")
    chosen, _ = select_frames(select, trials, rows)
    check_names(names, chosen["activation"].dropna().unique() if "activation" in chosen else [])
    return build(names, trials, rows, results_root, alpha=alpha, merge=merge, select=select, margin=margin)


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
