"""The inline executor: trials run one at a time in this process, for debugging (a debugger,
a profiler, prints) and quick CI runs.

Nothing isolates a trial from the driver: a trial that ends its process (os._exit, a segfault, the
OOM killer) ends the sweep there. Every record written before it is kept and the trial itself
runs again next time; the default Ray executor runs each trial in a worker process instead and
records such a death as a failed attempt. The timeout (SIGALRM, see `execute_trial`) interrupts
Python code between bytecodes; a trial stuck inside one long native call is interrupted when
that call returns.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from actbench.core.resources import Resources
from actbench.core.trial import Trial
from actbench.errors import UserError
from actbench.runner.progress import Sink
from actbench.runner.trial import execute_trial, trial_plugins


class InlineExecutor:
    name = "inline"

    def describe(self) -> str:
        return "inline executor: trials run one at a time in this process (debugging; no isolation)"

    def __init__(self) -> None:
        self._queue: deque[tuple[int, Trial, str | None]] = deque()
        self._next = 0
        self._sink: Sink | None = None

    def set_progress(self, sink: Sink | None) -> None:
        """Progress goes to `sink` directly, from inside the running trial."""
        self._sink = sink

    def capacity(self, resources: Resources) -> int:
        if resources.workers is not None:
            raise UserError("--executor inline runs each trial in this one process; a suite with resources.workers "
                            "(Ray Train) needs the ray executor")
        return 1

    def submit(self, trial: Trial, checkpoint_dir: str | None) -> int:
        self._next += 1
        self._queue.append((self._next, trial, checkpoint_dir))
        return self._next

    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        if not self._queue:
            return []
        handle, trial, ckpt = self._queue.popleft()
        r, sink = trial.resources, self._sink
        progress = (lambda values: sink(trial.id, values)) if sink is not None else None
        return [(handle, execute_trial(trial.kind, trial.config_dict(), trial.id, ckpt, r.timeout_s, r.cpus, trial_plugins(trial), progress))]

    def cancel(self, handle: Any, ending: bool = False) -> None:
        self._queue = deque(q for q in self._queue if q[0] != handle)

    def shutdown(self) -> None:
        self._queue.clear()
