"""The final seeds of every point: all at once, or, with a `decide:` block, in rounds.

With `decide:`, every candidate point (a value of `decide.field`) is compared with the baseline
point of its setup (the same values of every other swept field) on paired seeds, and a round of
seeds runs only for the candidates still undecided, with the baseline's seeds shared by all of
them: the looks are the suite's rounds (`seeds: {min, max, round}`; one look at all the seeds
otherwise). Each look replays the group-sequential design of `actbench.analysis.sequential`
(repeated confidence intervals, alpha spent over the looks, Bonferroni over the suite's
candidates), which stays valid when a comparison stops early; a candidate stops at the first
look that decides it (better, worse, equivalent) and is undecided at the last."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actbench.analysis import sequential
from actbench.core.record import Record
from actbench.core.trial import Trial
from actbench.suite import Suite
from actbench.suite.schema import DecideSpec


@dataclass(frozen=True)
class Verdict:
    """A candidate point's comparison with its baseline point, as the suite's design decides it."""

    group: int
    baseline: int
    decision: sequential.Decision
    design: sequential.Design
    seeds: tuple[int, ...]  # the paired seeds of the deciding (or last) look
    margin: float | None  # the absolute margin at that look
    metric: str
    field: str  # decide.field, and the baseline's value of it
    baseline_value: Any

    def describe(self, suite: Suite) -> str:
        d, iv = self.decision, self.decision.interval
        head = f"look {d.look} of {len(self.design.looks)} ({iv.n if iv else 0} paired seeds): {suite.label(self.group)} vs {suite.label(self.baseline)}"
        if iv is None:
            return f"{head}: {d.verdict} ({'no baseline result' if d.verdict == 'no baseline' else 'fewer than 2 paired seeds'})"
        margin = f", margin ±{self.margin:.4g}" if self.margin is not None else ""
        need = f"; ~{d.seeds_needed} paired seeds would decide it" if d.seeds_needed else ""
        return f"{head}: {d.verdict}, Δ {self.metric} {iv.mean:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]{margin}{need}"


@dataclass
class Seeds:
    """Every point's final trials planned so far (in seed order), the unsettled ones, and each
    candidate's verdict at its latest look ("continue" while it is not decided)."""

    final: dict[int, list[Trial]]
    pending: list[Trial]
    stage: str
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


def setups(suite: Suite, groups: list[int]) -> list[tuple[int | None, list[int]]]:
    """(baseline point, candidate points) of every setup among `groups`: points that differ only
    in `decide.field` (and the fields zipped with it); the baseline is None where it is not among
    `groups`."""
    d = suite.spec.decide
    assert d is not None
    baseline = suite.spec.baseline
    identity = set(suite.spec.zip) if d.field in suite.spec.zip else {d.field}  # zipped fields advance with the candidate
    by: dict[tuple, dict[Any, int]] = {}
    for g in groups:
        key = tuple(sorted((k, repr(v)) for k, (v, _) in suite.points[g].items() if k not in identity))
        by.setdefault(key, {})[suite.value(g, d.field)] = g
    return [(members.get(baseline), [g for v, g in members.items() if v != baseline]) for members in by.values()]


def design(suite: Suite) -> sequential.Design:
    """The suite's design: its looks, alpha, the number of candidates (Bonferroni), margin, spending."""
    d = suite.spec.decide
    assert d is not None
    candidates = len({**suite.spec.matrix, **suite.spec.zip}[d.field]) - 1
    return sequential.Design(looks=suite.spec.looks, alpha=d.alpha, candidates=candidates,
                             margin=None if d.relative else d.margin, spending=d.spending)


def plan_seeds(suite: Suite, groups: list[int], fixed: dict[int, dict[str, Any]], records: dict[str, Record],
               settled: set[str]) -> Seeds:
    """The final seeds of `groups` (each at its `fixed` values: chosen and tuned): all of them
    without a decide block; else the rounds each candidate's comparison still needs."""
    seeds = suite.spec.seed_list
    trials = {g: [suite.trial(g, fixed.get(g, {}), s) for s in seeds] for g in groups}
    if suite.spec.decide is None:
        pending = [t for g in groups for t in trials[g] if t.id not in settled]
        return Seeds(trials, pending, "final seeds" if suite.spec.tune else "trials")
    d = suite.spec.decide
    metric = d.metric or suite.kind.metric
    plan = design(suite)
    looks = plan.looks
    out = Seeds({}, [], "")
    reach: dict[int, int] = {}  # point -> seeds planned so far
    baseline_value = suite.spec.baseline

    def verdict(c: int, base: int, decision: sequential.Decision, paired: tuple[int, ...] = (),
                margin: float | None = None if d.relative else d.margin) -> Verdict:
        return Verdict(c, base, decision, plan, paired, margin, metric, d.field, baseline_value)

    for base, candidates in setups(suite, groups):
        if base is None:
            out.events += [f"{suite.label(c)}: its baseline point did not run (no tuned value, or not selected): not compared"
                           for c in candidates]
            continue
        reach[base] = max(reach.get(base, 0), looks[0])
        if not candidates:  # a setup of the baseline alone (-k selected it alone): its first look's seeds
            out.pending += [t for t in trials[base][: looks[0]] if t.id not in settled]
            out.stage = out.stage or f"seeds 1-{looks[0]} (look 1 of {len(looks)})"
        for c in candidates:
            history: list[list[float]] = []
            margins: list[float | None] = []  # each look's margin
            for k, n in enumerate(looks):
                reach[c] = n
                reach[base] = max(reach[base], n)
                unsettled = [t for g in (c, base) for t in trials[g][:n] if t.id not in settled]
                if unsettled:
                    out.pending += unsettled
                    out.stage = f"seeds {1 if k == 0 else looks[k - 1] + 1}-{n} (look {k + 1} of {len(looks)})"
                    if c not in out.verdicts:  # no look yet: undecided so far
                        out.verdicts[c] = verdict(c, base, sequential.Decision("continue", 0, None, (), None))
                    break
                values = {g: [_metric(records, t, metric) for t in trials[g][:n]] for g in (c, base)}
                if all(v is None for v in values[base]):  # the baseline failed every seed: more rounds cannot pair anything
                    out.verdicts[c] = verdict(c, base, sequential.Decision("no baseline", k + 1, None, (), None))
                    out.events.append(out.verdicts[c].describe(suite))
                    break
                pairs = [(s, vc - vb) for s, vc, vb in zip(seeds[:n], values[c], values[base]) if vc is not None and vb is not None]
                history.append([diff for _, diff in pairs])
                margins.append(_margin(d, values[base]))
                decision = sequential.decide(history, plan, margin=margins)
                out.verdicts[c] = verdict(c, base, decision, tuple(s for s, _ in pairs), margins[-1])
                out.events.append(out.verdicts[c].describe(suite))
                if decision.verdict != "continue":
                    break
    out.final = {g: trials[g][: reach.get(g, 0)] for g in groups}
    out.pending = list({t.id: t for t in out.pending}.values())
    return out


def _margin(d: DecideSpec, baseline_values: list[float | None]) -> float | None:
    """The margin of one look: decide.margin, or with `relative` that fraction of the baseline's mean."""
    if not d.relative or d.margin is None:  # relative: true comes with a margin (the schema says so)
        return d.margin
    ok = [v for v in baseline_values if v is not None]
    return d.margin * sum(ok) / len(ok) if ok else float("nan")


def _metric(records: dict[str, Record], trial: Trial, metric: str) -> float | None:
    record = records.get(trial.id)
    return record.metric(metric) if record is not None else None
