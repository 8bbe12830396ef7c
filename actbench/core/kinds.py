"""Trial kinds: each kind is a config model plus a function `(config, context) -> TrialOutput`,
and what the rooms around it need to know about its trials, so that none of them names a kind's
fields: how much work a trial is (for the ETA), which progress values it streams, which config
fields name the candidate or do not change the result (for comparisons), its budget field (which
tuning scales), its main metric, and a config value to choose before its trials run (`choice`).

A kind registers itself with `register_kind`; the suite parser, the planner, the runner and the
reports look kinds up by name. A built-in kind's module is imported on first use, so a new kind is
a new module in `actbench.benchmarks`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from actbench.core.resources import MemoryNeed, Resources
from actbench.core.trial import TrialConfig, TrialContext, TrialOutput
from actbench.errors import UserError

BUILTIN_KINDS = ("kernel", "memory", "lm", "probe", "impl")


@dataclass(frozen=True)
class Column:
    """One progress value a kind's trials stream: the live board shows it under `header` (unless
    that is empty) formatted with `fmt`; TensorBoard gets it as the scalar `tag`."""

    key: str
    header: str
    fmt: str
    tag: str


@dataclass(frozen=True)
class Choice:
    """A config value that is `auto` in a suite and is decided once, before the trials that use it,
    by a helper trial (`kind`, `config`) whose record's metric `field` is the value; every trial of
    the same group then runs with it (with `fallback` when the helper trial fails)."""

    field: str
    kind: str
    config: dict[str, Any]
    fallback: Any


def _one(config: Any) -> float:
    return 1.0


def _no_choice(config: Any) -> Choice | None:
    return None


def _no_problem(config: Any) -> tuple[tuple[str, ...], str] | None:
    return None


@dataclass(frozen=True)
class KindSpec:
    """A trial kind. `budget_field` names the config field that sets how much work a trial does
    (lm: tokens), which tuning scales down for its cheaper trials; `distributed` kinds can run a
    trial on several Ray Train workers (`resources.workers`): `run` is then called on every
    worker, with torch.distributed set up, and rank 0's output is the trial's.

    `work(config)`: the trial's work in the units of its progress (`step`/`total_steps`), 1 for a
    kind that streams none; `columns`: the progress values the live board shows; `identity`:
    config fields that name the candidate (a comparison's rows differ in these); `no_effect`:
    config fields that do not change the result; `metric`: the main metric (lower is better), the
    default of a suite's `decide:` block; `tuning_metric(name)`: the record metric that tuning
    selects on when a suite names `name` (lm: the tuning part of the validation data);
    `choice(config)`: an `auto` value to decide before the trial runs, or None; `check(config)`:
    (field path, why) when a trial cannot run on its data, checked when a suite is loaded to run;
    `metrics(config)`: the numeric metrics a trial of that config records (a suite's tune.metric
    and decide.metric must be one of them; None: not known, not checked); `memory(config,
    resources)`: at least what one of its processes holds in memory (None: not estimated), checked
    against this machine's when a suite is loaded to run."""

    name: str
    config_model: type[TrialConfig]
    run: Callable[[Any, TrialContext], TrialOutput]
    budget_field: str | None = None
    distributed: bool = False
    work: Callable[[Any], float] = _one
    columns: tuple[Column, ...] = ()
    identity: tuple[str, ...] = ()
    no_effect: tuple[str, ...] = ()
    metric: str | None = None
    tuning_metric: Callable[[str], str] = str
    choice: Callable[[Any], Choice | None] = _no_choice
    check: Callable[[Any], tuple[tuple[str, ...], str] | None] = _no_problem
    metrics: Callable[[Any], tuple[str, ...]] | None = None
    memory: Callable[[Any, Resources], MemoryNeed | None] | None = None


_KINDS: dict[str, KindSpec] = {}


def register_kind(name: str, config_model: type[TrialConfig], **details: Any) -> Callable[[Callable], Callable]:
    """Decorator for a kind's run function; `details` are KindSpec's other fields."""

    def deco(fn: Callable[[Any, TrialContext], TrialOutput]) -> Callable:
        _KINDS[name] = KindSpec(name, config_model, fn, **details)
        return fn

    return deco


def kind_names() -> list[str]:
    return sorted({*BUILTIN_KINDS, *_KINDS})


def kind_spec(name: str) -> KindSpec:
    """The kind called `name`; a built-in kind's module is imported on first use."""
    if name not in _KINDS and name in BUILTIN_KINDS:
        importlib.import_module(f"actbench.benchmarks.{name}")
    if name not in _KINDS:
        raise UserError(f"unknown trial kind {name!r} (known: {', '.join(kind_names())})")
    return _KINDS[name]
