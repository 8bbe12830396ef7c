"""Loading a suite: the file read safely (`actbench.suite.yamlsafe`), `--set` values written in
(`actbench.suite.overrides`), the top level validated (`actbench.suite.schema`), and the suite
expanded into its points: one point of `matrix` (crossed) x `zip` (advancing together) x `ladder`
rung each, on top of `defaults`. A trial is a point at some seed, with tuned values and a budget
(`Suite.trial`); its config is the kind's pydantic model, validated strictly, and its id hashes
the fully resolved config, so the same trial in a later run has the same id. Which trials run,
and when, is the planner's (`actbench.planner`).

The trials are counted before any is built: a suite of more than `max_trials` (MAX_TRIALS unless
raised with `--max-trials`) is refused. Every error names the file, the line where YAML gives one,
and the field, e.g. `suites/x.yaml:7: matrix.activation: unknown activation 'xielo' (did you mean
'xielu'?)`; an error in a `--set` value names the flag instead.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

from pydantic import ValidationError

from actbench.core.kinds import KindSpec, kind_spec
from actbench.core.record import Record
from actbench.core.trial import Trial, TrialConfig
from actbench.errors import UserError
from actbench.core.resources import Resources, memory_problem
from actbench.lm.ladder import RUNG_FIELDS, LadderError, rung_overrides, target_problem
from actbench.suite.gpus import auto_share
from actbench.suite.overrides import apply_overrides
from actbench.suite.schema import SeedRounds, SuiteFile
from actbench.suite.yamlsafe import Located, data_loc, line_index, load_yaml, pydantic_msg, read_text

MAX_TRIALS = 100_000
"""Default limit on the trials of one suite (`actbench run --max-trials N` raises it)."""

Point = dict[str, tuple[Any, tuple[Any, ...]]]
"""A point's config fields, each with where in the suite it was set (for error messages)."""


@dataclass(frozen=True)
class Suite:
    """A parsed suite: its spec, kind and points. `trial(point, overrides, seed, budget)` builds one
    trial; `trials` are the trials of its first stage as the suite states them (the tuning grid at
    the first budget, else every point at the seeds of the first look): what `--dry-run` lists."""

    path: Path
    spec: SuiteFile
    kind: KindSpec
    points: list[Point]
    raw: dict[str, Any]
    located: Located
    check_paths: bool = True
    force: bool = False
    gpu_note: str = ""  # how `resources.gpus: auto` was sized (`actbench.suite.gpus`)

    @property
    def name(self) -> str:
        return self.spec.name

    def checked(self, force: bool = False) -> "Suite":
        """This suite with the paths its trials read, their data and their memory checked (as for
        a run; `force`: not their memory); its first stage is validated now, each error located."""
        if self.check_paths and self.force == force:
            return self
        suite = replace(self, check_paths=True, force=force)
        suite.trials  # noqa: B018 - validates
        return suite

    def sized(self, records: Iterable[Record] = ()) -> "Suite":
        """This suite with its share of a GPU sized, when it asked `resources.gpus: auto`, from its
        first stage's trials (each shape its later stages run too) and the peaks `records`
        measured (`actbench.suite.gpus`); else itself."""
        if not self.spec.gpus_auto:
            return self
        try:
            share, note = auto_share(self.trials, self.kind, records)
        except ValueError as e:
            raise self.located.error(("resources", "gpus"), str(e)) from None
        spec = self.spec.model_copy(update={"resources": self.spec.resources.model_copy(update={"gpus": share})})
        return replace(self, spec=spec, gpu_note=note)

    @property
    def groups(self) -> int:
        return len(self.points)

    def value(self, group: int, key: str) -> Any:
        """The value a point sets for `key` (None when the suite leaves it to the kind's default)."""
        return self.points[group][key][0] if key in self.points[group] else None

    def label(self, group: int) -> str:
        """A point's swept values, e.g. `activation=xielu d_model=64`."""
        return " ".join(f"{k}={v}" for k, (v, where) in self.points[group].items() if where[0] in ("matrix", "zip", "ladder"))

    def trial(self, group: int, overrides: dict[str, Any], seed: int, budget: float = 1.0) -> Trial:
        """Point `group` with `overrides` (tuned or chosen values) at `seed`, on `budget` x the kind's budget field."""
        where = {k: ("tune", k) if self.spec.tune and k in self.spec.tune.fields else ("defaults", k) for k in overrides}
        point = {**self.points[group], **{k: (v, where[k]) for k, v in overrides.items()}, "seed": (seed, ("seeds",))}
        config = _validate_trial(self.kind, point, self.located, self.check_paths)
        if budget < 1:
            full = getattr(config, self.kind.budget_field)
            scaled = max(1, int(full * budget)) if isinstance(full, int) else full * budget
            point[self.kind.budget_field] = (scaled, ("tune", "budget"))
            config = _validate_trial(self.kind, point, self.located, self.check_paths)
        problem = _gpu_problem(config, self.spec.resources) or getattr(config, "check_resources", lambda r: None)(self.spec.resources)
        if problem:
            raise self.located.error(("resources", problem[0]), problem[1])
        if self.check_paths and (found := self.kind.check(config)):
            fields, why = found
            raise self.located.error(_where(point, fields), why)
        if self.check_paths and not self.force and self.kind.memory is not None:
            need = self.kind.memory(config, self.spec.resources)
            if need is not None and (why := memory_problem(need)):
                raise self.located.error(_where(point, (need.field,)), why)
        return Trial.of(self.spec.kind, config, self.spec.resources)

    @cached_property
    def trials(self) -> list[Trial]:
        tune = self.spec.tune
        if tune is None:
            return unique([self.trial(g, {}, s) for g in range(self.groups) for s in self.spec.seed_list[: self.spec.looks[0]]])
        budget = tune.rung_budgets()[0]
        return unique([self.trial(g, dict(zip(tune.fields, values)), s, budget)
                       for g in range(self.groups) for values in tune.grid() for s in tune.seed_list])

    @property
    def label_fields(self) -> list[str]:
        """Config fields that tell the suite's trials apart (to label them)."""
        spec = self.spec
        keys = [*spec.matrix, *spec.zip]
        if spec.ladder is not None:
            keys += [k for k in RUNG_FIELDS if k not in ("reference_d_ff", "d_ff", "n_heads")]
        if spec.tune is not None:
            keys += list(spec.tune.fields)
            if len(spec.tune.rung_budgets()) > 1 or spec.tune.budget < 1:
                keys.append(self.kind.budget_field or "")
        if spec.n_seeds > 1 or spec.tune is not None:
            keys.append("seed")
        return list(dict.fromkeys(k for k in keys if k))


def _gpu_problem(config: TrialConfig, resources: Resources) -> tuple[str, str] | None:
    """(resources field, why) when a trial asks for a GPU device and its resources hold no GPU."""
    if getattr(config, "device", None) != "cuda" or resources.gpus_per_process > 0:
        return None
    field = "gpus_per_worker" if resources.workers else "gpus"
    return field, (f"0 with device: cuda: the trial would hold no GPU (under Ray it sees none); give it one "
                   f"({field}: 1, or a share such as 0.25 or auto) or run it on the CPU (device: cpu)")


def _where(point: Point, fields: tuple[str, ...]) -> tuple[str, ...]:
    """The suite path of a config field of `point` (where its value was set, else the defaults)."""
    return (*point[fields[0]][1], *fields[1:]) if fields[0] in point else ("defaults", *fields)


def unique(trials: list[Trial]) -> list[Trial]:
    """Trials in order, each id once (two points may resolve to the same config)."""
    return list({t.id: t for t in trials}.values())


def load_suite(path: str | Path, overrides: dict[str, Any] | None = None, *, max_trials: int = MAX_TRIALS,
               check_paths: bool = True, force: bool = False) -> Suite:
    """Parse, validate and expand a suite file. Raises UserError with file, line and field.

    `overrides` are `--set` values (see `parse_overrides`); `check_paths` checks that the files
    a trial reads exist and hold data it can run on, and that one trial fits in this machine's
    memory unless `force` (off for `lm plan`, which reads none)."""
    path = Path(path)
    data, root = load_yaml(read_text(path), str(path), max_trials)
    if not isinstance(data, dict):
        raise Located(path, line_index(root)).error((), f"a suite must be a mapping, got {type(data).__name__}")
    loc = Located(path, line_index(root), apply_overrides(data, overrides or {}))
    try:
        spec = SuiteFile.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        raise loc.error(data_loc(data, err), pydantic_msg(err)) from None
    kind = kind_spec(spec.kind)
    points = _points(spec, kind, loc, max_trials)
    suite = Suite(path=path, spec=spec, kind=kind, points=points, raw=data, located=loc, check_paths=check_paths, force=force)
    _check_decide(suite)
    _check_target(suite)
    suite.trials  # noqa: B018 - every point of the first stage validates now, with its error located
    _check_metrics(suite)
    return suite.sized()


def _points(spec: SuiteFile, kind: KindSpec, loc: Located, max_trials: int) -> list[Point]:
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
    tuned = 0 if spec.tune is None else spec.tune.grid_size * len(spec.tune.seed_list) * len(spec.tune.rung_budgets())
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
    return [{**{k: (v, ("defaults", k)) for k, v in spec.defaults.items()}, **g, **z, **lad}
            for g in grid for z in zip_rows for lad in ladder_rows]


def _ladder_rows(spec: SuiteFile, fields: set[str], loc: Located) -> list[Point]:
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
    except LadderError as e:
        raise _ladder_error(loc, e) from None
    return [{k: (v, ("ladder", spec.ladder.block, i)) for k, v in row.items()} for i, row in enumerate(rows)]


def _check_tune(spec: SuiteFile, budget_field: str | None, fields: set[str], loc: Located) -> None:
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
    shared = [s for s in t.seed_list if spec.has_seed(s)]
    if shared:
        raise loc.error(("tune", "seeds"), f"tuning seeds must be disjoint from the final seeds (both have {shared[0]}): "
                        "selection and verdict must not share data orders or initial weights")


def _check_decide(suite: Suite) -> None:
    """The decide block names a swept field, a baseline among its values and a metric."""
    spec, d, loc = suite.spec, suite.spec.decide, suite.located
    if d is None:
        if isinstance(spec.seeds, SeedRounds):
            raise loc.error(("seeds",), "seeds in rounds need a decide: block (alpha, margin, ...) that says when a comparison is decided")
        return
    swept = {**spec.matrix, **spec.zip}
    if d.field not in swept:
        raise loc.error(("decide", "field"), f"{d.field!r} is not swept by matrix or zip: the candidates are its values")
    baseline = spec.baseline
    if baseline is None:
        raise loc.error(("decide", "baseline"), "required: the value of the candidates' field to compare every candidate with")
    if baseline not in swept[d.field]:
        raise loc.error(("decide", "baseline"), f"{baseline!r} is not among the values of {d.field} ({swept[d.field]})"[:300])
    if len(swept[d.field]) < 2:
        raise loc.error(("decide", "field"), f"{d.field} has one value: nothing to compare with the baseline")
    values = swept[d.field]
    repeats = [v for i, v in enumerate(values) if any(v == w for w in values[:i])]  # equal as Python sees it: 1, 1.0, true
    if repeats:
        raise loc.error(("zip" if d.field in spec.zip else "matrix", d.field),
                        f"{repeats[0]!r} appears twice: the candidates of decide.field must be distinct values")
    if d.metric is None and suite.kind.metric is None:
        raise loc.error(("decide", "metric"), f"required for kind {spec.kind!r} (the metric to compare; lower is better)")
    if spec.looks[0] < 2:
        raise loc.error(("seeds",), f"{spec.n_seeds} seed: a decide: block compares each candidate with the baseline on paired "
                        "seeds, at least 2 (rounds: {min: 2, ...}); without a decide: block any number of seeds runs")


def _check_target(suite: Suite) -> None:
    """A ladder's target lies beyond its largest rung (each point at its first tuned values)."""
    ladder, tune = suite.spec.ladder, suite.spec.tune
    if ladder is None or ladder.target is None:
        return
    first = {k: (v[0], ("tune", k)) for k, v in tune.fields.items()} if tune else {}
    configs = [_validate_trial(suite.kind, {**p, **first, "seed": (0, ("seeds",))}, suite.located, False) for p in suite.points]
    computes = [c.train_flops for c in configs if hasattr(c, "train_flops")]
    try:
        problem = target_problem(ladder, suite.spec.defaults, max(computes)) if computes else None
    except LadderError as e:
        problem = e
    if problem is not None:
        raise _ladder_error(suite.located, problem)


def _ladder_error(loc: Located, e: LadderError) -> UserError:
    return loc.error(e.where, pydantic_msg(e.error) if e.error else str(e))


def _check_metrics(suite: Suite) -> None:
    """tune.metric and decide.metric name a metric that every trial of the suite records."""
    listed, spec = suite.kind.metrics, suite.spec
    if listed is None or not suite.trials:
        return
    recorded = set.intersection(*(set(listed(t.config)) for t in suite.trials))
    asked = []
    if spec.tune is not None:
        tunable = sorted(n for n in recorded if suite.kind.tuning_metric(n) in recorded)
        asked.append((("tune", "metric"), spec.tune.metric, suite.kind.tuning_metric(spec.tune.metric), tunable))
    if spec.decide is not None and spec.decide.metric is not None:
        asked.append((("decide", "metric"), spec.decide.metric, spec.decide.metric, sorted(recorded)))
    for where, name, read, known in asked:
        if read not in recorded:
            from actbench.activations.registry import closest

            near = closest(name, known)
            hint = f"did you mean {', '.join(repr(n) for n in near)}? " if near else ""
            shown = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
            raise suite.located.error(where, f"{name!r} is not a metric that {spec.kind} trials record ({hint}known: {shown})"[:600])


def _validate_trial(kind: KindSpec, point: Point, loc: Located, check_paths: bool) -> TrialConfig:
    """Validate one trial's config; an error names where its field was set."""
    try:
        return kind.config_model.model_validate({k: v for k, (v, _) in point.items()}, context={"check_paths": check_paths})
    except ValidationError as e:
        err = e.errors()[0]
        key, rest = (str(err["loc"][0]), tuple(err["loc"][1:])) if err["loc"] else ("", ())
        where = point[key][1] if key in point else (("defaults", key) if key else ("defaults",))
        msg = pydantic_msg(err)
        if err["type"] == "missing" and not rest:
            msg = f"required for kind {kind.name!r}: set it in defaults, matrix or zip"
        raise loc.error((*where, *rest), msg) from None
