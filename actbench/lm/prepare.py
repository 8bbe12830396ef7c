"""`actbench data prepare`: tokenise text (a local file or folder, or a Hugging Face dataset) into
shards (`actbench.lm.shards`) with the token byte table beside them.

The text folder is data from anyone, read defensively (`text_files`, `read_pieces`): only regular
.txt files inside it are read (a link, FIFO, device or socket named .txt, and a link to a folder,
are refused, never followed), each streamed in pieces of about `PIECE_BYTES` so no file size
exhausts memory, as strict UTF-8 (a byte order mark is dropped; other bytes that are not UTF-8
are refused naming the file and offset). Everything is written into a fresh private folder
inside `--out` and renamed into place at the end, so no planted link there is followed."""

from __future__ import annotations

import codecs
import glob
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from actbench.errors import UserError
from actbench.lm.shards import SIDECAR, write_shard, write_token_bytes
from actbench.lm.tokens import EOT, text_bytes, token_byte_lengths, train_bpe


PIECE_BYTES = 2**20  # bytes of a file read and tokenised at once
MAX_TOKENIZER_BYTES = 256 * 2**20  # a tokenizer.json larger than this is refused
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
HUB_NAME = re.compile(rf"{SAFE_NAME.pattern}(/{SAFE_NAME.pattern})?")


def _kind(mode: int) -> str | None:
    """What a file that is not a regular file or folder is (None for those)."""
    for test, what in ((stat.S_ISLNK, "a link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a regular file"


def text_files(path: str | Path) -> list[Path]:
    """The files `--text` reads: the file itself, or every regular .txt file under the folder
    (sub-folders included, in path order); a link, FIFO, device or socket named .txt and a link
    to a folder are refused (exit 2), never followed."""
    root = Path(path)
    try:
        top = root.stat()
    except OSError as e:
        raise UserError(f"--text {root}: {e.strerror or e}") from None
    if what := _kind(top.st_mode):
        raise UserError(f"--text {root}: {what}, not a text file or folder")
    if stat.S_ISREG(top.st_mode):
        return [Path(os.path.realpath(root))]  # the file you named, through the links you gave
    files: list[Path] = []
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise UserError(f"--text {folder}: {e.strerror or e}") from None
        for entry in entries:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                folders.append(Path(entry.path))
            elif stat.S_ISREG(mode) and entry.name.endswith(".txt"):
                files.append(Path(entry.path))
            elif entry.name.endswith(".txt") or (stat.S_ISLNK(mode) and _folder_or_loop(entry)):
                raise UserError(f"--text {entry.path}: {_kind(mode)}; only regular files inside the folder are read, "
                                "links are not followed (copy the file in, or give the link's target to --text)")
    if not files:
        raise UserError(f"--text {root}: no .txt file in this folder")
    return sorted(files)


def _folder_or_loop(entry: os.DirEntry) -> bool:
    """Whether a link leads to a folder (a walk it must not take), or nowhere resolvable (a loop)."""
    try:
        return entry.is_dir()
    except OSError:  # ELOOP: a link to itself, or a chain too long
        return True


def _cut(text: str) -> int:
    """Where `text` may be cut without changing how a byte-level BPE (GPT-2's split) splits it:
    before the last newline that a letter or digit follows (0 when there is none). A run of
    spaces before the cut ends there in the whole text too, the newline stands alone either way,
    and no special token such as <|endoftext|> starts at a letter."""
    i = text.rfind("\n")
    while i > 0:
        if i + 1 < len(text) and text[i + 1].isalnum():
            return i
        i = text.rfind("\n", 0, i)
    return 0


def read_pieces(path: Path, piece_bytes: int = PIECE_BYTES, longest: int | None = None) -> Iterator[str]:
    """A text file as strict UTF-8 (a leading byte order mark dropped), read `piece_bytes` at a
    time and given in pieces cut where `_cut` allows, or anywhere once more than `longest`
    characters (4 reads) pass without such a place; opens a regular file only, never a link."""
    longest = 4 * piece_bytes if longest is None else longest
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"--text {path}: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise UserError(f"--text {path}: not a regular file")
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        read, pending, started = 0, "", False
        while True:
            chunk = f.read(piece_bytes)
            held = len(decoder.getstate()[0])  # bytes of a character split by the previous chunk
            try:
                pending += decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                raise UserError(f"--text {path}: not UTF-8 (byte 0x{e.object[e.start]:02x} at offset {read - held + e.start:,}); "
                                "convert it first, e.g. iconv -f latin1 -t utf-8") from None
            if pending and not started:
                pending, started = pending.removeprefix("\ufeff"), True
            read += len(chunk)
            if not chunk:
                break
            cut = _cut(pending) or (len(pending) if len(pending) > longest else 0)
            if cut:
                yield pending[:cut]
                pending = pending[cut:]
        if pending:
            yield pending


def hub_name(dataset: str) -> str:
    """`dataset` when it is a Hugging Face dataset name (owner/name) and no local file or folder of
    that name exists (the datasets library would read that instead); else exit 2."""
    if not HUB_NAME.fullmatch(dataset) or ".." in dataset or dataset.endswith(".py"):
        raise UserError(f"--dataset {dataset!r}: not a Hugging Face dataset name (owner/name of letters, digits, '.', '_', '-'); "
                        "local text goes through --text")
    if os.path.lexists(dataset):
        raise UserError(f"--dataset {dataset}: a local file or folder of that name exists and would be read instead of the "
                        "hub; local text goes through --text")
    return dataset


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
    local = Path(name)
    if local.exists() and (not local.is_file() or local.stat().st_size > MAX_TOKENIZER_BYTES):
        raise UserError(f"--tokenizer {name}: not a tokenizer.json file of at most {MAX_TOKENIZER_BYTES // 2**20} MiB")
    try:
        tok = Tokenizer.from_file(name) if local.is_file() else Tokenizer.from_pretrained(name)
    except Exception as e:  # noqa: BLE001 - the hub or the network said no
        raise UserError(f"--tokenizer {name}: cannot load it ({str(e).splitlines()[0][:200]}); offline, use bpe, byte or a tokenizer.json file") from e
    if tok.get_vocab_size() > 2**16:
        raise UserError(f"--tokenizer {name}: {tok.get_vocab_size()} tokens do not fit uint16 shards")
    return tok, f"{name} ({tok.get_vocab_size()} tokens)", False


def _pieces(texts: Callable[[], Iterable[str | Iterable[str]]]) -> Iterator[str]:
    for doc in texts():
        yield from (doc,) if isinstance(doc, str) else doc


def prepare_shards(texts: Callable[[], Iterable[str | Iterable[str]]], out_dir: str | Path, tokenizer: str = "byte",
                   prefix: str = "data", shard_tokens: int = 100_000_000, val_tokens: int = 10_000_000,
                   max_tokens: int | None = None, bpe_vocab_size: int = 4096) -> Prepared:
    """Tokenise documents (`texts()` iterates them, each a string or an iterable of pieces such as
    `read_pieces` gives; `bpe` reads them twice) into modded-nanogpt shards: the first
    `val_tokens` go to `<prefix>_val_000000.bin`, the rest to `<prefix>_train_000001.bin`, ...
    Documents are preceded by the end-of-text token when the tokenizer has one. Beside them:
    `<prefix>_token_bytes.npy` when every document's tokens add up to its bytes, and
    `<prefix>_tokenizer.json` for a BPE trained here. Everything is written into a fresh private
    folder inside `out_dir` and renamed into place only when all succeeded: a failure leaves no
    shard, and no link planted in `out_dir` is followed."""
    out_dir = Path(out_dir)
    if not SAFE_NAME.fullmatch(prefix):
        raise UserError(f"--prefix {prefix!r}: letters, digits, '.', '_' and '-' only, at most 100 (it names files inside --out)")
    if os.path.lexists(out_dir) and not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: not a folder")
    if out_dir.is_dir() and (old := sorted(out_dir.glob(f"{glob.escape(prefix)}_*"))):
        raise UserError(f"--out {out_dir}: already holds {old[0].name} (and {len(old) - 1} more) of prefix {prefix!r}; "
                        "choose another --prefix or --out, or delete them")
    tok, described, trained = _tokenizer(tokenizer, lambda: _pieces(texts), bpe_vocab_size)
    table = np.ones(256, dtype=np.int64) if tok is None else token_byte_lengths(tok)
    eot = None if tok is None else tok.token_to_id(EOT)
    lead = np.asarray([] if eot is None else [eot], dtype=np.uint16)
    exact = True

    def token_runs() -> Iterator[np.ndarray]:
        """Each piece's tokens, a document's first piece after the end-of-text token."""
        nonlocal exact
        for doc in texts():
            for i, piece in enumerate((doc,) if isinstance(doc, str) else doc):
                ids = text_bytes(piece) if tok is None else np.asarray(tok.encode(piece, add_special_tokens=i == 0).ids, dtype=np.uint16)
                counted = sum(int(table[ids[i:i + PIECE_BYTES]].sum()) for i in range(0, len(ids), PIECE_BYTES))  # int64 in blocks
                exact = exact and counted == len(piece.encode("utf-8"))
                yield np.concatenate([lead, ids]) if i == 0 else ids

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{prefix}.partial-"))
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot write there ({e.strerror or e})") from None
    files: list[Path] = []
    pending: list[np.ndarray] = []
    pending_n, total = 0, 0

    def flush(limit: int) -> None:
        nonlocal pending, pending_n
        tokens = np.concatenate(pending)
        index = len(files)
        files.append(out_dir / f"{prefix}_{'val' if index == 0 else 'train'}_{index:06d}.bin")
        write_shard(staging / files[-1].name, tokens[:limit])
        pending, pending_n = [tokens[limit:]], len(tokens) - limit

    try:
        for ids in token_runs():
            if max_tokens is not None:
                ids = ids[: max_tokens - total]
            pending.append(ids)
            pending_n += len(ids)
            total += len(ids)
            while pending_n >= (val_tokens if not files else shard_tokens):
                flush(val_tokens if not files else shard_tokens)
            if max_tokens is not None and total >= max_tokens:
                break
        if not files or (len(files) == 1 and not pending_n):
            raise UserError(f"--val-tokens {val_tokens}: the input has only {total} tokens, not enough for a validation "
                            f"shard of {val_tokens} and training tokens after it; lower --val-tokens (say {max(1, total // 10)})")
        if pending_n:
            flush(pending_n)
        sidecar = out_dir / f"{prefix}{SIDECAR}" if exact else None
        if sidecar:
            write_token_bytes(staging / sidecar.name, table)
        if trained:
            tok.save(str(staging / f"{prefix}_tokenizer.json"))
        for made in sorted(staging.iterdir()):
            os.replace(made, out_dir / made.name)  # replaces a planted link by the file, never writes through it
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Prepared(files=files, tokenizer=described, token_bytes=sidecar, val_tokens=val_tokens, train_tokens=total - val_tokens)


def hf_texts(dataset: str, config: str | None, split: str, field: str):  # noqa: ANN201
    """Stream the `field` of a Hugging Face dataset (needs `datasets` and the network); `dataset`
    is a hub name only (`hub_name`)."""
    hub_name(dataset)
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
