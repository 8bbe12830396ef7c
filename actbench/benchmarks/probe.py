"""The `probe` kind: checks a cluster and the runner itself, no activation involved.

It reports where it ran (host, Ray node, GPU ids), can sleep, and can fail on purpose
(`fail: raise | nan | hang | exit | oom`) so that failure handling is tested for real:
`exit` kills the worker process (the driver records the lost attempt and retries it); `hang` sleeps past any timeout.
`fail_marker`, when set, makes the failure happen only while that file does not exist yet
(the trial creates it before failing), i.e. the first attempt fails and a retry succeeds. It is a
plain file name inside the trial's own folder (`<checkpoints>/<trial id>/`), never a path.
`fail_seeds`, when given, makes the failure happen only on those seeds (`fail: nan, fail_seeds: [1, 4]`:
a candidate that diverges on seeds 1 and 4 and finishes the others), so a sequential comparison
with failed seeds runs for real.

It also reports a synthetic objective with a known optimum, for testing tuning and decisions
(`decide.metric: objective`): metric `objective` = (x - optimum)^2 + noise / sqrt(budget) * z, with
z a standard normal drawn from (seed, x), so more budget means less noise and the same trial always
gives the same value; `value` is 1.0. With `fail: nan` both are NaN (the trial is recorded as diverged).
"""

from __future__ import annotations

import os
import re
import socket
import time
from typing import Literal

from pydantic import Field, field_validator

from actbench.core.kinds import register_kind
from actbench.core.trial import TrialConfig, TrialContext, TrialOutput


class ProbeConfig(TrialConfig):
    sleep_s: float = Field(0.0, ge=0, le=86400)
    fail: Literal["none", "raise", "nan", "hang", "exit", "oom"] = "none"
    fail_marker: str | None = None
    fail_seeds: list[int] | None = Field(None, max_length=1000)
    tag: str = Field("", max_length=1000)
    x: float = Field(0.0, ge=-1e6, le=1e6)
    optimum: float = Field(0.0, ge=-1e6, le=1e6)
    noise: float = Field(0.0, ge=0, le=1e6)
    budget: float = Field(1.0, gt=0, le=1e6)

    @field_validator("fail_marker")
    @classmethod
    def _plain_file_name(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", v):
            raise ValueError(f"{v!r}: a plain file name (it lives in the trial's own folder), e.g. failed-once")
        return v


def _normal(seed: int, x: float) -> float:
    """A standard normal draw that depends only on (seed, x)."""
    import random

    return random.Random(f"{seed}:{x!r}").gauss(0.0, 1.0)


@register_kind("probe", ProbeConfig, budget_field="budget", metrics=lambda cfg: ("value", "objective", "pid", "t_start", "t_end"))
def run(cfg: ProbeConfig, ctx: TrialContext) -> TrialOutput:
    started = time.time()
    failing = cfg.fail != "none" and (cfg.fail_seeds is None or cfg.seed in cfg.fail_seeds)
    if failing and cfg.fail_marker:
        if ctx.checkpoint_dir is None:
            raise ValueError("fail_marker needs the trial's own folder (run it with a checkpoint folder)")
        ctx.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        marker = ctx.checkpoint_dir / cfg.fail_marker
        failing = not marker.exists()
        marker.touch()
    if failing and cfg.fail == "exit":
        time.sleep(cfg.sleep_s)
        os._exit(1)
    time.sleep(cfg.sleep_s)
    if failing and cfg.fail == "raise":
        raise ValueError(f"injected failure in probe {cfg.tag!r}")
    if failing and cfg.fail == "oom":
        import torch

        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 PiB (injected)")
    if failing and cfg.fail == "hang":
        time.sleep(10**6)
    gpu_ids = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    try:
        import ray

        if ray.is_initialized():
            gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    except ImportError:
        pass
    nan = failing and cfg.fail == "nan"
    return TrialOutput(
        metrics={
            "value": float("nan") if nan else 1.0,
            "objective": float("nan") if nan else (cfg.x - cfg.optimum) ** 2 + cfg.noise / cfg.budget**0.5 * _normal(cfg.seed, cfg.x),
            "host": socket.gethostname(), "pid": os.getpid(), "gpu_ids": gpu_ids,
            "t_start": started, "t_end": time.time(),
        }
    )
