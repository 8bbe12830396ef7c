"""The Ray executor: each trial is one Ray task with the suite's CPUs and GPUs (a trial on several
workers: a task holding nothing that waits for its Ray Train job, see actbench.runner.train).

Embedded (no `--address`): a local Ray sized to this machine is started and shut down afterwards,
without a dashboard and with token authentication on a fresh random token that only this run's
processes hold (in their environment; nothing is written to ~/.ray), so no other process, user
or machine can submit work to it. Ray 2.60 has no option to bind its servers to loopback: GCS,
raylet, object manager and worker gRPC ports listen on all interfaces, the runtime-env agent on
this machine's IP, and each refuses a caller without the token (see the README).

Joining (`--address HOST:PORT`, `auto`, or `ray://HOST:10001`): the address must accept a TCP
connection within `rayjoin.CONNECT_TIMEOUT_S`, else a one-line error; then Ray is joined with token
authentication whenever a token is available (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token), as Ray itself does only for `auto`: `ray start --head` in Ray 2.60 enables
token authentication as soon as ~/.ray/auth_token exists. If Ray is already initialised in this
process (tests, notebooks), that instance is used as it is.

Retries belong to the driver (Ray's max_retries=0): an attempt lost to a dead worker or node comes
back with `lost: True`, `run_suite` records it and submits the trial again, so every attempt is
counted. Plugin modules travel with the job (runtime_env py_modules) unless they are installed
packages; each trial imports those its activations come from. While trials run the GCS is probed; unreachable for CLUSTER_LOST_S it
raises ClusterLost. A trial that ignores its in-worker timeout is force-cancelled by the driver
(its worker process is killed).

Packed GPUs: a trial asking for a fraction of a GPU (`resources.gpus: 0.25`) is a task holding that
fraction, so Ray runs up to 1 / gpus of them on one GPU; a `DeviceBook` actor records who held
which GPU when, and each record says which trials shared its GPU. On a joined cluster the trials'
compile caches live in the checkpoint folder (`compile_cache_env`), so every node reuses the
compiles of the others.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, OutOfMemoryError, RayError, TaskCancelledError

from actbench.core.resources import Resources, WorkerGroup
from actbench.core.trial import Trial
from actbench.runner.executor import ClusterLost
from actbench.runner.devices import MAX_SHARED_IDS, DeviceBook, compile_cache_env
from actbench.runner.progress import Sink
from actbench.runner.rayjoin import AUTH_ENV, gcs_address, host_port, join_or_start, refresh_auth, unreachable
from actbench.runner.trial import execute_trial, trial_plugins

CLUSTER_LOST_S = 10.0
STOP_GRACE_S = 30.0  # a cancelled trial on several workers gets this long to release its workers before its task is killed
_PROBE_EVERY_S = 2.0
PROGRESS_QUEUE_SIZE = 10_000


@ray.remote
def _trial_task(kind: str, config: dict[str, Any], trial_id: str, checkpoint_dir: str | None, timeout_s: float,
                cpus: float, plugins: list[str], progress: Any = None, group: WorkerGroup | None = None,
                env: dict[str, str] | None = None, book: Any = None, gpus: float = 0.0) -> dict[str, Any]:
    """One trial in a worker, with `env` set (the shared compile cache); its progress goes to the
    driver's queue (`progress`), if any; with a `book` (a fraction of a GPU held) its record says
    which trials shared its GPU (`env.shared_gpu`, `env.shared_with`, `env.gpu_share`)."""
    os.environ.update(env or {})
    send = (lambda values: progress.put((trial_id, values), block=False)) if progress is not None else None
    if book is None:
        return execute_trial(kind, config, trial_id, checkpoint_dir, timeout_s, cpus, plugins, send, group)
    device = (ray.get_runtime_context().get_node_id(), *(str(g) for g in ray.get_gpu_ids()))
    t0 = time.time()
    book.started.remote(trial_id, device, t0)
    out = execute_trial(kind, config, trial_id, checkpoint_dir, timeout_s, cpus, plugins, send, group)
    out["env"]["gpu_share"] = gpus
    try:
        shared = ray.get(book.ended.remote(trial_id, device, t0, time.time()), timeout=30)
    except Exception:  # noqa: BLE001 - the book is best effort: a record without it says nothing of sharing
        return out
    out["env"].update(shared_gpu=len(shared), shared_with=shared[:MAX_SHARED_IDS])
    return out


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, log_to_driver: bool = False, **init_kwargs: Any):
        self._connected_here = not ray.is_initialized()
        self._saved_env = {k: os.environ.get(k) for k in AUTH_ENV}
        t0 = time.time()
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        self._how, self.owns_ray = join_or_start(address, log_to_driver, init_kwargs, self._restore_env)
        self.startup_s = time.time() - t0
        self._probe_target = host_port(gcs_address() or address or "")
        self._probe_at = 0.0
        self._unreachable_since: float | None = None
        self._cap: tuple[float, int] | None = None
        self._inflight: set[ray.ObjectRef] = set()
        self._sink: Sink | None = None
        self._queue: Any = None
        self._groups: set[ray.ObjectRef] = set()  # tasks of trials on several workers
        self._stopping: dict[ray.ObjectRef, float] = {}  # cancelled ones -> when to kill their task
        self._joined = address is not None
        self._book: Any = None  # a DeviceBook, once a trial holds a fraction of a GPU
        self._booked: dict[ray.ObjectRef, str] = {}  # tasks in the book -> their trial ids

    def set_progress(self, sink: Sink | None) -> None:
        """Trials submitted from now on put their progress into a Ray queue (an actor on this
        node, no CPU held) that `poll` drains into `sink`."""
        self._sink = sink
        if sink is not None and self._queue is None:
            from ray.util.queue import Queue
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            try:
                here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
                self._queue = Queue(maxsize=PROGRESS_QUEUE_SIZE, actor_options={"num_cpus": 0, "scheduling_strategy": here})
            except Exception:  # noqa: BLE001 - no live progress (e.g. through Ray Client), the sweep runs as before
                self._queue = None

    def _drain(self) -> None:
        """Hand the queued progress messages to the sink; a queue that fails is given up (progress
        is best effort: the sweep goes on without it)."""
        if self._queue is None or self._sink is None:
            return
        try:
            n = self._queue.qsize()
            items = self._queue.get_nowait_batch(n) if n else []
        except Exception:  # noqa: BLE001 - e.g. the queue's actor died with its node
            self._queue = None
            return
        for trial_id, values in items:
            self._sink(trial_id, values)

    def describe(self) -> str:
        """Which Ray this is and what it holds: nodes, CPUs, GPUs."""
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        res = ray.cluster_resources()
        return (f"{self._how}, ready in {self.startup_s:.1f}s: {len(nodes)} node(s), "
                f"{res.get('CPU', 0):g} CPU(s), {res.get('GPU', 0):g} GPU(s)")

    def capacity(self, resources: Resources) -> int:
        """How many trials with these resources fit on the alive nodes at once (cached 2 s): for
        trials on several workers, the workers that fit on each node, summed, per trial's workers."""
        if self._cap and time.time() - self._cap[0] < 2.0:
            return self._cap[1]
        self._check_cluster()
        nodes = self._nodes()
        if nodes is None:  # no answer: keep the last count; the GCS probe decides whether the cluster is gone
            return self._cap[1] if self._cap else 0
        group = resources.worker_group
        cpus, gpus = (group.cpus, group.gpus) if group else (resources.cpus, resources.gpus)
        total = 0
        for node in nodes:
            if not node.get("Alive"):
                continue
            res = node.get("Resources", {})
            fits = int(res.get("CPU", 0) // cpus)
            if gpus > 0:
                fits = min(fits, int(res.get("GPU", 0) // gpus))
            total += fits
        total //= group.workers if group else 1
        self._cap = (time.time(), total)
        return total

    @staticmethod
    def _nodes(wait_s: float = 5.0) -> list[dict[str, Any]] | None:
        """ray.nodes(), or None without an answer within `wait_s`: asked from a daemon thread,
        because Ray blocks that call while its GCS is gone (until it kills the process at 60 s)."""
        answer: list[list[dict[str, Any]]] = []

        def ask() -> None:
            try:
                answer.append(ray.nodes())
            except Exception:  # noqa: BLE001 - no answer is the answer
                pass

        asker = threading.Thread(target=ask, daemon=True)
        asker.start()
        asker.join(wait_s)
        return answer[0] if answer else None

    def submit(self, trial: Trial, checkpoint_dir: str | None) -> ray.ObjectRef:
        """One task per trial: holding the trial's CPUs and GPUs (a fraction of a GPU shares it
        with other trials, which the DeviceBook records), or, for a trial on several workers, none
        (it waits for the Ray Train job that holds them; see actbench.runner.train). On a joined
        cluster the trials' compile caches live in the checkpoint folder (`compile_cache_env`)."""
        r = trial.resources
        group = r.worker_group
        book = self._device_book() if not group and 0 < r.gpus < 1 else None
        ref = _trial_task.options(
            num_cpus=0 if group else r.cpus, num_gpus=0 if group else r.gpus, max_retries=0, retry_exceptions=False,
            name=f"actbench:{trial.kind}:{trial.id}",
        ).remote(trial.kind, trial.config_dict(), trial.id, checkpoint_dir, r.timeout_s, r.cpus, trial_plugins(trial),
                  self._queue if self._sink is not None else None, group, compile_cache_env(checkpoint_dir) if self._joined else None,
                  book, r.gpus)
        self._inflight.add(ref)
        if group:
            self._groups.add(ref)
        if book is not None:
            self._booked[ref] = trial.id
        return ref

    def _device_book(self) -> Any:
        """The run's DeviceBook (an actor on this node holding no CPU), made on first use; None when it cannot be."""
        if self._book is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            try:
                here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
                self._book = DeviceBook.options(scheduling_strategy=here).remote()
            except Exception:  # noqa: BLE001 - no book (e.g. through Ray Client): records say nothing of sharing
                self._book = False
        return self._book or None

    def _unbook(self, ref: ray.ObjectRef, outcome: dict[str, Any] | None) -> None:
        """A booked task is done: an attempt that did not end by itself (lost, cancelled) ends in the book now."""
        trial_id = self._booked.pop(ref, None)
        if trial_id is not None and self._book and (outcome is None or outcome.get("lost") or "shared_gpu" not in (outcome.get("env") or {})):
            self._book.lost.remote(trial_id, time.time())

    def poll(self, timeout: float) -> list[tuple[Any, dict[str, Any]]]:
        """Outcomes of the tasks that finished within `timeout` seconds."""
        self._finish_stopping()
        if not self._inflight:
            time.sleep(timeout)
            return []
        self._check_cluster()
        refs = list(self._inflight)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        self._drain()  # a trial puts its messages before it returns: they all come before its outcome
        done = []
        for ref in ready:
            self._inflight.discard(ref)
            self._groups.discard(ref)
            done.append((ref, self._outcome(ref)))
            self._unbook(ref, done[-1][1])
        return done

    def _check_cluster(self) -> None:
        """Raise ClusterLost when the GCS has not accepted a connection for CLUSTER_LOST_S."""
        now = time.time()
        if self._probe_target is None or now - self._probe_at < _PROBE_EVERY_S:
            return
        self._probe_at = now
        why = unreachable(*self._probe_target, _PROBE_EVERY_S)
        if why is None:
            self._unreachable_since = None
            return
        self._unreachable_since = self._unreachable_since or now
        if now - self._unreachable_since >= CLUSTER_LOST_S:
            host, port = self._probe_target
            raise ClusterLost(f"lost the connection to the Ray cluster: its GCS at {host}:{port} has not answered for "
                              f"{now - self._unreachable_since:.0f}s ({why})")

    @staticmethod
    def _outcome(ref: ray.ObjectRef) -> dict[str, Any]:
        """The trial's own record, or one made from the error Ray raised: a dead worker or node
        (`lost`, run again by the driver) or a cancellation."""
        try:
            return ray.get(ref, timeout=60)
        except (RayError, GetTimeoutError) as e:
            status = "oom" if isinstance(e, OutOfMemoryError) else "failed"
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return {"status": status, "error": {"type": type(e).__name__, "message": first[:500]},
                    "traceback": str(e), "ended_at": time.time(), "lost": not isinstance(e, TaskCancelledError)}

    def cancel(self, handle: ray.ObjectRef, ending: bool = False) -> None:
        """Kill the trial's task; a trial on several workers is first interrupted (Ray raises in
        its task, inside fit(), which then releases its Ray Train run, workers and placement
        group) and killed only if still running STOP_GRACE_S later (killing the task at once
        would leave its placement group reserved until the driver exits). When the sweep is
        `ending` on the embedded Ray this executor started, the task is left to `shutdown`,
        which kills every worker: Ray 2.60's force-cancel of a running task can race with its
        reply and abort the driver ("Check failed: it != submissible_tasks_.end()")."""
        self._inflight.discard(handle)
        self._unbook(handle, None)
        graceful = handle in self._groups
        self._groups.discard(handle)
        if ending and self.owns_ray:
            return
        try:
            ray.cancel(handle, force=not graceful, recursive=True)
        except (RayError, ValueError):
            return  # already finished
        if graceful:
            self._stopping[handle] = time.time() + STOP_GRACE_S

    def _finish_stopping(self) -> None:
        """Kill the tasks of cancelled trials on several workers that are still running past their grace."""
        if not self._stopping:
            return
        done, _ = ray.wait(list(self._stopping), num_returns=len(self._stopping), timeout=0)
        for ref in done:
            self._stopping.pop(ref)
        for ref, kill_at in list(self._stopping.items()):
            if time.time() > kill_at:
                self._stopping.pop(ref)
                try:
                    ray.cancel(ref, force=True, recursive=True)
                except (RayError, ValueError):
                    pass

    def shutdown(self) -> None:
        if self._book:
            try:
                ray.kill(self._book)
            except Exception:  # noqa: BLE001 - its node may be gone
                pass
            self._book = None
        if self._queue is not None:
            try:
                self._queue.shutdown()
            except Exception:  # noqa: BLE001 - its actor may be gone with its node
                pass
            self._queue = None
        if self._connected_here and ray.is_initialized():
            ray.shutdown()
        self._restore_env()

    def _restore_env(self) -> None:
        if all(os.environ.get(k) == v for k, v in self._saved_env.items()):
            return
        for k, v in self._saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        refresh_auth()
