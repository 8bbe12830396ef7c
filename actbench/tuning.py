"""Per-candidate tuning: the `tune:` block of a suite.

    tune: {lr: [5e-4, 1e-3, 2e-3, 4e-3, 8e-3], seeds: 1, budget: 0.25, metric: val_bpb}

Every key other than the options below names a config field and lists the values to try (the
grid of all listed fields). Each *group* (one point of the suite's matrix x zip x ladder, i.e. a
final trial without its seed) gets its own best values:
- stage one runs every group at every value with the first `seeds` seeds (or the listed ones)
  on `budget` x the kind's budget field (lm: tokens);
- with `halving: {eta: 3, rungs: 3}` stage one is successive halving: rung r runs at
  budget x eta^(r - rungs + 1), and only the best 1/eta of the values of each group (by the mean
  metric) go on to the next rung. Each rung restarts from scratch at its own budget, because the
  learning-rate schedule depends on the total budget, so a shorter run is not a prefix of a
  longer one;
- the final stage runs the suite's seeds at each group's best values.
Every stage is ordinary trials (ids hash their configs), so a crash anywhere resumes and nothing
reruns; with budget 1 the tuning trial of the chosen value and a tuning seed *is* the final trial.
A failed or diverged trial counts as the worst value; a group whose trials all failed has no
choice, and its final trials are not run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

OPTIONS = ("seeds", "budget", "metric", "goal", "halving")


class Halving(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eta: int = Field(3, ge=2, le=10)
    rungs: int = Field(2, ge=2, le=6)


class TuneSpec(BaseModel):
    """The `tune:` block: tuned fields (lists of values) and the options in OPTIONS."""

    model_config = ConfigDict(extra="allow")
    seeds: int | list[int] = Field(1)
    budget: float = Field(1.0, gt=0, le=1)
    metric: str = "val_bpb"
    goal: Literal["min", "max"] = "min"
    halving: Halving | None = None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1 or isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("a positive count, or a list of distinct seeds")
        return v

    @model_validator(mode="after")
    def _grid(self) -> "TuneSpec":
        if not self.fields:
            raise ValueError("name at least one config field to tune, e.g. lr: [1e-3, 2e-3, 4e-3]")
        for key, values in self.fields.items():
            if not isinstance(values, list) or len(values) < 2 or len({repr(v) for v in values}) != len(values):
                raise ValueError(f"{key}: a list of at least two distinct values to try")
        return self

    @property
    def fields(self) -> dict[str, list[Any]]:
        return dict(self.model_extra or {})

    def grid(self) -> list[tuple[Any, ...]]:
        return list(itertools.product(*self.fields.values()))

    def tune_seeds(self, suite_seeds: list[int]) -> list[int]:
        return suite_seeds[: self.seeds] if isinstance(self.seeds, int) else list(self.seeds)

    def rung_budgets(self) -> list[float]:
        if self.halving is None:
            return [self.budget]
        h = self.halving
        return [self.budget * h.eta ** (r - h.rungs + 1) for r in range(h.rungs)]


@dataclass(frozen=True)
class Candidate:
    """One tuning trial: which group, which values, which seed, at which rung."""

    group: int
    values: tuple[Any, ...]
    seed: int
    rung: int
    trial: Any  # suite.Trial


@dataclass(frozen=True)
class Score:
    """How one value tuple did in one group at one rung: mean metric over ok seeds."""

    values: tuple[Any, ...]
    mean: float
    ok: int
    total: int


def scores(candidates: list[Candidate], metric_of: dict[str, float | None], goal: str) -> dict[int, list[Score]]:
    """Per group, every value tuple's score at the candidates' rung, best first. `metric_of` maps
    a recorded trial id to its metric (None when the trial did not succeed); values with a trial
    not yet recorded are left out; failed trials make their value the worst."""
    worst = math.inf if goal == "min" else -math.inf
    by: dict[tuple[int, tuple], list[float | None]] = {}
    pending: set[tuple[int, tuple]] = set()
    for c in candidates:
        key = (c.group, c.values)
        if c.trial.id not in metric_of:
            pending.add(key)
            continue
        by.setdefault(key, []).append(metric_of[c.trial.id])
    out: dict[int, list[Score]] = {}
    for (group, values), vals in by.items():
        if (group, values) in pending:
            continue
        ok = [v for v in vals if v is not None and math.isfinite(v)]
        mean = sum(ok) / len(ok) if len(ok) == len(vals) else worst
        out.setdefault(group, []).append(Score(values, mean, len(ok), len(vals)))
    for group in out:
        out[group].sort(key=lambda s: s.mean if goal == "min" else -s.mean)
    return out


def survivors(spec: TuneSpec, ranked: list[Score]) -> list[tuple[Any, ...]]:
    """The values of one group that go on to the next halving rung."""
    keep = max(1, math.ceil(len(ranked) / (spec.halving.eta if spec.halving else 1)))
    return [s.values for s in ranked[:keep] if math.isfinite(s.mean)]


def on_edge(spec: TuneSpec, values: tuple[Any, ...]) -> list[str]:
    """Tuned fields whose chosen value is the smallest or largest tried (the optimum may lie beyond)."""
    edges = []
    for (key, tried), chosen in zip(spec.fields.items(), values):
        try:
            ordered = sorted(tried)
        except TypeError:
            continue
        if len(ordered) > 2 and chosen in (ordered[0], ordered[-1]):
            edges.append(f"{key}={chosen} is at the {'low' if chosen == ordered[0] else 'high'} edge of {ordered}")
    return edges


@dataclass
class Decision:
    """What tuning chose for one group, and how every value scored at the last rung."""

    group: int
    values: tuple[Any, ...] | None
    ranked: list[Score]
    edges: list[str]


@dataclass
class Stage:
    """Trials to run before the next stage can be decided; the final stage carries the decisions."""

    name: str
    trials: list[Any]
    candidates: list[Candidate]
    decisions: list[Decision] = field(default_factory=list)


def stages(spec: TuneSpec, groups: int, suite_seeds: list[int],
           make_trial: Callable[[int, dict[str, Any], int, float], Any],
           metric_of: Callable[[], dict[str, float | None]]) -> Iterator[Stage]:
    """Yield the tuning rungs and then the final stage; before each next stage, `metric_of()` is
    read (the runner has run the yielded trials by then). `make_trial(group, overrides, seed,
    budget_fraction)` builds one trial."""
    names = list(spec.fields)
    alive = {g: spec.grid() for g in range(groups)}
    ranked: dict[int, list[Score]] = {}
    budgets = spec.rung_budgets()
    for rung, budget in enumerate(budgets):
        cands = [Candidate(g, v, s, rung, make_trial(g, dict(zip(names, v)), s, budget))
                 for g in range(groups) for v in alive[g] for s in spec.tune_seeds(suite_seeds)]
        label = f"tune {', '.join(names)}" + (f" (halving rung {rung + 1}/{len(budgets)})" if len(budgets) > 1 else "")
        yield Stage(label, [c.trial for c in cands], cands)
        ranked = scores(cands, metric_of(), spec.goal)
        alive = {g: survivors(spec, ranked.get(g, [])) for g in range(groups)}
    decisions = []
    for g in range(groups):
        best = alive[g][0] if alive[g] else None
        decisions.append(Decision(g, best, ranked.get(g, []), on_edge(spec, best) if best else []))
    final = [make_trial(d.group, dict(zip(names, d.values)), s, 1.0) for d in decisions if d.values is not None for s in suite_seeds]
    yield Stage("final", final, [], decisions)


def metric_values(records: list[dict[str, Any]], metric: str) -> dict[str, float | None]:
    """Trial id -> `metric` of its latest record (None when that record is not ok or lacks it)."""
    latest: dict[str, dict[str, Any]] = {}
    for r in records:
        latest[r["trial_id"]] = r
    out: dict[str, float | None] = {}
    for tid, r in latest.items():
        value = (r.get("metrics") or {}).get(metric) if r.get("status") == "ok" else None
        out[tid] = float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    return out
