"""What lm trials cost in time before they run (`actbench lm plan`, and the plan set beside a
run's cost by compare), each figure with its source: measured (where, and on what), read from
the records of a run, or assumed.

A trial's seconds are its fixed costs, its compile and its work:
- setup: the task's dispatch and the trial's start to its first step (corpus loaded, model
  built); the first trial of a worker process pays `worker_s` more (imports); once per run the
  embedded Ray starts and stops;
- compile (a trial that compiles its model, or runs a compiled or Triton activation), per model
  shape: cold the first time in a suite; `fresh` the first time in each other worker process (the
  on-disk compile cache holds it: this machine's, or on a cluster the one on the shared
  checkpoint path); warm after, in a process that compiled it before;
- training: its FLOPs (`flops.count`, 3x forward) at the device's rate; on a GPU an MFU that fits
  the model's size (`MFU_CURVE`, interpolated in log parameters: measured where a measurement
  exists, else assumed) of `PEAK_TFLOPS`, on a CPU `thread_flops` per torch thread;
- evaluation: the periodic slices and the final pass over the whole validation split, forward
  FLOPs at `eval_speed` times the training rate.
`calibrate` replaces the figures with what the records of a run measured (`actbench.lm.train`
records `setup_s`, `compile_s`, `final_eval_s`, tokens/s, MFU, and whether its process had run a
trial or compiled its shape before)."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from actbench.lm.flops import count

if TYPE_CHECKING:
    from actbench.core.record import Record
    from actbench.lm.config import LMConfig

PEAK_TFLOPS = 989.0
"""Dense bf16 peak of an H100 SXM, the GPU a plan is costed on."""
README_H200 = "measured: README 'Measured on an H200' (GPT-2 small, 124M, seq 1024, torch.compile)"
MFU_CURVE: tuple[tuple[float, float, str], ...] = (
    (1e6, 0.02, "assumed: launch-bound at this size"),
    (2e7, 0.15, "assumed"),
    (1.24e8, 0.353, README_H200),
    (1e9, 0.45, "assumed"),
)
"""(parameters, MFU, source), the MFU a compiled model of that size reaches on one GPU alone;
interpolated in log parameters between points and held flat beyond the ends."""
COMPILE_LEVELS = ("cold", "fresh", "warm")


@dataclass(frozen=True)
class Figure:
    value: float
    source: str

    def seconds(self) -> str:
        return f"{self.value:.3g} s ({self.source})"


@dataclass(frozen=True)
class Figures:
    """The figures trials are costed with on one device (`cpu` or `cuda`)."""

    device: str
    thread_flops: Figure  # CPU: training FLOP/s per torch thread (unused on a GPU)
    mfu: Figure | None  # GPU: a measured MFU for these trials' size (None: MFU_CURVE)
    eval_speed: Figure  # evaluation FLOP/s over training FLOP/s
    setup_s: Figure  # per trial, in a process that ran a trial before
    worker_s: Figure  # more for the first trial of a worker process
    dispatch_s: Figure
    compile_s: dict[str, Figure]  # by COMPILE_LEVELS
    impl_s: Figure  # one helper trial that chooses an implementation
    ray_s: Figure  # once per run

    def lines(self) -> list[str]:
        rate = (f"training {self.thread_flops.value / 1e9:.3g} GFLOP/s per CPU thread ({self.thread_flops.source})" if self.device == "cpu"
                else f"MFU {self.mfu.value:.1%} ({self.mfu.source})" if self.mfu else
                f"MFU by parameters: {', '.join(f'{p / 1e6:g}M {m:.1%} ({s})' for p, m, s in MFU_CURVE)} of {PEAK_TFLOPS:g} TFLOP/s")
        return [rate, f"evaluation at {self.eval_speed.value:.3g}x the training FLOP rate ({self.eval_speed.source})",
                "compile " + ", ".join(f"{level} {self.compile_s[level].seconds()}" for level in COMPILE_LEVELS),
                f"setup {self.setup_s.seconds()}, the first trial of a worker {self.worker_s.seconds()} more, dispatch "
                f"{self.dispatch_s.seconds()}, impl choice {self.impl_s.seconds()}, Ray start and stop {self.ray_s.seconds()}"]


BENCH = "measured: README (scripts/bench_ray_overhead.py, 2 cores)"
IDLE = "measured: llm_tiny run to its verdict (30 trials) on the idle 2-core machine (README)"
DEFAULTS = {
    "cpu": Figures("cpu", Figure(6.2e10, IDLE + ": 10,650-12,270 tokens/s on one core"), None,
                   Figure(1.06, IDLE), Figure(0.023, IDLE), Figure(0.025, IDLE + ", as its records time it"),
                   Figure(0.13, BENCH),
                   {"cold": Figure(2.2, IDLE), "fresh": Figure(1.3, IDLE), "warm": Figure(0.0074, IDLE)},
                   Figure(6.2, IDLE + ": one torch.compile of the activation, timed"), Figure(4.5, BENCH)),
    "cuda": Figures("cuda", Figure(5e10, "unused"), None, Figure(1.0, "assumed, unmeasured"), Figure(1.0, "assumed"),
                    Figure(8.0, "assumed: imports and the CUDA context"), Figure(0.13, BENCH),
                    {"cold": Figure(60.0, "assumed: tens of seconds on a GPU (issue 29), unmeasured"),
                     "fresh": Figure(15.0, "assumed, unmeasured"), "warm": Figure(5.0, "assumed, unmeasured")},
                    Figure(3.0, "assumed: the registry's choice, untimed"), Figure(4.5, BENCH)),
}


def curve_mfu(params: float) -> Figure:
    """The MFU of MFU_CURVE at `params` parameters, with the sources it comes from."""
    points = MFU_CURVE
    if params <= points[0][0]:
        return Figure(points[0][1], points[0][2])
    for p, m, s in points:
        if params == p or (p == points[-1][0] and params > p):
            return Figure(m, s)
    for (p0, m0, s0), (p1, m1, s1) in zip(points, points[1:]):
        if p0 < params < p1:
            w = math.log(params / p0) / math.log(p1 / p0)
            source = s0 if s0 == s1 else f"between {p0 / 1e6:g}M ({s0}) and {p1 / 1e6:g}M ({s1})"
            return Figure(m0 + w * (m1 - m0), source)
    raise AssertionError("unreachable")


def compiles(cfg: "LMConfig", device: str) -> bool:
    """Whether a trial compiles something: its model, or its activation (compiled or Triton; on a
    CPU `impl: auto` is costed as compiled, the choice a timing makes where compiling pays)."""
    return cfg.compile or cfg.impl in ("compile", "triton", "fused") or (cfg.impl == "auto" and device == "cpu")


SHAPE_FIELDS = ("activation", "impl", "d_model", "n_layers", "n_heads", "d_ff", "seq_len", "batch_size", "tied_embeddings", "norm",
                "compile", "data")
"""The config fields a compiled graph depends on: trials equal in these share their compiles."""


def shape(values: Mapping[str, Any]) -> tuple[str, ...]:
    """A trial's shape from its config as a record holds it (SHAPE_FIELDS, as JSON)."""
    return tuple(json.dumps(values.get(f), sort_keys=True, default=str) for f in SHAPE_FIELDS)


def shape_of(cfg: "LMConfig", impl: str | None = None) -> tuple[str, ...]:
    """The shape of a trial's config (with the implementation that runs, when given)."""
    return shape({**cfg.model_dump(mode="json", include=set(SHAPE_FIELDS)), **({"impl": impl} if impl else {})})


@dataclass(frozen=True)
class TrialCost:
    """One trial's seconds by part; `compile`: its COMPILE_LEVELS level, None when it compiles nothing."""

    train_s: float
    eval_s: float
    compile_s: float
    fixed_s: float
    compile: str | None

    @property
    def total(self) -> float:
        return self.train_s + self.eval_s + self.compile_s + self.fixed_s


def rate(cfg: "LMConfig", figures: Figures, units: int) -> float:
    """Training FLOP/s of one trial alone on its `units`: CPU threads, or GPUs (its workers')."""
    if figures.device == "cpu":
        return figures.thread_flops.value * max(1, units)
    mfu = figures.mfu or curve_mfu(count(cfg.to_model(cfg.expected_vocab_size), cfg.seq_len).params)
    return mfu.value * PEAK_TFLOPS * 1e12 * max(1, units)


def eval_tokens(cfg: "LMConfig", val_tokens: int | None) -> int:
    """Tokens a trial scores: its periodic slices and, at the end, the whole validation split
    (`val_tokens`, or the split's own size when known; else only the slices, twice)."""
    periodic = cfg.steps // cfg.eval_every + (cfg.steps % cfg.eval_every != 0)
    val = cfg.data.val_tokens or val_tokens
    test = None if val is None else val - int(val * cfg.data.tune_fraction)
    per_eval = cfg.eval_tokens if test is None else min(cfg.eval_tokens, test)
    final = 2 * cfg.eval_tokens if val is None or cfg.final_eval == "slice" else val
    return periodic * per_eval + final


def work(cfg: "LMConfig", figures: Figures, units: int, val_tokens: int | None) -> tuple[float, float]:
    """(training, evaluation) seconds of one trial on `units` (see `rate`)."""
    counts = count(cfg.to_model(cfg.expected_vocab_size), cfg.seq_len)
    flops_s = rate(cfg, figures, units)
    return (counts.train_flops_per_token * cfg.steps * cfg.tokens_per_step / flops_s,
            counts.flops_per_token * eval_tokens(cfg, val_tokens) / (flops_s * figures.eval_speed.value))


def trial_cost(cfg: "LMConfig", figures: Figures, units: int, compile: str | None, val_tokens: int | None,
               first_in_worker: bool = False) -> TrialCost:
    """The seconds of one trial on `units` (see `rate`; `compile`: its level, None when it compiles nothing)."""
    return _priced(work(cfg, figures, units, val_tokens), figures, compile, first_in_worker)


def _priced(seconds: tuple[float, float], figures: Figures, compile: str | None, first_in_worker: bool) -> TrialCost:
    fixed = figures.setup_s.value + figures.dispatch_s.value + (figures.worker_s.value if first_in_worker else 0.0)
    return TrialCost(train_s=seconds[0], eval_s=seconds[1], compile_s=0.0 if compile is None else figures.compile_s[compile].value,
                     fixed_s=fixed, compile=compile)


@dataclass
class Workers:
    """What the worker processes of a run have done so far: how many exist (`at_once`), how many
    trials started, and how often each shape was compiled (the first cold, then once fresh per
    other worker, then warm)."""

    at_once: int
    trials: int = 0
    compiled: dict[tuple[str, ...], int] | None = None

    def copy(self) -> "Workers":
        return Workers(self.at_once, self.trials, dict(self.compiled or {}))


class Costing:
    """Trials costed one by one in run order, given (and updating) what the run's `workers` did
    before. Trials told to be alike (`add`'s `alike`: their configs equal but for the seed, which
    costs nothing) share one computation of their shape and seconds: a run's records cost a few
    distinct configs, not one each."""

    def __init__(self, figures: Figures, workers: Workers) -> None:
        self.figures, self.workers = figures, workers
        if workers.compiled is None:
            workers.compiled = {}
        self._shapes: dict[Any, tuple[str, ...] | None] = {}
        self._work: dict[tuple[Any, int, int | None], tuple[float, float]] = {}
        self._made: dict[tuple[Any, int, int | None, str | None, bool], TrialCost] = {}

    def add(self, cfg: "LMConfig", units: int, val_tokens: int | None, alike: Any = None) -> TrialCost:
        """The next trial's cost on `units` (see `rate`); `alike`: a hashable key equal for trials
        whose configs are equal but for their seed (None: alike no other)."""
        w, compiled = self.workers, self.workers.compiled
        assert compiled is not None
        if alike is None or alike not in self._shapes:
            shape_key = shape_of(cfg) if compiles(cfg, self.figures.device) else None
            if alike is not None:
                self._shapes[alike] = shape_key
        else:
            shape_key = self._shapes[alike]
        level = None
        if shape_key is not None:
            n = compiled.get(shape_key, 0)
            level = "cold" if n == 0 else "fresh" if n < w.at_once else "warm"
            compiled[shape_key] = n + 1
        first = w.trials < w.at_once
        w.trials += 1
        if alike is None:
            return _priced(work(cfg, self.figures, units, val_tokens), self.figures, level, first)
        made = self._made.get((alike, units, val_tokens, level, first))
        if made is None:
            seconds = self._work.get((alike, units, val_tokens))
            if seconds is None:
                seconds = self._work[(alike, units, val_tokens)] = work(cfg, self.figures, units, val_tokens)
            made = self._made[(alike, units, val_tokens, level, first)] = _priced(seconds, self.figures, level, first)
        return made


def costs(configs: Iterable["LMConfig"], figures: Figures, units: int, val_tokens: int | None, workers: Workers) -> list[TrialCost]:
    """Each trial's cost in run order on `units` (see `rate`), given (and updating) what the run's `workers` did before."""
    run = Costing(figures, workers)
    return [run.add(cfg, units, val_tokens) for cfg in configs]


def _seconds(value: Any) -> float | None:
    """A record's value as a count of seconds (or of anything): a finite number >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def calibrate(figures: Figures, records: list["Record"], where: str) -> Figures:
    """`figures` with what the ok records of an earlier run on this device measured (lm trials:
    throughput per thread or MFU, evaluation speed, setup in a fresh and a used worker, compile
    cold (the first of each shape, in start order), fresh (a process's first of a shape) and
    warm; impl trials: their seconds); `where` names the run in each source."""
    lm = sorted((r for r in records if r.ok and r.kind == "lm" and r.metrics.get("device") == figures.device),
                key=lambda r: _seconds(r.started_at) or 0.0)

    def measured(values: list[float | None], low: float = 0.0, high: float = 1e6) -> Figure | None:
        """The median of the values within [low, high] (what a figure can be: a rate near 0 would cost forever)."""
        found = [v for v in values if v is not None and low <= v <= high]
        return Figure(statistics.median(found), f"measured: {where}, median of {len(found)} record(s)") if found else None

    def metric(r: "Record", name: str) -> float | None:
        return _seconds(r.metrics.get(name))

    out = figures
    if figures.device == "cpu":
        per_thread = []
        for r in lm:
            tps, fpt, threads = metric(r, "tokens_per_s"), metric(r, "flops_per_token"), _seconds(r.env.get("torch_threads"))
            per_thread.append(3 * fpt * tps / max(1.0, threads or 1.0) if tps and fpt else None)
        out = replace(out, thread_flops=measured(per_thread, 1e6, 1e15) or out.thread_flops)
    else:
        out = replace(out, mfu=measured([metric(r, "mfu") for r in lm], 1e-4, 1.0) or out.mfu)
    speed = []
    for r in lm:  # tokens scored / final_eval_s over 3 x tokens/s: forward FLOP/s over training FLOP/s
        scored, tps, took = metric(r, "val_tokens_scored"), metric(r, "tokens_per_s"), metric(r, "final_eval_s")
        speed.append((scored + (metric(r, "tune_val_tokens_scored") or 0.0)) / (3 * tps * took) if scored and tps and took else None)
    out = replace(out, eval_speed=measured(speed, 1e-3, 1e3) or out.eval_speed)
    used = measured([metric(r, "setup_s") for r in lm if (metric(r, "process_trial") or 0) > 1])
    first = measured([metric(r, "setup_s") for r in lm if metric(r, "process_trial") == 1])
    out = replace(out, setup_s=used or out.setup_s)
    if first is not None:
        out = replace(out, worker_s=Figure(max(0.0, first.value - out.setup_s.value), first.source + ", less the setup"))
    levels: dict[str, list[float | None]] = {level: [] for level in COMPILE_LEVELS}
    seen: set[tuple[str, ...]] = set()
    for r in lm:
        c = metric(r, "compile_s")
        if c is None:
            continue
        key = shape(r.config)
        levels["warm" if r.metrics.get("shape_warm") is True else "fresh" if key in seen else "cold"].append(c)
        seen.add(key)
    out = replace(out, compile_s={level: measured(levels[level]) or out.compile_s[level] for level in COMPILE_LEVELS})
    impl = [_seconds(r.duration_s) for r in records if r.ok and r.kind == "impl"]
    return replace(out, impl_s=measured(impl) or out.impl_s)
