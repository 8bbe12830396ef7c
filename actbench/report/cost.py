"""What an lm suite costs in time: planned (`actbench lm plan`: every trial the suite can run, by
stage, costed by `actbench.lm.cost`, with the epochs each trial reads and the figures' sources)
and spent (the records of a run, by stage, beside what the plan's figures say for the same
trials: `spent_lines`, in compare and report)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

import msgspec
import numpy as np

from actbench.lm import cost
from actbench.suite import gpus

if TYPE_CHECKING:
    import pandas as pd

    from actbench.lm.config import LMConfig
    from actbench.planner.plan import Plan
    from actbench.suite import Suite

SHARDS_SUITE = "suites/llm_small_web.yaml"
"""The shipped suite that runs the single-GPU experiment on prepared shards of a web corpus."""


@dataclass
class Stage:
    """The trials of one stage and their seconds by part."""

    name: str
    costs: list[cost.TrialCost] = field(default_factory=list)
    packed: bool = False  # its trials share GPUs (a fraction of one each)

    def part(self, name: str) -> float:
        return sum(getattr(c, name) for c in self.costs)

    @property
    def total(self) -> float:
        return sum(c.total for c in self.costs)

    def wall(self, at_once: int) -> float:
        """Its wall clock with `at_once` trials running together: their seconds shared out, but
        no less than its longest trial nor, when they share one GPU, than the GPU's work (training
        and evaluation add up: packing is assumed to overlap only the fixed costs and compiles)."""
        if not self.costs:
            return 0.0
        gpu_work = self.part("train_s") + self.part("eval_s") if self.packed else 0.0
        return max(self.total / max(1, at_once), max(c.total for c in self.costs), gpu_work)


def _device(suite: "Suite") -> str:
    return "cuda" if suite.spec.resources.gpus_per_process > 0 else "cpu"


def gpus_per_trial(suite: "Suite") -> int:
    """The GPUs one trial trains on: its workers' (a fraction of one counts as one)."""
    group = suite.spec.resources.worker_group
    return max(1, int(group.workers * group.gpus)) if group is not None and group.gpus else 1


def at_once(suite: "Suite") -> tuple[int, str]:
    """How many trials run together, and why: on a CPU this machine's cores over the trial's CPUs
    (the embedded Ray), on a GPU as many as share one (1 / gpus)."""
    r = suite.spec.resources
    if r.worker_group is not None:
        return 1, f"one trial at a time on {r.worker_group.workers} workers"
    if r.gpus > 0:
        k = max(1, int(1 / r.gpus + 1e-9)) if r.gpus < 1 else 1
        return k, (f"{k} trial(s) sharing one GPU (gpus: {r.gpus:g}; their training and evaluation assumed to add up on it: packing "
                   "overlaps fixed costs and compiles, not GPU work)" if k > 1 else "one trial per GPU")
    cores = os.cpu_count() or 1
    k = max(1, int(cores // r.cpus))
    return k, f"{k} at a time on this machine's {cores} core(s) ({r.cpus:g} CPU(s) each)"


def train_tokens(cfg: "LMConfig") -> tuple[int | None, int | None, str | None]:
    """(training tokens, validation tokens) of the trial's corpus, or why they are not known (its files are missing)."""
    from actbench.errors import UserError
    from actbench.lm.corpus import data_problem, facts

    problem = data_problem(cfg.data)
    if problem is not None:
        return None, None, f"{'.'.join(problem[0])}: {problem[1]}"
    try:
        f = facts(cfg.data)
    except (UserError, OSError, ValueError) as e:
        return None, None, str(e)
    return f.train_tokens, f.val_tokens, None


@dataclass
class Planned:
    """A suite's plan: its stages (the final one at most and at least), the figures, the epochs."""

    stages: list[Stage]
    least_final: Stage | None
    figures: cost.Figures
    at_once: int
    how: str
    epochs: float | None
    data_note: str | None
    ray_s: float

    def wall(self, final: Stage | None = None) -> float:
        stages = [s for s in self.stages if final is None or s.name != final.name] + ([final] if final else [])
        return self.ray_s + sum(s.wall(self.at_once) for s in stages)


def planned(suite: "Suite", figures: cost.Figures | None = None) -> Planned:
    """Every trial the suite can run (`forecast`), by stage, costed: the helper trials that choose
    an implementation, tuning, and the final trials (to every comparison's last look, and, for a
    suite that decides its seeds, to its first)."""
    from actbench.core.trial import Trial
    from actbench.planner import choice
    from actbench.planner.plan import forecast

    device = _device(suite)
    figures = figures or cost.DEFAULTS[device]
    p = forecast(suite)
    k, how = at_once(suite)
    r = suite.spec.resources
    units = gpus_per_trial(suite) if device == "cuda" else max(1, int(r.worker_group.cpus if r.worker_group else r.cpus))
    first = next((t.config for t in p.planned if t.kind == "lm"), None)
    tokens, val, why = train_tokens(first) if first is not None else (None, None, None)
    packed = 0 < r.gpus < 1
    workers = cost.Workers(k)
    helpers = [t for t in p.planned if t.kind != "lm"]
    tuning_ids = {c.trial.id for c in p.tuning.candidates} if p.tuning is not None else set()
    stages = []
    if helpers:
        stages.append(Stage("choose impl", [cost.TrialCost(0, 0, 0, figures.impl_s.value, None) for _ in helpers], packed))
        workers.trials += len(helpers)
    chosen = {c.field for c, _ in choice.helper_trials(suite, list(range(suite.groups))).values()}

    def configs(trials: list[Trial]) -> list["LMConfig"]:  # a value chosen at run time is costed as still `auto`
        return [t.config.model_copy(update=dict.fromkeys(chosen, "auto")) for t in trials]

    tuning = [t for t in p.planned if t.id in tuning_ids]
    if tuning:
        stages.append(Stage("tuning", cost.costs(configs(tuning), figures, units, val, workers), packed))
    finals = [t for g in sorted(p.final) for t in p.final[g]]
    stages.append(Stage("final", cost.costs(configs(finals), figures, units, val, workers.copy()), packed))
    least = None
    if suite.spec.decide is not None and len(suite.spec.looks) > 1:
        first_look = [t for g in sorted(p.final) for t in p.final[g][: suite.spec.looks[0]]]
        least = Stage("final", cost.costs(configs(first_look), figures, units, val, workers.copy()), packed)
    final_tokens = max((t.config.steps * t.config.tokens_per_step for t in finals), default=0)
    epochs = final_tokens / tokens if tokens else None
    return Planned(stages, least, figures, k, how, epochs, why, figures.ray_s.value)


def clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _stage_text(stage: Stage) -> str:
    return f"{stage.name} {len(stage.costs)} trial(s) {stage.total:,.0f} s"


def spent_lines(trials: "pd.DataFrame", plans: dict[tuple[str, str], "Plan"]) -> list[str]:
    """Per lm suite and results folder: what its run cost (the sum of its trials' wall times, per
    stage, and its runs' wall clock) beside what the plan's figures (lm plan's, not this run's)
    say for the same trials run as they ran (as many at once, each with its threads), and by how
    much they differ; beside each stage's seconds, the CPU seconds its lm trials' processes spent
    (`cpu_s`: on a loaded machine wall time stretches with the load, CPU time much less). `plans`: the replayed plans of staged suites, which name their stages."""
    out = []
    if trials.empty or "kind" not in trials or not (trials["kind"] == "lm").any():
        return out
    used = [c for c in _SPENT_COLUMNS if c in trials]  # the columns `_spent` reads: a row dict of every column costs more than the rest
    costed = trials.loc[trials["kind"].isin(["lm", "impl"]), used]
    for (d, name), recs in costed.groupby([costed["results_dir"].astype(str), costed["suite"].astype(str)], sort=False):
        line = _spent(recs, plans.get((d, name))) if (recs["kind"] == "lm").any() else None
        if line:
            out.append(f"{name} ({d}): {line}")
    return out


_SPENT_COLUMNS = ("results_dir", "suite", "kind", "trial_id", "run_id", "config", "env", "started_at", "ended_at", "duration_s",
                  "metric.device", "metric.workers", "metric.cpu_s", "metric.val_tokens_scored", "metric.tune_val_tokens_scored")


def _number(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and 0 <= v < float("inf") else None


def _numbers(recs: "pd.DataFrame", column: str) -> np.ndarray:
    """A column's values as `_number` takes them, one float each (NaN: None), without a loop where its dtype is numeric."""
    import pandas as pd

    if column not in recs:
        return np.full(len(recs), np.nan)
    values = recs[column]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return np.array([np.nan if v is None else v for v in map(_number, values)], dtype=float)
    out = values.to_numpy(dtype=float, na_value=np.nan)
    return np.where((out >= 0) & (out < np.inf), out, np.nan)


def _at_once(starts: np.ndarray, ends: np.ndarray) -> int:
    """The most of these (start, end) spans that were open at one time (an end before a start at the same time)."""
    times, steps = np.concatenate([starts, ends]), np.concatenate([np.ones(len(starts), np.int64), -np.ones(len(ends), np.int64)])
    running = np.cumsum(steps[np.lexsort((steps, times))])
    return max(1, int(running.max(initial=0)))


def _spent(recs: "pd.DataFrame", plan: "Plan | None") -> str | None:
    tuning_ids = {c.trial.id for c in plan.tuning.candidates} if plan is not None and plan.tuning is not None else set()
    device = "cuda" if "metric.device" in recs and (recs["metric.device"] == "cuda").any() else "cpu"
    figures = cost.DEFAULTS[device]
    started, ended, took, cpu_s, workers_used = (_numbers(recs, c) for c in ("started_at", "ended_at", "duration_s", "metric.cpu_s",
                                                                           "metric.workers"))
    val = _numbers(recs, "metric.val_tokens_scored") + _numbers(recs, "metric.tune_val_tokens_scored")
    spans = (started > 0) & (ended > 0) & (ended >= started)  # NaN (no number) compares false
    workers = cost.Workers(_at_once(started[spans], ended[spans]))
    envs = recs["env"].tolist() if "env" in recs else [None] * len(recs)
    packed = any(isinstance(e, dict) and (_number(e.get("gpu_share")) or 1.0) < 1 for e in envs)
    actual: dict[str, float] = {}
    cpu: dict[str, float] = {}
    work = [0.0, 0.0]  # CPU seconds of the lm trials that recorded them, and the plan's work for the same trials
    stages: dict[str, Stage] = {}
    configs = _Configs()
    costing = cost.Costing(figures, workers)
    kinds, ids, cfgs = recs["kind"].tolist(), recs["trial_id"].tolist(), recs["config"].tolist()
    took_, cpu_, workers_, val_ = took.tolist(), cpu_s.tolist(), workers_used.tolist(), val.tolist()
    for i in np.argsort(np.where(np.isnan(started), 0.0, started), kind="stable").tolist():  # in start order
        if took_[i] != took_[i]:
            continue
        name = "choose impl" if kinds[i] == "impl" else "tuning" if ids[i] in tuning_ids else "final" if plan else "trials"
        if kinds[i] == "impl":
            planned_cost = cost.TrialCost(0, 0, 0, figures.impl_s.value, None)
            workers.trials += 1
        else:
            found = configs.of(cfgs[i])
            if found is None:
                continue
            env = envs[i] if isinstance(envs[i], dict) else {}
            units = int((workers_[i] if workers_[i] == workers_[i] else None) or 1) if device == "cuda" else int(_number(env.get("torch_threads")) or 1)
            val_tokens = int(val_[i]) + 2 if val_[i] == val_[i] else None  # both parts, each one target short
            planned_cost = costing.add(found[1], units, val_tokens, alike=found[0])
        actual[name] = actual.get(name, 0.0) + took_[i]
        has_cpu = cpu_[i] == cpu_[i]
        cpu[name] = cpu.get(name, 0.0) + (cpu_[i] if has_cpu else 0.0)
        if has_cpu:  # what cpu_s covers: the trial's work, not its process's start
            work[0] += cpu_[i]
            work[1] += planned_cost.train_s + planned_cost.eval_s + planned_cost.compile_s
        stages.setdefault(name, Stage(name, packed=packed)).costs.append(planned_cost)
    if not actual:
        return None
    total, said = sum(actual.values()), sum(s.total for s in stages.values())
    walls = _walls(recs, np.where(started > 0, started, np.nan), np.where(ended > 0, ended, np.nan))
    parts = "; ".join(f"{s} {len(stages[s].costs)} trial(s) {actual[s]:,.0f} s{f', CPU {cpu[s]:,.0f} s' if cpu[s] else ''} "
                      f"(plan {stages[s].total:,.0f} s)" for s in actual)
    wall = f", {clock(sum(walls))} of wall clock over {len(walls)} run(s)" if walls else ""
    plan_wall = figures.ray_s.value + sum(s.wall(workers.at_once) for s in stages.values())
    cpu_text = (f"; their work (training, evaluation, compiles; no process start) took {work[0]:,.0f} CPU seconds, the plan's "
                f"{work[1]:,.0f} s: {100 * (work[1] / work[0] - 1):+.0f}%" if work[0] > 0 and work[1] > 0 else "")
    return (f"the run cost {total:,.0f} trial-seconds ({parts}){wall}; the plan's figures (lm plan's, not this run's) say "
            f"{said:,.0f} s for these trials: {100 * (said / total - 1):+.0f}%, and {clock(plan_wall)} of wall clock at "
            f"{workers.at_once} at a time{cpu_text}")


def _walls(recs: "pd.DataFrame", starts: np.ndarray, ends: np.ndarray) -> list[float]:
    """Per run (by run id, in order; records without one in none), its last end less its first
    start where it has both (`starts`, `ends`: NaN where a record has none)."""
    import pandas as pd

    if "run_id" not in recs:
        return []
    run, _ = pd.factorize(recs["run_id"], sort=True)
    frame = pd.DataFrame({"run": run, "start": starts, "end": ends})
    spans = frame[run >= 0].groupby("run").agg(start=("start", "min"), end=("end", "max"))
    return [e - s for s, e in zip(spans["start"].tolist(), spans["end"].tolist()) if s == s and e == e]


class _Configs:
    """Records' configs validated as LMConfig, each distinct config but for its seed validated
    whole once, and each distinct seed once: a seed's validity is its own field's check."""

    def __init__(self) -> None:
        from pydantic import ValidationError

        from actbench.lm.config import LMConfig

        self._seen: dict[bytes, "LMConfig"] = {}
        self._seeds: dict[tuple[type, Any], bool] = {}
        self._model, self._invalid = LMConfig, (ValidationError, TypeError, ValueError)

    def of(self, config: Any) -> "tuple[bytes | None, LMConfig] | None":
        """(a key equal for configs equal but for their seed, a valid config equal to this one but
        perhaps for its seed), or None where this one is not valid."""
        try:
            key = msgspec.msgpack.encode([{k: v for k, v in config.items() if k != "seed"}, "seed" in config])  # NaN and null apart
        except (AttributeError, TypeError, ValueError, OverflowError):  # not an object of JSON values: validated alone
            key = None
        seen = self._seen.get(key) if key is not None else None
        if seen is None:
            try:
                found = self._model.model_validate(config)
            except self._invalid:
                return None
            if key is not None:  # only a valid config stands for others: an invalid one may be invalid for its seed
                self._seen[key] = found
            return key, found
        return (key, seen) if "seed" not in config or self._valid_seed(seen, config["seed"]) else None

    def _valid_seed(self, config: "LMConfig", seed: Any) -> bool:
        """Whether `config` takes `seed` (the model's own check of that field), once per distinct seed."""
        kept = (type(seed), seed)
        try:
            return self._seeds[kept]
        except TypeError:  # unhashable: not an int, checked as it is
            kept = None
        except KeyError:
            pass
        try:
            self._model.__pydantic_validator__.validate_assignment(config.model_copy(), "seed", seed)
            valid = True
        except self._invalid:
            valid = False
        if kept is not None:
            self._seeds[kept] = valid
        return valid


def plan_lines(suite: "Suite", p: Planned, memory: Iterable[float] = ()) -> list[str]:
    """The plan's words: epochs (a warning above one), what runs together, compiles, the figures."""
    lines = []
    if p.epochs is not None:
        text = f"each final trial reads {p.epochs:.2f} epochs of its training data"
        if p.epochs > 1.05:
            text = (f"WARNING: {text}: a verdict on data seen {p.epochs:.1f} times is partly one on memorisation; keep tokens to about "
                    f"one epoch, or run on prepared shards of a web corpus ({SHARDS_SUITE}, after `actbench data prepare`)")
        lines.append(text)
    elif p.data_note:
        lines.append(f"epochs unknown: {p.data_note}")
    levels = [c.compile for s in p.stages for c in s.costs if c.compile is not None]
    if levels:
        lines.append(f"compiles: {levels.count('cold')} cold (once per model shape in the suite), {levels.count('fresh')} fresh (the first "
                     "of a shape in each other worker process: the on-disk compile cache of the machine, or of the cluster on the shared "
                     f"checkpoint path, holds it), {levels.count('warm')} warm (in a process that compiled that shape before)")
    need = max(memory, default=0.0)
    r = suite.spec.resources
    if need and r.gpus > 0 and r.worker_group is None:
        fits = int(gpus.ASSUMED_GPU_BYTES // (gpus.CONTEXT_BYTES + gpus.ESTIMATE_MARGIN * need))
        lines.append(f"memory: each trial needs at least {need / 2**30:.1f} GiB (the suite loader's estimate, below its real peak): "
                     f"about {max(1, fits)} fit in an 80 GB GPU (with the margins of gpus: auto); gpus: {r.gpus:g} runs "
                     f"{max(1, int(1 / r.gpus + 1e-9)) if r.gpus < 1 else 1} per GPU")
    if suite.gpu_note:
        lines.append(suite.gpu_note)
    lines.append(f"runs {p.how}")
    lines.append("figures: " + "; ".join(p.figures.lines()))
    return lines
