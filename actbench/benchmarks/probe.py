"""The `probe` kind: checks a cluster and the runner itself, no activation involved.

It reports where it ran (host, Ray node, GPU ids), can sleep, and can fail on purpose
(`fail: raise | nan | hang | exit | oom`) so that failure handling is tested for real:
`exit` kills the worker process, which Ray retries; `hang` sleeps past any timeout.
`fail_marker`, when set, makes the failure happen only while that file does not exist yet
(the trial creates it before failing), i.e. the first attempt fails and a retry succeeds.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from actbench.benchmarks import TrialConfig, TrialContext, TrialOutput, register_kind


class ProbeConfig(TrialConfig):
    sleep_s: float = Field(0.0, ge=0)
    fail: Literal["none", "raise", "nan", "hang", "exit", "oom"] = "none"
    fail_marker: str | None = None
    tag: str = ""


@register_kind("probe", ProbeConfig)
def run(cfg: ProbeConfig, ctx: TrialContext) -> TrialOutput:
    started = time.time()
    failing = cfg.fail != "none"
    if failing and cfg.fail_marker:
        marker = Path(cfg.fail_marker)
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
    return TrialOutput(
        metrics={
            "value": float("nan") if failing and cfg.fail == "nan" else 1.0,
            "host": socket.gethostname(), "pid": os.getpid(), "gpu_ids": gpu_ids,
            "t_start": started, "t_end": time.time(),
        }
    )
