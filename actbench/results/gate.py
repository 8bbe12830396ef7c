"""The one gate every read from a results folder passes through: a results folder is data from
strangers (copied from a cluster, downloaded with a paper), read the way Python's tarfile `data`
filter (PEP 706) extracts an archive.

A file is named by its folder and a path relative to it (`rel`, perhaps a string from a record).
The path is normalised and refused when it lands outside the folder; it is opened component by
component below the folder without following any symbolic link, non-blocking, and only a
regular file is read (a FIFO, device, socket or directory is refused before a byte is read),
with a size cap: whole files up to `cap` bytes, records files line by line up to `MAX_LINE`
bytes a line. A refused file is skipped with one `ResultsWarning` naming it and why; a missing
one is None, silently (callers say what its absence means). Files named on the command line
(`user_file`) may be links (the user chose them), but are read by the same rules otherwise."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
import warnings
from pathlib import Path
from typing import BinaryIO, Iterator

from actbench.errors import UserError
from actbench.suite.schema import NAME_PATTERN

MAX_LINE = 16 * 2**20
"""The longest line of a records file (a kernel trial with a hundred rows takes about 20 KiB)."""
MAX_SIDE = 16 * 2**20
"""The largest kept suite, activation facts or other small side file."""
MAX_SERIES = 256 * 2**20
"""The largest series file (a million training steps logged take about 100 MiB)."""


class ResultsWarning(UserWarning):
    """A file of a results folder (or a line of one) that is skipped on read."""


class Refused(Exception):
    """Why a file is not read (its path and the reason)."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path}: not read: {why}")
        self.path, self.why = path, why


def warn(e: Refused) -> None:
    """One warning line naming the file and why (once per process, as Python shows a warning)."""
    warnings.warn(str(e), ResultsWarning, stacklevel=1)


def relative(rel: str | os.PathLike[str]) -> Path | None:
    """`rel` normalised, when it stays inside its folder (not absolute, not empty, no `..` out)."""
    text = os.fspath(rel)
    if not text or "\x00" in text:
        return None
    norm = os.path.normpath(text)
    if os.path.isabs(norm) or norm in (".", "..") or norm.startswith(".." + os.sep):
        return None
    return Path(norm)


def kept_suite(name: object, suffix: str = ".yaml") -> Path | None:
    """`suites/<name><suffix>` when `name` (a record's `suite` field) is a plain suite name; None
    otherwise: a name from a record names a file only when it cannot be a path."""
    return Path("suites") / f"{name}{suffix}" if isinstance(name, str) and NAME_PATTERN.fullmatch(name) else None


def _open(folder: Path, rel: str | os.PathLike[str]) -> int:
    """A descriptor of the regular file `folder/rel`, opened through no link; Refused otherwise,
    FileNotFoundError when it does not exist."""
    path = Path(folder) / rel
    inner = relative(rel)
    if inner is None:
        raise Refused(path, f"the path {os.fspath(rel)!r} lands outside the results folder {folder}")
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    fds: list[int] = []
    try:
        fds.append(os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))  # named by the user, or found by a walk
        for part in inner.parts[:-1]:
            try:
                fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
            except NotADirectoryError:  # what Linux says of a link to a folder opened with O_NOFOLLOW | O_DIRECTORY
                if stat.S_ISLNK(os.stat(part, dir_fd=fds[-1], follow_symlinks=False).st_mode):
                    raise OSError(errno.ELOOP, "a symbolic link") from None
                raise
        fd = os.open(inner.name, flags | os.O_NONBLOCK, dir_fd=fds[-1])  # a FIFO opens at once, to be refused below
    except OSError as e:
        if e.errno == errno.ENOENT:
            raise FileNotFoundError(e.errno, e.strerror, str(path)) from None
        raise Refused(path, _why(e)) from None
    finally:
        for d in fds:
            os.close(d)
    return _regular(fd, path)


def _why(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "a symbolic link (links inside a results folder are not followed)"
    if e.errno == errno.ENOTDIR:
        return "a part of its path is not a folder"
    return f"cannot open it: {e.strerror or e}"


def _regular(fd: int, path: Path) -> int:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        mode = st.st_mode
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
            "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"
        raise Refused(path, f"{kind}, not a regular file")
    if _holes(fd, st.st_size):
        os.close(fd)
        raise Refused(path, "a sparse file (holes of zero bytes on no disk, which no text or JSON writer leaves)")
    return fd


def _holes(fd: int, size: int) -> bool:
    """Whether the file has a hole before its end (a sparse file: terabytes that take no disk and
    hold no line end would be scanned in full by every read). False where the file system cannot say."""
    try:
        return 0 < size and os.lseek(fd, 0, os.SEEK_HOLE) < size
    except (OSError, AttributeError):  # no SEEK_HOLE here
        return False
    finally:
        with contextlib.suppress(OSError):
            os.lseek(fd, 0, os.SEEK_SET)


def _open_user(path: Path) -> int:
    """A descriptor of the regular file at `path` (named on the command line: a link is followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise Refused(path, f"cannot open it: {e.strerror or e}") from None
    return _regular(fd, path)


def _read(fd: int, path: Path, cap: int) -> bytes:
    with os.fdopen(fd, "rb") as f:
        return read_open(f, path, cap)


def read_open(f: BinaryIO, path: Path, cap: int) -> bytes:
    """The rest of the file `f` (opened by `open_file` from `path`), at most `cap` bytes; Refused when longer."""
    data = f.read(cap + 1)
    if len(data) > cap:
        raise Refused(path, f"larger than {cap:,} bytes, the most read from such a file")
    return data


def read(folder: str | Path, rel: str | os.PathLike[str], cap: int = MAX_SIDE) -> bytes:
    """The bytes of the regular file `folder/rel` (at most `cap`); FileNotFoundError when it is
    missing, Refused when it is not read."""
    return _read(_open(Path(folder), rel), Path(folder) / rel, cap)


def read_bytes(folder: str | Path, rel: str | os.PathLike[str], cap: int = MAX_SIDE) -> bytes | None:
    """`read`, or None when the file is missing, or refused (with one warning naming it and why)."""
    try:
        return read(folder, rel, cap)
    except FileNotFoundError:
        return None
    except Refused as e:
        warn(e)
        return None


def check(folder: str | Path, rel: str | os.PathLike[str], cap: int = MAX_SIDE) -> Path | None:
    """`folder/rel` when it is a regular file inside the folder, reached through no link, of at
    most `cap` bytes; None when it is missing, or refused (with one warning). For a reader that
    must open the file by its path itself (the suite loader, which names it in its errors)."""
    path = Path(folder) / rel
    try:
        fd = _open(Path(folder), rel)
    except FileNotFoundError:
        return None
    except Refused as e:
        warn(e)
        return None
    size = os.fstat(fd).st_size
    os.close(fd)
    if size > cap:
        warn(Refused(path, f"larger than {cap:,} bytes, the most read from such a file"))
        return None
    return path


def user_bytes(path: str | Path, cap: int = MAX_SIDE) -> bytes:
    """The bytes of a file named on the command line (at most `cap`); FileNotFoundError when it
    is missing, Refused when it is not a regular file or too large."""
    path = Path(path)
    return _read(_open_user(path), path, cap)


def user_file(path: str | Path, flag: str) -> bool:
    """Whether the file named on the command line by `flag` exists; UserError when it is there but
    is not a regular file (a FIFO would block its reader or writer, a device never ends)."""
    try:
        os.close(_open_user(Path(path)))
    except FileNotFoundError:
        return False
    except Refused as e:
        raise UserError(f"{flag} {e}") from None
    return True


def lines(folder: str | Path, rel: str | os.PathLike[str], *, user: bool = False,
          max_line: int | None = None) -> Iterator[tuple[int, bytes | None]] | None:
    """(line number, bytes) of each line of the regular file `folder/rel`, streamed (a line
    longer than `max_line`, default MAX_LINE, comes as None, and is never held whole); None when
    the file is missing, or refused (with one warning). `user`: `folder/rel` was named on the
    command line."""
    f = open_file(folder, rel, user=user)
    return None if f is None else _numbered(f, MAX_LINE if max_line is None else max_line)


SETTLED_S = 5.0
"""How long ago a file must have last changed for its `settled` identity to vouch for its bytes
(beyond any file system's timestamp granularity, as git's "racy" rule)."""


def settled(fd: int) -> str | None:
    """The identity of the open file `fd` (device, inode, size, modification and change times in
    ns) when its last change is `SETTLED_S` old or more; None otherwise. A cache that recorded it
    with what it computed from the bytes may serve that again while the identity is unchanged,
    without reading them: any write, rename over, truncation or `touch` changes the change time,
    which no user can set back. Not covered: a process that keeps writing to the file through a
    shared memory mapping (Linux sets the times at its first write to a clean page, not at later
    ones until the page is written back, ~30 s), file systems whose change time a user can set
    (some network and FUSE mounts), and a server whose clock is more than `SETTLED_S` behind this
    machine's (its change times look settled at once): there a changed file may be served as cached before."""
    st = os.fstat(fd)
    if st.st_ctime_ns > time.time_ns() - int(SETTLED_S * 1e9):
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def open_file(folder: str | Path, rel: str | os.PathLike[str], *, user: bool = False) -> BinaryIO | None:
    """The regular file `folder/rel` open for reading (binary, buffered); None when it is missing,
    or refused (with one warning). `user`: `folder/rel` was named on the command line."""
    path = Path(folder) / rel
    try:
        fd = _open_user(path) if user else _open(Path(folder), rel)
    except FileNotFoundError:
        return None
    except Refused as e:
        warn(e)
        return None
    return os.fdopen(fd, "rb")


def _numbered(f: BinaryIO, max_line: int) -> Iterator[tuple[int, bytes | None]]:
    with contextlib.closing(f):
        n = 0
        while raw := f.readline(max_line + 1):
            n += 1
            if len(raw) > max_line and not raw.endswith(b"\n"):
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass
                yield n, None
            else:
                yield n, raw


def folders(root: str | Path, name: str) -> list[Path]:
    """Every folder at or below `root` that holds an entry `name`, walked without following a
    symbolic link to a folder (no link leads the walk out of `root`, and no loop), in order; a folder
    whose name is not UTF-8 is skipped with a warning."""
    found = []
    for here, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        if name in files or name in dirs:
            try:
                here.encode()
            except UnicodeEncodeError:  # its bytes are not UTF-8: no table or page can hold its name
                warn(Refused(Path(here.encode("utf-8", "backslashreplace").decode()), "its name is not UTF-8 (rename the folder)"))
                continue
            found.append(Path(here))
    return sorted(found)
