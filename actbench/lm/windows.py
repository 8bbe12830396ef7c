"""Which tokens a step trains on and an evaluation scores. Batches are random windows, a pure
function of (seed, step, micro-step), so a resumed trial sees the same data. Evaluation windows
(`eval_batches`) cover the targets tokens[1:] of a validation split with consecutive
non-overlapping windows of seq_len, the last one holding the remainder; windows are grouped into
chunks of `windows_per_chunk` windows (about CHUNK_TOKENS tokens, at most MAX_CHUNKS chunks),
boundaries that depend only on the corpus and seq_len, so per-chunk losses of two trials on the
same data pair up for a bootstrap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from actbench.errors import UserError

if TYPE_CHECKING:
    import torch

CHUNK_TOKENS, MAX_CHUNKS = 512, 1024


def batch(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int, micro: int = 0) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Random windows, a pure function of (seed, step, micro): inputs and next-token targets."""
    import torch

    n = len(tokens) - seq_len - 1
    if n <= 0:
        raise UserError(f"corpus of {len(tokens)} tokens is shorter than seq_len {seq_len}")
    rng = np.random.default_rng([seed, step, micro])
    starts = rng.integers(0, n, size=batch_size)
    windows = np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])
    w = torch.from_numpy(windows)
    return w[:, :-1], w[:, 1:]


def eval_targets(tokens: np.ndarray, max_targets: int | None = None) -> int:
    """How many targets an evaluation scores: tokens[1:], or its first `max_targets`."""
    n = len(tokens) - 1
    return n if max_targets is None else min(n, max_targets)


def eval_batches(tokens: np.ndarray, seq_len: int, batch_size: int, max_targets: int | None = None,
                 part: tuple[int, int] = (0, 1)) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) of consecutive non-overlapping windows whose targets are exactly
    tokens[1 : 1 + eval_targets(tokens, max_targets)]: full windows of seq_len, `batch_size` at a
    time, then one shorter window with the remainder. With `part` = (k, parts), only the batches
    i with i % parts == k (one worker's share; see `eval_batch_count`), unread otherwise."""
    k, parts = part
    n = eval_targets(tokens, max_targets)
    full = n // seq_len
    for i, s in enumerate(range(0, full, batch_size)):
        if i % parts != k:
            continue
        e = min(full, s + batch_size)
        w = np.asarray(tokens[s * seq_len : e * seq_len + 1], dtype=np.int64)
        yield w[:-1].reshape(e - s, seq_len), w[1:].reshape(e - s, seq_len)
    if n > full * seq_len and -(-full // batch_size) % parts == k:
        w = np.asarray(tokens[full * seq_len : n + 1], dtype=np.int64)
        yield w[None, :-1], w[None, 1:]


def eval_batch_count(tokens: np.ndarray, seq_len: int, batch_size: int, max_targets: int | None = None) -> int:
    """How many batches `eval_batches` yields in all (its parts together)."""
    n = eval_targets(tokens, max_targets)
    full = n // seq_len
    return -(-full // batch_size) + (n > full * seq_len)


def windows_per_chunk(n_targets: int, seq_len: int) -> int:
    """Windows per evaluation chunk: about CHUNK_TOKENS targets, and at most MAX_CHUNKS chunks
    (a function of the corpus and seq_len only, so chunks of two trials pair up)."""
    n_windows = -(-n_targets // seq_len)
    return max(-(-CHUNK_TOKENS // seq_len), -(-n_windows // MAX_CHUNKS))
