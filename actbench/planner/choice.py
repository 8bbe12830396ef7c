"""Values a suite leaves `auto` that must be the same for every trial of a point (lm: the
implementation of the activation): decided once per point, before its trials, by a helper trial
of the kind's `choice`, whose record holds the value (its failure falls back to a safe value)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actbench.core.kinds import Choice, kind_spec
from actbench.core.record import Record
from actbench.core.trial import Trial
from actbench.suite import Suite


@dataclass(frozen=True)
class Chosen:
    """What a point runs with: `field` = `value`, decided by `trial` (None while it has no record)."""

    group: int
    field: str
    value: Any
    trial: Trial
    fallback: bool = False  # the helper trial failed: the kind's safe value

    def describe(self, suite: Suite) -> str:
        why = f" ({self.trial.kind} trial {self.trial.id} failed: the safe value)" if self.fallback else ""
        return f"chose {suite.label(self.group)}: {self.field}={self.value}{why}"


def helper_trials(suite: Suite, groups: list[int]) -> dict[int, tuple[Choice, Trial]]:
    """The helper trial that decides each point's `auto` value (points without one are left out).
    The point is taken at its full budget (with the first tuned values, which a choice never
    depends on): tuning and final trials of the point share the choice."""
    tune = suite.spec.tune
    first = dict(zip(tune.fields, tune.grid()[0])) if tune else {}
    out = {}
    for g in groups:
        choice = suite.kind.choice(suite.trial(g, first, suite.spec.seed_list[0]).config)
        if choice is not None:
            config = kind_spec(choice.kind).config_model.model_validate(choice.config)
            out[g] = (choice, Trial.of(choice.kind, config, suite.spec.resources.one_process()))
    return out


def decide(helpers: dict[int, tuple[Choice, Trial]], records: dict[str, Record]) -> dict[int, Chosen]:
    """The value each point's helper trial recorded (its kind's fallback when the trial failed)."""
    out = {}
    for g, (choice, trial) in helpers.items():
        record = records.get(trial.id)
        value = record.metrics.get(choice.field) if record is not None and record.ok else None
        out[g] = Chosen(g, choice.field, choice.fallback if value is None else value, trial, fallback=value is None)
    return out
