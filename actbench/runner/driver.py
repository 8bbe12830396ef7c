"""The driver: runs the trials it is handed on an executor, never more than the executor can run
at once, appends every attempt to the store, and shows progress. An attempt *lost* to its worker
or node dying (the executor marks it `lost`) is recorded as failed and submitted again, up to
`retries` times, so every attempt is counted. On Ctrl-C it cancels what runs and keeps what
finished; when results cannot be written or the cluster is lost it cancels what runs and raises
a one-line UserError, having kept every record already written. Which trials to run is the
planner's (`actbench.planner`); the driver knows nothing of stages or kinds beyond a trial's work.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from actbench.core.kinds import kind_spec
from actbench.core.record import Record
from actbench.core.text import MAX_LINE_CHARS, markup
from actbench.core.trial import Trial
from actbench.errors import UserError
from actbench.results.store import ResultStore
from actbench.runner.executor import ClusterLost, Executor
from actbench.runner.progress import Board
from actbench.runner.trial import backstop_s

PLACEMENT_WAIT_S = 60.0
"""How long a sweep waits for lost nodes to come back when no alive node can place its next trial."""


@dataclass
class SweepResult:
    """What a sweep did: records appended this run (every attempt), trials skipped as already done,
    trials left out by -k, and the distinct notes of its records."""

    records: list[Record] = field(default_factory=list)
    skipped: int = 0
    deselected: int = 0
    interrupted: bool = False
    notes: set[str] = field(default_factory=set)

    @property
    def final_records(self) -> list[Record]:
        """The last attempt of each trial run this time."""
        return list({r.trial_id: r for r in self.records}.values())

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 0 if all(r.ok for r in self.final_records) else 1


def label(trial: Trial, fields: list[str]) -> str:
    """A trial's values of `fields`, e.g. `activation=xielu seed=1` (its id when it has none)."""
    cfg = trial.config_dict()
    return " ".join(f"{k}={cfg[k]}" for k in fields if k in cfg) or trial.id


class Runner:
    """Runs batches of trials of one suite into `store` on `executor`, as one sweep (one run id)."""

    def __init__(self, suite_name: str, store: ResultStore, executor: Executor, board: Board, console: Console,
                 checkpoint_dir: str, label_fields: list[str], attempts: dict[str, int], where: str = ""):
        self.suite_name, self.store, self.executor, self.board, self.console = suite_name, store, executor, board, console
        self.checkpoint_dir, self.label_fields, self.where = checkpoint_dir, label_fields, where
        self.result = SweepResult()
        self.run_id = uuid.uuid4().hex[:8]
        self.attempts = attempts  # trial id -> attempts recorded before this sweep
        self.first = True

    def run(self, trials: list[Trial]) -> None:
        """Run `trials` (each once, plus retries of lost attempts) and record every attempt. On the
        sweep's first batch a trial that no alive node can place is refused before anything starts."""
        todo = deque(trials)
        if not todo:
            return
        executor, result = self.executor, self.result
        resources = todo[0].resources
        cap = executor.capacity(resources)
        if cap < 1 and self.first:  # later batches wait for lost nodes like any trial (PLACEMENT_WAIT_S)
            raise UserError(f"{self.where}: resources: {'the alive nodes cannot place' if resources.workers else 'no node can run'} "
                            f"a trial asking for {resources.asks()}{' (counted per node)' if resources.workers else ''}")
        self.first = False
        tries: dict[str, int] = {}
        inflight: dict[Any, tuple[Trial, float]] = {}
        work = {t.id: kind_spec(t.kind).work(t.config) for t in todo}
        self.board.add(list(work.values()))

        def finish(trial: Trial, out: dict[str, Any]) -> None:
            self.attempts[trial.id] = self.attempts.get(trial.id, 0) + 1
            tries[trial.id] = tries.get(trial.id, 0) + 1
            started, ended = out.get("started_at"), out.get("ended_at", time.time())
            record = Record(
                trial_id=trial.id, suite=self.suite_name, kind=trial.kind, config=trial.config_dict(), status=out["status"],
                metrics=out.get("metrics") or {}, rows=out.get("rows") or [], error=out.get("error"), note=out.get("note", ""),
                started_at=started, ended_at=ended, duration_s=round(ended - started, 3) if started and ended else None,
                attempt=self.attempts[trial.id], run_id=self.run_id, executor=executor.name, env=out.get("env") or {})
            try:
                self.store.append(record, series=out.get("series"), traceback=out.get("traceback"))
            except OSError as e:
                raise UserError(f"cannot write results to {self.store.path}: {e.strerror or e}; stopped: {len(result.records)} "
                                f"record(s) of this run are kept, the trial that just finished ({trial.id}) was not recorded and "
                                "runs again next time") from e
            result.records.append(record)
            retry = out.get("lost") and tries[trial.id] <= trial.resources.retries
            why = "" if record.ok else f" ({(record.error or {}).get('type') or record.note or ''})"
            if retry:
                todo.appendleft(trial)
                why += f"; its worker or node was lost, retrying: attempt {tries[trial.id] + 1} of {trial.resources.retries + 1}"
            self.board.finished(trial.id, record.ok, again=bool(retry), record=record)
            new_notes = [n for n in (record.note or "").split("; ") if n and n not in result.notes]
            result.notes.update(new_notes)
            if record.ok and new_notes:  # a note shared by many trials (an impl skipped here) is said once, with the first
                why += f" (note: {'; '.join(new_notes)})"
            mark = f"[{'green' if record.ok else 'red'}]{record.status:>8}[/]"
            self.console.print(f"{mark} {trial.kind} {markup(label(trial, self.label_fields))} {record.duration_s or 0:.1f}s"
                               f"{markup(why, limit=MAX_LINE_CHARS)}", highlight=False)

        def cancel_all() -> int:  # the sweep ends: the executor's shutdown follows
            n = len(inflight)
            for handle in list(inflight):
                executor.cancel(handle, ending=True)
            inflight.clear()
            return n

        unplaceable_since: float | None = None
        try:
            while todo or inflight:
                cap = executor.capacity(resources)
                if cap < 1:  # nodes were lost mid-sweep: nothing can run (a submitted trial only waits); wait for them, then stop
                    unplaceable_since = unplaceable_since or time.time()
                    if time.time() - unplaceable_since > PLACEMENT_WAIT_S:
                        raise UserError(f"the alive nodes can no longer place a trial asking for {resources.asks()} (waited "
                                        f"{PLACEMENT_WAIT_S:.0f}s); {len(result.records)} record(s) of this run are kept, "
                                        f"{len(todo) + len(inflight)} trial(s) without a record: run again when the cluster has the resources")
                else:
                    unplaceable_since = None
                while todo and len(inflight) < cap:
                    trial = todo.popleft()
                    self.board.submitted(trial.id, label(trial, self.label_fields), work[trial.id], trial.kind, trial.config_dict())
                    inflight[executor.submit(trial, self.checkpoint_dir)] = (trial, time.time())
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
                self.board.tick()
        except KeyboardInterrupt:
            result.interrupted = True
            n = cancel_all()
            self.console.print(f"interrupted: {len(result.records)} finished trial(s) kept, {n} running trial(s) cancelled")
        except ClusterLost as e:
            raise ClusterLost(f"{e}; {len(result.records)} record(s) of this run are kept, {len(inflight)} running trial(s) lost") from e
        except UserError as e:  # e.g. results cannot be written
            raise UserError(f"{e}; {cancel_all()} running trial(s) cancelled") from e
