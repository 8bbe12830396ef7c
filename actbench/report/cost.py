"""What an lm suite costs in time: planned (`actbench lm plan`: every trial the suite can run, by
stage, costed by `actbench.lm.cost`, with the epochs each trial reads and the figures' sources)
and spent (the records of a run, by stage, beside what the plan's figures say for the same
trials: `spent_lines`, in compare and report)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

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


def _at_once(spans: list[tuple[float, float]]) -> int:
    """The most of these (start, end) spans that were open at one time."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return max(1, most)


def _spent(recs: "pd.DataFrame", plan: "Plan | None") -> str | None:
    tuning_ids = {c.trial.id for c in plan.tuning.candidates} if plan is not None and plan.tuning is not None else set()
    device = "cuda" if "metric.device" in recs and (recs["metric.device"] == "cuda").any() else "cpu"
    figures = cost.DEFAULTS[device]
    rows = sorted(recs.to_dict("records"), key=lambda row: _number(row.get("started_at")) or 0.0)
    spans = [(s, e) for s, e in ((_number(r.get("started_at")), _number(r.get("ended_at"))) for r in rows) if s and e and e >= s]
    workers = cost.Workers(_at_once(spans))
    packed = any(isinstance(e, dict) and (_number(e.get("gpu_share")) or 1.0) < 1 for e in recs.get("env", []))
    actual: dict[str, float] = {}
    cpu: dict[str, float] = {}
    work = [0.0, 0.0]  # CPU seconds of the lm trials that recorded them, and the plan's work for the same trials
    stages: dict[str, Stage] = {}
    configs = _Configs()
    for row in rows:
        took = _number(row.get("duration_s"))
        if took is None:
            continue
        name = "choose impl" if row["kind"] == "impl" else "tuning" if row["trial_id"] in tuning_ids else "final" if plan else "trials"
        if row["kind"] == "impl":
            planned_cost = cost.TrialCost(0, 0, 0, figures.impl_s.value, None)
            workers.trials += 1
        else:
            cfg = configs.get(row["config"])
            if cfg is None:
                continue
            env = row.get("env") if isinstance(row.get("env"), dict) else {}
            units = int(_number(row.get("metric.workers")) or 1) if device == "cuda" else int(_number(env.get("torch_threads")) or 1)
            planned_cost = cost.costs([cfg], figures, units, _val_tokens(row), workers)[0]
        actual[name] = actual.get(name, 0.0) + took
        cpu[name] = cpu.get(name, 0.0) + (_number(row.get("metric.cpu_s")) or 0.0)
        if _number(row.get("metric.cpu_s")) is not None:  # what cpu_s covers: the trial's work, not its process's start
            work[0] += _number(row.get("metric.cpu_s")) or 0.0
            work[1] += planned_cost.train_s + planned_cost.eval_s + planned_cost.compile_s
        stages.setdefault(name, Stage(name, packed=packed)).costs.append(planned_cost)
    if not actual:
        return None
    total, said = sum(actual.values()), sum(s.total for s in stages.values())
    walls = []
    for _, run in recs.groupby("run_id"):
        starts = [v for v in (_number(x) for x in run["started_at"]) if v]
        ends = [v for v in (_number(x) for x in run["ended_at"]) if v]
        if starts and ends:
            walls.append(max(ends) - min(starts))
    parts = "; ".join(f"{s} {len(stages[s].costs)} trial(s) {actual[s]:,.0f} s{f', CPU {cpu[s]:,.0f} s' if cpu[s] else ''} "
                      f"(plan {stages[s].total:,.0f} s)" for s in actual)
    wall = f", {clock(sum(walls))} of wall clock over {len(walls)} run(s)" if walls else ""
    plan_wall = figures.ray_s.value + sum(s.wall(workers.at_once) for s in stages.values())
    cpu_text = (f"; their work (training, evaluation, compiles; no process start) took {work[0]:,.0f} CPU seconds, the plan's "
                f"{work[1]:,.0f} s: {100 * (work[1] / work[0] - 1):+.0f}%" if work[0] > 0 and work[1] > 0 else "")
    return (f"the run cost {total:,.0f} trial-seconds ({parts}){wall}; the plan's figures (lm plan's, not this run's) say "
            f"{said:,.0f} s for these trials: {100 * (said / total - 1):+.0f}%, and {clock(plan_wall)} of wall clock at "
            f"{workers.at_once} at a time{cpu_text}")


class _Configs:
    """Records' configs as LMConfig (None where one is not valid), each distinct config but for its
    seed validated whole once: the others of it take their seed through the model's own check of that field."""

    def __init__(self) -> None:
        self._seen: dict[bytes, "LMConfig"] = {}

    def get(self, config: Any) -> "LMConfig | None":
        import msgspec
        from pydantic import ValidationError

        from actbench.lm.config import LMConfig

        try:
            key = msgspec.msgpack.encode([{k: v for k, v in config.items() if k != "seed"}, "seed" in config])  # NaN and null apart
        except (AttributeError, TypeError, ValueError, OverflowError):  # not an object of JSON values: validated alone
            key = None
        seen = self._seen.get(key) if key is not None else None
        try:
            if seen is None:
                found = LMConfig.model_validate(config)
                if key is not None:  # only a valid config stands for others: an invalid one may be invalid for its seed
                    self._seen[key] = found
                return found
            return LMConfig.__pydantic_validator__.validate_assignment(seen.model_copy(), "seed", config["seed"]) if "seed" in config else seen
        except (ValidationError, TypeError, ValueError):
            return None


def _val_tokens(row: dict[str, Any]) -> int | None:
    """The validation tokens the trial scored at the end (both parts, each one target short), from its record."""
    found = [_number(row.get(f"metric.{k}")) for k in ("val_tokens_scored", "tune_val_tokens_scored")]
    return int(sum(v for v in found if v is not None)) + 2 if all(v is not None for v in found) else None


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
