"""Token files on disk: uint16 shards in the modded-nanogpt layout (256 x int32 header: magic
20240520, version 1, token count; then the tokens) or plain nanoGPT files (tokens only), and the
table of the bytes of text behind every token id kept beside them (`<prefix>_token_bytes.npy`),
written atomically and read without unpickling anything."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Callable

import numpy as np

from actbench.errors import UserError

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256
SIDECAR = "_token_bytes.npy"
SHARD_NAME = re.compile(r"^(?P<prefix>.+)_(?:val|train)_\d+\.bin$")


def write_shard(path: str | Path, tokens: np.ndarray) -> None:
    """Write tokens as a modded-nanogpt shard (header + uint16), atomically."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise ValueError("tokens must fit in uint16")
    header = np.zeros(HEADER_INTS, dtype=np.int32)
    header[:3] = (MAGIC, VERSION, tokens.size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype(np.uint16).tobytes())
    os.replace(tmp, path)


def _layout(path: str | Path) -> tuple[int, int] | str:
    """(offset, tokens) of a shard's tokens, or why it is not a shard: not a regular file (a
    folder, FIFO or device), unreadable, empty, or a header that does not match the file."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            return "a folder, not a shard file (name the files, e.g. with a glob: folder/*_train_*.bin)"
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file (a FIFO, socket or device)"
        with open(path, "rb") as f:
            head = f.read(HEADER_INTS * 4)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    size = st.st_size
    if size == 0:
        return "empty: a shard holds at least one token"
    if len(head) == HEADER_INTS * 4 and (header := np.frombuffer(head, dtype=np.int32))[0] == MAGIC:
        n = int(header[2])
        if header[1] != VERSION:
            return f"unsupported shard version {header[1]} (this reads version {VERSION})"
        if HEADER_INTS * 4 + 2 * n != size:
            return f"its header says {n} tokens but the file holds {(size - HEADER_INTS * 4) // 2}"
        if n < 1:
            return "empty: its header says it holds no tokens"
        return HEADER_INTS * 4, n
    if size % 2:
        return "not a uint16 token file (odd size)"
    return 0, size // 2


def shard_problem(path: str | Path) -> str | None:
    """Why `path` is not a shard that `read_shard` can read, or None."""
    found = _layout(path)
    return found if isinstance(found, str) else None


def read_shard(path: str | Path) -> np.ndarray:
    """Memory-map a shard: modded-nanogpt (header detected by its magic) or plain nanoGPT uint16."""
    found = _layout(path)
    if isinstance(found, str):
        raise UserError(f"{path}: {found}")
    offset, n = found
    return np.memmap(path, dtype=np.uint16, mode="r", offset=offset, shape=(n,))


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_token_bytes(path: str | Path, table: np.ndarray) -> None:
    """Save a token byte table (.npy, no pickle), atomically."""
    atomic_write(Path(path), lambda f: np.save(f, np.asarray(table, dtype=np.int32), allow_pickle=False))


def read_token_bytes(path: str | Path) -> np.ndarray:
    """Load a token byte table written by `write_token_bytes` (never unpickles)."""
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: not a token byte table ({e})") from e
    if table.ndim != 1 or not np.issubdtype(table.dtype, np.integer) or (table < 0).any():
        raise UserError(f"{path}: not a token byte table (want a 1-D array of byte counts)")
    return table.astype(np.int64)
