"""What the trials of one run share beyond their own resources: GPUs held in fractions (who
held which GPU when: `DeviceBook`) and, on a cluster, the compile cache on the checkpoint path
(`compile_cache_env`)."""

from __future__ import annotations

import os

import ray

MAX_SHARED_IDS = 32
"""The most co-runners' trial ids a record lists (`env.shared_with`); `env.shared_gpu` counts them all."""


@ray.remote(num_cpus=0)
class DeviceBook:
    """Who held which GPU when, for trials that hold a fraction of one: each says when it started
    and ended on its GPU (node and GPU ids; times by its node's clock, which its co-runners share),
    and learns at its end which other trials ran on that GPU meanwhile."""

    def __init__(self) -> None:
        self.spans: dict[str, tuple[tuple[str, ...], float, float | None]] = {}

    def started(self, trial_id: str, device: tuple[str, ...], t: float) -> None:
        self.spans[trial_id] = (device, t, None)

    def ended(self, trial_id: str, device: tuple[str, ...], t0: float, t1: float) -> list[str]:
        self.spans[trial_id] = (device, t0, t1)
        return sorted(other for other, (d, s, e) in self.spans.items() if other != trial_id and d == device and s < t1 and (e is None or e > t0))

    def lost(self, trial_id: str, t: float) -> None:
        """An attempt that never said it ended (its worker died, or it was cancelled) ended at `t`."""
        if trial_id in self.spans and self.spans[trial_id][2] is None:
            device, t0, _ = self.spans[trial_id]
            self.spans[trial_id] = (device, t0, t)


COMPILE_CACHE = "compile-cache"


def compile_cache_env(checkpoint_dir: str | None) -> dict[str, str]:
    """The environment that points torch's compile caches (inductor's, Triton's) into the
    checkpoint folder, a path every node reaches on a cluster: each model shape is then compiled
    cold once per suite, not once per node."""
    if not checkpoint_dir:
        return {}
    root = os.path.abspath(os.path.join(checkpoint_dir, COMPILE_CACHE))
    return {"TORCHINDUCTOR_CACHE_DIR": root, "TRITON_CACHE_DIR": os.path.join(root, "triton")}
