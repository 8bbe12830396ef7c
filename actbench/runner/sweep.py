"""A run's sweep: plan, run the batch, plan again, until the planner has nothing left (each look a
suite that decides its seeds takes recorded before it is printed), after refusing a staged suite
that differs from the one its earlier run in the folder kept."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from actbench.core.text import MAX_LINE_CHARS, markup
from actbench.errors import UserError
from actbench.suite import MAX_TRIALS, Suite

if TYPE_CHECKING:
    from actbench.results import decisions
    from actbench.runner.driver import SweepResult
    from actbench.runner.executor import Executor
    from actbench.runner.trackers import Trackers
    from actbench.select import TrialFilter


def sweep(suite: Suite, store: Any, executor: "Executor", groups: list[int], select: "TrialFilter | None", rerun: bool,
           checkpoint_dir: str, console: Console, trackers: "Trackers | None", plain_every_s: float | None) -> "SweepResult":
    """Plan, run the batch, plan again, until the planner has nothing left to run."""
    from actbench.activations.registry import facts
    from actbench.planner.plan import plan
    from actbench.results import decisions
    from actbench.results.read import attempts, latest
    from actbench.runner.driver import Runner
    from actbench.runner.progress import PLAIN_EVERY_S, Board

    every = store.records()
    records = latest(every)
    suite = suite.sized(every)  # `resources.gpus: auto`, with the peaks earlier runs measured
    if suite.gpu_note:
        console.print(markup(suite.gpu_note), highlight=False, soft_wrap=True)
    check_kept_design(suite, store.root, records)
    named = [v for p in suite.points for v, _ in p.values() if isinstance(v, str)]  # activations (the reference too) among them
    store.save_suite(suite.name, suite.raw, facts(named))
    recorded = recorded_looks(suite, store, every)
    done_before = set() if rerun else {i for i, r in records.items() if r.ok}
    settled = set(done_before)
    board = Board(suite.name, console, suite.kind.columns, PLAIN_EVERY_S if plain_every_s is None else plain_every_s, trackers)
    runner = Runner(suite.name, store, executor, board, console, checkpoint_dir, suite.label_fields, attempts(every),
                    str(suite.path))
    said: set[str] = set()  # decisions printed
    counted: set[str] = set()  # trials counted as already done
    executor.set_progress(board.report)
    try:
        with board:
            while True:
                p = plan(suite, records, settled, groups, select, recorded)
                for look in p.seeds.fresh if p.seeds is not None and recorded is not None else []:  # recorded before it is printed
                    decisions.append(store, look)
                    recorded.add(look)
                for event in p.events:
                    if event not in said:
                        said.add(event)
                        console.print(markup(event, limit=MAX_LINE_CHARS), highlight=False, soft_wrap=True)
                skipped = {t.id for t in p.planned if t.id in done_before} - counted
                if skipped:
                    counted.update(skipped)
                    console.print(f"resume: {len(skipped)} trial(s) already recorded ok in {markup(store.root)}, skipping (--rerun to force)")
                    runner.result.skipped += len(skipped)
                runner.result.deselected = p.deselected
                if p.batch is None:
                    break
                todo = [t for t in p.batch.trials if t.id not in settled]
                console.print(f"[bold]stage: {markup(p.batch.name)}[/] ({len(todo)} trial(s))", highlight=False)
                runner.run(todo)
                if runner.result.interrupted:  # what did not run is not settled: plan nothing more from it
                    break
                settled.update(t.id for t in todo)
                records.update({r.trial_id: r for r in runner.result.records})
                if recorded is not None:
                    recorded.add_records(runner.result.records)
    finally:
        executor.set_progress(None)
    return runner.result


def recorded_looks(suite: Suite, store: Any, every: list[Any]) -> "decisions.Recorded | None":
    """For a suite that decides its seeds, the looks its earlier runs recorded in the folder (with
    every attempt of its trials); its start is recorded now, so every look it decides from here on is."""
    from actbench.results import decisions

    if suite.spec.decide is None:
        return None
    recorded = decisions.read(store.root, writing=True, records=every)
    if recorded is None:
        recorded = decisions.Recorded(writing=True)
        recorded.add_records(every)
    if suite.name not in recorded.started:
        start = decisions.Start(suite=suite.name)
        decisions.append(store, start)
        recorded.add(start)
    return recorded


PLAN_FREE = ("description", "resources")
"""Top-level suite blocks that change no trial and no decision: a staged suite may change them between runs into one folder."""


def check_kept_design(suite: Suite, root: Path, records: dict[str, Any]) -> None:
    """Refuse to run a staged suite (tuned, deciding, choosing or on a ladder) that differs from the
    one its earlier run in this folder kept, but for `PLAN_FREE` blocks: compare replays the
    folder's decisions from the kept suite, and overwriting it would replay records planned by one
    suite with another (and leave those it no longer plans out of the comparison)."""
    import json

    from actbench.planner.plan import staged
    from actbench.results import gate
    from actbench.suite.yamlsafe import MAX_SUITE_BYTES, load_yaml

    rel = gate.kept_suite(suite.name)
    kept = root / str(rel)
    if rel is None or not any(r.suite == suite.name for r in records.values()):
        return
    raw = gate.read_bytes(root, rel, MAX_SUITE_BYTES)  # through the results gate: a FIFO or a link there is refused with a warning
    if raw is None:
        return
    try:
        old = load_yaml(raw.decode("utf-8-sig"), str(kept), MAX_TRIALS)[0]
    except (UnicodeDecodeError, UserError):
        return
    old = old if isinstance(old, dict) else {}
    if not (staged(suite) or suite.spec.ladder or any(old.get(k) for k in ("tune", "decide", "ladder"))):
        return  # plain trials: compare reads the records alone
    same = lambda k: json.dumps(old.get(k), sort_keys=True, default=str) == json.dumps(suite.raw.get(k), sort_keys=True, default=str)  # noqa: E731
    changed = [k for k in dict.fromkeys([*old, *suite.raw]) if k not in PLAN_FREE and not same(k)]
    if changed:
        raise UserError(f"{kept}: the records of {suite.name} in {root} were planned with other {', '.join(changed)} than {suite.path} "
                        "(after --set) states, and their stages and verdicts are replayed from this kept suite: run into another "
                        "folder (--out), or restore those blocks")
