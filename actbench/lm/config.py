"""Configs of the `lm` kind, free of torch so that suites validate and plans print quickly.

`DataConfig` names a corpus (see `actbench.lm.corpus`) and `LMConfig` one training trial (its
`to_model` gives the shape of the Llama it trains). d_ff is resolved when an LMConfig is
validated: given explicitly, or matched to `reference` at `reference_d_ff` (MLP parameters and
FLOPs equal to within the rounding to `ff_multiple`), so the resolved width is part of the trial id.
Evaluation: the validation split (its first `data.val_tokens` tokens, when given) is two parts,
the first `data.tune_fraction` of its tokens for tuning and the rest (the test part) for the
verdicts; every `eval_every` steps on the first
`eval_tokens` targets of the test part (the curve), and at the end each part whole (`final_eval:
full`, the default) or its first `eval_tokens` targets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, model_validator

from actbench import activations
from actbench.core.resources import Resources
from actbench.core.trial import ActivationName, ExistingPath, TrialConfig
from actbench.lm.flops import match_d_ff
from actbench.lm.shapes import ModelConfig


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    source: Literal["shakespeare", "text", "bin"] = "shakespeare"
    path: ExistingPath | None = None
    val_path: ExistingPath | None = None
    tokenizer: Literal["byte", "bpe"] = "byte"
    bpe_vocab_size: int = Field(4096, ge=260, le=65535)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    tune_fraction: float = Field(0.5, gt=0, lt=1)
    val_tokens: int | None = Field(None, ge=4)
    vocab_size: int | None = Field(None, ge=2, le=65536)
    bytes_per_token: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _shards_need_vocab(self) -> "DataConfig":
        if self.source == "bin" and not self.vocab_size:
            raise ValueError("source 'bin' needs vocab_size (e.g. 50257 for GPT-2 tokens)")
        if self.source in ("text", "bin") and not self.path:
            raise ValueError(f"source {self.source!r} needs path")
        return self


class LMConfig(TrialConfig):
    activation: ActivationName
    impl: Literal["eager", "compile", "triton", "fused", "auto"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    d_model: int = Field(128, gt=0, le=65536)
    n_layers: int = Field(2, gt=0, le=1024)
    n_heads: int = Field(4, gt=0, le=1024)
    seq_len: int = Field(128, gt=0, le=2**20)
    d_ff: int | None = Field(None, gt=0, le=2**20)
    reference: ActivationName = "relu2"
    reference_d_ff: int | None = Field(None, gt=0, le=2**20)
    ff_multiple: int = Field(64, gt=0, le=65536)
    tied_embeddings: bool = True
    norm: Literal["rms", "none"] = "rms"
    batch_size: int = Field(16, gt=0, le=2**20)
    grad_accum: int = Field(1, gt=0, le=65536)
    tokens: PositiveInt = 1_000_000
    lr: PositiveFloat = 3e-3
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    schedule: Literal["wsd", "cosine"] = "wsd"
    warmup_frac: float = Field(0.05, ge=0, lt=1)
    decay_frac: float = Field(0.2, ge=0, le=1)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    eval_every: PositiveInt = 100
    eval_tokens: PositiveInt = 32768
    final_eval: Literal["full", "slice"] = "full"
    churn_tokens: int = Field(8192, ge=0)
    checkpoint_every: int = Field(0, ge=0)
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _resolve(self) -> "LMConfig":
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError(f"d_model {self.d_model} must split into {self.n_heads} heads of even size")
        if self.steps < 1:
            raise ValueError(f"tokens {self.tokens} is less than one step of {self.tokens_per_step} tokens")
        if self.d_ff is None:
            ref = self.reference_d_ff or 4 * self.d_model
            object.__setattr__(self, "reference_d_ff", ref)
            object.__setattr__(self, "d_ff", match_d_ff(self.activation, self.d_model, self.reference, ref, self.ff_multiple))
        return self

    def check_resources(self, r: Resources) -> tuple[str, str] | None:
        """Several workers split each micro-batch of batch_size sequences into equal slices."""
        if r.workers and self.batch_size % r.workers:
            return "workers", (f"batch_size {self.batch_size} does not split evenly over {r.workers} workers (each worker takes "
                               "an equal slice of every micro-batch; the global batch is the same as on one worker)")
        return None

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len * self.grad_accum

    @property
    def steps(self) -> int:
        return self.tokens // self.tokens_per_step

    @property
    def impl_shape(self) -> dict[str, int]:
        """What `impl: auto` is timed on: rows and width of one activation call (gated: twice d_ff
        wide), and the calls a trial makes (`actbench.lm.impl.choose_impl`)."""
        width = self.d_ff * (2 if activations.spec(self.activation).gated else 1)
        return {"rows": self.batch_size * self.seq_len, "width": width, "calls": self.steps * self.grad_accum * self.n_layers}

    def to_model(self, vocab_size: int) -> ModelConfig:
        """The Llama this trial trains, for a corpus of `vocab_size` tokens."""
        return ModelConfig(
            vocab_size=vocab_size, d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads, d_ff=self.d_ff,
            activation=self.activation, impl=self.impl, max_seq_len=self.seq_len, tied_embeddings=self.tied_embeddings, norm=self.norm,
        )

    @property
    def expected_vocab_size(self) -> int:
        if self.data.vocab_size:
            return self.data.vocab_size
        return self.data.bpe_vocab_size if self.data.tokenizer == "bpe" else 256
