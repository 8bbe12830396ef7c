"""One trial where it runs (in this process for the inline executor, a Ray task otherwise):
`execute_trial` imports the plugin modules the trial's activations come from, sets torch's
threads to what the trial's `cpus` grant (max(1, floor(cpus)), on every trial, also on a reused
worker), builds the kind's config, runs it, and classifies the outcome (`ok`, `failed`, `oom`,
`diverged`, `timeout`) into a plain dict; it never raises. The timeout is enforced where the
trial runs (SIGALRM, measured from the trial's own start, so worker start-up does not count); a
trial stuck inside native code past `timeout_s` plus a grace period (`backstop_s`) is
force-cancelled by the driver. An exception a trial raises may carry `trial_note` (e.g. a
checkpoint it set aside before failing): the failed record's note keeps it."""

from __future__ import annotations

import math
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

from actbench.core.record import OK
from actbench.core.resources import WorkerGroup, trial_threads
from actbench.core.trial import Trial, TrialTimeout
from actbench.runner.outcome import WorkersLost, is_oom


@contextmanager
def _alarm(seconds: float | None):
    """Raise TrialTimeout in this (main) thread after `seconds`; a no-op off the main thread."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise TrialTimeout(f"ran past timeout_s={seconds:g}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def backstop_s(timeout_s: float) -> float:
    """How long the driver waits before force-cancelling a trial that ignores its alarm."""
    return timeout_s + max(60.0, 0.25 * timeout_s)


def trial_plugins(trial: Trial) -> list[str]:
    """Plugin modules that registered the activations this trial names (to import where it runs)."""
    from actbench.activations.registry import plugin_modules

    return plugin_modules([v for v in trial.config_dict().values() if isinstance(v, str)])


def execute_trial(
    kind: str, config: dict[str, Any], trial_id: str, checkpoint_dir: str | None = None, timeout_s: float | None = None,
    cpus: float | None = None, plugins: list[str] | tuple[str, ...] = (), progress: Callable[[dict[str, Any]], None] | None = None,
    group: WorkerGroup | None = None,
) -> dict[str, Any]:
    """Run one trial where this process is; return its outcome as a plain dict (never raises).
    `cpus` sets torch's threads for this trial (restored afterwards); `plugins` are imported first;
    `progress` receives the trial's live progress, throttled (`progress.Throttle`). With a worker
    `group` the trial runs as a Ray Train job (`actbench.runner.train`) that this process waits
    for, and that enforces `timeout_s` itself (its rank 0 sends the progress)."""
    import numpy  # noqa: F401 - before torch, whose C init swallows any error importing numpy: a Ctrl-C landing there was lost
    import torch

    from actbench.activations import load_plugin
    from actbench.core.kinds import kind_spec
    from actbench.core.trial import TrialContext
    from actbench.results.fingerprint import fingerprint
    from actbench.runner.progress import Throttle

    started = time.time()
    threads_before = torch.get_num_threads()
    if cpus is not None:
        torch.set_num_threads(trial_threads(cpus))
    env = dict(fingerprint())
    try:
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_task_id():
            ctx = ray.get_runtime_context()
            env["ray_node_id"] = ctx.get_node_id()
            env["ray_gpu_ids"] = [str(g) for g in ray.get_gpu_ids()]
    except ImportError:
        pass
    out: dict[str, Any] = {"metrics": {}, "rows": [], "series": {}, "error": None, "traceback": None, "note": ""}
    try:
        for module in plugins:
            load_plugin(module)
        spec = kind_spec(kind)
        cfg = spec.config_model.model_validate(config)
        ckpt = Path(checkpoint_dir) / trial_id if checkpoint_dir else None
        ctx = TrialContext(trial_id=trial_id, checkpoint_dir=ckpt, progress=Throttle(progress) if progress else None, started_at=started)
        if group is None:
            with _alarm(timeout_s):
                result = spec.run(cfg, ctx)
        else:
            from actbench.runner.train import run_on_workers

            result = run_on_workers(spec, cfg, ctx, group, timeout_s, list(plugins))
        out.update(metrics=result.metrics, rows=result.rows, series=result.series, note=result.note)
        env.update(result.env)
        status = result.status
        bad = [k for k, v in result.metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if status == OK and bad:
            status, out["note"] = "diverged", f"non-finite metrics: {', '.join(bad)}"
    except TrialTimeout as e:
        status, out["error"] = "timeout", {"type": "TrialTimeout", "message": str(e)}
        out["note"] = str(getattr(e, "trial_note", ""))
    except WorkersLost as e:
        status, out["lost"] = "failed", True
        out["error"] = {"type": "WorkersLost", "message": str(e).strip().splitlines()[0][:500]}
        out["traceback"] = str(e)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a record, the sweep goes on
        if isinstance(e, KeyboardInterrupt):
            raise
        status = "oom" if is_oom(e) else "failed"
        out["error"] = {"type": type(e).__name__, "message": str(e).strip().splitlines()[0][:500] if str(e).strip() else ""}
        out["traceback"] = traceback.format_exc()
        out["note"] = str(getattr(e, "trial_note", ""))
    finally:
        torch.set_num_threads(threads_before)
    out.update(status=status, started_at=started, ended_at=time.time(), env=env)
    return out
