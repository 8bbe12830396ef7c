"""The shape of the Llama that `actbench.lm.model` builds: a plain dataclass, free of torch and of
the trial config, so that FLOP counting and the model share it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actbench import activations


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    activation: str = "relu2"
    impl: str = "eager"
    max_seq_len: int = 256
    tied_embeddings: bool = True
    norm: Literal["rms", "none"] = "rms"
    rope_base: float = 10000.0

    @property
    def gated(self) -> bool:
        return activations.spec(self.activation).gated

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads
