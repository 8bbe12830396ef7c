"""What the driver needs of an executor (inline in this process, or Ray tasks), and the error an
executor raises when its cluster is gone."""

from __future__ import annotations

from typing import Any, Protocol

from actbench.core.resources import Resources
from actbench.core.trial import Trial
from actbench.errors import UserError
from actbench.runner.progress import Sink


class ClusterLost(UserError):
    """The executor lost its cluster (raised by `Executor.poll`); finished records are kept."""


class Executor(Protocol):
    """How trials get run: inline in this process, or as Ray tasks. `poll` returns outcomes as
    `execute_trial` makes them, with `lost: True` for an attempt lost to its worker or node
    dying (run again by the driver); it raises ClusterLost when the cluster is gone. After
    `set_progress(sink)`, trials submitted send their live progress to `sink(trial_id, values)`,
    called in the driver's thread (inline: from inside the trial; Ray: from `poll`)."""

    name: str

    def describe(self) -> str: ...
    def set_progress(self, sink: Sink | None) -> None: ...
    def capacity(self, resources: Resources) -> int: ...
    def submit(self, trial: Trial, checkpoint_dir: str | None) -> Any: ...
    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]: ...
    def cancel(self, handle: Any, ending: bool = False) -> None: ...
    def shutdown(self) -> None: ...
