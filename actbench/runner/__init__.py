"""Running a suite: the driver loop shared by every executor, and the per-trial wrapper.

`execute_trial` runs on the worker (in-process for `inline`, a Ray task otherwise): it imports
the plugin modules the trial's activations come from, sets torch's threads to what the trial's
`cpus` grant (max(1, floor(cpus)), on every trial, also on a reused worker), builds the kind's
config, runs it, and classifies the outcome (`ok`, `failed`, `oom`, `diverged`, `timeout`) into
a plain dict; it never raises. The timeout is enforced where the trial runs (SIGALRM, measured
from the trial's own start, so worker start-up does not count); a trial stuck inside native code
past `timeout_s` plus a grace period is force-cancelled by the driver.

`run_suite` is the driver: it holds the results folder's lock, submits no more trials than the
executor can run at once, appends every attempt to the store, and shows progress. An attempt
*lost* to its worker or node dying (the executor marks it `lost`) is recorded as failed and
submitted again, up to `retries` times, so every attempt is counted. On Ctrl-C it cancels what
runs and keeps what finished; when results cannot be written or the cluster is lost it cancels
what runs and raises a one-line UserError, having kept every record already written.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

from rich.console import Console
from rich.markup import escape

from actbench import tuning
from actbench.benchmarks import TrialTimeout, kind_spec
from actbench.errors import UserError
from actbench.results import OK, ResultStore, fingerprint
from actbench.suite import Resources, Suite, Trial, WorkerGroup

if TYPE_CHECKING:
    from actbench.runner.progress import Board, Sink
    from actbench.select import TrialFilter


PLACEMENT_WAIT_S = 60.0
"""How long a sweep waits for lost nodes to come back when no alive node can place its next trial."""


class ClusterLost(UserError):
    """The executor lost its cluster (raised by `Executor.poll`); finished records are kept."""


class WorkersLost(Exception):
    """A trial on several workers lost a worker or its node (the attempt is retried, see `run_suite`)."""


def is_oom(e: BaseException) -> bool:
    """Whether an error is running out of (GPU or host) memory."""
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate memory" in str(e))


@contextmanager
def _alarm(seconds: float | None):
    """Raise TrialTimeout in this (main) thread after `seconds`; a no-op off the main thread."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TrialTimeout(f"ran past timeout_s={seconds:g}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def backstop_s(timeout_s: float) -> float:
    """How long the driver waits before force-cancelling a trial that ignores its alarm."""
    return timeout_s + max(60.0, 0.25 * timeout_s)


def trial_threads(cpus: float) -> int:
    """The torch threads a trial granted `cpus` CPUs runs with."""
    return max(1, int(cpus))


def trial_plugins(trial: Trial) -> list[str]:
    """Plugin modules that registered the activations this trial names (to import where it runs)."""
    from actbench.activations.registry import plugin_modules

    return plugin_modules([v for v in trial.config_dict().values() if isinstance(v, str)])


def execute_trial(
    kind: str, config: dict[str, Any], trial_id: str, checkpoint_dir: str | None = None, timeout_s: float | None = None,
    cpus: float | None = None, plugins: list[str] | tuple[str, ...] = (), progress: Callable[[dict[str, Any]], None] | None = None,
    group: WorkerGroup | None = None,
) -> dict[str, Any]:
    """Run one trial where this process is; return its outcome as a plain dict (never raises).
    `cpus` sets torch's threads for this trial (restored afterwards); `plugins` are imported first;
    `progress` receives the trial's live progress, throttled (`progress.Throttle`). With a worker
    `group` the trial runs as a Ray Train job (`actbench.runner.train`) that this process waits
    for, and that enforces `timeout_s` itself (its rank 0 sends the progress)."""
    import numpy  # noqa: F401 - before torch, whose C init swallows any error importing numpy: a Ctrl-C landing there was lost
    import torch

    from actbench.activations import load_plugin
    from actbench.benchmarks import TrialContext, kind_spec
    from actbench.runner.progress import Throttle

    started = time.time()
    threads_before = torch.get_num_threads()
    if cpus is not None:
        torch.set_num_threads(trial_threads(cpus))
    env = dict(fingerprint())
    try:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_task_id():
            ctx = ray.get_runtime_context()
            env["ray_node_id"] = ctx.get_node_id()
            env["ray_gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except ImportError:
        pass
    out: dict[str, Any] = {"metrics": {}, "rows": [], "series": {}, "error": None, "traceback": None, "note": ""}
    try:
        for module in plugins:
            load_plugin(module)
        spec = kind_spec(kind)
        cfg = spec.config_model.model_validate(config)
        ckpt = Path(checkpoint_dir) / trial_id if checkpoint_dir else None
        ctx = TrialContext(trial_id=trial_id, checkpoint_dir=ckpt, progress=Throttle(progress) if progress else None, started_at=started)
        if group is None:
            with _alarm(timeout_s):
                result = spec.run(cfg, ctx)
        else:
            from actbench.runner.train import run_on_workers

            result = run_on_workers(spec, cfg, ctx, group, timeout_s, list(plugins))
        out.update(metrics=result.metrics, rows=result.rows, series=result.series, note=result.note)
        env.update(result.env)
        status = result.status
        bad = [k for k, v in result.metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if status == OK and bad:
            status, out["note"] = "diverged", f"non-finite metrics: {', '.join(bad)}"
    except TrialTimeout as e:
        status, out["error"] = "timeout", {"type": "TrialTimeout", "message": str(e)}
    except WorkersLost as e:
        status, out["lost"] = "failed", True
        out["error"] = {"type": "WorkersLost", "message": str(e).strip().splitlines()[0][:500]}
        out["traceback"] = str(e)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a record, the sweep goes on
        if isinstance(e, KeyboardInterrupt):
            raise
        status = "oom" if is_oom(e) else "failed"
        out["error"] = {"type": type(e).__name__, "message": str(e).strip().splitlines()[0][:500] if str(e).strip() else ""}
        out["traceback"] = traceback.format_exc()
    finally:
        torch.set_num_threads(threads_before)
    out.update(status=status, started_at=started, ended_at=time.time(), env=env)
    return out


class Executor(Protocol):
    """How trials get run: inline in this process, or as Ray tasks. `poll` returns outcomes as
    `execute_trial` makes them, with `lost: True` for an attempt lost to its worker or node
    dying (run again by the driver); it raises ClusterLost when the cluster is gone. After
    `set_progress(sink)`, trials submitted send their live progress to `sink(trial_id, values)`,
    called in the driver's thread (inline: from inside the trial; Ray: from `poll`)."""

    name: str

    def describe(self) -> str: ...
    def set_progress(self, sink: "Sink | None") -> None: ...
    def capacity(self, resources: Resources) -> int: ...
    def submit(self, trial: Trial, checkpoint_dir: str | None) -> Any: ...
    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]: ...
    def cancel(self, handle: Any, ending: bool = False) -> None: ...
    def shutdown(self) -> None: ...


@dataclass
class SweepResult:
    """What a sweep did: records appended this run (every attempt), trials skipped as already done,
    trials left out by -k, and the distinct notes of its records."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0
    deselected: int = 0
    interrupted: bool = False
    notes: set[str] = field(default_factory=set)

    @property
    def final_records(self) -> list[dict[str, Any]]:
        """The last attempt of each trial run this time."""
        return list({r["trial_id"]: r for r in self.records}.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if all(r["status"] == OK for r in self.final_records) else 1


def _label(trial: Trial, varying: list[str]) -> str:
    cfg = trial.config_dict()
    return " ".join(f"{k}={cfg[k]}" for k in varying if k in cfg) or trial.id


def varying_fields(suite: Suite) -> list[str]:
    """Config fields that differ between the suite's trials (to label them)."""
    spec = suite.spec
    keys = [*spec.matrix, *spec.zip]
    if spec.ladder is not None:
        keys += ["d_model", "n_layers", "tokens"]
    if spec.tune is not None:
        keys += list(spec.tune.fields)
        if len(spec.tune.rung_budgets()) > 1 or spec.tune.budget < 1:
            keys.append(kind_spec(spec.kind).budget_field or "")
    if len(spec.seed_list) > 1:
        keys.append("seed")
    return list(dict.fromkeys(k for k in keys if k))


def run_suite(
    suite: Suite,
    store: ResultStore,
    executor: Executor,
    *,
    rerun: bool = False,
    checkpoint_dir: str | None = None,
    console: Console | None = None,
    select: "TrialFilter | None" = None,
    tensorboard: Path | None = None,
    plain_every_s: float | None = None,
) -> SweepResult:
    """Run every trial of `suite` not already recorded as successful in `store` (whose lock it
    holds meanwhile), of those `select` matches. `checkpoint_dir` (default <store>/checkpoints)
    holds each trial's folder. Live progress goes to `console` (see `progress.Board`: plain lines
    every `plain_every_s` seconds where it is not a terminal); with `tensorboard`, each trial's
    streamed scalars are written as TensorBoard event files below that folder."""
    from actbench.runner.progress import PLAIN_EVERY_S, Board

    console = console or Console(stderr=True)
    if select is not None:
        select.check_keys(t.config_dict() for t in suite.trials)
    with store.lock() as note:
        if note:
            console.print(f"{store.root}: {note}")
        board = Board(suite.name, console, PLAIN_EVERY_S if plain_every_s is None else plain_every_s, tensorboard)
        executor.set_progress(board.report)
        try:
            with board:
                return _sweep(suite, store, executor, rerun, checkpoint_dir or str(store.root / "checkpoints"), console, board, select)
        finally:
            executor.set_progress(None)


def _sweep(suite: Suite, store: ResultStore, executor: Executor, rerun: bool, checkpoint_dir: str, console: Console, board: "Board",
           select: "TrialFilter | None") -> SweepResult:
    """Run the suite's stages in order (one stage unless it is tuned), each decided from the
    records of the stages before it."""
    result = SweepResult()
    if suite.raw is not None:
        store.save_suite(suite.name, suite.raw)
    tune = suite.spec.tune
    selected_groups: set[int] | None = None if select is None else set()
    for i, stage in enumerate(suite.stages(lambda: tuning.metric_values(store.records(), tune.metric if tune else ""))):
        trials = stage.trials
        if select is not None:
            trials = [t for t in trials if select.matches(t.config_dict(), t.id)]
            result.deselected += len(stage.trials) - len(trials)
            if stage.candidates:
                _check_whole_tuning_grids(stage, {t.id for t in trials}, store, suite, select, selected_groups)
        if tune is not None:
            _describe_stage(stage, suite, console, selected_groups)
        _run_stage(trials, suite, store, executor, rerun, checkpoint_dir, console, result, board, first=i == 0)
        if result.interrupted:
            break
    return result


def _check_whole_tuning_grids(stage: tuning.Stage, chosen: set[str], store: ResultStore, suite: Suite, select: "TrialFilter",
                              selected_groups: set[int]) -> None:
    """-k may select whole points of a tuned suite (e.g. one activation), not part of a point's
    tuning grid: tuning picks among every value, so a point of which -k leaves out tuning trials
    that have no record yet could only be decided on part of its grid. Refused before the stage
    runs; adds the points -k selects to `selected_groups`."""
    recorded = store.attempts()  # trial id -> attempts recorded
    groups = {c.group for c in stage.candidates if c.trial.id in chosen}
    missing = {c.group for c in stage.candidates if c.trial.id not in chosen and c.trial.id not in recorded}
    if not groups and missing:  # e.g. -k seed=2 where tuning runs on seed 0: the final trials would never be decided
        raise UserError(f"-k {select.expr!r} selects none of the tuning trials of {suite.path.name}, and {len(missing)} of its "
                        "points are not tuned yet: select whole points (e.g. -k activation=xielu) or run without -k first")
    partial = sorted(missing & groups)
    if partial:
        raise UserError(f"-k {select.expr!r} selects part of the tuning grid of {suite.labels[partial[0]]}"
                        f"{f' (and {len(partial) - 1} more)' if len(partial) > 1 else ''}: tuning chooses among every value; "
                        "select whole points (e.g. -k activation=xielu) or run without -k")
    selected_groups.update(groups)


def _describe_stage(stage: tuning.Stage, suite: Suite, console: Console, selected_groups: set[int] | None = None) -> None:
    """What a tuning stage is about to run; before the final stage, what tuning chose (for the
    points -k selected, when given)."""
    fields = list(suite.spec.tune.fields) if suite.spec.tune else []
    for d in stage.decisions:
        if selected_groups is not None and d.group not in selected_groups:
            continue
        chosen = "no value succeeded: its final trials are not run" if d.values is None else \
            ", ".join(f"{k}={v}" for k, v in zip(fields, d.values))
        console.print(f"tuned {suite.labels[d.group]}: {chosen}" + "".join(f"  [yellow]warning: {e}[/]" for e in d.edges), highlight=False)
    console.print(f"[bold]stage: {stage.name}[/] ({len(stage.trials)} trial(s))", highlight=False)


def trial_work(trial: Trial) -> float:
    """How much work a trial is, for the sweep's ETA: its optimizer steps where its config has
    them (lm), else 1."""
    steps = getattr(trial.config, "steps", None)
    return float(steps) if isinstance(steps, int) and steps > 0 else 1.0


def _run_stage(trials: list[Trial], suite: Suite, store: ResultStore, executor: Executor, rerun: bool, checkpoint_dir: str,
               console: Console, result: SweepResult, board: "Board", first: bool = True) -> None:
    """Run the trials of one stage not yet recorded ok; `first`: the sweep's first stage, where a
    trial that no alive node can place is refused before anything starts."""
    done_ids = set() if rerun else store.successful_ids()
    todo = deque(t for t in trials if t.id not in done_ids)
    skipped = len(trials) - len(todo)
    result.skipped += skipped
    if skipped:
        console.print(f"resume: {skipped} trial(s) already recorded ok in {store.root}, skipping (--rerun to force)")
    if not todo:
        return
    cap = executor.capacity(suite.spec.resources)
    if cap < 1 and first:  # later stages wait for lost nodes like any trial (PLACEMENT_WAIT_S)
        r = suite.spec.resources
        raise UserError(f"{suite.path}: resources: {'the alive nodes cannot place' if r.workers else 'no node can run'} "
                        f"a trial asking for {r.asks()}{' (counted per node)' if r.workers else ''}")
    attempts = store.attempts()
    tries: dict[str, int] = {}
    run_id = uuid.uuid4().hex[:8]
    varying = varying_fields(suite)
    inflight: dict[Any, tuple[Trial, float]] = {}
    board.add([trial_work(t) for t in todo])

    def finish(trial: Trial, out: dict[str, Any]) -> None:
        attempts[trial.id] = attempts.get(trial.id, 0) + 1
        tries[trial.id] = tries.get(trial.id, 0) + 1
        record = {
            "trial_id": trial.id, "suite": suite.name, "kind": trial.kind, "config": trial.config_dict(),
            "status": out["status"], "metrics": out.get("metrics") or {}, "rows": out.get("rows") or [],
            "error": out.get("error"), "note": out.get("note", ""), "started_at": out.get("started_at"),
            "ended_at": out.get("ended_at", time.time()), "attempt": attempts[trial.id], "run_id": run_id,
            "executor": executor.name, "env": out.get("env") or {},
        }
        if record["started_at"] and record["ended_at"]:
            record["duration_s"] = round(record["ended_at"] - record["started_at"], 3)
        try:
            store.append(record, series=out.get("series"), traceback=out.get("traceback"))
        except OSError as e:
            raise UserError(f"cannot write results to {store.path}: {e.strerror or e}; stopped: {len(result.records)} record(s) "
                            f"of this run are kept, the trial that just finished ({trial.id}) was not recorded and runs again "
                            "next time") from e
        result.records.append(record)
        ok = record["status"] == OK
        retry = out.get("lost") and tries[trial.id] <= trial.resources.retries
        why = "" if ok else f" ({(record['error'] or {}).get('type') or record['note'] or ''})"
        if retry:
            todo.appendleft(trial)
            why += f"; its worker or node was lost, retrying: attempt {tries[trial.id] + 1} of {trial.resources.retries + 1}"
        board.finished(trial.id, ok, again=bool(retry))
        new_notes = [n for n in (record["note"] or "").split("; ") if n and n not in result.notes]
        result.notes.update(new_notes)
        if ok and new_notes:  # a note shared by many trials (an impl skipped here) is said once, with the first
            why += f" (note: {'; '.join(new_notes)})"
        mark = f"[{'green' if ok else 'red'}]{record['status']:>8}[/]"
        console.print(f"{mark} {trial.kind} {_label(trial, varying)} {record.get('duration_s', 0):.1f}s{escape(why)}", highlight=False)

    def cancel_all() -> int:  # the sweep ends: the executor's shutdown follows
        n = len(inflight)
        for handle in list(inflight):
            executor.cancel(handle, ending=True)
        inflight.clear()
        return n

    unplaceable_since: float | None = None
    try:
        while todo or inflight:
            cap = executor.capacity(suite.spec.resources)
            if cap < 1:  # nodes were lost mid-sweep: nothing can run (a submitted trial only waits); wait for them, then stop
                unplaceable_since = unplaceable_since or time.time()
                if time.time() - unplaceable_since > PLACEMENT_WAIT_S:
                    r = suite.spec.resources
                    raise UserError(f"the alive nodes can no longer place a trial asking for {r.asks()} (waited "
                                    f"{PLACEMENT_WAIT_S:.0f}s); {len(result.records)} record(s) of this run are kept, "
                                    f"{len(todo) + len(inflight)} trial(s) without a record: run again when the cluster has the resources")
            else:
                unplaceable_since = None
            while todo and len(inflight) < cap:
                trial = todo.popleft()
                board.submitted(trial.id, _label(trial, varying), trial_work(trial))
                inflight[executor.submit(trial, checkpoint_dir)] = (trial, time.time())
            for handle, out in executor.poll(timeout=0.25):
                trial, _ = inflight.pop(handle)
                finish(trial, out)
            now = time.time()
            for handle, (trial, t0) in list(inflight.items()):
                if now - t0 > backstop_s(trial.resources.timeout_s):
                    executor.cancel(handle)
                    inflight.pop(handle)
                    msg = f"no result {now - t0:.0f}s after submission (timeout_s={trial.resources.timeout_s:g}); force-cancelled"
                    finish(trial, {"status": "timeout", "error": {"type": "TrialTimeout", "message": msg}, "started_at": t0})
            board.tick()
    except KeyboardInterrupt:
        result.interrupted = True
        n = cancel_all()
        console.print(f"interrupted: {len(result.records)} finished trial(s) kept, {n} running trial(s) cancelled")
    except ClusterLost as e:
        raise ClusterLost(f"{e}; {len(result.records)} record(s) of this run are kept, {len(inflight)} running trial(s) lost") from e
    except UserError as e:  # e.g. results cannot be written
        raise UserError(f"{e}; {cancel_all()} running trial(s) cancelled") from e


def make_executor(name: str, address: str | None = None, verbose: bool = False) -> Executor:
    """`inline` (in this process) or `ray` (embedded local Ray, or the cluster at `address`);
    `verbose` streams the workers' output to this terminal."""
    if name == "inline":
        if address:
            raise UserError("--address needs --executor ray")
        from actbench.runner.local import InlineExecutor

        return InlineExecutor()
    if name == "ray":
        from actbench.runner.ray import RayExecutor

        return RayExecutor(address=address, log_to_driver=verbose)
    raise UserError(f"--executor: unknown executor {name!r} (use ray or inline)")
