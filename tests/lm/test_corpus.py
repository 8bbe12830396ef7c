"""Corpora: shard formats, the embedded corpus split, token byte tables, evaluation windows and
chunks, deterministic batches, `data prepare`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from actbench.errors import UserError
from actbench.lm.config import DataConfig
from actbench.lm.corpus import _strip_gutenberg, load_corpus, shakespeare_works, split_works
from actbench.lm.shards import read_shard, write_shard
from actbench.lm.windows import batch, eval_batches, eval_targets, windows_per_chunk


def test_modded_nanogpt_shard_roundtrip_and_plain_nanogpt(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50257, size=1000).astype(np.uint16)
    write_shard(tmp_path / "a.bin", tokens)
    raw = np.fromfile(tmp_path / "a.bin", dtype=np.int32, count=3)
    assert raw.tolist() == [20240520, 1, 1000]
    assert np.array_equal(read_shard(tmp_path / "a.bin"), tokens)
    tokens.tofile(tmp_path / "plain.bin")
    assert np.array_equal(read_shard(tmp_path / "plain.bin"), tokens)
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 1023 + b"\x01" * 2)
    with pytest.raises(UserError, match="odd size"):
        read_shard(tmp_path / "bad.bin")


def test_bin_source_reads_train_and_val_globs(tmp_path):
    for i in range(2):
        write_shard(tmp_path / f"x_train_{i}.bin", np.arange(500, dtype=np.uint16) + i)
    write_shard(tmp_path / "x_val_0.bin", np.arange(300, dtype=np.uint16))
    c = load_corpus(DataConfig(source="bin", path=str(tmp_path / "x_train_*.bin"), val_path=str(tmp_path / "x_val_*.bin"), vocab_size=1024))
    assert len(c.train) == 1000 and len(c.val) == 300 and c.vocab_size == 1024
    assert c.token_bytes is None and c.bytes_per_token is None and c.window_bytes(np.zeros((2, 8), dtype=np.int64)) is None
    assumed = load_corpus(DataConfig(source="bin", path=str(tmp_path / "x_train_*.bin"), val_path=str(tmp_path / "x_val_*.bin"),
                                               vocab_size=1024, bytes_per_token=2.5))
    assert not assumed.bytes_exact and assumed.window_bytes(np.zeros((2, 8), dtype=np.int64)).tolist() == [20.0, 20.0]


def test_embedded_corpus_split_by_whole_work():
    works = shakespeare_works()
    assert len(works) >= 40 and not any(n.endswith("_f") for n in works)
    assert "hamlet" in works and "Gutenberg" not in works["hamlet"][:2000]
    train, val = split_works(works)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(works)
    assert 0.05 < len(val) / len(works) < 0.15
    c = load_corpus(DataConfig())
    assert c.vocab_size == 256 and c.bytes_exact and (c.token_bytes == 1).all()
    assert len(c.train) > 3_000_000 and len(c.val) == 467_477  # the chunk counts below
    # a line of a validation work never appears in the training bytes
    probe = works[val[0]].splitlines()
    line = max(probe[200:400], key=len).encode()
    assert line not in bytes(np.asarray(c.train[:], dtype=np.uint8))


def test_gutenberg_headers_are_stripped():
    text = "junk\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody text\n*** END OF THIS PROJECT\nlicense"
    assert _strip_gutenberg(text).strip() == "body text"


def test_batches_are_a_function_of_seed_and_step():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = batch(tokens, 4, 16, seed=1, step=7)
    b = batch(tokens, 4, 16, seed=1, step=7)
    c = batch(tokens, 4, 16, seed=1, step=8)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()
    assert (a[1][:, :-1] == a[0][:, 1:]).all()  # targets are inputs shifted by one


def test_text_source_with_bpe_tokenizer_counts_the_bytes_of_every_token(tmp_path):
    pytest.importorskip("tokenizers")
    text = "the quick brown fox jumps over the lazy dög, 日本語. " * 400
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    c = load_corpus(DataConfig(source="text", path=str(tmp_path / "t.txt"), tokenizer="bpe", bpe_vocab_size=300))
    assert c.vocab_size <= 300 and int(np.max(c.train)) < c.vocab_size
    raw = text.encode()
    cut = int(len(raw) * 0.9)  # the last val_fraction of the bytes is validation
    assert c.token_bytes[np.asarray(c.val)].sum() == len(raw[cut:].decode("utf-8", "ignore").encode())
    assert c.token_bytes[np.asarray(c.train)].sum() == len(raw[:cut].decode("utf-8", "ignore").encode())
    assert c.token_bytes[np.asarray(c.val)].mean() > 1.5


def test_evaluation_windows_cover_every_target_once_with_the_tail():
    tokens = np.arange(1000, dtype=np.uint16)
    parts = list(eval_batches(tokens, 64, 4))
    x, y = np.concatenate([p[0].ravel() for p in parts]), np.concatenate([p[1].ravel() for p in parts])
    assert y.tolist() == list(range(1, 1000)) and x.tolist() == list(range(999))
    assert [p[0].shape for p in parts][-2:] == [(3, 64), (1, 999 - 15 * 64)]  # 15 full windows, then the tail
    sliced = list(eval_batches(tokens, 64, 4, max_targets=300))
    assert np.concatenate([p[1].ravel() for p in sliced]).tolist() == list(range(1, 301))
    assert eval_targets(tokens, 10**6) == 999


@pytest.mark.parametrize("n_targets,seq_len,per_chunk,chunks", [
    (467_476, 128, 4, 914),   # llm_tiny on the embedded split: 512 tokens per chunk
    (467_476, 512, 1, 914),   # llm_small
    (10_485_759, 1024, 10, 1024),  # llm_fineweb: capped at MAX_CHUNKS
])
def test_chunks_depend_on_corpus_and_seq_len_only(n_targets, seq_len, per_chunk, chunks):
    assert windows_per_chunk(n_targets, seq_len) == per_chunk
    assert -(-(-(-n_targets // seq_len)) // per_chunk) == chunks


def _prepare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", "data", "prepare", *args],
                          capture_output=True, text=True, timeout=300)


def test_data_prepare_offline_bpe_with_exact_bytes_and_a_prefix_from_the_input(tmp_path):
    pytest.importorskip("tokenizers")
    books = tmp_path / "my books"
    books.mkdir()
    docs = [f"Chapter {i}: the quick brown fox, naïve café, 日本 {i * 7}. " * 60 for i in range(12)]
    for i, d in enumerate(docs):
        (books / f"{i:02d}.txt").write_text(d, encoding="utf-8")
    r = _prepare("--text", str(books), "--out", str(tmp_path / "out"), "--val-tokens", "2000", "--bpe-vocab-size", "400")
    assert r.returncode == 0, r.stderr
    assert "tokenizer: byte-level BPE" in r.stdout and "bits per byte are exact" in r.stdout
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["my-books_token_bytes.npy", "my-books_tokenizer.json", "my-books_train_000001.bin", "my-books_val_000000.bin"]
    c = load_corpus(DataConfig(source="bin", path=str(tmp_path / "out" / "my-books_train_*.bin"),
                                         val_path=str(tmp_path / "out" / "my-books_val_*.bin"), vocab_size=512))
    assert c.bytes_exact and len(c.val) == 2000 and len(c.token_bytes) == 512
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tmp_path / "out" / "my-books_tokenizer.json"))
    every = np.concatenate([np.asarray(c.val), np.asarray(c.train)])
    assert c.token_bytes[every].sum() == sum(len(d.encode()) for d in docs)  # end-of-text tokens count 0 bytes
    assert c.token_bytes[np.asarray(c.val)].sum() == len(tok.decode(np.asarray(c.val).tolist()).encode())


def test_data_prepare_byte_shards_and_a_too_large_val_tokens(tmp_path):
    (tmp_path / "notes.txt").write_text("abc déf\n" * 300, encoding="utf-8")
    r = _prepare("--text", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "big"), "--val-tokens", "100000", "--tokenizer", "byte")
    assert r.returncode == 2 and "--val-tokens 100000" in r.stderr and "2700 tokens" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "big").exists() or not list((tmp_path / "big").iterdir())  # no partial shard
    r = _prepare("--text", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "b"), "--val-tokens", "500", "--tokenizer", "byte",
                 "--shard-tokens", "1000")
    assert r.returncode == 0, r.stderr
    assert "tokenizer: bytes" in r.stdout and "notes_train_000003.bin" in r.stdout
    c = load_corpus(DataConfig(source="bin", path=str(tmp_path / "b" / "notes_train_*.bin"),
                                         val_path=str(tmp_path / "b" / "notes_val_*.bin"), vocab_size=256))
    assert c.bytes_exact and (c.token_bytes == 1).all() and len(c.val) == 500 and len(c.train) == 2200
    r = _prepare("--text", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "b"), "--tokenizer", "byte", "--val-tokens", "500")
    assert r.returncode == 2 and "already holds" in r.stderr  # never mixes two preparations under one prefix


def test_a_text_folder_is_walked_only_so_far_and_never_opens_what_is_not_a_file(tmp_path, monkeypatch):
    """`data.path: /` used to walk the whole file system, and a FIFO named *.txt hung the tokenizer."""
    from actbench.lm import corpus

    for i in range(12):
        (tmp_path / f"{i}.txt").write_text("to be or not to be")
    monkeypatch.setattr(corpus, "MAX_ENTRIES", 10)
    with pytest.raises(UserError, match=r"^data.path: the folder '.*' holds more than 10 files and folders: name a smaller one$"):
        corpus.text_files(str(tmp_path))
    monkeypatch.setattr(corpus, "MAX_ENTRIES", 100)
    assert len(corpus.text_files(str(tmp_path))) == 12
    import os

    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(UserError, match=r"^data.path: '.*pipe.txt' is not a regular file \(a FIFO, socket or device\)$"):
        corpus.text_files(str(tmp_path))
    with pytest.raises(UserError, match=r"^data.path: '/dev/zero' is not a regular file"):
        corpus.text_files("/dev/zero")
