"""The experiment trackers a team already uses (`run --log tensorboard,wandb,mlflow`).

Each trial attempt is one tracker run: started when the trial is submitted, with its config as
parameters and its suite, kind and id as tags; its streamed scalars logged at their step (the
kind's column tags: `train/loss`, `val/bpb`, ...); its record's final metrics logged when it ends
(under their record names: `val_bpb`, ...); finished with its status, a trial that did not
succeed as a failed run (a sweep that stops leaves its open runs killed), never dropped.

Every tracker is opened before any trial runs: a missing package, a W&B account that is not
logged in, or an MLflow store that cannot be used is a one-line UserError. A tracker that fails
during the sweep is said once (on the live board's console, else as a `TrackerWarning`) and
the sweep goes on; the trial's record is the results folder's, whatever the tracker did. Strings from suites (activation names, tags) reach
trackers as values; a folder written inside the results folder (`<out>/tensorboard`,
`<out>/wandb`, `<out>/mlruns`) must be a folder holding no symbolic link, so that no planted
link leads a tracker out of it.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

from actbench.errors import UserError

TRACKERS = ("tensorboard", "wandb", "mlflow")
PARAM_CHARS = 6000  # MLflow's longest parameter value
NAME_CHARS = 200


class TrackerWarning(UserWarning):
    """A tracker failed during the sweep (said once per tracker; the sweep goes on)."""


class Tracker(Protocol):
    """One tracker: a run per trial attempt, keyed by the trial's id."""

    name: str
    runs: dict[str, Any]  # the trials whose run is open

    def start(self, trial_id: str, label: str, kind: str, config: dict[str, Any]) -> None: ...
    def log(self, trial_id: str, scalars: dict[str, float], step: int) -> None: ...
    def finish(self, trial_id: str, metrics: dict[str, float], status: str, ok: bool) -> None: ...


def names(values: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    """The trackers named by `--log` (repeated, or comma lists), each once, in order; UserError
    naming the choices for an unknown one."""
    out: list[str] = []
    for value in [values] if isinstance(values, str) else values:
        for name in (n.strip().lower() for n in value.split(",")):
            if name not in TRACKERS:
                raise UserError(f"--log {name!r}: not a tracker; choose from {', '.join(TRACKERS)}")
            if name not in out:
                out.append(name)
    return tuple(out)


def own_folder(folder: Path, flag: str, deep: bool = True) -> Path:
    """`folder`, a tracker's folder inside the results folder, made if missing; UserError when
    it is a link or not a folder, or holds a symbolic link anywhere below it (a tracker writing
    there could be led out of the results folder); not `deep`: directly in it (for a tracker that
    writes only into new folders of random names, and links there itself)."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        folder.mkdir()
        return folder
    if stat.S_ISLNK(mode):
        raise UserError(f"{flag}: {folder} is a symbolic link (refusing to write through it)")
    if not stat.S_ISDIR(mode):
        raise UserError(f"{flag}: {folder} is not a folder")
    for root, dirs, files in os.walk(folder):  # links are listed, never followed
        for name in dirs + files:
            if os.path.islink(os.path.join(root, name)):
                raise UserError(f"{flag}: {Path(root, name)} is a symbolic link (refusing to write where it leads)")
        if not deep:
            break
    return folder


def numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of `values` (nested dicts flattened with `/`; booleans left out)."""
    out: dict[str, float] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            out.update(numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[f"{prefix}{k}"] = float(v)
    return out


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _need(module: str, name: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise UserError(f"--log {name} needs the {name} package ({e}): pip install 'actbench[{name}]'") from None


class TensorBoard:
    """Event files per trial attempt under `<folder>/<label> <trial id>/` (torch's SummaryWriter):
    the streamed scalars, the final metrics at the last step, the status as text."""

    name = "tensorboard"

    def __init__(self, folder: Path):
        self.writer_class = _need("torch.utils.tensorboard", "tensorboard").SummaryWriter
        self.folder = own_folder(folder, "--log tensorboard")
        self.runs: dict[str, tuple[Any, int]] = {}  # trial id -> (writer, last step)

    def start(self, trial_id: str, label: str, kind: str, config: dict[str, Any]) -> None:
        path = self.folder / re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", f"{label[:NAME_CHARS]} {trial_id}").strip("_")
        if path.is_symlink():
            raise UserError(f"{path} is a symbolic link (refusing to write through it)")
        self.runs[trial_id] = (self.writer_class(log_dir=str(path)), 0)

    def log(self, trial_id: str, scalars: dict[str, float], step: int) -> None:
        writer, _ = self.runs[trial_id]
        for tag, v in scalars.items():
            writer.add_scalar(tag, v, step)
        self.runs[trial_id] = (writer, step)

    def finish(self, trial_id: str, metrics: dict[str, float], status: str, ok: bool) -> None:
        writer, step = self.runs.pop(trial_id)
        try:
            for k, v in metrics.items():
                writer.add_scalar(k, v, step)
            writer.add_text("status", status, step)
        finally:
            writer.close()


class WandB:
    """A W&B run per trial attempt (project $WANDB_PROJECT or actbench, grouped by suite), under
    $WANDB_DIR or `<out>/wandb`; online unless WANDB_MODE=offline, then logged in before anything runs."""

    name = "wandb"

    def __init__(self, out: Path, suite: str):
        self.wandb = _need("wandb", "wandb")
        if os.environ.get("WANDB_MODE", "online") not in ("offline", "dryrun", "disabled"):
            try:
                self.wandb.login(verify=False)
            except Exception as e:  # noqa: BLE001 - no key, no terminal to ask for one
                raise UserError(f"--log wandb: {e} (or WANDB_MODE=offline to keep the runs on this machine)") from None
        if not os.environ.get("WANDB_DIR"):
            own_folder(out / "wandb", "--log wandb", deep=False)  # where wandb writes, given `dir=out`
        self.dir = None if os.environ.get("WANDB_DIR") else str(out)
        self.settings = self.wandb.Settings(silent=True, console="off", symlink=False, save_code=False)
        self.project, self.suite = os.environ.get("WANDB_PROJECT") or "actbench", suite
        self.runs: dict[str, Any] = {}

    def start(self, trial_id: str, label: str, kind: str, config: dict[str, Any]) -> None:
        self.runs[trial_id] = self.wandb.init(
            project=self.project, group=self.suite, job_type=kind, name=label[:NAME_CHARS], tags=[kind],
            config={**config, "trial_id": trial_id}, dir=self.dir, reinit="create_new", settings=self.settings)

    def log(self, trial_id: str, scalars: dict[str, float], step: int) -> None:
        self.runs[trial_id].log(scalars, step=step)

    def finish(self, trial_id: str, metrics: dict[str, float], status: str, ok: bool) -> None:
        run = self.runs.pop(trial_id)
        try:
            run.summary.update({**metrics, "status": status})
        finally:
            run.finish(exit_code=0 if ok else 1)


class MLflow:
    """An MLflow run per trial attempt in the experiment $MLFLOW_EXPERIMENT_NAME or the suite's
    name, at $MLFLOW_TRACKING_URI or a file store in `<out>/mlruns`."""

    name = "mlflow"

    def __init__(self, out: Path, suite: str):
        mlflow = _need("mlflow", "mlflow")
        self.entities = _need("mlflow.entities", "mlflow")
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = own_folder(out / "mlruns", "--log mlflow").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks to opt in to its file store
        try:
            self.client = mlflow.MlflowClient(tracking_uri=uri)
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or suite
            found = self.client.get_experiment_by_name(name)
            self.experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
        except Exception as e:  # noqa: BLE001 - a store that cannot be used, before anything runs
            raise UserError(f"--log mlflow: {uri}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.suite = suite
        self.runs: dict[str, tuple[str, int]] = {}  # trial id -> (run id, last step)

    def start(self, trial_id: str, label: str, kind: str, config: dict[str, Any]) -> None:
        tags = {"actbench.suite": self.suite, "actbench.kind": kind, "actbench.trial_id": trial_id}
        run = self.client.create_run(self.experiment, run_name=label[:NAME_CHARS], tags=tags)
        self.runs[trial_id] = (run.info.run_id, 0)
        params = [self.entities.Param(k, _text(v, PARAM_CHARS)) for k, v in config.items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters a call
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])

    def _metrics(self, run_id: str, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self.entities.Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])

    def log(self, trial_id: str, scalars: dict[str, float], step: int) -> None:
        run_id, _ = self.runs[trial_id]
        self._metrics(run_id, scalars, step)
        self.runs[trial_id] = (run_id, step)

    def finish(self, trial_id: str, metrics: dict[str, float], status: str, ok: bool) -> None:
        run_id, step = self.runs.pop(trial_id)
        try:
            self.client.set_tag(run_id, "actbench.status", status)
            self._metrics(run_id, metrics, step)
        finally:
            self.client.set_terminated(run_id, "FINISHED" if ok else "KILLED" if status == "killed" else "FAILED")


def _warn(message: str) -> None:
    warnings.warn(message, TrackerWarning, stacklevel=3)


class Trackers:
    """The trackers of a sweep, each call passed to every one of them; a tracker that raises is
    said once through `warn` (the live board prints it; else a TrackerWarning) and the sweep goes
    on (a trial whose run did not start is skipped by that tracker)."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = trackers
        self.warned: set[str] = set()
        self.warn: Callable[[str], None] = _warn

    def _call(self, t: Tracker, method: str, trial_id: str, *args: Any) -> None:
        if method != "start" and trial_id not in t.runs:
            return  # its run did not start
        try:
            getattr(t, method)(trial_id, *args)
        except Exception as e:  # noqa: BLE001 - a tracker never fails a trial or the sweep
            if t.name not in self.warned:
                self.warned.add(t.name)
                self.warn(f"--log {t.name}: {type(e).__name__}: {e}; the sweep goes on without it where it fails (said once)")

    def _each(self, method: str, trial_id: str, *args: Any) -> None:
        for t in self.trackers:
            self._call(t, method, trial_id, *args)

    def start(self, trial_id: str, label: str, kind: str, config: dict[str, Any]) -> None:
        self._each("start", trial_id, label, kind, config)

    def log(self, trial_id: str, scalars: dict[str, float], step: int) -> None:
        if scalars:
            self._each("log", trial_id, scalars, step)

    def finish(self, trial_id: str, metrics: dict[str, Any], status: str, ok: bool) -> None:
        self._each("finish", trial_id, numbers(metrics), status, ok)

    def close(self) -> None:
        """Finish the runs still open as killed (the sweep stopped)."""
        for t in self.trackers:
            for trial_id in list(t.runs):
                self._call(t, "finish", trial_id, {}, "killed", False)


def open_trackers(chosen: tuple[str, ...], out: Path, suite: str) -> Trackers | None:
    """The trackers `chosen` (see `names`), opened for a sweep of `suite` into the results folder
    `out` (None when none is chosen); UserError when one cannot be used."""
    opened: dict[str, Callable[[], Tracker]] = {"tensorboard": lambda: TensorBoard(out / "tensorboard"),
                                                 "wandb": lambda: WandB(out, suite), "mlflow": lambda: MLflow(out, suite)}
    return Trackers([opened[name]() for name in chosen]) if chosen else None
