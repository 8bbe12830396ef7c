"""The final seeds of every point: all at once, or, with a `decide:` block, in rounds.

With `decide:`, every candidate point (a value of `decide.field`) is compared with the baseline
point of its setup (the same values of every other swept field) on paired seeds, and a round of
seeds runs only for the candidates still undecided, with the baseline's seeds shared by all of
them: the looks are the suite's rounds (`seeds: {min, max, round}`; one look at all the seeds
otherwise). Each look replays the group-sequential design of `actbench.analysis.sequential`
(repeated confidence intervals, alpha spent over the looks, Bonferroni over the suite's
candidates), which stays valid when a comparison stops early; a candidate stops at the first
look that decides it (better, worse, equivalent) and is undecided at the last. A failed seed counts
as its side's worst (`actbench.analysis.failures`). Each look is taken from the decisions the run
recorded in the folder (`actbench.results.decisions`) where they hold it, once checked against the
trials it names, so that a look decided stays decided: its trials are settled (a failed one is not
run again) and later looks add seeds to the outcomes it counted."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from actbench.analysis import failures, sequential
from actbench.analysis.stats import HINT_CAP
from actbench.core.record import Record
from actbench.core.trial import Trial
from actbench.results import decisions
from actbench.suite import Suite
from actbench.suite.schema import DecideSpec


@dataclass(frozen=True)
class Verdict:
    """A candidate point's comparison with its baseline point, as the suite's design decides it:
    the seeds each side failed and the claim they blocked (`actbench.analysis.failures`), the trials
    rerun after the look that decided it (added afterwards, not used), and, when its recorded
    decision does not match the trials it names, why (then it has no verdict)."""

    group: int
    baseline: int
    decision: sequential.Decision
    design: sequential.Design
    seeds: tuple[int, ...]  # the paired seeds of the deciding (or last) look
    margin: float | None  # the absolute margin at that look
    metric: str
    field: str  # decide.field, and the baseline's value of it
    baseline_value: Any
    names: tuple[str, str] = ("candidate", "baseline")  # the candidate's and the baseline's value of the field
    failures: failures.Failures | None = None
    reached: str | None = None  # the claim the finished pairs made, when failures blocked it
    added: tuple[str, ...] = ()  # "seed 1 of xielu": trials rerun after the look, not used
    problem: str | None = None  # the recorded decision does not match its trials: why
    unrecorded: bool = False  # its look is complete but the run stopped before recording a decision (compare: pending)

    @property
    def failure_text(self) -> str | None:
        """The seeds each side failed and how they were treated, in words (None: none failed)."""
        return self.failures.describe(*self.names, self.reached) if self.failures else None

    @property
    def record_text(self) -> str | None:
        """What the recorded decisions say beyond the verdict: trials added after the look, or a look not decided yet."""
        if self.unrecorded:
            return (f"look {self.decision.look} is complete but its run stopped before recording a decision for it: "
                    "run the suite again to decide it")
        if not self.added:
            return None
        return (f"{', '.join(self.added)} rerun after the look that {'decided' if self.decision.verdict in failures.CLAIMS else 'counted'} "
                "it: added afterwards, not used")

    def describe(self, suite: Suite) -> str:
        d, iv = self.decision, self.decision.interval
        head = f"look {d.look} of {len(self.design.looks)} ({iv.n if iv else 0} paired seeds): {suite.label(self.group)} vs {suite.label(self.baseline)}"
        if self.problem:
            return f"{head}: no verdict (the recorded decision does not match its trials: {self.problem})"
        notes = "".join(f"; {t}" for t in (self.failure_text, self.record_text) if t)
        if iv is None:
            return f"{head}: {d.verdict} ({'no baseline result' if d.verdict == 'no baseline' else 'fewer than 2 paired seeds'}){notes}"
        margin = f", margin ±{self.margin:.4g}" if self.margin is not None else ""
        need = (f"; ~{d.seeds_needed} paired seeds would decide it with 80% probability at the observed Δ and spread" if d.seeds_needed else
                f"; at the observed Δ and spread more than {HINT_CAP} paired seeds would be needed to decide it"
                if d.verdict == "undecided" and not self.failure_text else "")
        return f"{head}: {d.verdict}, Δ {self.metric} {iv.mean:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]{margin}{notes}{need}"


@dataclass
class Seeds:
    """Every point's final trials planned so far (in seed order), the unsettled ones, each
    candidate's verdict at its latest look ("continue" while it is not decided), and the looks
    decided now that the folder's record lacks (`fresh`: the run records them)."""

    final: dict[int, list[Trial]]
    pending: list[Trial]
    stage: str
    verdicts: dict[int, Verdict] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    fresh: list[decisions.Look] = field(default_factory=list)


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
               settled: set[str], recorded: decisions.Recorded | None = None) -> Seeds:
    """The final seeds of `groups` (each at its `fixed` values: chosen and tuned): all of them
    without a decide block; else the rounds each candidate's comparison still needs, each look
    taken from the folder's `recorded` decisions where it holds one (checked against the trials it
    names), else decided from `records` (and then in `Seeds.fresh`)."""
    seeds = suite.spec.seed_list
    trials = {g: [suite.trial(g, fixed.get(g, {}), s) for s in seeds] for g in groups}
    if suite.spec.decide is None:
        pending = [t for g in groups for t in trials[g] if t.id not in settled]
        return Seeds(trials, pending, "final seeds" if suite.spec.tune else "trials")
    looks = suite.spec.looks
    out = Seeds({}, [], "")
    reach: dict[int, int] = {}  # point -> seeds planned so far
    if recorded is not None and not recorded.writing and suite.name not in recorded.started:
        recorded = None  # its runs recorded nothing here (an older actbench ran it): replayed from the records
    settled = settled | recorded.frozen(suite.name) if recorded is not None else settled  # a recorded look's trials never rerun
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
            _Rounds(suite, trials, c, base, records, settled, recorded, out, reach).run()
    out.final = {g: trials[g][: reach.get(g, 0)] for g in groups}
    out.pending = list({t.id: t for t in out.pending}.values())
    return out


@dataclass
class _Rounds:
    """One candidate's looks against its baseline: each look's outcomes, frozen once a look counts
    them (a rerun later does not change them), its failures and the design's decision."""

    suite: Suite
    trials: dict[int, list[Trial]]
    c: int
    base: int
    records: dict[str, Record]
    settled: set[str]
    recorded: decisions.Recorded | None
    out: Seeds
    reach: dict[int, int]
    metric: str = field(init=False)
    plan: sequential.Design = field(init=False)
    names: tuple[str, str] = field(init=False)  # the candidate's and the baseline's value of decide.field

    def __post_init__(self) -> None:
        d = self.suite.spec.decide
        assert d is not None
        self.metric, self.plan = d.metric or self.suite.kind.metric, design(self.suite)
        self.names = (str(self.suite.value(self.c, d.field)), str(self.suite.value(self.base, d.field)))

    def run(self) -> None:
        suite, c, base, out = self.suite, self.c, self.base, self.out
        d = suite.spec.decide
        assert d is not None
        looks = suite.spec.looks
        counted: dict[str, tuple[int | None, float | None, str]] = {}  # trial id -> (attempt, value, why) as a look counted it
        history: list[failures.Look] = []
        margins: list[float | None] = []
        for k, n in enumerate(looks):
            self.reach[c] = n
            self.reach[base] = max(self.reach[base], n)
            ids = [[t.id for t in self.trials[g][:n]] for g in (c, base)]
            rec = self.recorded.looks.get((suite.name, c, base, k + 1)) if self.recorded is not None else None
            if rec is None:
                unsettled = [t for g in (c, base) for t in self.trials[g][:n] if t.id not in self.settled]
                if unsettled:
                    out.pending += unsettled
                    out.stage = f"seeds {1 if k == 0 else looks[k - 1] + 1}-{n} (look {k + 1} of {len(looks)})"
                    if c not in out.verdicts:  # no look yet: undecided so far
                        self.verdict(sequential.Decision("continue", 0, None, (), None))
                    return
                if self.recorded is not None and suite.name in self.recorded.started and not self.recorded.writing:
                    self.verdict(sequential.Decision("continue", k + 1, None, (), None), unrecorded=True)  # the run stopped first
                    return
                for i in (i for side in ids for i in side if i not in counted):
                    counted[i] = decisions.outcome(self.records.get(i), self.metric)
            else:
                problem = self.named(rec, ids)
                if problem:
                    self.verdict(sequential.Decision("no verdict", k + 1, None, (), None), problem=problem)
                    return
                counted.update({o.trial_id: (o.attempt, o.value, o.why) for o in (*rec.candidate_trials, *rec.baseline_trials)})
            look = failures.look(suite.spec.seed_list[:n], *([counted[i][1:] for i in side] for side in ids))
            if len(look.failures.baseline) == n:  # the baseline failed every seed: more rounds cannot pair anything
                decision = sequential.Decision("no baseline", k + 1, None, (), None)
            else:
                history.append(look)
                margins.append(_margin(d, [counted[i][1] for i in ids[1]]))
                decision = failures.decide(history, self.plan, margins, undecided=k)  # looks before k were undecided
            if rec is not None:
                decision, problem = self.check(rec, decision, look, margins[-1] if margins else None, k + 1 == len(looks))
                if problem:
                    self.verdict(sequential.Decision("no verdict", k + 1, None, (), None), problem=problem)
                    return
            else:
                out.fresh.append(self.record(k + 1, ids, counted, decision, margins[-1] if margins else None))
            reached = sequential.claim(decision.interval, margins[-1]) if decision.interval is not None and margins else None
            self.verdict(decision, look, margins[-1] if margins else None, reached if reached in look.failures.blocked else None,
                         ids, counted)
            out.events.append(out.verdicts[c].describe(suite))
            if decision.verdict != "continue":
                return

    def verdict(self, decision: sequential.Decision, look: failures.Look | None = None, margin: float | None = None,
                reached: str | None = None, ids: list[list[str]] | None = None,
                counted: dict[str, tuple[int | None, float | None, str]] | None = None, problem: str | None = None,
                unrecorded: bool = False) -> None:
        d = self.suite.spec.decide
        assert d is not None
        last = self.recorded.last if self.recorded is not None else {}
        added = tuple(f"seed {s} of {name}" for side, name in zip(ids or [], self.names) for s, i in zip(self.suite.spec.seed_list, side)
                      if counted and counted[i][0] is not None and last.get(i, 0) > counted[i][0])
        fails = look.failures if look is not None and (look.failures.candidate or look.failures.baseline) else None
        self.out.verdicts[self.c] = Verdict(
            self.c, self.base, decision, self.plan, tuple(s for s, _ in look.pairs) if look else (), margin if look else
            (None if d.relative else d.margin), self.metric, d.field, self.suite.spec.baseline, self.names, fails, reached, added, problem, unrecorded)
        if problem:
            self.out.events.append(self.out.verdicts[self.c].describe(self.suite))

    def named(self, rec: decisions.Look, ids: list[list[str]]) -> str | None:
        """Why a recorded look does not name this look's trials as their records have them (None: it does)."""
        named = [[o.trial_id for o in rec.candidate_trials], [o.trial_id for o in rec.baseline_trials]]
        if named != ids or rec.seeds != self.suite.spec.seed_list[: len(ids[0])]:
            return f"look {rec.look} names other trials than the suite plans for it"
        if (self.suite.name, self.c, self.base, rec.look) in self.recorded.conflicts:
            return f"look {rec.look} is recorded twice, differently"
        for o in (*rec.candidate_trials, *rec.baseline_trials):
            record = self.recorded.history.get((o.trial_id, o.attempt)) if o.attempt is not None else None
            if record is None or decisions.outcome(record, self.metric) != (o.attempt, o.value, o.why):
                return f"trial {o.trial_id} attempt {o.attempt} is recorded {'otherwise' if record else 'nowhere'} in the trials"
        return None

    def check(self, rec: decisions.Look, now: sequential.Decision, look: failures.Look, margin: float | None,
              last: bool) -> tuple[sequential.Decision, str | None]:
        """The recorded look's decision if it is the one its trials give, else why not. Its critical
        value may differ from this version's by CRIT_TOLERANCE (a later calibration): its interval
        and verdict are then those of its own critical value."""
        iv, why = now.interval, f"look {rec.look} is recorded {rec.verdict}"
        if now.verdict == "no baseline" or iv is None or iv.n < 2:
            return now, None if rec.verdict == now.verdict and rec.n == (iv.n if iv else 0) else f"{why}, its trials give {now.verdict}"
        crit = math.inf if rec.crit is None else rec.crit
        if rec.n != iv.n or not (_close(rec.mean, iv.mean) and _close(rec.sd, iv.sd) and _close(rec.margin, margin)):
            return now, f"{why} on an interval that is not that of its trials"
        if not (crit == iv.crit or abs(crit - iv.crit) <= CRIT_TOLERANCE * iv.crit):
            return now, f"{why} at critical value {crit:.4g}, the design's is {iv.crit:.4g}"
        blocked = look.failures.blocked if len(look.pairs) == iv.n else frozenset(failures.CLAIMS)  # else its interval is an earlier look's

        def at(c: float) -> tuple[sequential.Interval, str]:
            half = math.inf if math.isinf(c) else c * iv.sd / math.sqrt(iv.n)
            interval = sequential.Interval(iv.n, iv.mean, iv.sd, c, iv.mean - half, iv.mean + half)
            return interval, sequential.claim(interval, margin, blocked) or ("undecided" if last or look.failures.hopeless else "continue")

        interval, verdict = at(crit)
        if not (_close(rec.low, interval.low) and _close(rec.high, interval.high)) or verdict != rec.verdict:
            return now, f"{why}, its trials give {verdict} [{interval.low:+.4g}, {interval.high:+.4g}]"
        # within the tolerance, the record may only be more cautious than the design: a claim must hold at the
        # larger critical value, a look that went on must make no claim at the smaller one
        strict = at(max(crit, iv.crit) if verdict in failures.CLAIMS else min(crit, iv.crit))[1]
        if strict != verdict:
            return now, f"{why} at critical value {crit:.4g}, where the design's {iv.crit:.4g} gives {strict}"
        return sequential.Decision(verdict, rec.look, interval, now.pairs, now.seeds_needed if verdict in ("continue", "undecided") else None), None

    def record(self, look_no: int, ids: list[list[str]], counted: dict[str, tuple[int | None, float | None, str]],
               decision: sequential.Decision, margin: float | None) -> decisions.Look:
        """The look as the run records it."""
        iv = decision.interval
        finite = lambda x: x if x is not None and math.isfinite(x) else None  # noqa: E731 - JSON has no infinities
        sides = [[decisions.Outcome(i, *counted[i]) for i in side] for side in ids]
        return decisions.Look(suite=self.suite.name, candidate=self.c, baseline=self.base, look=look_no, names=self.names,
                              seeds=list(self.suite.spec.seed_list[: len(ids[0])]), candidate_trials=sides[0], baseline_trials=sides[1],
                              verdict=decision.verdict, n=iv.n if iv else 0, mean=iv.mean if iv else None, sd=iv.sd if iv else None,
                              crit=finite(iv.crit) if iv else None, low=finite(iv.low) if iv else None,
                              high=finite(iv.high) if iv else None, margin=margin)


CRIT_TOLERANCE = 0.05
"""How far (relative) a recorded look's critical value may be from this version's: a later
calibration moves them (Monte-Carlo error, exact small looks). Within it a record may only be more
cautious than the design (a claim it records holds at the larger of the two values, a look it went on
from claims nothing at the smaller), so a planted value cannot make or hasten a claim."""


def _close(a: float | None, b: float | None) -> bool:
    """Equal as a JSON round trip keeps them (None for an infinity or nothing)."""
    if a is None or b is None or not math.isfinite(b):
        return (a is None) == (b is None or not math.isfinite(b))
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _margin(d: DecideSpec, baseline_values: list[float | None]) -> float | None:
    """The margin of one look: decide.margin, or with `relative` that fraction of the baseline's mean."""
    if not d.relative or d.margin is None:  # relative: true comes with a margin (the schema says so)
        return d.margin
    ok = [v for v in baseline_values if v is not None]
    return d.margin * sum(ok) / len(ok) if ok else float("nan")
