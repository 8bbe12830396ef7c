"""The Ray executor: each trial is one Ray task with the suite's CPUs and GPUs.

With no address an embedded local Ray is started (no dashboard, quiet logs, this machine's CPUs
and GPUs) and shut down afterwards; with `--address auto` or `ray://host:10001` an existing
cluster is joined and never started. If Ray is already initialised in this process (tests,
notebooks), that instance is used as it is. A worker or node that dies is retried by Ray up to
`retries` times; a trial that ignores its in-worker timeout is force-cancelled by the driver
(its worker process is killed).
"""

from __future__ import annotations

import os
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, OutOfMemoryError, RayError

from actbench.errors import UserError
from actbench.runner import execute_trial
from actbench.suite import Resources, Trial


@ray.remote
def _trial_task(kind: str, config: dict[str, Any], trial_id: str, checkpoint_dir: str | None, timeout_s: float) -> dict[str, Any]:
    return execute_trial(kind, config, trial_id, checkpoint_dir, timeout_s)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, **init_kwargs: Any):
        self.owns_ray = False
        t0 = time.time()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if ray.is_initialized():
            pass
        elif address:
            try:
                ray.init(address=address, logging_level="ERROR", log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise UserError(f"--address {address}: cannot join the Ray cluster: {str(e).splitlines()[0]}") from e
        else:
            init_kwargs.setdefault("num_cpus", os.cpu_count())
            ray.init(
                include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR",
                log_to_driver=False, **init_kwargs,
            )
            self.owns_ray = True
        self.startup_s = time.time() - t0
        self._cap: tuple[float, int] | None = None
        self._inflight: set[ray.ObjectRef] = set()

    def capacity(self, resources: Resources) -> int:
        """How many trials with these resources fit on the alive nodes at once (cached 2 s)."""
        if self._cap and time.time() - self._cap[0] < 2.0:
            return self._cap[1]
        total = 0
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            res = node.get("Resources", {})
            fits = int(res.get("CPU", 0) // resources.cpus)
            if resources.gpus > 0:
                fits = min(fits, int(res.get("GPU", 0) // resources.gpus))
            total += fits
        self._cap = (time.time(), total)
        return total

    def submit(self, trial: Trial, checkpoint_dir: str | None) -> ray.ObjectRef:
        r = trial.resources
        ref = _trial_task.options(
            num_cpus=r.cpus, num_gpus=r.gpus, max_retries=r.retries, retry_exceptions=False,
            name=f"actbench:{trial.kind}:{trial.id}",
        ).remote(trial.kind, trial.config_dict(), trial.id, checkpoint_dir, r.timeout_s)
        self._inflight.add(ref)
        return ref

    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        """Outcomes of the tasks that finished within `timeout` seconds."""
        if not self._inflight:
            time.sleep(timeout)
            return []
        refs = list(self._inflight)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        done = []
        for ref in ready:
            self._inflight.discard(ref)
            done.append((ref, self._outcome(ref)))
        return done

    @staticmethod
    def _outcome(ref: ray.ObjectRef) -> dict[str, Any]:
        """The trial's own record, or one made from the error Ray raised (dead worker or node)."""
        try:
            return ray.get(ref, timeout=60)
        except (RayError, GetTimeoutError) as e:
            status = "oom" if isinstance(e, OutOfMemoryError) else "failed"
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return {"status": status, "error": {"type": type(e).__name__, "message": first[:500]},
                    "traceback": str(e), "ended_at": time.time()}

    def cancel(self, handle: ray.ObjectRef) -> None:
        self._inflight.discard(handle)
        try:
            ray.cancel(handle, force=True, recursive=True)
        except (RayError, ValueError):
            pass  # already finished

    def shutdown(self) -> None:
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()
