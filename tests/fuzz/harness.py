"""The fuzzer's harness: a sandbox per example and the real CLI entry run in this process under a
time and a memory bound (the promises checked on what it did are `promises.py`'s).

A sandbox is a fresh folder holding `work/` (the current folder of the command, with `in/`, the
input, and `out/`, the only place it may write), `tmp/` (Python's temporary folder during the
command) and, beside them, `outside/`: files whose content is `SECRET`, which hostile input
points at through `..`, absolute paths and links. `invoke` runs `actbench ARGS` through
`actbench.cli.main` with stdout and stderr captured at the file descriptors, records every file
under `outside/` it opens (Python's audit hook), interrupts it with a signal after TIMEOUT_S
(saying where it hung), bounds its address space (a read of /dev/zero ends in MemoryError, not in
the kernel's OOM killer) and notes any thread or process it leaves behind.
"""

from __future__ import annotations

import faulthandler
import io
import os
import re
import resource
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SECRET = f"SECRET-{uuid.uuid4().hex[:16]}"
"""The content of every planted file outside the folders a command is given."""
TIMEOUT_S = float(os.environ.get("ACTBENCH_FUZZ_TIMEOUT", "60"))
"""Seconds one command may take (generous: the CI machine is shared and slow)."""
MEMORY_HEADROOM = 2**30
"""Bytes of address space a command may add to this process's (a read of /dev/zero ends in MemoryError)."""
OUTSIDE, IN, OUT = "@OUTSIDE@", "@IN@", "@OUT@"
"""Placeholders that hostile values use for the sandbox's folders (absolute paths)."""


def fuzz(ci_examples: int) -> Any:
    """The hypothesis settings of one property: `ci_examples` examples under the `ci` profile, the
    `long` profile's count with ACTBENCH_FUZZ=long (both registered by conftest.py)."""
    from hypothesis import settings

    if os.environ.get("ACTBENCH_FUZZ", "") == "long":
        return settings(settings.get_profile("actbench-fuzz-long"))
    return settings(settings.get_profile("actbench-fuzz-ci"), max_examples=ci_examples)


# --- the sandbox ---------------------------------------------------------------------------------

class Sandbox:
    """One example's folders: work/in, work/out, tmp and the planted outside/."""

    def __init__(self, base: Path):
        self.root = Path(tempfile.mkdtemp(prefix="ex-", dir=base))
        self.outside = self.root / "outside"
        self.work = self.root / "work"
        self.inp = self.work / "in"
        self.out = self.work / "out"
        self.tmp = self.root / "tmp"
        for d in (self.outside, self.inp, self.out, self.tmp):
            d.mkdir(parents=True)
        self._plant()

    def _plant(self) -> None:
        o = self.outside
        (o / "secret.yaml").write_text(f"name: probe\nkind: probe\ndescription: {SECRET}\nmatrix: {{tag: [{SECRET}]}}\n")
        (o / "secret.txt").write_text(f"{SECRET}\n" * 100)
        (o / "secret.json").write_text(f'{{"figures": {{"{SECRET}": 1.0}}, "commit": "{SECRET}", "eval_chunks": "{SECRET}"}}')
        (o / "secret.activations.json").write_text(f'{{"{SECRET}": {{"family": "{SECRET}"}}}}')
        record = ('{"trial_id": "%s", "status": "ok", "suite": "%s", "kind": "probe", "config": {"tag": "%s", "seed": 0},'
                  ' "metrics": {"value": 1.0}, "env": {"git_commit": "%s"}}\n') % ((SECRET,) * 4)
        (o / "secret.jsonl").write_text(record)
        (o / "results").mkdir()
        (o / "results" / "trials.jsonl").write_text(record)
        (o / "suites").mkdir()
        (o / "suites" / "secret.yaml").write_text(f"name: x\nkind: probe\ndescription: {SECRET}\n")

    def sub(self, text: str) -> str:
        """`text` with the placeholders replaced by the sandbox's absolute folders."""
        return text.replace(OUTSIDE, str(self.outside)).replace(IN, str(self.inp)).replace(OUT, str(self.out))

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)  # FIFOs and links go too (links are not followed)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


def snapshot(top: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple]:
    """Every entry below `top` (links not followed): its type, size, mtime, link target and, for a
    small regular file, its content."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d not in skip]
        for name in [*dirnames, *filenames]:
            p = here / name
            if p in skip:
                continue
            st = os.lstat(p)
            content: Any = None
            if stat.S_ISREG(st.st_mode) and st.st_size <= 2**20:
                content = p.read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            found[str(p.relative_to(top))] = (stat.S_IFMT(st.st_mode), st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                                              st.st_mtime_ns if stat.S_ISREG(st.st_mode) else 0, content)
    return found


def changed(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# --- running the CLI in this process ---------------------------------------------------------------

class _Stop(BaseException):
    """Raised in the main thread when a command runs past its time (not an Exception: the CLI's
    own handler must not turn it into an internal error)."""


_watch: tuple[str, list[tuple[str, str]]] | None = None
"""While a command runs: the folder it must not open files in, and the opens found there (path, where)."""


def _audit(event: str, args: tuple) -> None:
    """Python's audit hook: an open of a file under the watched folder is recorded with the
    actbench line that opened it."""
    watch = _watch
    if event != "open" or watch is None or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    try:
        path = os.path.join(os.getcwd(), os.fsdecode(args[0]))
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        # O_NOFOLLOW: a link as the last component is refused (ELOOP), never opened; only the folders resolve
        path = (os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)) if flags & os.O_NOFOLLOW
                else os.path.realpath(path))
    except (OSError, ValueError):
        return
    if path == watch[0] or path.startswith(watch[0] + os.sep):
        watch[1].append((path, _product_line(sys._getframe(1))))


def _product_line(frame: Any) -> str:
    """The innermost actbench line in a stack, e.g. report/html.py:116."""
    while frame is not None:
        name = frame.f_code.co_filename
        if f"{os.sep}actbench{os.sep}" in name and f"{os.sep}tests{os.sep}" not in name:
            return f"{name.rsplit(f'{os.sep}actbench{os.sep}', 1)[1]}:{frame.f_lineno}"
        frame = frame.f_back
    return "unknown"


sys.addaudithook(_audit)


@dataclass
class Outcome:
    """What one command did: its arguments, exit code, output, the files it opened (absolute), how long it took."""

    args: list[str]
    code: int | None
    stdout: str
    stderr: str
    opened_outside: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    hung_at: str = ""
    hung_frames: str = ""
    escaped: str = ""
    product_traceback: str = ""
    left_behind: str = ""
    timeout_s: float = TIMEOUT_S
    broken: bool = False

    def describe(self) -> str:
        parts = [f"command: actbench {' '.join(map(repr, self.args))}", f"exit code: {self.code} after {self.seconds:.1f} s"]
        if self.stdout:
            parts.append("stdout (end): " + repr(self.stdout[-1500:]))
        if self.stderr:
            parts.append("stderr (end): " + repr(self.stderr[-1500:]))
        if self.hung_at:
            parts.append(f"hung at {self.hung_at}:\n{self.hung_frames}")
        if self.escaped:
            parts.append("escaped the CLI's entry:\n" + self.escaped)
        if self.product_traceback:
            parts.append("traceback the CLI wrote:\n" + self.product_traceback[-3000:])
        return "\n".join(parts)


def _children() -> set[int]:
    kids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            kids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    return kids


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _hung_where(tb: Any) -> tuple[str, str]:
    """(the innermost actbench line, the last frames) of where a command was stopped."""
    import traceback

    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if f"{os.sep}actbench{os.sep}" in f.filename and f"{os.sep}tests{os.sep}" not in f.filename]
    where = f"{ours[-1].filename.rsplit(f'{os.sep}actbench{os.sep}', 1)[1]}:{ours[-1].lineno}" if ours else "unknown"
    return where, "".join(traceback.format_list(frames[-8:]))


def invoke(box: Sandbox, args: list[str], timeout_s: float = TIMEOUT_S) -> Outcome:
    """Run `actbench ARGS` through the CLI's real entry (`actbench.cli.main`) in this process, in
    `box.work`, with stdout and stderr captured at the file descriptors (strict UTF-8 stdout, as a
    real one), Python's temporary folder in `box.tmp`, a memory bound and a time bound."""
    global _watch, _armed
    from actbench import cli

    args = [box.sub(a) for a in args]
    threads_before = set(threading.enumerate())
    kids_before = _children()
    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {1: os.dup(1), 2: os.dup(2)}
    saved_streams, saved_path = (sys.stdin, sys.stdout, sys.stderr, sys.argv), list(sys.path)
    saved_cwd, saved_tmp, saved_format = os.getcwd(), tempfile.tempdir, warnings.formatwarning
    backstop = os.fdopen(os.dup(saved[2]), "w")
    limit = resource.getrlimit(resource.RLIMIT_AS)
    previous = signal.signal(signal.SIGUSR2, _interrupt)
    timer = threading.Timer(timeout_s, signal.pthread_kill, (threading.main_thread().ident, signal.SIGUSR2))
    timer.daemon = True
    code: int | None = None
    hung_at = hung_frames = escaped = ""
    opened: list[tuple[str, str]] = []
    started = time.monotonic()
    try:
        os.dup2(out_f.fileno(), 1)
        os.dup2(err_f.fileno(), 2)
        sys.stdin = io.StringIO("")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="strict", write_through=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True)
        sys.argv = ["actbench", *args]
        os.chdir(box.work)
        tempfile.tempdir = str(box.tmp)
        # the last net: a command that ignores the signal below still cannot hang the test session
        faulthandler.dump_traceback_later(timeout_s + 120, exit=True, file=backstop)
        timer.start()
        soft = _vm_size() + MEMORY_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (soft if limit[1] == resource.RLIM_INFINITY else min(soft, limit[1]), limit[1]))
        _watch = (os.path.realpath(box.outside), opened)
        _armed = True
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for quiet in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.filterwarnings("ignore", category=quiet)
            warnings.showwarning = _show_warning
            try:
                cli.main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
            except _Stop as e:
                hung_at, hung_frames = _hung_where(e.__traceback__)
            except BaseException as e:  # noqa: BLE001 - anything out of the entry is a broken promise
                import traceback

                escaped = "".join(traceback.format_exception(e))[-3000:]
    finally:
        _armed = False  # a signal from here on is ignored: it may already be on its way
        timer.cancel()
        timer.join()
        _watch = None
        resource.setrlimit(resource.RLIMIT_AS, limit)
        faulthandler.cancel_dump_traceback_later()
        backstop.close()
        seconds = time.monotonic() - started
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError, UnicodeError):
            pass
        sys.stdin, sys.stdout, sys.stderr, sys.argv = saved_streams
        sys.path[:] = saved_path  # --plugin puts the current folder (this sandbox) on it
        for fd, dup in saved.items():
            os.dup2(dup, fd)
            os.close(dup)
        os.chdir(saved_cwd)
        tempfile.tempdir = saved_tmp
        warnings.formatwarning = saved_format
        signal.signal(signal.SIGUSR2, previous)
        for c in (getattr(cli, "console", None), getattr(cli, "err_console", None)):
            if c is not None and hasattr(c, "_file"):  # a run points the CLI's consoles at this command's streams
                c._file = None
    outputs = []
    for f in (out_f, err_f):
        f.seek(0)
        outputs.append(f.read().decode("utf-8", "surrogateescape"))
        f.close()
    o = Outcome(args, code, outputs[0], outputs[1], opened, seconds, hung_at, hung_frames, escaped)
    o.product_traceback, o.timeout_s = _product_traceback(o.stderr), timeout_s
    left = [t.name for t in set(threading.enumerate()) - threads_before if t.is_alive() and not t.daemon]
    kids = _children() - kids_before
    if left or kids:
        o.left_behind = f"threads {left}, processes {sorted(kids)}"
    return o


_armed = False
"""Whether a command is running (the time-bound signal stops it only then)."""


def _interrupt(signum: int, frame: Any) -> None:
    if _armed:
        raise _Stop()


def _show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _product_traceback(stderr: str) -> str:
    m = re.search(r"\(traceback in (.+?)\)\s*$", stderr, re.M)
    if not m:
        return ""
    try:
        return Path(m[1]).read_text()
    except OSError:
        return ""
