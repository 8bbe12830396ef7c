"""Checkpoints of lm trials: tensors and plain values only (model and optimizer state, the series
so far, the step), saved in the trial's folder (a path; `run` refuses a URI) as
`ckpt.pt`, the one before it kept as `ckpt.prev.pt` (a save writes a fresh temporary file,
syncs it, then renames: the previous checkpoint first, the new one after it).

A checkpoint is data that may have been damaged (a torn or truncated file) or planted, so loading
it obeys nothing in it: the file must be a regular file (not a link, folder, FIFO or device) of
at most the size a checkpoint of this model can have (`size_cap`), and it is read with
`torch.load(weights_only=True)`, which refuses a pickle that would run code. A checkpoint that
does not load, or whose tensors do not fit the model (`mismatch`), is moved aside as
`<name>.bad-<n>` (kept for inspection, never overwriting an earlier one) and the trial resumes
from the previous checkpoint or from the start, saying so in its note (`newest`). A finished
trial removes its checkpoints; the set-aside files stay."""

from __future__ import annotations

import itertools
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch

from actbench.core.trial import TrialTimeout

CHECKPOINT_FORMAT = 3  # 2: column series, tensors and plain values only; 3: q/k rows of qkv in interleaved rotary pairs
CAP_SLACK = 16 * 2**20  # bytes a checkpoint may take beyond twice its estimate (zip records, pickled tables)


class Unusable(Exception):
    """A checkpoint that cannot be resumed from; the message says why in a few words."""


def previous(path: str) -> str:
    """Where the checkpoint saved before the one at `path` is kept: ckpt.pt -> ckpt.prev.pt."""
    base, dot, ext = path.rpartition(".")
    return f"{base}.prev.{ext}" if dot and "/" not in ext else f"{path}.prev"


def size_cap(params: int, steps: int, layers: int) -> int:
    """The most bytes a checkpoint of a model of `params` fp32 parameters trained `steps` steps may
    take: twice the weights and AdamW's two moments (12 bytes a parameter) and the series (under
    64 bytes a step and layer, pickled), plus `CAP_SLACK`."""
    return 2 * (12 * params + 64 * (steps + 1) * (layers + 2)) + CAP_SLACK


def save(obj: dict[str, Any], path: str) -> None:
    """Write a checkpoint; the one at `path` before it becomes `previous(path)`."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileNotFoundError:  # a finishing trial removed the empty checkpoint root meanwhile
        folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{Path(path).name}.tmp")  # a fresh file: no planted link is followed
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # a crash right after the rename must not leave a torn file under the name
        if os.path.lexists(path):
            os.replace(path, previous(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _one_line(e: BaseException) -> str:
    """An exception as a short printable line (its message may quote bytes of the file)."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return "".join(c if c.isprintable() and c != ";" else " " for c in text)[:160]


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file is, None for a regular file."""
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a regular file"


def _check_size(size: int, max_bytes: int) -> None:
    if size == 0:
        raise Unusable("an empty file")
    if size > max_bytes:
        raise Unusable(f"{size:,} bytes, more than the {max_bytes:,} a checkpoint of this model can take")


def _parse(source: BinaryIO) -> dict[str, Any]:
    try:
        saved = torch.load(source, map_location="cpu", weights_only=True)
    except TrialTimeout:
        raise
    except Exception as e:  # noqa: BLE001 - refused (not plain tensors) or unreadable (torn, garbage)
        raise Unusable(f"not a plain-tensor actbench checkpoint: {_one_line(e)}") from None
    found = saved.get("format") if isinstance(saved, dict) else None
    if type(found) is not int or found != CHECKPOINT_FORMAT:
        raise Unusable(f"format {found if type(found) is int else 'unknown'}, not {CHECKPOINT_FORMAT}")
    for key in ("model", "optimizer", "state"):
        if not isinstance(saved.get(key), dict):
            raise Unusable(f"no {key} table")
    return saved


def load(path: str, max_bytes: int) -> dict[str, Any] | None:
    """The checkpoint at `path`, None when there is none; raises `Unusable` for a file that is not
    a regular file of at most `max_bytes` holding a checkpoint of this format (never unpickles code,
    never blocks on a FIFO, never reads more than `max_bytes`)."""
    try:
        before = os.lstat(path)
        if what := _kind(before.st_mode):
            raise Unusable(what)
        _check_size(before.st_size, max_bytes)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Unusable(f"cannot be opened ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            raise Unusable("replaced while it was opened")
        if what := _kind(now.st_mode):
            raise Unusable(what)
        _check_size(now.st_size, max_bytes)
        return _parse(f)


def _move_aside(path: str) -> str | None:
    """Rename `path` to the first free `<path>.bad-<n>` and return that name (None when the file
    is already gone: another worker of the trial moved it). A hard link then an unlink, so an
    existing `.bad-<n>` is never replaced; a folder (which cannot be linked) is renamed."""
    for n in itertools.count(1):
        dest = f"{path}.bad-{n}"
        if os.path.lexists(dest):
            continue
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                os.rename(path, dest)
            else:
                os.link(path, dest, follow_symlinks=False)
                os.unlink(path)
        except FileNotFoundError:
            return None
        except FileExistsError:
            continue
        return dest
    raise AssertionError("unreachable")


def newest(path: str, max_bytes: int, problem: Callable[[dict[str, Any]], str | None]) -> tuple[dict[str, Any] | None, str]:
    """The newest usable checkpoint of the trial (`path`, else `previous(path)`; None: start
    afresh) and a note saying what was set aside and where the trial resumes ("" when nothing was).
    A checkpoint is unusable when `load` refuses it or `problem(saved)` names a reason."""
    set_aside: list[str] = []
    folder = os.path.dirname(path)
    if folder and os.path.lexists(folder) and (what := _kind(os.lstat(folder).st_mode)) != "a folder":
        kept = _move_aside(folder)  # a link or a file where the trial's folder goes: nothing in it is read or written
        set_aside.append(f"checkpoint folder {folder} ({what}) set aside as {os.path.basename(kept or '?')}")
    saved = None
    for candidate in (path, previous(path)):
        try:
            saved = load(candidate, max_bytes)
            if saved is not None and (why := problem(saved)):
                raise Unusable(why)
        except Unusable as e:
            saved = None
            try:
                kept = _move_aside(candidate)
            except OSError as err:
                raise RuntimeError(f"checkpoint {candidate} is unusable ({e}) and cannot be moved aside ({err.strerror}): "
                                   "move or delete it") from None
            set_aside.append(f"checkpoint {candidate} ({e}) set aside as {os.path.basename(kept or '?')}")
        if saved is not None:
            break
    if not set_aside:
        return saved, ""
    then = f"resumed from {os.path.basename(candidate)} at step {saved['state']['step']}" if saved else "started the trial afresh"
    return saved, f"{', '.join(set_aside)}: {then}"


HYPER = ("params", "betas", "eps", "weight_decay", "amsgrad", "maximize")  # what a saved parameter group must share with the trial's


def _same(a: Any, b: Any) -> bool:
    """Equal plain values of the same types (never compares a tensor)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return isinstance(a, (int, float, bool, str, type(None))) and a == b


def mismatch(saved: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
    """Why the saved model and optimizer state cannot be loaded into `model` and `optimizer` (None
    when they can): the same tensor names, shapes and dtypes, the same parameter groups (`HYPER`), and
    per-parameter optimizer tensors that are scalars or of their parameter's shape."""
    want, got = model.state_dict(), saved["model"]
    if set(got) != set(want):
        odd = sorted(set(got) ^ set(want), key=str)
        return f"model tensors {', '.join(_one_line(ValueError(k)) for k in odd[:3])} differ from the model's"
    for name, ref in want.items():
        t = got[name]
        if not isinstance(t, torch.Tensor) or t.shape != ref.shape or t.dtype != ref.dtype:
            shown = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else type(t).__name__
            return f"model tensor {name} is {shown}, the model's is {tuple(ref.shape)} {ref.dtype}"
    groups, state = saved["optimizer"].get("param_groups"), saved["optimizer"].get("state")
    ref_groups = optimizer.state_dict()["param_groups"]
    if (not isinstance(groups, list) or not isinstance(state, dict) or len(groups) != len(ref_groups)
            or any(not isinstance(g, dict) or set(g) != set(r) or not all(_same(g[k], r[k]) for k in HYPER)
                   for g, r in zip(groups, ref_groups))):
        return "its optimizer's parameter groups differ from the trial's"
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, values in state.items():
        if type(index) is not int or not 0 <= index < len(params) or not isinstance(values, dict):
            return "its optimizer state names parameters the model does not have"
        for key, t in values.items():
            if not isinstance(t, torch.Tensor) or (t.dim() and t.shape != params[index].shape):
                return f"optimizer state {key} of parameter {index} does not fit its shape {tuple(params[index].shape)}"
    return None


def remove(path: str | None) -> None:
    """Delete a finished trial's checkpoints and any temporary file a killed save left beside them,
    then its folder and the checkpoint root if empty (a folder holding set-aside files stays)."""
    if path is None:
        return
    p = Path(path)
    for leftover in (p, Path(previous(path)), *p.parent.glob(f"{p.name}.tmp*")):
        leftover.unlink(missing_ok=True)
    for folder in (p.parent, p.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty (other trials, set-aside files) or already gone
            return
