"""`actbench data prepare`: tokenise text (a local file or folder, or a Hugging Face dataset) into
shards (`actbench.lm.shards`) with the token byte table beside them."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from actbench.errors import UserError
from actbench.lm.shards import SIDECAR, write_shard, write_token_bytes
from actbench.lm.tokens import EOT, text_bytes, token_byte_lengths, train_bpe


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
        tok = train_bpe(texts(), bpe_vocab_size, (EOT,))
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
            ids = text_bytes(text) if tok is None else np.asarray(tok.encode(text).ids, dtype=np.uint16)
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
