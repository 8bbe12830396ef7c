"""Suites: the YAML schema, expansion into trials (grid x zip x ladder x seeds), and stable trial ids.

A suite file names one trial kind; every trial is that kind's config model (a pydantic model
registered in `actbench.benchmarks`) built from `defaults`, one point of `matrix` (crossed),
one row of `zip` (lists advance together), one rung of `ladder` (lm only, `actbench.ladder`) and
one seed. The id of a trial is a hash of its fully resolved config, so the same trial in a later
run has the same id. A suite with `tune:` (`actbench.tuning`) runs in stages: tuning trials
first, then the final trials at each group's best values, decided from the recorded results.

A suite may come from anyone, so reading it is bounded and strict: UTF-8 only, at most
MAX_SUITE_BYTES; plain YAML data with no aliases (`*name` is refused, which rules out alias bombs
and recursive structures), no duplicate keys, at most MAX_DEPTH levels of nesting and no list or
mapping longer than the trial limit; numbers follow YAML 1.2 (`1e-3` is a float, not a string).
Values are validated strictly (a boolean or a string is never a number; numbers are finite and
bounded) and paths that a trial reads must exist. The trials are counted before any is built: a
suite of more than `max_trials` (MAX_TRIALS unless raised with `--max-trials`) is refused.

Every error names the file, the line where YAML gives one, and the field, e.g.
`suites/x.yaml:7: matrix.activation: unknown activation 'xielo' (did you mean 'xielu'?)`;
an error in a `--set` value names the flag instead: `--set size: Input should be a valid integer`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from actbench import tuning
from actbench.benchmarks import TrialConfig, kind_names, kind_spec
from actbench.errors import UserError
from actbench.ladder import RUNG_FIELDS, LadderSpec, rung_overrides

MAX_TRIALS = 100_000
"""Default limit on the trials of one suite (`actbench run --max-trials N` raises it)."""
MAX_SUITE_BYTES = 16 * 2**20
MAX_DEPTH = 32
MAX_SEED = 2**32 - 1
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_SET_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_FLOAT_EXP = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class WorkerGroup:
    """The Ray Train workers of one trial: how many, what each one holds, how they split the model."""

    workers: int
    cpus: float  # per worker
    gpus: float  # per worker
    strategy: str  # ddp (replicas) or fsdp (sharded parameters, gradients and optimizer state)

    def asks(self) -> str:
        return f"{self.workers} worker(s) of {self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) each"


class Resources(BaseModel):
    """What each trial asks the scheduler for: `gpus`/`cpus` for a trial of one process, or
    `workers` x (`gpus_per_worker`, `cpus_per_worker`) for a trial run by Ray Train on several
    workers (`strategy` ddp or fsdp); the two forms do not mix."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    gpus: float = Field(0, ge=0, le=1024)
    cpus: float = Field(1, gt=0, le=1024)
    workers: int | None = Field(None, ge=1, le=4096)
    gpus_per_worker: float | None = Field(None, ge=0, le=1024)
    cpus_per_worker: float | None = Field(None, gt=0, le=1024)
    strategy: Literal["ddp", "fsdp"] | None = None
    timeout_s: float = Field(3600, ge=0.1, le=30 * 86400)
    retries: int = Field(1, ge=0, le=20)

    @field_validator("gpus", "cpus", "gpus_per_worker", "cpus_per_worker")
    @classmethod
    def _ray_precision(cls, v: float | None) -> float | None:
        if v is not None and abs(v * 10_000 - round(v * 10_000)) > 1e-6:
            raise ValueError(f"{v!r} is not a multiple of 0.0001 (the precision of Ray's resources)")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> "Resources":
        if self.workers is None:
            given = [f for f in ("gpus_per_worker", "cpus_per_worker", "strategy") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{given[0]} needs workers (the number of Ray Train workers that run each trial)")
        else:
            given = [f for f in ("gpus", "cpus") if f in self.model_fields_set]
            if given:
                raise ValueError(f"{given[0]} is for a trial of one process; with workers, set {given[0]}_per_worker")
            if self.gpus_per_worker not in (None, 0, 1):
                raise ValueError(f"gpus_per_worker {self.gpus_per_worker:g}: each worker trains on one GPU of its own (NCCL needs "
                                 "that), so 0 or 1; for more GPUs per trial, raise workers")
        return self

    @property
    def worker_group(self) -> WorkerGroup | None:
        """The trial's Ray Train workers, or None for a trial of one process."""
        if self.workers is None:
            return None
        return WorkerGroup(self.workers, 1.0 if self.cpus_per_worker is None else self.cpus_per_worker,
                           self.gpus_per_worker or 0.0, self.strategy or "ddp")

    def asks(self) -> str:
        """What one trial asks for, in words."""
        group = self.worker_group
        return group.asks() if group else f"{self.cpus:g} CPU(s) and {self.gpus:g} GPU(s)"


class SuiteFile(BaseModel):
    """The top level of a suite YAML file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    name: str
    description: str = ""
    kind: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] | int = 1
    resources: Resources = Field(default_factory=Resources)
    tune: tuning.TuneSpec | None = None
    ladder: LadderSpec | None = None

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
        def is_int(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if is_int(v) and v >= 1:
            return v
        if not isinstance(v, list):
            raise ValueError(f"seeds must be a positive count or a list of seeds, got {v!r}"[:200])
        if not v or len(set(map(repr, v))) != len(v):
            raise ValueError("seeds must be a non-empty list without repeats")
        bad = next((x for x in v if not (is_int(x) and 0 <= x <= MAX_SEED)), None)
        if bad is not None:
            raise ValueError(f"a seed is an integer from 0 to {MAX_SEED}, got {bad!r}"[:200])
        return v

    @property
    def n_seeds(self) -> int:
        return self.seeds if isinstance(self.seeds, int) else len(self.seeds)

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
    """A parsed suite and its expanded trials: all of them, or for a tuned suite those of the
    first tuning stage (the later stages depend on results; see `stages`)."""

    path: Path
    spec: SuiteFile
    trials: list[Trial]
    build: Callable[[int, dict[str, Any], int, float], Trial] | None = None
    groups: int = 0
    labels: list[str] = field(default_factory=list)
    raw: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def stages(self, metric_of: Callable[[], dict[str, float | None]]) -> Iterator[tuning.Stage]:
        """The stages to run in order; `metric_of()` (recorded trial id -> the tuning metric, or
        None when it did not succeed) is read between stages, after the runner ran the last one."""
        if self.spec.tune is None or self.build is None:
            yield tuning.Stage("trials", self.trials, [])
            return
        yield from tuning.stages(self.spec.tune, self.groups, self.spec.seed_list, self.build, metric_of)

    def final_stage(self, metric_of: dict[str, float | None]) -> tuning.Stage | None:
        """The final stage as the recorded results decide it, or None while a tuning stage has
        trials without a record (read-only: for compare and report)."""
        for stage in self.stages(lambda: metric_of):
            if stage.name == "final" or self.spec.tune is None:
                return stage
            if any(t.id not in metric_of for t in stage.trials):
                return None
        return None


def trial_id(kind: str, config: dict[str, Any]) -> str:
    """Stable id: hash of the kind and the fully resolved config."""
    blob = json.dumps({"kind": kind, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class _Loader(_YamlBase):  # type: ignore[misc,valid-type]
    """yaml's safe loader (libyaml when present) with YAML 1.2 exponent floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (lines {seen[key]} and {line})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_EXP, list("-+0123456789"))


def _check_shape(text: str, where: str, limit: int, numbered: bool = True) -> None:
    """Stream the YAML events and refuse aliases, deep nesting and huge collections before
    anything is built, so a hostile file costs little time and memory."""
    stack: list[list[int]] = []  # [entries so far, entries allowed] per open collection
    values = 0
    for event in yaml.parse(text, Loader=_YamlBase):
        at = f"{where}:{event.start_mark.line + 1}" if numbered and event.start_mark else where
        if isinstance(event, yaml.AliasEvent):
            raise UserError(f"{at}: alias *{event.anchor} is not allowed in a suite (write the value out in full)")
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            continue
        values += 1
        if values > 10 * limit:
            raise UserError(f"{at}: more than {10 * limit:,} values in one suite (the trial limit is {limit:,})")
        if stack:
            stack[-1][0] += 1
            if stack[-1][0] > stack[-1][1]:
                raise UserError(f"{at}: a list or mapping with more than {limit:,} entries exceeds the trial limit ({limit:,})")
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([0, 2 * limit if isinstance(event, yaml.MappingStartEvent) else limit])
            if len(stack) > MAX_DEPTH:
                raise UserError(f"{at}: nested deeper than {MAX_DEPTH} levels")


def _yaml_error(where: str, e: yaml.YAMLError, numbered: bool) -> UserError:
    mark = getattr(e, "problem_mark", None)
    at = f"{where}:{mark.line + 1}" if mark and numbered else where
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return UserError(f"{at}: invalid YAML: {problem}")


def _load_yaml(text: str, where: str, limit: int, numbered: bool = True) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree (for line numbers); UserError otherwise.
    `where` starts each error; `numbered` adds the line (a file, not a --set value)."""
    try:
        _check_shape(text, where, limit, numbered)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            return (loader.construct_document(root) if root is not None else None), root
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise _yaml_error(where, e, numbered) from None
    except (ValueError, OverflowError) as e:  # a scalar yaml cannot convert, e.g. an integer of 5000 digits
        raise UserError(f"{where}: invalid value: {str(e).splitlines()[0]}") from None


def _read_text(path: Path) -> str:
    """The suite file as text: UTF-8 (a UTF-8 byte order mark is allowed) and not too large."""
    try:
        with open(path, "rb") as f:  # never more than the limit, even from a device such as /dev/zero
            raw = f.read(MAX_SUITE_BYTES + 1)
    except OSError as e:
        raise UserError(f"{path}: cannot read suite: {e.strerror or e}") from e
    if len(raw) > MAX_SUITE_BYTES:
        raise UserError(f"{path}: too large for a suite (more than {MAX_SUITE_BYTES:,} bytes)")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise UserError(f"{path}: not UTF-8 text (it looks like UTF-16 or a binary file); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None


def _line_index(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """Map each mapping key path (and list item path) of the node tree to its 1-based line."""
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

    if root is not None:
        walk(root, ())
    return lines


class _Located:
    """Formats errors as `file:line: field: message`, or `--set key: message` for a value that
    came from the command line (`flags` maps the location of each such value to its flag)."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int], flags: dict[tuple[str, ...], str] | None = None):
        self.path, self.lines, self.flags = path, lines, flags or {}

    def error(self, loc: tuple[str | int, ...], msg: str) -> UserError:
        keys = tuple(str(p) for p in loc)
        for prefix, flag in self.flags.items():
            if keys[: len(prefix)] == prefix or (len(keys) >= 2 and prefix[: len(keys)] == keys):
                return UserError(f"{flag}: {msg}")
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
    elif "input" in err and err["type"] not in ("missing", "value_error", "assertion_error") and not isinstance(err["input"], (dict, list)):
        msg = f"{msg}, got {err['input']!r}"[:300]
    return msg


def load_suite(
    path: str | Path, overrides: dict[str, Any] | None = None, *, max_trials: int = MAX_TRIALS, check_paths: bool = True
) -> Suite:
    """Parse, validate and expand a suite file. Raises UserError with file, line and field.

    `overrides` are `--set` values (see `parse_overrides`); `check_paths` checks that the files
    a trial reads exist (off for `lm plan`, which reads none)."""
    path = Path(path)
    data, root = _load_yaml(_read_text(path), str(path), max_trials)
    if not isinstance(data, dict):
        raise _Located(path, _line_index(root)).error((), f"a suite must be a mapping, got {type(data).__name__}")
    loc = _Located(path, _line_index(root), _apply_overrides(data, overrides or {}))
    try:
        spec = SuiteFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise loc.error(tuple(err["loc"]), _pydantic_msg(err)) from None
    return _expand(path, data, spec, loc, max_trials, check_paths)


def _expand(path: Path, data: dict[str, Any], spec: SuiteFile, loc: _Located, max_trials: int, check_paths: bool) -> Suite:
    kind = kind_spec(spec.kind)
    fields = set(kind.config_model.model_fields)
    unknown = f"unknown field for kind {spec.kind!r} (fields: {', '.join(sorted(fields))})"
    if not spec.matrix and not spec.zip:
        raise loc.error(("matrix",), "empty: list at least one field to sweep (matrix or zip)")
    for block in ("matrix", "zip"):
        for key, values in getattr(spec, block).items():
            if key not in fields:
                raise loc.error((block, key), unknown)
            if not values:
                raise loc.error((block, key), "empty list")
            if key == "seed":
                raise loc.error((block, key), "use the top-level `seeds` instead")
    for key in spec.defaults:
        if key not in fields:
            raise loc.error(("defaults", key), unknown)
    both = set(spec.matrix) & set(spec.zip)
    if both:
        raise loc.error(("zip", sorted(both)[0]), "appears in both matrix and zip")
    zip_lengths = {len(v) for v in spec.zip.values()}
    if len(zip_lengths) > 1:
        raise loc.error(("zip",), f"lists must have equal lengths, got {sorted(zip_lengths)}")
    ladder_rows = _ladder_rows(spec, fields, loc)
    _check_tune(spec, kind.budget_field, fields, loc)
    if spec.resources.workers is not None and not kind.distributed:
        raise loc.error(("resources", "workers"), f"kind {spec.kind!r} runs each trial in one process; workers (Ray Train) "
                        "are for kinds that train on several workers, such as lm")
    groups = math.prod([*(len(v) for v in spec.matrix.values()), *zip_lengths, len(ladder_rows)])
    tuned = 0 if spec.tune is None else (
        len(spec.tune.grid()) * len(spec.tune.tune_seeds(spec.seed_list)) * len(spec.tune.rung_budgets()))
    per_group = spec.n_seeds + tuned
    if groups * per_group > max_trials:
        shape = " x ".join([*(f"{k} {len(v)}" for k, v in spec.matrix.items()), *(f"zip {n}" for n in zip_lengths),
                            *([f"ladder {len(ladder_rows)}"] if spec.ladder else []),
                            f"(seeds {spec.n_seeds} + tuning {tuned})" if tuned else f"seeds {spec.n_seeds}"])
        raise loc.error(("matrix",) if spec.matrix else ("zip",), f"the suite expands to {groups * per_group:,} trials ({shape}); "
                        f"the limit is {max_trials:,} (raise it with --max-trials)")
    zip_rows = [{k: (v, ("zip", k, i)) for k, v in zip(spec.zip, row)} for i, row in enumerate(zip(*spec.zip.values()))] or [{}]
    grid = [{k: (v, ("matrix", k, i)) for k, (i, v) in zip(spec.matrix, combo)}
            for combo in itertools.product(*(list(enumerate(vs)) for vs in spec.matrix.values()))]
    points = [{**{k: (v, ("defaults", k)) for k, v in spec.defaults.items()}, **g, **z, **lad}
              for g in grid for z in zip_rows for lad in ladder_rows]
    context = {"check_paths": check_paths}

    def build(group: int, overrides: dict[str, Any], seed: int, budget: float) -> Trial:
        point = {**points[group], **{k: (v, ("tune", k)) for k, v in overrides.items()}, "seed": (seed, ("seeds",))}
        config = _validate_trial(kind.config_model, point, spec.kind, loc, context)
        if budget < 1:
            full = getattr(config, kind.budget_field)
            scaled = max(1, int(full * budget)) if isinstance(full, int) else full * budget
            point[kind.budget_field] = (scaled, ("tune", "budget"))
            config = _validate_trial(kind.config_model, point, spec.kind, loc, context)
        problem = getattr(config, "check_resources", lambda r: None)(spec.resources)
        if problem:
            raise loc.error(("resources", problem[0]), problem[1])
        return Trial(id=trial_id(spec.kind, config.model_dump(mode="json")), kind=spec.kind, config=config, resources=spec.resources)

    if spec.tune is None:
        trials = _unique([build(g, {}, seed, 1.0) for g in range(len(points)) for seed in spec.seed_list])
    else:
        first = next(tuning.stages(spec.tune, len(points), spec.seed_list, build, dict))
        trials = _unique(first.trials)
    labels = [" ".join(f"{k}={v}" for k, (v, where) in p.items() if where[0] in ("matrix", "zip", "ladder")) for p in points]
    return Suite(path=path, spec=spec, trials=trials, build=build, groups=len(points), labels=labels, raw=data)


def _unique(trials: list[Trial]) -> list[Trial]:
    """Trials in order, each id once (two points may resolve to the same config)."""
    return list({t.id: t for t in trials}.values())


def _ladder_rows(spec: SuiteFile, fields: set[str], loc: _Located) -> list[dict[str, tuple[Any, tuple]]]:
    """The fields every ladder rung sets (with where they come from), or one empty row."""
    if spec.ladder is None:
        return [{}]
    if not {"d_model", "n_layers", "n_heads", "tokens"} <= fields:
        raise loc.error(("ladder",), f"a ladder needs a kind with model sizes (lm), not {spec.kind!r}")
    for block in ("matrix", "zip"):
        clash = sorted(set(getattr(spec, block)) & set(RUNG_FIELDS))
        if clash:
            raise loc.error((block, clash[0]), "set by every ladder rung: sweep it in the ladder instead")
    try:
        rows = rung_overrides(spec.ladder, spec.defaults)
    except (ValueError, ValidationError) as e:
        msg = _pydantic_msg(e.errors()[0]) if isinstance(e, ValidationError) else str(e)
        raise loc.error(("ladder",), msg) from None
    return [{k: (v, ("ladder", "rungs" if spec.ladder.rungs else "widths", i)) for k, v in row.items()} for i, row in enumerate(rows)]


def _check_tune(spec: SuiteFile, budget_field: str | None, fields: set[str], loc: _Located) -> None:
    t = spec.tune
    if t is None:
        return
    for key in t.fields:
        if key not in fields or key == "seed":
            raise loc.error(("tune", key), f"not a field that can be tuned for kind {spec.kind!r} (fields: {', '.join(sorted(fields))})")
        if key in spec.matrix or key in spec.zip:
            raise loc.error(("tune", key), "also swept in matrix or zip: tune it or sweep it, not both")
    if (t.budget < 1 or t.halving) and budget_field is None:
        raise loc.error(("tune", "budget"), f"kind {spec.kind!r} has no budget to scale: use budget 1 without halving")
    if isinstance(t.seeds, list) and not set(t.seeds) <= set(spec.seed_list):
        raise loc.error(("tune", "seeds"), "tuning seeds must be among the suite's seeds")
    if isinstance(t.seeds, int) and t.seeds > spec.n_seeds:
        raise loc.error(("tune", "seeds"), f"{t.seeds} tuning seeds but the suite has {spec.n_seeds}")


def _validate_trial(model: type[TrialConfig], point: dict[str, tuple[Any, tuple]], kind: str, loc: _Located,
                    context: dict[str, Any]) -> TrialConfig:
    """Validate one trial's config; an error names where its field was set."""
    try:
        return model.model_validate({k: v for k, (v, _) in point.items()}, context=context)
    except ValidationError as e:
        err = e.errors()[0]
        key, rest = (str(err["loc"][0]), tuple(err["loc"][1:])) if err["loc"] else ("", ())
        where = point[key][1] if key in point else (("defaults", key) if key else ("defaults",))
        msg = _pydantic_msg(err)
        if err["type"] == "missing" and not rest:
            msg = f"required for kind {kind!r}: set it in defaults, matrix or zip"
        raise loc.error((*where, *rest), msg) from None


_FIXED = {"name": "use --out to choose the results folder", "kind": "it picks the schema of the whole suite",
          "description": "edit the file", "defaults": "set one field, e.g. --set steps=20",
          "matrix": "set one field, e.g. --set activation=xielu", "zip": "set one field, e.g. --set size=4096"}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs into a dict; values are parsed as YAML (the suite's rules)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not _SET_KEY.fullmatch(key):
            raise UserError(f"--set {item}: expected KEY=VALUE, e.g. --set steps=20 or --set resources.cpus=2")
        out[key], _ = _load_yaml(value, f"--set {key}", MAX_TRIALS, numbered=False)
    return out


def _apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """Write `--set` values into the raw suite: a field swept by matrix or zip becomes that one
    value (the axis is replaced), `seed` / `seeds` replace the seeds, `resources.X` one resource,
    any other key a default (dotted keys reach into nested configs: data.path). Returns where
    each value went, so that an error in it names its flag."""
    flags: dict[tuple[str, ...], str] = {}
    for key, value in overrides.items():
        parts = tuple(key.split("."))
        flag = f"--set {key}"
        if parts[0] in _FIXED:
            raise UserError(f"{flag}: the suite's {parts[0]} cannot be set from the command line ({_FIXED[parts[0]]})")
        if key in ("seed", "seeds"):
            data["seeds"] = [value] if key == "seed" else value
            flags[("seeds",)] = flag
            continue
        if parts[0] == "resources":
            if len(parts) != 2:
                raise UserError(f"{flag}: set one resource, e.g. --set resources.cpus=2")
            _container(data, ("resources",), flag)[parts[1]] = value
            flags[parts] = flag
            continue
        for block in ("matrix", "zip"):
            axes = data.get(block)
            if isinstance(axes, dict) and parts[0] in axes:
                if len(parts) > 1:
                    raise UserError(f"{flag}: {parts[0]} is swept in {block}; set the whole value, --set {parts[0]}=...")
                n = len(axes[parts[0]]) if block == "zip" and isinstance(axes[parts[0]], list) else 1
                axes[parts[0]] = [value] * n
                flags[(block, parts[0])] = flag
                break
        else:
            _container(data, ("defaults", *parts[:-1]), flag)[parts[-1]] = value
            flags[("defaults", *parts)] = flag
    return flags


def _container(data: dict[str, Any], path: tuple[str, ...], flag: str) -> dict[str, Any]:
    """The mapping at `path` inside the raw suite, created when absent."""
    node = data
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{flag}: {'.'.join(path)} is not a mapping in the suite")
    return node
