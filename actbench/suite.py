"""Suites: the YAML schema, expansion into trials (grid x zip x seeds), and stable trial ids.

A suite file names one trial kind; every trial is that kind's config model (a pydantic model
registered in `actbench.benchmarks`) built from `defaults`, one point of `matrix` (crossed),
one row of `zip` (lists advance together) and one seed. The id of a trial is a hash of its
fully resolved config, so the same trial in a later run has the same id.

Every error names the file, the line where YAML gives one, and the field, e.g.
`suites/x.yaml:7: matrix.activation: unknown activation 'xielo' (did you mean 'xielu'?)`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actbench.benchmarks import TrialConfig, kind_names, kind_spec
from actbench.errors import UserError


class Resources(BaseModel):
    """What each trial asks the scheduler for."""

    model_config = ConfigDict(extra="forbid")
    gpus: float = Field(0, ge=0)
    cpus: float = Field(1, gt=0)
    timeout_s: float = Field(3600, gt=0)
    retries: int = Field(1, ge=0, le=20)


class SuiteFile(BaseModel):
    """The top level of a suite YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    kind: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] | int = 1
    resources: Resources = Field(default_factory=Resources)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in kind_names():
            raise ValueError(f"unknown trial kind {v!r} (known: {', '.join(kind_names())})")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | int) -> list[int] | int:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be a positive count or a list of seeds")
        if isinstance(v, list) and (not v or len(set(v)) != len(v)):
            raise ValueError("seeds must be a non-empty list without repeats")
        return v

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


@dataclass(frozen=True)
class Trial:
    """One unit of work: a kind, its resolved config, and its stable id."""

    id: str
    kind: str
    config: TrialConfig
    resources: Resources

    def config_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


@dataclass(frozen=True)
class Suite:
    """A parsed suite and its expanded trials."""

    path: Path
    spec: SuiteFile
    trials: list[Trial]

    @property
    def name(self) -> str:
        return self.spec.name


def trial_id(kind: str, config: dict[str, Any]) -> str:
    """Stable id: hash of the kind and the fully resolved config."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _line_index(text: str) -> dict[tuple[str, ...], int]:
    """Map each mapping key path (and list item path) in the YAML text to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


class _Located:
    """Formats errors as `file:line: field: message`."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int]):
        self.path, self.lines = path, lines

    def error(self, loc: tuple[str | int, ...], msg: str) -> UserError:
        keys = tuple(str(p) for p in loc)
        line = None
        for n in range(len(keys), -1, -1):
            if keys[:n] in self.lines:
                line = self.lines[keys[:n]]
                break
        field = ".".join(k for k in keys if not k.isdigit()) or "(top level)"
        where = f"{self.path}:{line}" if line else str(self.path)
        return UserError(f"{where}: {field}: {msg}")


def _pydantic_msg(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return msg


def load_suite(path: str | Path, overrides: dict[str, Any] | None = None) -> Suite:
    """Parse, validate and expand a suite file. Raises UserError with file, line and field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"{path}: cannot read suite: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
        lines = _line_index(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{where}: invalid YAML: {problem}") from e
    loc = _Located(path, lines)
    if not isinstance(data, dict):
        raise loc.error((), f"a suite must be a mapping, got {type(data).__name__}")
    try:
        spec = SuiteFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise loc.error(tuple(err["loc"]), _pydantic_msg(err)) from None
    if overrides:
        spec.defaults.update(overrides)
    return Suite(path=path, spec=spec, trials=_expand(spec, loc))


def _expand(spec: SuiteFile, loc: _Located) -> list[Trial]:
    kind = kind_spec(spec.kind)
    fields = set(kind.config_model.model_fields)
    if not spec.matrix and not spec.zip:
        raise loc.error(("matrix",), "empty: list at least one field to sweep (matrix or zip)")
    for block in ("matrix", "zip"):
        for key, values in getattr(spec, block).items():
            if key not in fields:
                raise loc.error((block, key), f"unknown field for kind {spec.kind!r} (fields: {', '.join(sorted(fields))})")
            if not values:
                raise loc.error((block, key), "empty list")
            if key == "seed":
                raise loc.error((block, key), "use the top-level `seeds` instead")
    for key in spec.defaults:
        if key not in fields:
            raise loc.error(("defaults", key), f"unknown field for kind {spec.kind!r} (fields: {', '.join(sorted(fields))})")
    both = set(spec.matrix) & set(spec.zip)
    if both:
        raise loc.error(("zip", sorted(both)[0]), "appears in both matrix and zip")
    zip_lengths = {len(v) for v in spec.zip.values()}
    if len(zip_lengths) > 1:
        raise loc.error(("zip",), f"lists must have equal lengths, got {sorted(zip_lengths)}")
    zip_rows = [dict(zip(spec.zip, row)) for row in zip(*spec.zip.values())] or [{}]
    grid = [dict(zip(spec.matrix, combo)) for combo in itertools.product(*spec.matrix.values())]

    trials: list[Trial] = []
    seen: set[str] = set()
    for point in grid:
        for zrow in zip_rows:
            for seed in spec.seed_list:
                raw = {**spec.defaults, **point, **zrow, "seed": seed}
                config = _validate_trial(kind.config_model, raw, spec, point, zrow, loc)
                kind_check = getattr(config, "check_resources", None)
                if kind_check is not None:
                    problem = kind_check(spec.resources)
                    if problem:
                        raise loc.error(("resources", problem[0]), problem[1])
                cfg = config.model_dump(mode="json")
                tid = trial_id(spec.kind, cfg)
                if tid in seen:
                    continue
                seen.add(tid)
                trials.append(Trial(id=tid, kind=spec.kind, config=config, resources=spec.resources))
    return trials


def _validate_trial(model: type[TrialConfig], raw: dict[str, Any], spec: SuiteFile, point: dict, zrow: dict, loc: _Located) -> TrialConfig:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""
        if key in point:
            path: tuple[str | int, ...] = ("matrix", key, spec.matrix[key].index(point[key]))
        elif key in zrow:
            path = ("zip", key)
        elif key in spec.defaults:
            path = ("defaults", key)
        else:
            path = ("defaults", key) if key else ("defaults",)
        msg = _pydantic_msg(err)
        if err["type"] == "missing":
            msg = f"required for kind {spec.kind!r}: set it in defaults, matrix or zip"
        raise loc.error(path, msg) from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs (values parsed as YAML scalars) into a dict of defaults."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UserError(f"--set {item}: cannot parse value: {e}") from e
    return out
