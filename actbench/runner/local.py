"""The inline executor: trials run one at a time in this process (for debugging and CI).

The timeout (SIGALRM, see `execute_trial`) interrupts Python code between bytecodes; a trial
stuck inside one long native call is interrupted when that call returns.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from actbench.runner import execute_trial
from actbench.suite import Resources, Trial


class InlineExecutor:
    name = "inline"

    def __init__(self) -> None:
        self._queue: deque[tuple[int, Trial, str | None]] = deque()
        self._next = 0

    def capacity(self, resources: Resources) -> int:
        return 1

    def submit(self, trial: Trial, checkpoint_dir: str | None) -> int:
        self._next += 1
        self._queue.append((self._next, trial, checkpoint_dir))
        return self._next

    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        if not self._queue:
            return []
        handle, trial, ckpt = self._queue.popleft()
        return [(handle, execute_trial(trial.kind, trial.config_dict(), trial.id, ckpt, trial.resources.timeout_s))]

    def cancel(self, handle: Any) -> None:
        self._queue = deque(q for q in self._queue if q[0] != handle)

    def shutdown(self) -> None:
        self._queue.clear()
