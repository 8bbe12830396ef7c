"""An inline executor that Ctrl-C interrupts after a number of trials (for tests of stopped runs)."""

from __future__ import annotations

from actbench.runner.local import InlineExecutor


class InterruptedAfter(InlineExecutor):
    """Ctrl-C arrives after `n` trials have been submitted."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    def submit(self, trial, checkpoint_dir):  # noqa: ANN001, ANN201
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().submit(trial, checkpoint_dir)
