"""The trial contract: a trial is a kind, a config (a strict pydantic model) and the resources it
asks for; its id hashes the kind and the fully resolved config. A kind's run function gets the
config and a `TrialContext` and returns a `TrialOutput`."""

from __future__ import annotations

import glob
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo, field_validator

from actbench import activations
from actbench.core.resources import Resources
from actbench.errors import UserError

MAX_NUMBER = 2**53
"""No number in a trial config is larger in magnitude (an integer beyond it is not exact in JSON)."""
NOISY_SPREAD = 0.2
"""A timing row whose (p80 - p20) / p50 exceeds this gets no speed verdict ("noisy"): the middle
60% of its repeats spans more than a fifth of its median (for normal noise, a coefficient of
variation above ~12%), so a ratio of medians would mean little. The kernel kind flags its rows
with it and the comparisons use the same bound."""


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
        try:
            found = glob.glob(value) if glob.has_magic(value) else Path(value).exists()
        except (OSError, ValueError) as e:  # a name too long for the filesystem, a NUL byte
            raise ValueError(f"{value[:200]!r} is not a usable path ({e.__class__.__name__})") from None
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
    series: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    note: str = ""
    env: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trial:
    """One unit of work: a kind, its resolved config, the resources it asks for, and its stable id."""

    id: str
    kind: str
    config: TrialConfig
    resources: Resources

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    @classmethod
    def of(cls, kind: str, config: TrialConfig, resources: Resources) -> "Trial":
        return cls(trial_id(kind, config.model_dump(mode="json")), kind, config, resources)


def trial_id(kind: str, config: dict[str, Any]) -> str:
    """Stable id: hash of the kind and the fully resolved config."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
