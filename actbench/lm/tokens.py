"""Tokenizers of the text corpora: bytes, or a byte-level BPE trained offline with the `tokenizers`
library, and the bytes of text behind each token id (0 for special tokens), so bits per byte are
exact."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from actbench.errors import UserError

EOT = "<|endoftext|>"


def text_bytes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)


def train_bpe(texts: Iterable[str], vocab_size: int, special_tokens: tuple[str, ...] = ()):  # noqa: ANN202
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
