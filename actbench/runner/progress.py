"""Live progress of a sweep, in the driver.

A trial reports progress through `TrialContext.report` (step, total_steps, phase and the values its
kind names as its columns; the lm trainer: train_loss, val_bpb, tokens_per_s, lr). Where it runs, `Throttle` forwards at most
one message per trial per second (evaluations and the first message always) to the executor's
sink: a direct call for the inline executor, a Ray queue that the driver drains in its poll loop
for Ray. The driver's `Board` keeps the latest message of every running trial and shows it:

- on a terminal, a live table (rich) under the finished trials' lines: per running trial its
  step/total and the kind's columns (lm: train loss, last validation bits per byte, tokens/s), and
  a header with the sweep's progress and ETA;
- elsewhere (CI logs, a file), every `plain_every_s` seconds one plain line for the sweep and
  one per running trial, without escape codes.

The sweep's ETA counts work (each trial's as its kind counts it: lm, its steps; else 1), done
against the total, at the rate the sweep has managed since it started. With trackers
(`run --log`, `actbench.runner.trackers`), the board also starts a tracker run per trial when it
is submitted, streams its scalars (the kind's column tags) to it, and finishes it with the
trial's record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from actbench.core.kinds import Column
from actbench.core.record import Record
from actbench.core.text import plain
from actbench.core.trial import TrialTimeout
from actbench.runner.trackers import Trackers, numbers

THROTTLE_S = 1.0
PLAIN_EVERY_S = 30.0

Sink = Callable[[str, dict[str, Any]], None]
"""Receives (trial id, progress values) in the driver."""


class Throttle:
    """A trial's progress callback: forwards to `send` at most once per `every_s` seconds, except
    messages whose phase is not "train" (evaluations), which always go; raises nothing but the
    trial's own timeout (progress is best effort and must not fail a trial)."""

    def __init__(self, send: Callable[[dict[str, Any]], None], every_s: float = THROTTLE_S):
        self.send = send
        self.every_s = every_s
        self.last = -float("inf")

    def __call__(self, values: dict[str, Any]) -> None:
        now = time.monotonic()
        if values.get("phase", "train") == "train" and now - self.last < self.every_s:
            return
        self.last = now
        try:
            self.send(values)
        except TrialTimeout:  # the trial's alarm went off while it sent: the trial ends, as anywhere else
            raise
        except Exception:  # noqa: BLE001 - a lost progress message is not a failed trial
            pass


def _clock(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _num(v: Any, fmt: str) -> str:
    return "-" if v is None or not isinstance(v, (int, float)) or v != v else format(v, fmt)


def _final(values: dict[str, Any]) -> bool:
    """Whether a trial is past its last step (its final evaluation runs)."""
    step, total = values.get("step"), values.get("total_steps")
    return isinstance(step, int) and isinstance(total, int) and step >= total and values.get("phase") == "eval"


@dataclass
class _Running:
    label: str
    since: float
    work: float
    values: dict[str, Any] = field(default_factory=dict)


class Board:
    """What a sweep is doing: the latest progress of every running trial, finished counts and the
    ETA; shown live on a terminal, as periodic plain lines elsewhere (see the module docstring)."""

    def __init__(self, title: str, console: Console, columns: tuple[Column, ...] = (), plain_every_s: float = PLAIN_EVERY_S,
                 trackers: Trackers | None = None):
        self.title = plain(title)  # the suite's name: shown, never obeyed
        self.columns = tuple(c for c in columns if c.header)
        self.tags = {c.key: c.tag for c in columns}  # what trackers get
        self.console = console
        self.plain_every_s = plain_every_s
        self.started = time.time()
        self.total = 0.0
        self.done = 0.0
        self.trials_total = 0
        self.counts = {"ok": 0, "bad": 0}
        self.running: dict[str, _Running] = {}
        self.lock = threading.Lock()
        self.next_plain = self.started + plain_every_s
        self.trackers = trackers
        if trackers is not None:  # a tracker's failure is said here, not in the run's log
            trackers.warn = lambda message: self.console.print(f"warning: {plain(message)}", markup=False, highlight=False, soft_wrap=True)
        self.live: Live | None = None

    # --- what the driver tells it
    def add(self, works: list[float]) -> None:
        """More trials to run (a stage), each with its work (its steps, or 1)."""
        with self.lock:
            self.total += sum(works)
            self.trials_total += len(works)

    def submitted(self, trial_id: str, label: str, work: float, kind: str = "", config: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.running[trial_id] = _Running(label=label, since=time.time(), work=work)
        if self.trackers is not None:
            self.trackers.start(trial_id, label, kind, config or {})

    def report(self, trial_id: str, values: dict[str, Any]) -> None:
        """A progress message of a running trial (messages of trials no longer running are dropped)."""
        with self.lock:
            r = self.running.get(trial_id)
            if r is None:
                return
            r.values = {**r.values, **{k: v for k, v in values.items() if v is not None}}
        step = values.get("step")
        if self.trackers is not None and isinstance(step, int):
            self.trackers.log(trial_id, numbers({self.tags[k]: v for k, v in values.items() if k in self.tags}), step)
        if self.live is not None:
            self.live.refresh()  # every message shows at once (they come at most once a second per trial)
        self.tick()

    def finished(self, trial_id: str, ok: bool, again: bool = False, record: Record | None = None) -> None:
        """A trial ended, as `record` says (`again`: its attempt was lost and it is submitted again)."""
        with self.lock:
            r = self.running.pop(trial_id, None)
            if not again:
                self.done += r.work if r is not None else 1.0
                self.counts["ok" if ok else "bad"] += 1
        if self.trackers is not None:
            self.trackers.finish(trial_id, record.metrics if record else {}, record.status if record else "ok" if ok else "failed", ok)

    # --- what it shows
    def _work_done(self) -> float:
        partial = 0.0
        for r in self.running.values():
            step, total = r.values.get("step"), r.values.get("total_steps")
            if isinstance(step, (int, float)) and isinstance(total, (int, float)) and total > 0:
                partial += min(step, total) / total * r.work
        return self.done + partial

    def eta_s(self) -> float | None:
        """Seconds left at the rate of work done so far; None before any work is done."""
        with self.lock:
            done, total = self._work_done(), self.total
        elapsed = time.time() - self.started
        if done <= 0 or elapsed <= 0:
            return None
        return max(0.0, total - done) * elapsed / done

    def fraction(self) -> float:
        with self.lock:
            return self._work_done() / self.total if self.total else 0.0

    def sweep_line(self) -> str:
        finished = self.counts["ok"] + self.counts["bad"]
        return (f"{self.title}: {self.fraction():.0%} of the work done, {finished}/{self.trials_total} trials finished "
                f"(ok {self.counts['ok']}, not ok {self.counts['bad']}, running {len(self.running)}), "
                f"elapsed {_clock(time.time() - self.started)}, eta {_clock(self.eta_s())}")

    def trial_line(self, r: _Running) -> str:
        v = r.values
        parts = []
        if "step" in v:
            parts.append(f"step {v['step']}/{v.get('total_steps', '?')}")
        for c in self.columns:
            if c.key in v:
                parts.append(f"{_num(v[c.key], c.fmt)} {c.header}" if c.header.endswith("/s") else f"{c.header} {_num(v[c.key], c.fmt)}")
        if _final(v):
            parts.append("final evaluation")
        parts.append(f"running {_clock(time.time() - r.since)}")
        return f"running {plain(r.label)}: " + ", ".join(parts)

    def tick(self) -> None:
        """Plain mode: the sweep line and one line per running trial, when `plain_every_s` passed."""
        if self.live is not None or time.time() < self.next_plain:
            return
        self.next_plain = time.time() + self.plain_every_s
        with self.lock:
            running = list(self.running.values())
        lines = [self.sweep_line(), *(f"  {self.trial_line(r)}" for r in running)]
        self.console.print("\n".join(lines), markup=False, highlight=False, soft_wrap=True)

    def __rich__(self) -> Group:
        with self.lock:
            running = list(self.running.values())
        fraction = self.fraction()
        head = Table.grid(padding=(0, 1))
        head.add_row(Text(self.title, style="bold"), ProgressBar(total=1.0, completed=fraction, width=30), Text(
            f"{fraction:.0%}  {self.counts['ok'] + self.counts['bad']}/{self.trials_total} trials  ok {self.counts['ok']} | "
            f"not ok {self.counts['bad']} | running {len(running)}  {_clock(time.time() - self.started)} elapsed, "
            f"eta {_clock(self.eta_s())}"))
        if not running:
            return Group(head)
        t = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
        for col in ("running trial", "step", *(c.header for c in self.columns), "running for"):
            t.add_column(col, justify="left" if col == "running trial" else "right")
        for r in running:
            v = r.values
            step = f"{v['step']}/{v.get('total_steps', '?')}" + (" final eval" if _final(v) else "") if "step" in v else "-"
            t.add_row(Text(plain(r.label)), step, *(_num(v.get(c.key), c.fmt) for c in self.columns), _clock(time.time() - r.since))
        return Group(head, t)

    def __enter__(self) -> "Board":
        if self.console.is_terminal:
            self.live = Live(self, console=self.console, refresh_per_second=2, transient=True, redirect_stdout=False, redirect_stderr=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None
        if self.trackers is not None:
            self.trackers.close()
        self.console.print(self.sweep_line(), markup=False, highlight=False, soft_wrap=True)
