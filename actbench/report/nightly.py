"""`actbench regress RUN --history DIR`: a night judged over its history and added to it, the
rows to rerun at once, the alerts as a markdown summary (each with its size, commits, the command
that reproduces it and the `git bisect run` line), and `--row`, the check `git bisect run` calls."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from actbench.analysis.changepoint import MIN_HISTORY
from actbench.core.record import Record
from actbench.core.text import md, md_code, plain
from actbench.errors import UserError
from actbench.report import history as store
from actbench.report.alerts import MIN_EFFECT, Judged, Verdict, judge_night, night_rows
from actbench.report.repro import bisect_line, repro_args, shell_line
from actbench.results.read import latest_records, result_dirs

WORDS = {"short": f"short (fewer than {MIN_HISTORY + 1} nights since the history or the row's accepted step began)", "noisy": "too noisy to judge"}
SKIP = 125
"""What `--row` exits with when the run has no figure of the row (git bisect: skip this commit)."""


@dataclass
class Night:
    """What regress did with a night: the judgement, the history file, the failed trials, the
    rows accepted, the suspects to rerun (suite, trial id), and the markdown summary."""

    judged: Judged
    path: Path
    failed: list[Record]
    accepted: list[str]
    suspects: list[tuple[str, str]]
    markdown: str = ""
    recorded_as: int | None = None
    """The night's place in the history (0 the oldest) when this run was already in it: judged as it was then, not added again."""

    @property
    def exit_code(self) -> int:
        return 1 if self.failed or (self.judged.with_status("regression") and not self.accepted) else 0


def _records(run_dir: str | Path, flag: str = "") -> list[Record]:
    """The last attempt of every trial in the folders at or below `run_dir`; UserError naming both
    folders where one trial is in two (its figures are never pooled silently)."""
    if not result_dirs(run_dir):
        raise UserError(f"{flag}{run_dir}: no trials.jsonl at or below it")
    where: dict[tuple[str, str], Path] = {}
    records = []
    for folder, r in latest_records(run_dir):
        seen = where.setdefault((r.suite, r.trial_id), folder)
        if seen != folder:
            raise UserError(f"{flag}{run_dir}: trial {plain(r.suite)} {plain(r.trial_id)} is recorded in both {plain(seen)} and "
                            f"{plain(folder)}: judge one of them (or keep each suite's run in its own folder)")
        records.append(r)
    return records


def _tonight(records: list[Record], points: dict[str, store.Point], commit: str | None) -> store.Night:
    commits = Counter(r.env.get("git_commit") or "unknown" for r in records)
    ended = [r.ended_at for r in records if isinstance(r.ended_at, (int, float)) and 0 < r.ended_at < 1e11]
    date = datetime.fromtimestamp(max(ended), timezone.utc) if ended else datetime.now(timezone.utc)
    return store.Night(commit=(commit or commits.most_common(1)[0][0])[:store.MAX_KEY_CHARS], date=date.isoformat(timespec="seconds"),
                       rows=points, fingerprint=store.fingerprint(records), run=store.run_digest(records))


def judge_run(run_dir: str | Path, history: str | Path, *, rerun: str | Path | None = None, accept: bool = False,
              commit: str | None = None, record: bool = True, min_effect: float = MIN_EFFECT, bpb_tolerance: float = 0.02) -> Night:
    """Judge the run's rows over the history of its environment (`rerun`: a results folder with an
    immediate rerun of suspect rows) and, when `record`, append the night (with the rows whose step
    `accept` accepts: their level restarts there). A run already in the history is judged over
    the nights before it and not added again (with `accept`, only its accepted rows are)."""
    records = _records(run_dir)
    points, rows = night_rows(records)
    failed = [r for r in records if not r.ok]
    if not rows and not failed:
        raise UserError(f"{run_dir}: no ok trial with a figure to judge")
    tonight = _tonight(records, points, commit)
    name = store.file_name(tonight.fingerprint)
    nights = store.read_nights(history, name)
    recorded_as = next((i for i, n in enumerate(nights) if n.run == tonight.run), None)
    if recorded_as is not None:
        nights = nights[:recorded_as]
    again_records = _records(rerun, "--rerun ") if rerun is not None else []
    if again_records and store.run_digest(again_records) == tonight.run:
        raise UserError(f"--rerun {rerun}: the same records as the run {run_dir}, not a rerun of it")
    again = night_rows(again_records)[0] if rerun is not None else None
    judged = judge_night(nights, tonight, rows, min_effect=min_effect, bpb_tolerance=bpb_tolerance, rerun=again)
    accepted = [v.row.key for v in judged.with_status("regression", "improvement", "suspect")] if accept else []
    tonight.accepted, tonight.machine_event = accepted, judged.machine_event
    path = store.append_night(history, name, tonight) if record and (recorded_as is None or accepted) else Path(history) / name
    suspects = sorted({(v.row.record.suite, v.row.record.trial_id) for v in judged.with_status("suspect") if v.row.kind != "lm"})
    night = Night(judged, path, failed, accepted, suspects, recorded_as=recorded_as)
    night.markdown = summary(night, tonight, len(nights), history)
    return night


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x * 100:+.1f}%"


def _alert(v: Verdict, history: str | Path) -> list[str]:
    j = v.judgement
    interval = f" (95% interval {_pct(j.interval[0])} to {_pct(j.interval[1])})" if j.interval else ""
    how = "by an immediate rerun" if v.rerun and j.nights_confirmed <= 2 else f"over {j.nights_confirmed} nights"
    lines = [f"- **{md(v.row.label)}** ({v.row.metric}): {_pct(j.change)}{interval}, from {j.level:.4g} to {j.current:.4g} "
             f"(noise {_pct(j.noise)} a night); last good {md(str(v.last_good or '?')[:12])}, first bad {md(str(v.first_bad or '?')[:12])}; "
             f"confirmed {how}"]
    same = v.last_good is not None and v.last_good == v.first_bad
    if same:
        lines.append(f"  - no code change between the nights (environment, machine or data): both ran commit {md(str(v.last_good or '?')[:12])}")
    try:
        args = repro_args(v.row.record, f"results/repro-{v.row.record.trial_id}")
    except UserError as e:
        return [*lines, f"  - no command to reproduce it: {md(e)}"]
    lines.append(f"  - reproduce: {md_code(shell_line(args), limit=None)}")
    options = [c for c in (v.last_good, v.first_bad) if c and c.startswith("-")]
    if options:  # git would take it as an option, not a revision
        lines.append(f"  - no bisect line: commit {md(repr(options[0][:40]))} is not a revision name")
    elif v.last_good and v.first_bad and not same:
        lines.append(f"  - find the commit: {md_code(bisect_line(args, v.last_good, v.first_bad, history, v.row.key), limit=None)}")
    return lines


def summary(night: Night, tonight: store.Night, before: int, history: str | Path) -> str:
    """The markdown summary: the verdict, then regressions (with their commands), suspects,
    improvements, noisy rows and failed trials."""
    judged = night.judged
    status = "FAIL" if night.exit_code else "PASS"
    counts = Counter(v.judgement.status for v in judged.verdicts)
    head = ", ".join(f"{n} {WORDS.get(s, s)}" for s, n in counts.most_common()) or "no row judged"
    out = [f"## actbench regress: {status}", "",
           f"History {md_code(night.path)} ({before} night(s) before this one), commit {md(str(tonight.commit)[:12])}: {head}."]
    if night.recorded_as is not None:
        out += ["", f"This run is already in the history (night {night.recorded_as + 1}): judged as it was then, not added again."]
    if judged.machine_event:
        moved, of = judged.moved
        out += ["", f"**Machine event**: {moved} of {of} rows (the copy bandwidth among them) moved together tonight; "
                    "no row is judged on this night and it is kept out of every level. Rerun on a quiet machine."]
    if night.accepted:
        out += ["", f"Accepted {len(night.accepted)} step(s) as intended: their level restarts at this night."]
    sections = [("Regressions (confirmed)", "regression"), ("Suspects (one night: a second night or a rerun confirms)", "suspect"),
                ("Improvements", "improvement")]
    for title, status_name in sections:
        rows = judged.with_status(status_name)
        if rows:
            out += ["", f"### {title}", ""]
            for v in rows:
                out += _alert(v, history) if status_name == "regression" else [
                    f"- {md(v.row.label)} ({v.row.metric}): {_pct(v.judgement.change)} since {md(str(v.last_good or '?')[:12])}"]
    noisy = judged.with_status("noisy")
    if noisy:
        out += ["", f"### Too noisy to judge ({len(noisy)})", ""]
        out += [f"- {md(v.row.label)} ({v.row.metric}): noise {_pct(v.judgement.noise)} a night; "
                f"{v.judgement.repeats_needed} repeats a night would make it judgeable" for v in noisy[:20]]
    if night.failed:
        out += ["", f"### Failed trials ({len(night.failed)})", ""]
        out += [f"- {md(r.suite)} {md(r.trial_id)}: {md(r.status)}" for r in night.failed[:50]]
    return "\n".join(out) + "\n"


def write_suspects(night: Night, path: str | Path) -> None:
    """The suspect rows' trials, `suite trial_id` a line (both checked names), for a rerun with -k."""
    from actbench.results import gate
    from actbench.suite.schema import NAME_PATTERN

    gate.user_file(path, "--suspects")  # a FIFO or a device is refused before it is opened
    Path(path).write_text("".join(f"{s} {t}\n" for s, t in night.suspects if NAME_PATTERN.fullmatch(s) and t.isalnum()))


def check_row(run_dir: str | Path, history: str | Path, key: str) -> tuple[int, str]:
    """`--row KEY` (for `git bisect run`): 1 when the run's figure of the row is nearer the level
    after its step than before it, 0 when nearer before, SKIP when the run has no figure of it."""
    records = _records(run_dir)
    points, rows = night_rows(records)
    if key not in points:
        return SKIP, f"{plain(key)}: no figure of this row in {plain(run_dir)}"
    name = store.file_name(store.fingerprint(records))
    nights = store.read_nights(history, name)
    j = judge_night(nights[:-1], nights[-1], {key: rows[key]}).verdicts if nights and key in nights[-1].rows else []
    if not j or j[0].judgement.level is None or j[0].judgement.current is None or j[0].judgement.status in ("ok", "short", "noisy"):
        raise UserError(f"--row {plain(key)}: no step of this row in {plain(Path(history) / name)} to compare with")
    value, before, after = (math.log(x) for x in (points[key].value, j[0].judgement.level, j[0].judgement.current))
    bad = abs(value - after) < abs(value - before)
    return int(bad), f"{plain(key)}: {points[key].value:.4g}, {'after' if bad else 'before'} the step ({j[0].judgement.level:.4g} -> {j[0].judgement.current:.4g})"
