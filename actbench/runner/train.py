"""Trials on several workers: each trial is one Ray Train job (`ray.train.torch.TorchTrainer`).

How it runs. The Ray executor submits one Ray task per trial, as for a trial of one process, but
holding no CPU or GPU (it only waits); that task calls `run_on_workers`, i.e. TorchTrainer.fit().
Ray Train reserves the trial's N workers (a placement group of N bundles of cpus_per_worker and
gpus_per_worker, packed onto as few nodes as they fit on, across nodes when they must), sets up
torch.distributed on them (NCCL with GPUs, gloo without) and calls the kind's `run` on every
worker; rank 0's TrialOutput is fit()'s return value, so the driver gets one result per trial,
as a value, and its loop, progress and results store are the same as for one-process trials.
fit() runs in a task rather than in a driver thread because a task is what the driver already
waits for, retries and cancels: Ray interrupts a cancelled task inside fit(), which releases its
Ray Train controller, whose workers and placement group then go (a driver thread could not be
interrupted, and Ray Train has no public handle to abort a run from outside fit()).

Failures and retries. Ray Train's own restarts are off (`FailureConfig(max_failures=0,
max_preemption_failures=0)`): a worker or node that dies ends fit(); when a worker died (its
actor or node is gone) the attempt is lost (`WorkersLost`) and the driver records it and submits
the trial again, up to `resources.retries` times, resuming from the trial's last checkpoint. So
every attempt is one record, counted by the driver, and the two never retry the same failure. An
exception raised by the training code itself (an error, out of memory, TrialTimeout) is raised
here again as itself, so the record is classified as for a trial of one process. Ray Train only
keeps waiting for a placement that is momentarily taken (its controller retries to place the
workers; `controller_failure_limit` keeps its default); a trial that the alive nodes cannot place
at all is refused by the driver before it starts (`RayExecutor.capacity` counts per node).

Timeout: the workers stop together at the first optimizer step past `timeout_s`
(`TrialContext.past_deadline`, agreed by an all-reduce); a trial stuck inside one step is
cancelled by the driver's backstop. Checkpoints are the trial's own (`ckpt.pt` in its folder,
which every node must reach), written by rank 0; Ray Train's run folder is a temporary folder on
the task's node (nothing is reported to it) and is removed afterwards. The workers keep the
working folder they start in (Ray Train's change of folder is off), so relative data paths mean
what they mean for a trial of one process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from actbench.core.kinds import KindSpec
from actbench.core.resources import WorkerGroup, trial_threads
from actbench.core.trial import TrialConfig, TrialContext, TrialOutput, TrialTimeout
from actbench.runner.outcome import WorkersLost, is_oom


def _worker_loop(config: dict[str, Any]) -> TrialOutput | None:
    """What every Ray Train worker runs: the kind's `run`, with its rank's share of the work.
    Rank 0 returns the trial's output, with where each rank ran in its environment."""
    import ray
    import ray.train
    import torch

    from actbench.activations import load_plugin
    from actbench.core.kinds import kind_spec
    from actbench.results.fingerprint import fingerprint

    for module in config["plugins"]:
        load_plugin(module)
    torch.set_num_threads(trial_threads(config["cpus"]))
    train_ctx = ray.train.get_context()
    rank, world = train_ctx.get_world_rank(), train_ctx.get_world_size()
    here = {"rank": rank, "node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(), "pid": os.getpid(),
            "local_rank": train_ctx.get_local_rank(), "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    placement: list[Any] = [None] * world
    torch.distributed.all_gather_object(placement, here)
    spec = kind_spec(config["kind"])
    ctx = TrialContext(trial_id=config["trial_id"], checkpoint_dir=Path(config["checkpoint_dir"]) if config["checkpoint_dir"] else None,
                       progress=config["progress"] if rank == 0 else None, strategy=config["strategy"],
                       timeout_s=config["timeout_s"], started_at=config["started_at"])
    out = spec.run(spec.config_model.model_validate(config["config"]), ctx)
    if rank:
        return None
    nodes = len({p["node_id"] for p in placement})
    env = {**fingerprint(), "ray_node_id": here["node_id"], "ray_gpu_ids": here["gpu_ids"], "strategy": config["strategy"],
           "workers": placement}
    return replace(out, metrics={**out.metrics, "workers": world, "nodes": nodes}, env={**out.env, **env})


def _is_lost(error: BaseException) -> bool:
    """Whether a worker's failure is its process or node dying (not an error of the training code)."""
    from ray.exceptions import ActorDiedError, ActorUnavailableError, NodeDiedError, RayActorError, WorkerCrashedError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError, WorkerHealthCheckTimeoutError

    if isinstance(error, WorkerHealthCheckFailedError):
        return True
    return isinstance(error, (ActorDiedError, ActorUnavailableError, NodeDiedError, RayActorError, WorkerCrashedError,
                              WorkerHealthCheckTimeoutError))


def _failure(error: Exception) -> BaseException:
    """What fit()'s error means for the record: WorkersLost when a worker or node died (the
    attempt is retried), else the first rank's own exception (with every rank's report attached)."""
    from ray.train import WorkerGroupError
    from ray.train.v2.api.exceptions import PreemptionError

    if isinstance(error, PreemptionError):
        return WorkersLost(f"a node of the trial's workers was preempted: {error}")
    if not isinstance(error, WorkerGroupError):
        return error
    failures = dict(sorted(error.worker_failures.items()))
    lost = {rank: e for rank, e in failures.items() if _is_lost(e)}
    if lost:
        cause = [getattr(e, "health_check_failure", e) for e in lost.values()][0]
        why = (str(cause).strip().splitlines() or [""])[0][:300]
        return WorkersLost(f"Ray Train worker(s) of rank {', '.join(map(str, lost))} of the trial died "
                           f"({type(cause).__name__}: {why})\n{error}")
    # the cause, not its echo: a rank that ran out of time or memory makes its peers fail in the
    # next collective (gloo's "connection closed"), which may be the lower rank
    causes = [e for e in failures.values() if isinstance(e, TrialTimeout)] + [e for e in failures.values() if is_oom(e)]
    first = causes[0] if causes else next(iter(failures.values()), error)
    if isinstance(first, BaseException) and first is not error:
        first.add_note(f"reported by the trial's Ray Train workers:\n{error}")
    return first


@contextlib.contextmanager
def _fit_scope() -> Iterator[str]:
    """Around fit() in this task: a temporary run folder for Ray Train, workers that keep their
    working folder, and this process's SIGINT handler given back afterwards (fit() installs one
    that aborts its own run; left in place it would act on a later task of this reused worker)."""
    saved_chdir = os.environ.get("RAY_CHDIR_TO_TRIAL_DIR")
    handler = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = "0"
    try:
        with tempfile.TemporaryDirectory(prefix="actbench-raytrain-") as storage:
            yield storage
    finally:
        if saved_chdir is None:
            os.environ.pop("RAY_CHDIR_TO_TRIAL_DIR", None)
        else:
            os.environ["RAY_CHDIR_TO_TRIAL_DIR"] = saved_chdir
        if handler is not None:
            signal.signal(signal.SIGINT, handler)


def run_on_workers(spec: KindSpec, cfg: TrialConfig, ctx: TrialContext, group: WorkerGroup, timeout_s: float | None,
                   plugins: list[str]) -> TrialOutput:
    """Run one trial of `spec` on `group`'s workers with Ray Train; rank 0's output, whose metrics
    say how many workers and nodes ran it and whose env where each rank ran."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    config = {"kind": spec.name, "config": cfg.model_dump(mode="json"), "trial_id": ctx.trial_id,
              "checkpoint_dir": str(ctx.checkpoint_dir) if ctx.checkpoint_dir else None, "progress": ctx.progress,
              "strategy": group.strategy, "cpus": group.cpus, "timeout_s": timeout_s, "started_at": ctx.started_at,
              "plugins": plugins}
    per_worker = {"CPU": group.cpus, **({"GPU": group.gpus} if group.gpus else {})}
    with _fit_scope() as storage:
        trainer = TorchTrainer(
            _worker_loop, train_loop_config=config, torch_config=TorchConfig(backend="nccl" if group.gpus else "gloo"),
            scaling_config=ScalingConfig(num_workers=group.workers, use_gpu=group.gpus > 0, resources_per_worker=per_worker),
            run_config=RunConfig(name=f"actbench-{ctx.trial_id}", storage_path=storage,
                                 failure_config=FailureConfig(max_failures=0, max_preemption_failures=0)),
        )
        try:
            result = trainer.fit()
        except Exception as e:  # noqa: BLE001 - classified: lost (retried), or the training code's own error
            raise _failure(e) from None
    if not isinstance(result.return_value, TrialOutput):
        raise RuntimeError(f"rank 0 of the trial's Ray Train workers returned {type(result.return_value).__name__}, not its output")
    return result.return_value
