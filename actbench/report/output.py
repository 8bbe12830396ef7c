"""The files `report` writes: named from sanitised names (a suite name or a dtype read from a
results folder never names a path), inside the output folder, and written through no planted
link (a fresh temporary file beside the target, moved into place). A file the user names to be
appended to (`append_user`, e.g. `regress --summary`) is written only when it is a regular file."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from actbench.errors import UserError

PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def file_name(stem: str, suffix: str) -> str:
    """`stem + suffix` when the stem is plain (letters, digits, `.`, `_`, `-`, not starting with a
    dot, at most 100 characters); else the stem's plain characters (at most 60) and 8 hex digits
    of its hash, so that no stem names a path, and two stems hardly ever share a name."""
    if PLAIN.fullmatch(stem):
        return stem + suffix
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).lstrip("._-")[:60]
    digest = hashlib.sha256(stem.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{plain or 'x'}-{digest}{suffix}"


def folder(out: Path, flag: str = "--out") -> Path:
    """`out`, made if missing; UserError (naming `flag`) where a file or anything else not a folder is in the way."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{flag} {out}: not a folder that can be written ({e.strerror or e})") from None
    if not out.is_dir():
        raise UserError(f"{flag} {out}: not a folder")
    return out


def inside(out: Path, stem: str, suffix: str) -> Path:
    """The file of `out` named from `stem` (see `file_name`)."""
    path = Path(out) / file_name(str(stem), suffix)
    if path.parent != Path(out):  # never: a plain name has no separator
        raise ValueError(f"{path}: not a file of {out}")
    return path


def fresh(path: Path) -> Path:
    """A new empty file beside `path` (created exclusively: never a planted link; its mode as the
    umask allows, as a plain write would make it), to write and then move onto `path`
    (`os.replace` replaces a link at `path`; it never writes through it)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666))
            return tmp
        except FileExistsError:
            continue


def write(path: Path, fill: Callable[[BinaryIO], object]) -> Path:
    """Write `path` through `fill(file)`, atomically and through no link."""
    tmp = fresh(path)
    try:
        with open(tmp, "wb") as f:
            fill(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _not_regular(mode: int) -> str:
    """What a file of `mode` is when it is not a regular file ("" when it is)."""
    if stat.S_ISREG(mode):
        return ""
    return "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else \
        "a folder" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "not a file"


def append_user(path: str | Path, text: str, flag: str) -> None:
    """Append `text` to the file named on the command line by `flag` (made if missing; a link is
    followed: the user chose it). UserError, before a byte is written, where it is not a regular
    file (a FIFO would block forever, a device never ends) or cannot be opened."""
    path = Path(path)
    try:  # non-blocking: a FIFO opens at once (or fails, without a reader), to be refused below
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, 0o666)
    except OSError as e:
        try:
            kind = _not_regular(os.stat(path).st_mode)
        except OSError:
            kind = ""
        why = f"{kind}, not a regular file" if kind else e.strerror or str(e)
        raise UserError(f"{flag} {path}: not written: {why}") from None
    with os.fdopen(fd, "a", encoding="utf-8", errors="replace") as f:
        why = _not_regular(os.fstat(fd).st_mode)
        if why:
            raise UserError(f"{flag} {path}: not written: {why}, not a regular file")
        os.set_blocking(fd, True)
        f.write(text)
