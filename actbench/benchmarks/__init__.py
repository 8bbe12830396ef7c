"""Trial kinds: each kind is a config model plus a function `(config, context) -> TrialOutput`.

A kind registers itself with `register_kind`; the suite parser and the runners look kinds up by
name and know nothing else about them, so a new kind is a new module here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict

from actbench import activations
from actbench.errors import UserError

_BUILTIN_KINDS = ("kernel", "memory", "lm", "probe")


class TrialConfig(BaseModel):
    """Base of every kind's config: unknown keys are rejected; every trial has a seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    seed: int = 0


def _registered_activation(name: str) -> str:
    try:
        activations.spec(name)
    except UserError as e:
        raise ValueError(str(e)) from None
    return name


ActivationName = Annotated[str, AfterValidator(_registered_activation)]
"""A config field holding the name of a registered activation."""


@dataclass
class TrialContext:
    """What the runner gives a trial besides its config."""

    trial_id: str
    checkpoint_dir: Path | None = None


@dataclass
class TrialOutput:
    """What a trial returns. `rows` are long-format measurements; `series` are large per-step
    curves stored beside the results; `status` is `ok` unless the trial itself knows better
    (e.g. `diverged`)."""

    metrics: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[Any]] = field(default_factory=dict)
    status: str = "ok"
    note: str = ""


@dataclass(frozen=True)
class KindSpec:
    name: str
    config_model: type[TrialConfig]
    run: Callable[[Any, TrialContext], TrialOutput]


_KINDS: dict[str, KindSpec] = {}


def register_kind(name: str, config_model: type[TrialConfig]) -> Callable[[Callable], Callable]:
    """Decorator for a kind's run function."""

    def deco(fn: Callable[[Any, TrialContext], TrialOutput]) -> Callable:
        _KINDS[name] = KindSpec(name, config_model, fn)
        return fn

    return deco


def _load() -> None:
    for mod in _BUILTIN_KINDS:
        if mod not in _KINDS:
            importlib.import_module(f"actbench.benchmarks.{mod}")


def kind_names() -> list[str]:
    _load()
    return sorted(_KINDS)


def kind_spec(name: str) -> KindSpec:
    _load()
    if name not in _KINDS:
        raise UserError(f"unknown trial kind {name!r} (known: {', '.join(sorted(_KINDS))})")
    return _KINDS[name]


def pick_device(requested: str) -> torch.device:
    """`auto` is CUDA when a GPU is visible to this process, else CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but no GPU is visible to this trial")
    return torch.device(requested)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
