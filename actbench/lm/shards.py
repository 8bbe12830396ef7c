"""Token files on disk: uint16 shards in the modded-nanogpt layout (256 x int32 header: magic
20240520, version 1, token count; then the tokens) or plain nanoGPT files (tokens only), and the
table of the bytes of text behind every token id kept beside them (`<prefix>_token_bytes.npy`),
written atomically and read without unpickling anything."""

from __future__ import annotations

import os
import re
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


def read_shard(path: str | Path) -> np.ndarray:
    """Memory-map a shard: modded-nanogpt (header detected by its magic) or plain nanoGPT uint16."""
    path = Path(path)
    size = path.stat().st_size
    if size >= HEADER_INTS * 4:
        header = np.fromfile(path, dtype=np.int32, count=HEADER_INTS)
        if header[0] == MAGIC:
            if header[1] != VERSION:
                raise UserError(f"{path}: unsupported shard version {header[1]}")
            n = int(header[2])
            if HEADER_INTS * 4 + 2 * n != size:
                raise UserError(f"{path}: header says {n} tokens but the file holds {(size - HEADER_INTS * 4) // 2}")
            return np.memmap(path, dtype=np.uint16, mode="r", offset=HEADER_INTS * 4, shape=(n,))
    if size % 2:
        raise UserError(f"{path}: not a uint16 token file (odd size)")
    return np.memmap(path, dtype=np.uint16, mode="r")


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
