"""Trial kinds: each kind is a config model plus a function `(config, context) -> TrialOutput`.

A kind registers itself with `register_kind`; the suite parser and the runners look kinds up by
name and know nothing else about them, so a new kind is a new module here. A built-in kind's
module is imported when a suite of that kind is loaded (the lm kind's config is torch-free).
"""

from __future__ import annotations

import glob
import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

from actbench import activations
from actbench.errors import UserError

NOISY_SPREAD = 0.2
"""A kernel row whose (p80 - p20) / p50 exceeds this gets no speed verdict ("noisy"): the middle
60% of its repeats spans more than a fifth of its median (for normal noise, a coefficient of
variation above ~12%), so a ratio of medians would mean little. The same bound as the kernel
kind's own `noisy` flag, which the kernel kind sets with it."""

_BUILTIN_KINDS = ("kernel", "memory", "lm", "probe")
MAX_NUMBER = 2**53
"""No number in a trial config is larger in magnitude (an integer beyond it is not exact in JSON)."""


class TrialConfig(BaseModel):
    """Base of every kind's config: unknown keys are rejected; every trial has a seed. Types are
    strict (a boolean or a string is never a number) and numbers finite and within MAX_NUMBER;
    a kind bounds its own fields more tightly where a value decides what a trial allocates."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    seed: int = 0

    @field_validator("*", mode="after")
    @classmethod
    def _bounded(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) > MAX_NUMBER:
            shown = f"{v:.3g}" if isinstance(v, float) else f"{float(v):.3g}" if v.bit_length() < 1000 else "a huge integer"
            raise ValueError(f"{shown} is out of range (at most 2**53 in magnitude)")
        return v


def _registered_activation(name: str) -> str:
    try:
        activations.spec(name)
    except UserError as e:
        raise ValueError(str(e)) from None
    return name


ActivationName = Annotated[str, AfterValidator(_registered_activation)]
"""A config field holding the name of a registered activation."""


def _existing_path(value: str, info: ValidationInfo) -> str:
    if (info.context or {}).get("check_paths") and "://" not in value:
        found = glob.glob(value) if glob.has_magic(value) else Path(value).exists()
        if not found:
            raise ValueError(f"no file or folder matches {value!r} (a relative path is relative to the current folder)")
    return value


ExistingPath = Annotated[str, AfterValidator(_existing_path)]
"""A config field holding a local path (or glob) that a trial reads: when a suite is loaded for
running, it must exist (an fsspec URI such as s3://... is not checked)."""


class TrialTimeout(Exception):
    """A trial ran past its timeout (raised inside the trial)."""


@dataclass
class TrialContext:
    """What the runner gives a trial besides its config. `progress`, when set, receives live
    progress (a dict: step, total_steps, train_loss, val_bpb, tokens_per_s, ...); it may be
    called often and must be cheap (the runner's sink throttles what it forwards); for a trial
    on several workers it is sent to rank 0, so it must pickle (e.g. a Ray queue's put).

    On several workers (Ray Train, `resources.workers`) the kind's `run` is called on each
    worker with torch.distributed set up: `strategy` says how to split the model (ddp or fsdp),
    and the trial itself stops when `past_deadline()` (there is no alarm signal there; a trial
    of one process is interrupted by the runner's SIGALRM instead, and `timeout_s` is None)."""

    trial_id: str
    checkpoint_dir: Path | None = None
    progress: Callable[[dict[str, Any]], None] | None = None
    strategy: str = "ddp"
    timeout_s: float | None = None
    started_at: float = field(default_factory=time.time)

    def report(self, **values: Any) -> None:
        """Send live progress to the driver, if anything listens."""
        if self.progress is not None:
            self.progress(values)

    def past_deadline(self) -> bool:
        """Whether the trial has run past `timeout_s` (always False without one)."""
        return self.timeout_s is not None and time.time() - self.started_at > self.timeout_s


@dataclass
class TrialOutput:
    """What a trial returns. `rows` are long-format measurements; `series` are large per-step
    curves stored beside the results; `status` is `ok` unless the trial itself knows better
    (e.g. `diverged`); `env` adds to (and overrides) the record's environment fingerprint, for
    a trial whose work ran in other processes than the runner's (Ray Train workers)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[Any]] = field(default_factory=dict)
    status: str = "ok"
    note: str = ""
    env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KindSpec:
    """A trial kind. `budget_field` names the config field that sets how much work a trial does
    (lm: tokens), which tuning scales down for its cheaper trials; `distributed` kinds can run a
    trial on several Ray Train workers (`resources.workers`): `run` is then called on every
    worker, with torch.distributed set up, and rank 0's output is the trial's."""

    name: str
    config_model: type[TrialConfig]
    run: Callable[[Any, TrialContext], TrialOutput]
    budget_field: str | None = None
    distributed: bool = False


_KINDS: dict[str, KindSpec] = {}


def register_kind(name: str, config_model: type[TrialConfig], budget_field: str | None = None,
                  distributed: bool = False) -> Callable[[Callable], Callable]:
    """Decorator for a kind's run function."""

    def deco(fn: Callable[[Any, TrialContext], TrialOutput]) -> Callable:
        _KINDS[name] = KindSpec(name, config_model, fn, budget_field, distributed)
        return fn

    return deco


def kind_names() -> list[str]:
    return sorted({*_BUILTIN_KINDS, *_KINDS})


def kind_spec(name: str) -> KindSpec:
    """The kind called `name`; a built-in kind's module is imported on first use."""
    if name not in _KINDS and name in _BUILTIN_KINDS:
        importlib.import_module(f"actbench.benchmarks.{name}")
    if name not in _KINDS:
        raise UserError(f"unknown trial kind {name!r} (known: {', '.join(kind_names())})")
    return _KINDS[name]

