"""`plan`: from a suite and its records, the next batch of trials and everything decided so far.

The policies run in order, each per point of the suite: values left `auto` (`choice`), then
tuning (`tuning`), then the final seeds (`seeds`). A trial is *settled* when it needs no more
running: for the runner, recorded ok before this sweep or attempted in it (a failed trial runs
again in the next sweep, not the same one, unless a recorded look of decided seeds counted it);
for compare and report, recorded at all. The first policy with an unsettled trial gives the
batch; decisions are made from the records (a failed trial counts as the worst value; in decided
seeds as `actbench.analysis.failures` says). The same function serves the runner,
compare, report, the plots and `lm plan`, so they all make the same decisions.

`-k` selects trials: in a suite without stages, any of them; in a staged suite (tuning, choices,
decided seeds), whole points, since a decision needs every trial of a point: a selection of
part of a point's first stage is refused, and so is one without the baseline of a candidate's
comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from actbench.core.record import Record
from actbench.core.trial import Trial
from actbench.errors import UserError
from actbench.planner import choice, seeds, tuning
from actbench.suite import Suite

if TYPE_CHECKING:
    from actbench.results import decisions
    from actbench.select import TrialFilter


@dataclass
class Batch:
    """Trials to run before anything more can be decided."""

    name: str
    trials: list[Trial]


@dataclass
class Plan:
    """Where a suite stands. `batch` is the next trials to run (None: nothing is left); `chosen`,
    `tuning` and `seeds` hold the decisions of each policy so far (None where it has not been
    reached); `planned` every trial of the stages reached; `events` the decisions in words."""

    batch: Batch | None
    chosen: dict[int, choice.Chosen] = field(default_factory=dict)
    tuning: tuning.Tuning | None = None
    seeds: seeds.Seeds | None = None
    planned: list[Trial] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    deselected: int = 0
    tuned_fields: tuple[str, ...] = ()

    @property
    def final(self) -> dict[int, list[Trial]]:
        """Per point, its final trials planned so far ({} before the seeds are reached)."""
        return self.seeds.final if self.seeds is not None else {}

    def fixed(self, group: int) -> dict[str, Any]:
        """The values a point's final trials run with: chosen, then tuned."""
        out: dict[str, Any] = {}
        if group in self.chosen:
            out[self.chosen[group].field] = self.chosen[group].value
        decision = self.tuning.decisions.get(group) if self.tuning else None
        if decision is not None and decision.values is not None:
            out.update(zip(self.tuned_fields, decision.values))
        return out


def staged(suite: Suite) -> bool:
    """Whether the suite's trials run in stages decided from results (so -k selects whole points)."""
    return suite.spec.tune is not None or suite.spec.decide is not None or bool(choice.helper_trials(suite, [0]))


def selected_groups(suite: Suite, select: "TrialFilter | None") -> tuple[list[int], int]:
    """The points `select` keeps, and how many trials of the first stage it leaves out. In a staged
    suite -k must keep whole points; see the module docstring."""
    groups = list(range(suite.groups))
    first = suite.trials
    if select is None:
        return groups, 0
    select.check_keys(t.config_dict() for t in first)
    if not staged(suite):
        return groups, sum(not select.matches(t.config_dict(), t.id) for t in first)
    by_group = _first_stage_by_group(suite)
    chosen = {g for g, ts in by_group.items() if any(select.matches(t.config_dict(), t.id) for t in ts)}
    partial = sorted(g for g in chosen if not all(select.matches(t.config_dict(), t.id) for t in by_group[g]))
    if not chosen:
        raise UserError(f"-k {select.expr!r} selects none of the {'tuning' if suite.spec.tune else 'first'} trials of {suite.path.name}"
                        f"{' (they run on tuning seeds of their own)' if suite.spec.tune else ''}: select whole points (e.g. -k "
                        "activation=xielu) or run without -k")
    if partial:
        what, why = ("the tuning grid", "tuning chooses among every value") if suite.spec.tune else \
            ("the first seeds", "its later stages are decided from all of them")
        raise UserError(f"-k {select.expr!r} selects part of {what} of {suite.label(partial[0])}"
                        f"{f' (and {len(partial) - 1} more)' if len(partial) > 1 else ''}: {why}; select whole points "
                        "(e.g. -k activation=xielu) or run without -k")
    if suite.spec.decide is not None:
        for base, candidates in seeds.setups(suite, sorted(chosen)):
            if base is None and candidates:
                raise UserError(f"-k {select.expr!r} selects {suite.label(candidates[0])} without the baseline it is compared with: "
                                f"select it too (e.g. -k \"activation=xielu or activation={suite.spec.baseline}\")")
    return sorted(chosen), 0


def ran_groups(suite: Suite, records: dict[str, Record]) -> list[int]:
    """The points a results folder ran (a run with -k runs whole points): those with a recorded
    tuning or final trial among those the planner plans for the point (beside its baseline, if
    the suite decides its seeds), at the values it chose and tuned. Every point when none has one
    (a folder that holds only the helper trials of its first stage, say)."""
    baseline = {c: base for base, candidates in (seeds.setups(suite, list(range(suite.groups))) if suite.spec.decide else [])
                for c in candidates if base is not None}
    ran = []
    for g in range(suite.groups):
        p = plan(suite, records, set(records), sorted({g, baseline.get(g, g)}))
        own = [c.trial for c in p.tuning.candidates if c.group == g] if p.tuning else []
        if any(t.id in records for t in own + p.final.get(g, [])):
            ran.append(g)
    return ran or list(range(suite.groups))


def _first_stage_by_group(suite: Suite) -> dict[int, list[Trial]]:
    tune = suite.spec.tune
    if tune is None:
        return {g: [suite.trial(g, {}, s) for s in suite.spec.seed_list[: suite.spec.looks[0]]] for g in range(suite.groups)}
    budget = tune.rung_budgets()[0]
    return {g: [suite.trial(g, dict(zip(tune.fields, v)), s, budget) for v in tune.grid() for s in tune.seed_list]
            for g in range(suite.groups)}


def plan(suite: Suite, records: dict[str, Record], settled: set[str], groups: list[int] | None = None,
         select: "TrialFilter | None" = None, recorded: "decisions.Recorded | None" = None) -> Plan:
    """Where `suite` stands given `records` (trial id -> last attempt) and the `settled` trial ids,
    for the points `groups` (all by default; see `selected_groups`); `select` filters the trials
    of a suite without stages; `recorded`: the decisions its run recorded in the folder, which
    decided seeds replay (`actbench.planner.seeds`)."""
    groups = list(range(suite.groups)) if groups is None else groups
    out = Plan(batch=None, tuned_fields=tuple(suite.spec.tune.fields) if suite.spec.tune else ())
    helpers = choice.helper_trials(suite, groups)
    out.planned += [t for _, t in helpers.values()]
    # a helper that failed stays failed (its kind's fallback decides): running it again could change
    # the choice, and with it every later trial of its point
    unsettled = list({t.id: t for _, t in helpers.values() if t.id not in settled and (t.id not in records or records[t.id].ok)}.values())
    if unsettled:
        out.batch = Batch(f"choose {', '.join(sorted({c.field for c, _ in helpers.values()}))}", unsettled)
        return out
    out.chosen = choice.decide(helpers, records)
    out.events += [c.describe(suite) for c in out.chosen.values()]
    fixed = {g: out.fixed(g) for g in groups}
    if suite.spec.tune is not None:
        out.tuning = tuning.tune(suite, groups, fixed, records, settled)
        out.planned += [c.trial for c in out.tuning.candidates]
        if out.tuning.pending:
            out.batch = Batch(out.tuning.stage, out.tuning.pending)
            return out
        out.events += [d.describe(suite) for d in out.tuning.decisions.values()]
        groups = [g for g in groups if out.tuning.decisions[g].values is not None]
        fixed = {g: out.fixed(g) for g in groups}
    out.seeds = seeds.plan_seeds(suite, groups, fixed, records, settled, recorded)
    out.events += out.seeds.events
    out.planned += [t for g in groups for t in out.seeds.final.get(g, [])]
    pending = out.seeds.pending
    if select is not None and not staged(suite):
        kept = [t for t in pending if select.matches(t.config_dict(), t.id)]
        out.deselected = len(pending) - len(kept)
        pending = kept
    if pending:
        out.batch = Batch(out.seeds.stage, pending)
    return out


def forecast(suite: Suite) -> Plan:
    """Every trial the suite would run, without running any (`lm plan` costs them): each batch is
    answered with made-up records that decide nothing early: `auto` values at their fallback,
    tuning metrics all equal (halving keeps the first values of the grid; the first tuned values
    stand in for the choices), final trials scored on the baseline alone (no pair: every
    candidate runs to its last look, the most the suite can cost)."""
    records: dict[str, Record] = {}
    d = suite.spec.decide
    fallbacks = {c.field: c.fallback for c, _ in choice.helper_trials(suite, list(range(suite.groups))).values()}
    while True:
        p = plan(suite, records, set(records))
        if p.batch is None:
            return p
        scored = {t.id for base, _ in seeds.setups(suite, list(p.final)) if base is not None for t in p.final[base]} \
            if d is not None and p.seeds is not None else set()
        for t in p.batch.trials:
            if p.tuning is not None and p.tuning.pending:
                metrics: dict[str, Any] = {suite.kind.tuning_metric(suite.spec.tune.metric): 0.0}
            elif p.seeds is None:  # the choices
                metrics = fallbacks
            else:
                metrics = {(d.metric or suite.kind.metric): 0.0} if d is not None and t.id in scored else {}
            records[t.id] = Record(trial_id=t.id, status="ok", metrics=metrics)
