"""How a trial attempt can end besides a result: out of memory (told from the error), or lost
with its workers (a trial on several workers whose worker or node died; the driver runs it again)."""

from __future__ import annotations


class WorkersLost(Exception):
    """A trial on several workers lost a worker or its node (the attempt is retried by the driver)."""


def is_oom(e: BaseException) -> bool:
    """Whether an error is running out of (GPU or host) memory."""
    import torch

    if isinstance(e, torch.OutOfMemoryError):
        return True
    return isinstance(e, RuntimeError) and ("out of memory" in str(e).lower() or "can't allocate memory" in str(e))
