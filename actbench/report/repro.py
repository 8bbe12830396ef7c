"""The command that reproduces one recorded trial (`actbench run suites/<suite>.yaml -k ... --set
... --out ...`), rebuilt from its record and the repository's suite file and checked before it is
shown: loading the suite with those `--set` values gives a trial of the record's id, and `-k`
selects that trial alone. Every argument is shell-quoted (shlex.quote); the caller escapes the
line for the terminal (`core.text`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

from actbench.core.record import Record
from actbench.errors import UserError
from actbench.results import gate
from actbench.select import parse_filter
from actbench.suite import load_suite
from actbench.suite.overrides import parse_overrides

MAX_SETS = 8
"""More differing fields than this: the record is not of this suite as the repository states it."""
_WORD = set("()=!") | {" ", "\t", "\n", "\r", "\x0b", "\x0c"}


def _yaml_text(value: Any) -> str:
    """A value as `--set` parses it back (YAML): a plain word where YAML reads it as that string."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and "\n" not in value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, separators=(",", ":"))


def _diff(base: dict[str, Any], want: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
    """Dotted keys whose value in `want` differs from `base`; None when `want` lacks a key of
    `base` (no --set can remove one)."""
    out: dict[str, Any] = {}
    for k in base.keys() | want.keys():
        if k not in want:
            return None
        b, w = base.get(k), want[k]
        if isinstance(b, dict) and isinstance(w, dict):
            inner = _diff(b, w, f"{prefix}{k}.")
            if inner is None:
                return None
            out.update(inner)
        elif b != w or type(b) is not type(w):
            out[f"{prefix}{k}"] = w
    return out


def _selector(fields: list[str], config: dict[str, Any], trial_id: str) -> str:
    """-k of the suite's label fields (`activation=xielu and dtype=float32`), or the trial id
    where a value cannot be written as one word."""
    parts = []
    for f in fields:
        v = config.get(f)
        text = "true" if v is True else "false" if v is False else str(v)
        if isinstance(v, (dict, list)) or not text or _WORD & set(text) or text.lower() in ("and", "or", "not"):
            return trial_id
        parts.append(f"{f}={text}")
    return " and ".join(parts) or trial_id


def repro_args(record: Record, out: str = "results/repro") -> list[str]:
    """`actbench run` arguments that run this record's trial again, and only it; UserError saying
    why when the repository's suite (suites/<suite>.yaml, from the working folder) cannot give it."""
    rel = gate.kept_suite(record.suite)
    if rel is None or not rel.is_file():
        raise UserError(f"no suite file {rel or 'for suite ' + repr(record.suite)} here")
    suite = load_suite(rel, check_paths=False)
    best: dict[str, Any] | None = None
    for trial in suite.trials:
        d = _diff(trial.config_dict(), record.config)
        if d is not None and (best is None or len(d) < len(best)):
            best = d
    if best is None or len(best) > MAX_SETS:
        raise UserError(f"{rel} as it is here has no trial like {record.trial_id}")
    sets = [f"{k}={_yaml_text(v)}" for k, v in sorted(best.items())]
    suite = load_suite(rel, parse_overrides(sets), check_paths=False)
    ids = {t.id: t for t in suite.trials}
    if record.trial_id not in ids:
        raise UserError(f"{rel} with {' '.join(sets) or 'no --set'} does not give trial {record.trial_id}")
    select = _selector(suite.label_fields, record.config, record.trial_id)
    chosen = [t.id for t in suite.trials if parse_filter(select).matches(t.config_dict(), t.id)]  # type: ignore[union-attr]
    if chosen != [record.trial_id]:
        select = record.trial_id
    return ["actbench", "run", str(rel), "-k", select, *[a for s in sets for a in ("--set", s)], "--out", out]


def shell_line(args: list[str]) -> str:
    """The arguments as one shell command line, each quoted."""
    return " ".join(shlex.quote(a) for a in args)


def bisect_line(run_args: list[str], good: str, bad: str, history: str | Path, row: str) -> str:
    """The `git bisect run` line that finds the commit: at each step the trial runs again (--rerun;
    a failed run skips the commit, 125) and `regress --row` says whether the row is at its
    level before the step (good, 0) or after it (bad, 1); any other answer of it (an error,
    2) ends the bisect (128) instead of marking the commit bad."""
    out = run_args[run_args.index("--out") + 1]
    check = shell_line(["actbench", "regress", out, "--history", str(history), "--row", row])
    step = f"{shell_line([*run_args, '--rerun'])} || exit 125; {check}; rc=$?; [ $rc -le 1 ] || [ $rc -eq 125 ] || exit 128; exit $rc"
    return f"git bisect start {shlex.quote(bad)} {shlex.quote(good)} && git bisect run sh -c {shlex.quote(step)}"
