"""Checkpoints of lm trials: tensors and plain values only (model and optimizer state, the series
so far, the step), saved atomically where the trial's folder is (a local path or an fsspec URI),
loaded with `torch.load(weights_only=True)`: a file that needs more (a planted pickle) is refused
without running it and the trial fails naming the file; it is not replaced silently, since a
checkpoint that is not ours means tampering or a foreign file. A finished trial removes its own."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch

from actbench.core.trial import TrialTimeout

CHECKPOINT_FORMAT = 3  # 2: column series, tensors and plain values only; 3: q/k rows of qkv in interleaved rotary pairs


def _local(path: str) -> str | None:
    """The filesystem path of a local checkpoint location, None for remote (fsspec) ones."""
    return path.removeprefix("file://") if "://" not in path or path.startswith("file://") else None


def save(obj: dict[str, Any], path: str) -> None:
    local = _local(path)
    if local is None:
        import fsspec

        buf = io.BytesIO()
        torch.save(obj, buf)
        with fsspec.open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    tmp = f"{local}.tmp{os.getpid()}"
    try:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
    except FileNotFoundError:  # a finishing trial removed the empty checkpoint root meanwhile
        Path(local).parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, tmp)
    os.replace(tmp, local)


def load(path: str) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None; tensors and plain values only (never unpickles code)."""
    local = _local(path)
    if local is None:
        try:
            import fsspec
        except ImportError as e:
            raise RuntimeError(f"checkpoint storage {path!r} needs fsspec (pip install fsspec and its backend)") from e
        fs, p = fsspec.core.url_to_fs(path)
        if not fs.exists(p):
            return None
        with fs.open(p, "rb") as f:
            source: Any = io.BytesIO(f.read())
    elif os.path.exists(local):
        source = local
    else:
        return None
    try:
        saved = torch.load(source, map_location="cpu", weights_only=True)
    except TrialTimeout:
        raise
    except Exception as e:  # noqa: BLE001 - refused (not plain tensors) or unreadable
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"checkpoint {path} is not a plain-tensor actbench checkpoint, refused to load it ({first}); "
                           "delete it to start the trial afresh") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"checkpoint {path} is of another format than {CHECKPOINT_FORMAT}; delete it to start the trial afresh")
    return saved


def remove(path: str | None) -> None:
    """Delete a finished trial's checkpoint and any temporary file a killed save left beside it, then its folder and
    the checkpoint root if empty."""
    local = _local(path) if path else None
    if local is None:
        return
    p = Path(local)
    for leftover in (p, *p.parent.glob(f"{p.name}.tmp*")):
        leftover.unlink(missing_ok=True)
    for folder in (p.parent, p.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty (other trials) or already gone
            return
