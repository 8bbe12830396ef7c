"""The promises of the README's threat model, checked on what one command did (`check`): exit code
0 or 2 (1 only where documented), no traceback nor "internal error", nothing printed that a
terminal would obey (control characters but newline and tab, bidi controls, line separators, lone
surrogates), the sandbox's secret nowhere in what was printed or written, `outside/` and the rest
of `work/` unchanged, no file under `outside/` opened, nothing left running, an answer in time.

Each broken promise raises its own exception class (an internal error's class also carries the
product's exception and the line it came from; a read outside, the line that opened the file), so
that hypothesis tells distinct defects apart and shrinks each one.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

from .harness import SECRET, TIMEOUT_S, Outcome, Sandbox, changed, invoke, snapshot

MAX_SCAN_BYTES = 64 * 2**20
"""Bytes of one written file searched for the secret."""
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
"""What a terminal would obey or cannot show: C0 controls but tab and newline, DEL, C1, line and
paragraph separators, bidi overrides and isolates, lone surrogates (and bytes that are not UTF-8)."""


class BrokenPromise(AssertionError):
    """A promise of the threat model that a command broke."""


class Hung(BrokenPromise):
    pass


class Crashed(BrokenPromise):
    """An internal error, a traceback, or an exception out of the CLI's entry."""


class WrongExit(BrokenPromise):
    pass


class ObeyableOutput(BrokenPromise):
    """Something printed that a terminal would obey (a control character, a bidi control)."""


class SecretLeaked(BrokenPromise):
    pass


class WroteOutside(BrokenPromise):
    pass


class ReadOutside(BrokenPromise):
    pass


class LeftBehind(BrokenPromise):
    """A process or a thread still running after the command returned."""


_CLASSES: dict[tuple[type, str], type] = {}


def _specific(base: type, key: str) -> type:
    """A subclass of `base` per `key` (the product's exception and where it came from), the same
    class object each time, so that hypothesis counts each distinct defect once."""
    name = re.sub(r"\W+", "_", key)[:80] or "unknown"
    return _CLASSES.setdefault((base, key), type(f"{base.__name__}_{name}", (base,), {"__module__": __name__}))


def _crash_key(o: Outcome) -> str:
    """The product's exception and the last actbench line it passed, e.g. OverflowError report/compare.py:120."""
    text = o.product_traceback or o.escaped or o.stderr
    kind = re.findall(r"^(\w+(?:Error|Exception|Exit|Interrupt)\b)", text, re.M)
    m = re.search(r"internal error: (\w+)", o.stderr)
    name = m[1] if m else (kind[-1] if kind else "unknown")
    frames = re.findall(r'File "[^"]*/actbench/([^"]+)", line (\d+)', text)
    return f"{name} {frames[-1][0]}:{frames[-1][1]}" if frames else name


def check(o: Outcome, box: Sandbox, before: dict[str, dict[str, tuple]], *, codes: tuple[int, ...] = (0, 2),
          may_write: tuple[Path, ...] = (), may_read_outside: bool = False, secret_ok: bool = False,
          may_change: tuple[str, ...] = ()) -> None:
    """Raise the BrokenPromise of the first promise `o` broke. `before`: snapshots of
    box.outside and box.work taken before the command (`take_snapshots`); `may_write`: folders
    below box.work the command may write (besides box.out); `may_read_outside`: files under
    box.outside may be opened (a suite may name its data anywhere); `secret_ok`: their content
    may be printed, and `may_change` (relative to box.outside) written (the command was given a
    path that leads there)."""
    if o.hung_at:
        raise _specific(Hung, o.hung_at)(f"no answer within {o.timeout_s:g} s (hung at {o.hung_at})\n{o.describe()}")
    if o.left_behind:
        raise LeftBehind(f"still running after the command returned: {o.left_behind}\n{o.describe()}")
    text = o.stdout + o.stderr
    if o.escaped or "internal error" in text or "Traceback" in text:
        key = _crash_key(o)
        raise _specific(Crashed, key)(f"crashed: {key}\n{o.describe()}")
    command = o.args[0] if o.args else ""
    if o.code not in codes:
        raise _specific(WrongExit, f"{command} {o.code}")(f"exit code {o.code}, expected one of {codes}\n{o.describe()}")
    shown = o.stderr if _data_on_stdout(o.args) else text
    bad = UNSAFE.search(shown)
    if bad:
        at, c = bad.start(), bad.group()
        what = ("ESC" if c == "\x1b" else "C0" if c < " " or c == "\x7f" else "C1" if c <= "\x9f" else
                "surrogate" if "\ud800" <= c <= "\udfff" else "bidi or separator")
        raise _specific(ObeyableOutput, f"{command} {what}")(f"printed {c!r} at {shown[max(0, at - 80):at + 40]!r}\n{o.describe()}")
    by = o.opened_outside[0][1] if o.opened_outside else "unknown"
    if SECRET in text and not secret_ok:
        raise _specific(SecretLeaked, by)(f"printed the content of a file outside its folders (opened by {by})\n{o.describe()}")
    leaked = [] if secret_ok else [p for p in _written_files(box) if _holds_secret(p)]
    if leaked:
        raise _specific(SecretLeaked, by)(f"wrote the content of a file outside its folders (opened by {by}) into {leaked}\n{o.describe()}")
    after = take_snapshots(box, may_write)
    moved = [m for m in changed(before["outside"], after["outside"])
             if "." not in may_change and not any(m == g or m.startswith(g + os.sep) for g in may_change)]
    if moved:
        raise _specific(WroteOutside, f"{command} outside")(f"changed {moved[:5]} in the outside folder\n{o.describe()}")
    moved = changed(before["work"], after["work"])
    if moved:
        raise _specific(WroteOutside, f"{command} work")(f"changed {moved[:5]} under {box.work} outside the output folder\n{o.describe()}")
    if o.opened_outside and not may_read_outside:
        raise _specific(ReadOutside, by)(f"opened {sorted(set(o.opened_outside))[:5]}, outside the folders it was given\n{o.describe()}")


def _data_on_stdout(args: list[str]) -> bool:
    """`compare --format csv` to a file or a pipe: stdout is data, kept as it is (README: CSV holds
    the data, cleaned only when printed to a terminal, which the in-process stdout never is)."""
    return bool(args) and args[0] == "compare" and "--format" in args[:-1] and args[args.index("--format") + 1] == "csv"


def _leads_outside(box: Sandbox, arg: str) -> str:
    """Where under box.outside a command-line argument leads (through a link the fuzzer planted),
    relative to it, or "": the user named that path, so reading it, printing what is in it and
    (a regress history) appending to it is what was asked for."""
    path = box.sub(arg)
    if not path.startswith("/") or not os.path.lexists(path):
        return ""
    real, outside = os.path.realpath(path), os.path.realpath(box.outside)
    return os.path.relpath(real, outside) if real == outside or real.startswith(outside + os.sep) else ""


def take_snapshots(box: Sandbox, may_write: tuple[Path, ...] = ()) -> dict[str, dict[str, tuple]]:
    return {"outside": snapshot(box.outside), "work": snapshot(box.work, skip=(box.out, *may_write))}


def _written_files(box: Sandbox) -> list[Path]:
    found = []
    for top in (box.out, box.tmp):
        for dirpath, _, filenames in os.walk(top, followlinks=False):
            found += [Path(dirpath) / n for n in filenames]
    return found


def _holds_secret(p: Path) -> bool:
    try:
        st = os.lstat(p)
        if not stat.S_ISREG(st.st_mode):
            return False
        with open(p, "rb") as f:
            return SECRET.encode() in f.read(MAX_SCAN_BYTES)
    except OSError:
        return False


def run_and_check(box: Sandbox, args: list[str], *, codes: tuple[int, ...] = (0, 2), may_write: tuple[Path, ...] = (),
                  may_read_outside: bool = False, example: Any = None, timeout_s: float = TIMEOUT_S) -> Outcome:
    """Snapshot, run `actbench ARGS`, check every promise; the Outcome when all held. With
    ACTBENCH_FUZZ_COLLECT=FILE a broken promise is appended to FILE (the first of each class,
    with `example`, the generated input) instead of raised, so that one long session lists every
    distinct defect it meets rather than stopping at the first."""
    before = take_snapshots(box, may_write)
    given = [p for p in (_leads_outside(box, a) for a in args) if p]
    o = invoke(box, args, timeout_s)
    try:
        check(o, box, before, codes=codes, may_write=may_write, may_read_outside=may_read_outside or bool(given),
              secret_ok=bool(given), may_change=tuple(given))
    except BrokenPromise as e:
        o.broken = True
        collected(e, example)
    return o


def collected(e: BrokenPromise, example: Any = None) -> None:
    """Raise `e`, or with ACTBENCH_FUZZ_COLLECT=FILE append it to FILE (once per class) and return."""
    collect = os.environ.get("ACTBENCH_FUZZ_COLLECT")
    if not collect:
        raise e
    name = type(e).__name__
    _collected[name] = _collected.get(name, 0) + 1
    if _collected[name] == 1:
        import json

        with open(collect, "a") as f:
            f.write(json.dumps({"class": name, "example": repr(example), "message": str(e)[:4000]}) + "\n")


_collected: dict[str, int] = {}
