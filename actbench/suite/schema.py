"""The top level of a suite file: its name and kind, the fields every trial gets (`defaults`) and
sweeps (`matrix`, crossed; `zip`, advancing together), its seeds, resources, and the blocks that
make it a staged experiment: `tune:` (each point at its own best values), `ladder:` (model sizes,
`actbench.lm.ladder`) and `decide:` (how a candidate is compared with the baseline, and when to
stop adding seeds).

Seeds: a count (`seeds: 3` is seeds 0, 1, 2), a list, or rounds (`seeds: {min: 3, max: 24,
round: 3}`: seeds 0..23, looked at after 3, 6, ..., 24 paired seeds; a candidate stops once its
comparison is decided). Tuning runs on seeds of its own (TUNE_SEED_BASE, TUNE_SEED_BASE + 1, ...
unless listed), never the final seeds, so selection and verdict do not share data orders or
initial weights.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from actbench.analysis.rounds import looks_in_rounds
from actbench.core.kinds import kind_names
from actbench.core.resources import Resources
from actbench.lm.ladder import LadderSpec

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
MAX_SEED = 2**32 - 1
TUNE_SEED_BASE = 1_000_000
"""Tuning seeds are TUNE_SEED_BASE, TUNE_SEED_BASE + 1, ... unless a suite lists its own."""
TUNE_OPTIONS = ("seeds", "budget", "metric", "goal", "halving")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _seed_list(v: Any) -> list[int]:
    if not isinstance(v, list) or not v or len(set(map(repr, v))) != len(v):
        raise ValueError("seeds must be a non-empty list without repeats")
    bad = next((x for x in v if not (_is_int(x) and 0 <= x <= MAX_SEED)), None)
    if bad is not None:
        raise ValueError(f"a seed is an integer from 0 to {MAX_SEED}, got {bad!r}"[:200])
    return v


class Halving(BaseModel):
    model_config = ConfigDict(extra="forbid")
    eta: int = Field(3, ge=2, le=10)
    rungs: int = Field(2, ge=2, le=6)


class TuneSpec(BaseModel):
    """The `tune:` block: tuned fields (lists of values) and the options in TUNE_OPTIONS.

        tune: {lr: [1e-3, 2e-3, 4e-3], seeds: 1, budget: 0.5, metric: val_bpb}   # + halving: {eta: 3, rungs: 2}
    """

    model_config = ConfigDict(extra="allow")
    seeds: int | list[int] = Field(1)
    budget: float = Field(1.0, gt=0, le=1)
    metric: str = Field("val_bpb", max_length=200)
    goal: Literal["min", "max"] = "min"
    halving: Halving | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if _is_int(v):
            if not 1 <= v <= 1000:
                raise ValueError("a count from 1 to 1000, or a list of distinct seeds")
            return v
        return _seed_list(v)

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

    @property
    def grid_size(self) -> int:
        """The number of value combinations `grid` lists, counted without listing them."""
        return math.prod(len(v) for v in self.fields.values())

    def grid(self) -> list[tuple[Any, ...]]:
        return list(itertools.product(*self.fields.values()))

    @property
    def seed_list(self) -> list[int]:
        return [TUNE_SEED_BASE + i for i in range(self.seeds)] if isinstance(self.seeds, int) else list(self.seeds)

    def rung_budgets(self) -> list[float]:
        if self.halving is None:
            return [self.budget]
        h = self.halving
        return [self.budget * h.eta ** (r - h.rungs + 1) for r in range(h.rungs)]


class SeedRounds(BaseModel):
    """`seeds: {min: 3, max: 24, round: 3}`: seeds 0 .. max-1, looked at after min, min + round, ... and max."""

    model_config = ConfigDict(extra="forbid", strict=True)
    min: int = Field(ge=2, le=10_000)
    max: int = Field(ge=2, le=10_000)
    round: int = Field(1, ge=1, le=10_000)

    @model_validator(mode="after")
    def _ordered(self) -> "SeedRounds":
        if self.max < self.min:
            raise ValueError(f"max {self.max} is below min {self.min}")
        return self

    @property
    def looks(self) -> tuple[int, ...]:
        return looks_in_rounds(self.min, self.max, self.round)


class DecideSpec(BaseModel):
    """The `decide:` block: each candidate (a value of `field`) against `baseline` on paired seeds,
    at family-wise error `alpha` over the candidates and looks; `margin` is the smallest
    difference in `metric` that matters (absolute, or with `relative` a fraction of the
    baseline's mean): an interval inside it is "equivalent". `spending` is the alpha-spending
    function of the looks; `sd`, a planning guess of the sd of the paired differences, lets
    `lm plan` state the expected number of seeds."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    margin: float | None = Field(None, gt=0, le=1e6)
    relative: bool = False
    baseline: str | None = Field(None, max_length=200)
    field: str = Field("activation", max_length=200)
    metric: str | None = Field(None, max_length=200)
    spending: Literal["pocock", "obrien_fleming"] = "pocock"
    sd: float | None = Field(None, gt=0, le=1e6)

    @model_validator(mode="after")
    def _relative_needs_margin(self) -> "DecideSpec":
        if self.relative and self.margin is None:
            raise ValueError("relative: true needs a margin (a fraction of the baseline's mean, e.g. 0.005)")
        if self.relative and self.margin is not None and self.margin >= 1:
            raise ValueError(f"a relative margin is a fraction of the baseline's mean, below 1; got {self.margin:g}")
        return self


class SuiteFile(BaseModel):
    """The top level of a suite YAML file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    name: str
    description: str = ""
    kind: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: SeedRounds | list[int] | int = 1
    resources: Resources = Field(default_factory=Resources)
    tune: TuneSpec | None = None
    ladder: LadderSpec | None = None
    decide: DecideSpec | None = None
    _gpus_auto: bool = PrivateAttr(False)

    @model_validator(mode="wrap")
    @classmethod
    def _auto_gpus(cls, data: Any, handler: Any) -> "SuiteFile":
        """`resources.gpus: auto` is validated as one whole GPU, until the loader sizes each trial's
        share from its memory (`actbench.suite.gpus`)."""
        res = data.get("resources") if isinstance(data, dict) else None
        auto = isinstance(res, dict) and res.get("gpus") == "auto"
        suite = handler({**data, "resources": {**res, "gpus": 1}} if auto else data)
        suite._gpus_auto = auto
        return suite

    @property
    def gpus_auto(self) -> bool:
        """Whether the suite asked `resources.gpus: auto` (its resources hold the share sized for it)."""
        return self._gpus_auto

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not NAME_PATTERN.fullmatch(v):
            raise ValueError(f"{v!r} is not a plain name: letters, digits, '_' and '-' (no '.', '/' or spaces), e.g. llm_tiny")
        return v

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in kind_names():
            raise ValueError(f"unknown trial kind {v!r} (known: {', '.join(kind_names())})")
        return v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if _is_int(v) and v >= 1:
            return v
        if isinstance(v, dict):
            return v
        if not isinstance(v, list):
            raise ValueError(f"seeds must be a positive count or a list of seeds, got {v!r}"[:200] + " (or rounds: {min: 3, max: 12, round: 3})")
        return _seed_list(v)

    @property
    def seed_list(self) -> list[int]:
        """Every seed a final trial may run with, in the order they are run."""
        if isinstance(self.seeds, SeedRounds):
            return list(range(self.seeds.max))
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    @property
    def n_seeds(self) -> int:
        return self.seeds.max if isinstance(self.seeds, SeedRounds) else self.seeds if isinstance(self.seeds, int) else len(self.seeds)

    def has_seed(self, seed: int) -> bool:
        """Whether a final trial may run with `seed` (without listing every seed)."""
        return seed in self.seeds if isinstance(self.seeds, list) else 0 <= seed < self.n_seeds

    @property
    def looks(self) -> tuple[int, ...]:
        """Paired seeds at each look of the decision: the rounds, or one look at all the seeds."""
        return self.seeds.looks if isinstance(self.seeds, SeedRounds) else (self.n_seeds,)

    @property
    def baseline(self) -> Any:
        """The value of decide.field every candidate is compared with: decide.baseline, else defaults.reference."""
        d = self.decide
        return d.baseline if d is not None and d.baseline is not None else self.defaults.get("reference")
