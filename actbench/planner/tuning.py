"""Per-point tuning, the `tune:` block of a suite (`actbench.suite.schema.TuneSpec`).

Every point (one point of the suite's matrix x zip x ladder, i.e. a final trial without its seed)
gets its own best values: stage one runs every point at every value with the tuning seeds (never
the final seeds) on `budget` x the kind's budget field (lm: tokens); with `halving: {eta, rungs}`
it is successive halving: rung r runs at budget x eta^(r - rungs + 1), and only the best 1/eta of
the values of each point (by the mean metric) go on to the next rung. Each rung restarts from
scratch at its own budget, because the learning-rate schedule depends on the total budget, so a
shorter run is not a prefix of a longer one. The metric is read where the kind says tuning reads
it (lm: the tuning part of the validation data, never the part that scores the verdicts). A failed
or diverged trial counts as the worst value; a point whose trials all failed has no choice, and
its final trials are not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from actbench.core.record import Record
from actbench.core.trial import Trial
from actbench.suite import Suite


@dataclass(frozen=True)
class Candidate:
    """One tuning trial: which point, which values, which seed, at which rung."""

    group: int
    values: tuple[Any, ...]
    seed: int
    rung: int
    trial: Trial


@dataclass(frozen=True)
class Score:
    """How one value tuple did in one point at one rung: mean metric over ok seeds."""

    values: tuple[Any, ...]
    mean: float


@dataclass
class Decision:
    """What tuning chose for one point, and any tuned field whose choice is on the edge of its grid."""

    group: int
    values: tuple[Any, ...] | None
    edges: list[str]

    def describe(self, suite: Suite) -> str:
        names = list(suite.spec.tune.fields) if suite.spec.tune else []
        chosen = "no value succeeded: its final trials are not run" if self.values is None else \
            ", ".join(f"{k}={v}" for k, v in zip(names, self.values))
        return f"tuned {suite.label(self.group)}: {chosen}" + "".join(f"; warning: {e}" for e in self.edges)


@dataclass
class Tuning:
    """Where tuning stands: the candidates of every rung reached, the unsettled trials of the rung
    that is running (empty when tuning is done), and the decisions once it is."""

    candidates: list[Candidate]
    pending: list[Trial]
    stage: str
    decisions: dict[int, Decision]


def scores(candidates: list[Candidate], records: dict[str, Record], metric: str, goal: str) -> dict[int, list[Score]]:
    """Per point, every value tuple's score at the candidates' rung, best first; a value with a
    trial that did not succeed scores worst."""
    worst = math.inf if goal == "min" else -math.inf
    by: dict[tuple[int, tuple], list[float | None]] = {}
    for c in candidates:
        record = records.get(c.trial.id)
        by.setdefault((c.group, c.values), []).append(record.metric(metric) if record is not None else None)
    out: dict[int, list[Score]] = {}
    for (group, values), vals in by.items():
        ok = [v for v in vals if v is not None]
        mean = sum(ok) / len(ok) if len(ok) == len(vals) else worst
        out.setdefault(group, []).append(Score(values, mean))
    for group in out:
        out[group].sort(key=lambda s: s.mean if goal == "min" else -s.mean)
    return out


def survivors(eta: int, ranked: list[Score]) -> list[tuple[Any, ...]]:
    """The values of one point that go on to the next halving rung (the best 1/eta that succeeded)."""
    keep = max(1, math.ceil(len(ranked) / eta))
    return [s.values for s in ranked[:keep] if math.isfinite(s.mean)]


def on_edge(fields: dict[str, list[Any]], values: tuple[Any, ...]) -> list[str]:
    """Tuned fields whose chosen value is the smallest or largest tried (the optimum may lie beyond)."""
    edges = []
    for (key, tried), chosen in zip(fields.items(), values):
        try:
            ordered = sorted(tried)
        except TypeError:
            continue
        if len(ordered) > 2 and chosen in (ordered[0], ordered[-1]):
            edges.append(f"{key}={chosen} is at the {'low' if chosen == ordered[0] else 'high'} edge of {ordered}")
    return edges


def tune(suite: Suite, groups: list[int], fixed: dict[int, dict[str, Any]], records: dict[str, Record],
         settled: set[str]) -> Tuning:
    """Walk the rungs of tuning for `groups` (each with its `fixed` values, e.g. chosen ones): the
    first rung with an unsettled trial is pending; once every rung is settled, the decisions."""
    spec = suite.spec.tune
    assert spec is not None
    names = list(spec.fields)
    metric = suite.kind.tuning_metric(spec.metric)
    eta = spec.halving.eta if spec.halving else 1
    alive = {g: spec.grid() for g in groups}
    ranked: dict[int, list[Score]] = {}
    budgets = spec.rung_budgets()
    reached: list[Candidate] = []
    for rung, budget in enumerate(budgets):
        cands = [Candidate(g, v, s, rung, suite.trial(g, {**fixed.get(g, {}), **dict(zip(names, v))}, s, budget))
                 for g in groups for v in alive[g] for s in spec.seed_list]
        reached += cands
        pending = [c.trial for c in cands if c.trial.id not in settled]
        if pending:
            label = f"tune {', '.join(names)}" + (f" (halving rung {rung + 1}/{len(budgets)})" if len(budgets) > 1 else "")
            return Tuning(reached, pending, label, {})
        ranked = scores(cands, records, metric, spec.goal)
        alive = {g: survivors(eta, ranked.get(g, [])) for g in groups}
    decisions = {g: Decision(g, alive[g][0] if alive[g] else None, on_edge(spec.fields, alive[g][0]) if alive[g] else [])
                 for g in groups}
    return Tuning(reached, [], "", decisions)
