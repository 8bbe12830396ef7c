"""One library entry point per command, for the CLI and a notebook alike: `run`, `compare`,
`report`, `regress` and `plan`. Each takes what the command line takes and returns what the CLI
prints, as objects; the results folder's lock, `-k` and the executor's life are handled here."""

from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from rich.console import Console

from actbench.core.text import Terminal, markup
from actbench.errors import UserError
from actbench.suite import MAX_TRIALS, Suite, load_suite

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.compare import Comparison
    from actbench.runner.driver import SweepResult
    from actbench.runner.executor import Executor
    from actbench.select import TrialFilter

CPU_SUITES = {"lm": "suites/llm_tiny.yaml", "kernel": "suites/smoke.yaml"}
"""The shipped CPU suite that asks the same question as a GPU suite of each kind."""


def _filter(select: "str | TrialFilter | None") -> "TrialFilter | None":
    from actbench.select import parse_filter

    return parse_filter(select) if isinstance(select, str) else select


def suite_of(suite: str | Path | Suite, overrides: list[str] | dict[str, Any] | None = None, *, max_trials: int = MAX_TRIALS,
             check_paths: bool = True, force: bool = False) -> Suite:
    """A loaded suite (`overrides`: `--set KEY=VALUE` strings, or their parsed values; `force`: see `load_suite`)."""
    from actbench.suite import parse_overrides

    if isinstance(suite, Suite):
        return suite
    values = parse_overrides(overrides) if isinstance(overrides, list) else overrides
    return load_suite(suite, values, max_trials=max_trials, check_paths=check_paths, force=force)


def make_executor(name: str, address: str | None = None, verbose: bool = False) -> "Executor":
    """`inline` (in this process) or `ray` (embedded local Ray, or the cluster at `address`);
    `verbose` streams the workers' output to this terminal."""
    if name == "inline":
        if address:
            raise UserError("--address needs --executor ray")
        from actbench.runner.local import InlineExecutor

        return InlineExecutor()
    if name == "ray":
        from actbench.runner.ray import RayExecutor

        return RayExecutor(address=address, log_to_driver=verbose)
    raise UserError(f"--executor: unknown executor {name!r} (use ray or inline)")


def check_machine(suite: Suite, overrides: list[str] | None = None) -> None:
    """A suite whose trials need GPUs, run on this machine (embedded Ray or inline) without any: a
    UserError, before anything starts, saying what to run instead: the shipped CPU suite that asks
    the same question, or the `--set` that runs this one on the CPU and about how long it takes."""
    need = suite.spec.resources.gpus_per_process
    if need <= 0:
        return
    import torch

    if torch.cuda.device_count() > 0:
        return
    workers = suite.spec.resources.workers
    field = "gpus_per_worker" if workers else "gpus"
    advice = []
    cpu_suite = "suites/ladder_tiny.yaml" if suite.spec.ladder is not None else CPU_SUITES.get(suite.spec.kind)
    if cpu_suite and Path(cpu_suite).resolve() != suite.path.resolve():
        advice.append(f"`actbench run {cpu_suite}` asks the same question at CPU size")
    if workers:
        advice.append(f"this suite runs each trial on {workers} Ray Train workers of {need:g} GPU each: join a GPU cluster with --address")
    else:
        sets = [*(f"--set {o}" for o in overrides or []), "--set resources.gpus=0"]
        sets += ["--set device=cpu"] if suite.spec.defaults.get("device") == "cuda" else []
        sets += ["--set compile=false"] if suite.spec.defaults.get("compile") is True else []
        cost = ""
        if suite.spec.kind == "lm":
            from actbench.report.tables import cpu_hours

            cost = f" (about {cpu_hours(suite):,.0f} CPU-hours of one core by `actbench lm plan {suite.path}`)"
        elif suite.spec.kind == "memory":
            cost = " (on a CPU only the bytes saved for backward are measured: peak memory is CUDA's)"
        advice.append(f"`actbench run {suite.path} {' '.join(sets)}` runs this one on the CPU{cost}")
    raise UserError(f"{suite.path}: resources.{field}: each trial asks for {need:g} GPU(s) and this machine has none (no CUDA "
                    f"device visible): {'; or '.join(advice)}")


@contextmanager
def _output_to(log: Path | None, consoles: list[Console]) -> Iterator[None]:
    """While running, whatever else writes to this process's stdout and stderr (Ray's C++ and
    Python logs, raylet messages about dead workers, trials' prints) goes to `log`; `consoles`
    keep writing to the terminal. A no-op when `log` is None."""
    if log is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    terminals = {fd: os.fdopen(os.dup(saved[fd]), "w") for fd in (1, 2)}
    before = [c.file for c in consoles]
    with _log_file(log) as f:
        f.write(f"--- actbench run, pid {os.getpid()}, {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        f.flush()
        for c in consoles:
            c.file = terminals[2 if c.stderr else 1]
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        for c, file in zip(consoles, before):
            c.file = file
        for t in terminals.values():
            t.close()


def _log_file(log: Path) -> BinaryIO:
    """`log` (in the results folder) opened for appending: a regular file, never through a link."""
    try:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as e:
        why = "a symbolic link is in the way (refusing to write through it)" if e.errno == errno.ELOOP else e.strerror or e
        raise UserError(f"{log}: cannot write the run's log: {why}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{log}: cannot write the run's log: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab")


def _check_writable(folder: Path, flag: str) -> None:
    """UserError unless `folder` exists or can be made, and takes a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"{flag} {folder}: not writable: {e.strerror or e}") from e


def run(suite: str | Path | Suite, *, out: str | Path | None = None, overrides: list[str] | None = None,
        executor: "str | Executor" = "ray", address: str | None = None, rerun: bool = False, checkpoints: str | None = None,
        select: "str | TrialFilter | None" = None, max_trials: int = MAX_TRIALS, console: Console | None = None, log: bool = False,
        verbose: bool = False,
        tensorboard: bool = False, plain_every_s: float | None = None, status: Console | None = None, force: bool = False,
        trackers: str | list[str] | tuple[str, ...] = ()) -> "SweepResult":
    """Run a suite into `out` (default results/<name>): every trial the planner asks for, in its
    batches, of those `select` (-k) keeps, skipping trials already recorded ok unless `rerun`.
    The folder is locked and checked writable before anything starts; `executor` is a name (then
    it is started here and shut down at the end) or an executor to use as it is; with `log`,
    what Ray and the trials print goes to <out>/run.log (`verbose`: Ray streams the workers' output here);
    `console` (stderr by default) gets the progress and decisions, `status` (default `console`)
    which executor runs them; `force` runs trials that look too large for this machine's memory
    (on a cluster, `address`, this machine's memory is not checked); `trackers` (names or comma
    lists; `tensorboard` adds TensorBoard) also get each trial's scalars and final metrics
    (`actbench.runner.trackers`), opened before anything runs."""
    from actbench.planner.plan import selected_groups
    from actbench.runner.sweep import sweep
    from actbench.runner.trackers import names, open_trackers

    console = console or Terminal(stderr=True)
    status = status or console
    s = suite_of(suite, overrides, max_trials=max_trials, check_paths=False)
    if address is None and isinstance(executor, str):  # this machine runs the trials: a GPU suite on a CPU says so first
        check_machine(s, overrides)
    s = s.checked(force=force or address is not None)
    if checkpoints and "://" in checkpoints:
        raise UserError(f"--checkpoints {checkpoints}: a URI is not supported (trials keep their checkpoints as files in a folder of "
                        "their own); give a folder every node reaches, e.g. on a shared file system")
    chosen = _filter(select)
    groups, _ = selected_groups(s, chosen)
    out_dir = Path(out) if out is not None else Path("results") / s.name
    logged = names([*([trackers] if isinstance(trackers, str) else trackers), *(["tensorboard"] if tensorboard else [])])
    from actbench.results.store import ResultStore

    store = ResultStore(out_dir)
    with store.lock() as note:  # the folder is writable and no other run writes it, before anything starts
        if note:
            console.print(f"{markup(out_dir)}: {markup(note)}", highlight=False, soft_wrap=True)
        if checkpoints:
            _check_writable(Path(checkpoints), "--checkpoints")
        opened = open_trackers(logged, out_dir, s.name)
        with _output_to(out_dir / "run.log" if log and not verbose else None, list({id(c): c for c in (console, status)}.values())):
            ex = make_executor(executor, address, verbose) if isinstance(executor, str) else executor
            try:
                status.print(markup(ex.describe()), highlight=False)
                return sweep(s, store, ex, groups, chosen, rerun, checkpoints or str(out_dir / "checkpoints"), console,
                              opened, plain_every_s)
            finally:
                if isinstance(executor, str):
                    ex.shutdown()


def compare(names: list[str], results: str | Path = "results", *, alpha: float = 0.05, merge: bool = False,
            select: "str | TrialFilter | None" = None, margin: float | None = None) -> "Comparison":
    """`actbench compare`: every results folder at or below `results`, `names[0]` the baseline."""
    from actbench.report.compare import compare_results

    return compare_results(names, results, alpha=alpha, merge=merge, select=_filter(select), margin=margin)


def report(run_dir: str | Path, out: str | Path | None = None, *, baseline: str | None = None, alpha: float = 0.05,
           merge: bool = False, select: "str | TrialFilter | None" = None, margin: float | None = None) -> dict[str, Any]:
    """`actbench report`: summary, failures, comparison, plots, HTML page and exports of a results folder."""
    from actbench.report.html import build_report

    return build_report(run_dir, out, baseline=baseline, alpha=alpha, merge=merge, select=_filter(select), margin=margin)


def index(results: str | Path = "results") -> list[tuple[Path, Path | None]]:
    """`actbench index`: the columnar index of every results folder at or below `results` brought
    up to date; per folder, where its Parquet tables are kept (None: it could not be written, and
    readers parse the JSON). A UserError when there is no trials.jsonl there."""
    from actbench.results.index import update
    from actbench.results.read import result_dirs

    folders = result_dirs(results)
    if not folders:
        raise UserError(f"{results}: no trials.jsonl at or below it")
    return [(d, update(d)) for d in folders]


@dataclass
class Regression:
    """What `regress` found: its markdown summary and exit code (1: a confirmed regression, or
    SLOW / WORSE against a --baseline, or failed trials), and either the rows compared with a
    baseline or the night judged over its history (`report.nightly.Night`)."""

    markdown: str
    exit_code: int
    rows: "pd.DataFrame | None" = None
    night: Any = None
    plot: Path | None = None

    @property
    def failed(self) -> bool:
        return self.exit_code != 0


def regress(run_dir: str | Path, baseline: str | Path | None = None, *, history: str | Path | None = None,
            rerun: str | Path | None = None, accept: bool = False, suspects: str | Path | None = None, commit: str | None = None,
            plot: str | Path | None = None, threshold: float | None = None, bpb_tolerance: float = 0.02,
            summary: str | Path | None = None, min_effect: float | None = None) -> Regression:
    """`actbench regress`: the run judged over the `history` of its GPU model and environment and
    added to it (`rerun`: an immediate rerun of the suspect rows; `accept`: their steps are
    intended; `suspects`: only write the rows to rerun to this file, record nothing), or compared
    once with a `baseline` run. `min_effect` (the history's smallest step of timing and throughput
    rows, default 3%) goes with `history`, `threshold` (the change that counts, default 5%) with
    `baseline`. The summary is also appended to `summary` (e.g. $GITHUB_STEP_SUMMARY)."""
    if (history is None) == (baseline is None):
        raise UserError("regress: give --history DIR (the nightly gate) or --baseline RUN (a one-off comparison), not both")
    if baseline is not None and (rerun or accept or suspects or commit or plot or min_effect is not None):
        raise UserError("--rerun, --accept, --suspects, --commit, --plot and --min-effect go with --history")
    if history is not None and threshold is not None:
        raise UserError("--threshold goes with --baseline; with --history the smallest step that counts is --min-effect")
    if min_effect is not None and not 0 < min_effect < 1:
        raise UserError(f"--min-effect: between 0 and 1 (got {min_effect})")
    if history is not None and not 0 < bpb_tolerance < 1:
        raise UserError(f"--bpb-tolerance: with --history, the smallest step of an lm row's bits per byte that counts: above 0 and "
                        f"below 1 (got {bpb_tolerance})")
    if baseline is not None:
        from actbench.report import regression

        df = regression.regress(baseline, run_dir, 0.05 if threshold is None else threshold, bpb_tolerance)
        result = Regression(regression.regress_markdown(df, baseline, run_dir), int(regression.regress_failed(df)), rows=df)
    else:
        from actbench.report import nightly

        _can_take_a_file(summary, "--summary", regular=True)
        _can_take_a_file(plot, "--plot")  # both before the night is recorded: a run again must not add it twice
        night = nightly.judge_run(run_dir, history, rerun=rerun, accept=accept, commit=commit, record=suspects is None,  # type: ignore[arg-type]
                                  bpb_tolerance=bpb_tolerance,
                                  min_effect=nightly.MIN_EFFECT if min_effect is None else min_effect)
        if suspects is not None:
            nightly.write_suspects(night, suspects)
            return Regression(night.markdown, 0, night=night)
        result = Regression(night.markdown, night.exit_code, night=night, plot=_history_plot(night.path, plot) if plot else None)
    if summary:
        from actbench.report.output import append_user

        append_user(summary, result.markdown, "--summary")
    return result


def _can_take_a_file(path: str | Path | None, flag: str, *, regular: bool = False) -> None:
    """UserError naming `flag` where a file cannot be written at `path`: a folder is there, or
    its folder is under something that is not a folder; `regular`: anything there but a regular
    file (a FIFO, a device; a file replaced atomically, like a plot, takes their place)."""
    if path is None:
        return
    from actbench.results import gate

    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: not written: a folder")
    if regular:
        gate.user_file(path, flag)
    above = next((p for p in path.parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():
        raise UserError(f"{flag} {path}: not written: {above} is not a folder")


def _history_plot(path: Path, plot: str | Path) -> Path:
    """The trend of every row of a history file, drawn to `plot`."""
    from actbench.report.history import read_nights
    from actbench.report.plots.history import history_plot

    entries = [{"commit": n.commit, "date": n.date, "figures": {k: p.value for k, p in n.rows.items()}} for n in read_nights(path.parent, path.name)]
    return history_plot(entries, Path(plot))


def regress_row(run_dir: str | Path, history: str | Path, row: str) -> tuple[int, str]:
    """`actbench regress RUN --history DIR --row KEY`, the check `git bisect run` calls: 1 when the
    run's figure of the row is at its level after the step, 0 before it, 125 (skip) without one."""
    from actbench.report.nightly import check_row

    return check_row(run_dir, history, row)


def plan(suite: str | Path | Suite, overrides: list[str] | None = None, results: str | Path | None = None) -> Any:
    """`actbench lm plan`: matched widths, counts and the cost of every trial an lm suite can run,
    costed with what an earlier run of it measured when its results folder holds one (`results`,
    default results/<name>), else with `actbench.lm.cost`'s figures."""
    from actbench.lm.cost import DEFAULTS, calibrate
    from actbench.report.tables import plan_table
    from actbench.results.read import RECORDS, iter_records, latest

    s = suite_of(suite, overrides, check_paths=False)
    if s.spec.kind != "lm":
        raise UserError(f"{s.path}: kind: lm plan needs an lm suite, got {s.spec.kind!r}")
    folder = Path(results) if results is not None else Path("results") / s.name
    if results is not None and not (folder / RECORDS).is_file():
        raise UserError(f"--results {folder}: no {RECORDS} there")
    figures = DEFAULTS["cuda" if s.spec.resources.gpus_per_process > 0 else "cpu"]
    if (folder / RECORDS).is_file():
        records = [r for r in latest(iter_records(folder / RECORDS)).values() if r.suite == s.name]
        figures = calibrate(figures, records, str(folder))
        s = s.sized(records)
    return plan_table(s, figures)
