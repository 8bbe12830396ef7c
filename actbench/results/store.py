"""The append-only store of one results folder: the run's lock, records appended whole (fsynced,
rolled back on a failed write), side files written atomically, never through a planted link."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from actbench.core.record import Record, encode
from actbench.errors import UserError
from actbench.results import gate
from actbench.results.read import RECORDS, iter_records, latest, read_series

LOCK = ".actbench.lock"
SIDE_FOLDERS = ("series", "errors", "suites")


class ResultStore:
    """Append-only store of trial records under one folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / RECORDS
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[str | None]:
        """Hold the folder for writing, exclusively: an flock on LOCK, which records this
        process's pid, host and start time. Checks that the folder is writable (creates it, writes
        the lock file, opens an existing trials.jsonl for appending: a regular file; series/,
        errors/ and suites/ are not links) before anything runs. Yields a note when it took over a
        lock that a dead run never released; UserError when another run holds it or the folder is
        not writable."""
        if self._lock_fd is not None:
            raise RuntimeError(f"{self.root}: this store already holds its lock")
        lock_path = self.root / LOCK
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise _not_writable(self.root, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _lock_holder(fd)
            os.close(fd)
            if isinstance(e, BlockingIOError):
                raise UserError(f"{self.root}: results folder is in use by another actbench run ({holder}); "
                                "wait for it to finish or choose another --out") from None
            raise UserError(f"{self.root}: cannot lock the results folder: {e.strerror or e}") from e
        previous = _lock_holder(fd)
        try:
            mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            os.ftruncate(fd, 0)
            os.pwrite(fd, mine.encode(), 0)
            os.fsync(fd)
            if self.path.exists() or self.path.is_symlink():  # else it is created beside the lock file, just written
                _check_regular(self.path, os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK))
            for side in SIDE_FOLDERS:  # side files are written below these: never through a planted link or into a file
                if (self.root / side).is_symlink() or (self.root / side).exists() and not (self.root / side).is_dir():
                    raise OSError(errno.ELOOP, "not a folder", str(self.root / side))
        except OSError as e:
            os.close(fd)
            raise _not_writable(self.root, e) from e
        self._lock_fd = fd
        try:
            yield f"took over the lock of {previous}, which ended without releasing it" if previous else None
        finally:
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock

    def append(self, record: Record, series: dict[str, Any] | None = None, traceback: str | None = None) -> Record:
        """Write side files first, then the record line (fsynced). Returns the record. On an
        OSError the file is cut back to where it was, so no torn line is left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        if series:
            record.series_file = self.write_side(f"series/{record.trial_id}.json", encode(series))
        if traceback:
            record.error = {**(record.error or {}),
                            "traceback_file": self.write_side(f"errors/{record.trial_id}.{record.attempt}.txt", traceback.encode())}
        self.append_line(RECORDS, encode(record))
        return record

    def append_line(self, rel: str, line: bytes) -> None:
        """Append one line to the file `rel` of the folder, fsynced, never through a link; a torn
        last line of an earlier crash is terminated first; on an OSError the file is cut back to
        where it was, so no torn line is left behind."""
        line += b"\n"
        fd = os.open(self.root / rel, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or a device in its place takes no record
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(self.root / rel))
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":  # a torn line from a crash: terminate it, keep ours whole
                line = b"\n" + line
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)

    def save_suite(self, name: str, data: dict[str, Any], facts: dict[str, Any]) -> None:
        """Keep the suite a run used (after --set) as `suites/<name>.yaml`, and the registry facts
        of the activations it names as `suites/<name>.activations.json`, so that compare and report
        can replay its decisions later without the plugins that registered them."""
        import yaml

        self.write_side(f"suites/{name}.yaml", yaml.safe_dump(data, sort_keys=False).encode())
        self.write_side(f"suites/{name}.activations.json", encode(facts))

    def write_side(self, rel: str, data: bytes) -> str:
        """Write a side file atomically, through a fresh temporary file (never through a link), at
        `rel` inside the folder (ValueError for a path that would land outside it)."""
        if gate.relative(rel) is None:
            raise ValueError(f"{rel!r}: not a path inside the results folder {self.root}")
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rel

    def records(self) -> list[Record]:
        return list(iter_records(self.path))

    def latest(self) -> dict[str, Record]:
        """Trial id -> its last attempt."""
        return latest(iter_records(self.path))

    def series(self, record: Record) -> dict[str, Any]:
        return read_series(self.root, record.series_file)

    def successful_ids(self) -> set[str]:
        return {r.trial_id for r in iter_records(self.path) if r.ok}


def _check_regular(path: Path, fd: int) -> None:
    """Close `fd`; OSError when it is not a regular file (a FIFO would block a writer, a device
    swallow the records)."""
    regular = stat.S_ISREG(os.fstat(fd).st_mode)
    os.close(fd)
    if not regular:
        raise OSError(errno.EINVAL, "not a regular file", str(path))


def _not_writable(root: Path, e: OSError) -> UserError:
    why = "a symbolic link is in the way (refusing to write through it)" if e.errno == errno.ELOOP else e.strerror or str(e)
    where = f" ({e.filename})" if e.filename and Path(e.filename) != root else ""
    return UserError(f"{root}: results folder is not writable: {why}{where}")


def _lock_holder(fd: int) -> str:
    """Who a lock file names, as text ("" when it names no one)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
        return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return ""
