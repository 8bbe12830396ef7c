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

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from actbench import activations
from actbench.core.resources import MemoryNeed, Resources, uses_cuda
from actbench.core.trial import ActivationName, ExistingPath, TrialConfig
from actbench.lm.flops import count, match_d_ff
from actbench.lm.shapes import ModelConfig


MAX_D_MODEL, MAX_LAYERS, MAX_HEADS, MAX_SEQ_LEN = 65536, 1024, 1024, 2**20
MAX_TOKENS = 10**15
"""The most tokens any count of tokens in an lm config may name (GPT-3 trained on 3e11)."""
MAX_BATCH_TOKENS = 2**24
"""The most tokens in one micro-batch (batch_size x seq_len) of one process."""
MAX_MICRO_STEPS = 2**40
"""The most micro-batches (optimizer steps x grad_accum) one trial may run."""
SHAPE_TOKENS = 2**40
"""A token count that is at least one step of any config and at most MAX_MICRO_STEPS micro-batches
(`LMConfig.shape`: a config validated for its shape, whatever its tokens)."""


def heads_problem(d_model: int, n_heads: int) -> str | None:
    """Why `n_heads` heads cannot split `d_model` (each head needs an even size, for rotary pairs), or None."""
    if d_model % n_heads == 0 and (d_model // n_heads) % 2 == 0:
        return None
    return (f"{n_heads} heads do not split d_model {d_model} into heads of even size (d_model / n_heads must be an even whole "
            f"number; {_heads_hint(d_model, n_heads)})")


def _heads_hint(d_model: int, n_heads: int) -> str:
    """The head count nearest `n_heads` that splits `d_model` into heads of even size, as a hint."""
    fits = [h for h in range(1, min(d_model, 1024) + 1) if d_model % h == 0 and (d_model // h) % 2 == 0]
    return f"e.g. n_heads {min(fits, key=lambda h: abs(h - n_heads))}" if fits else f"d_model {d_model} is odd"


def _heads_split_d_model(n_heads: int, info: ValidationInfo) -> int:
    d_model = info.data.get("d_model")
    if d_model is not None and (why := heads_problem(d_model, n_heads)):
        raise ValueError(why)
    return n_heads


HeadCount = Annotated[int, Field(gt=0, le=MAX_HEADS), AfterValidator(_heads_split_d_model)]
"""A model's n_heads, declared after its d_model: the heads split d_model (`heads_problem`)."""


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    source: Literal["shakespeare", "text", "bin"] = "shakespeare"
    path: ExistingPath | None = Field(None, max_length=4096)
    val_path: ExistingPath | None = Field(None, max_length=4096)
    tokenizer: Literal["byte", "bpe"] = "byte"
    bpe_vocab_size: int = Field(4096, ge=260, le=65535)
    val_fraction: float = Field(0.1, gt=0, lt=0.5)
    tune_fraction: float = Field(0.5, gt=0, lt=1)
    val_tokens: int | None = Field(None, ge=4, le=MAX_TOKENS)
    vocab_size: int | None = Field(None, ge=2, le=65536)
    bytes_per_token: float | None = Field(None, gt=0, le=1024)

    @field_validator("path", "val_path", mode="before")
    @classmethod
    def _names_fit(cls, v: object) -> object:
        if isinstance(v, str) and any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in v.split("/")):
            raise ValueError("a file or folder name in the path is longer than 255 bytes")
        return v

    @model_validator(mode="after")
    def _shards_need_vocab(self) -> "DataConfig":
        if self.source == "bin" and not self.vocab_size:
            raise ValueError("source 'bin' needs vocab_size (e.g. 50257 for GPT-2 tokens)")
        if self.source in ("text", "bin") and not self.path:
            raise ValueError(f"source {self.source!r} needs path")
        if self.source == "bin" and not self.val_path:
            raise ValueError("source 'bin' needs val_path (the validation shards)")
        return self


class LMConfig(TrialConfig):
    activation: ActivationName
    impl: Literal["eager", "compile", "triton", "fused", "auto"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    d_model: int = Field(128, gt=0, le=MAX_D_MODEL)
    n_layers: int = Field(2, gt=0, le=MAX_LAYERS)
    n_heads: HeadCount = 4
    seq_len: int = Field(128, gt=0, le=MAX_SEQ_LEN)
    d_ff: int | None = Field(None, gt=0, le=2**20)
    reference: ActivationName = "relu2"
    reference_d_ff: int | None = Field(None, gt=0, le=2**19)  # a matched d_ff is at most 1.5x it
    ff_multiple: int = Field(64, gt=0, le=65536)
    tied_embeddings: bool = True
    norm: Literal["rms", "none"] = "rms"
    batch_size: int = Field(16, gt=0, le=2**20)
    grad_accum: int = Field(1, gt=0, le=65536)
    tokens: int = Field(1_000_000, gt=0, le=MAX_TOKENS)
    lr: float = Field(3e-3, gt=0, le=10_000)  # far above any useful rate: tests provoke divergence with 1e4
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    schedule: Literal["wsd", "cosine"] = "wsd"
    warmup_frac: float = Field(0.05, ge=0, lt=1)
    decay_frac: float = Field(0.2, ge=0, le=1)
    weight_decay: float = Field(0.1, ge=0, le=10)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, le=1e6)
    eval_every: int = Field(100, gt=0, le=10**9)
    eval_tokens: int = Field(32768, gt=0, le=MAX_TOKENS)
    final_eval: Literal["full", "slice"] = "full"
    churn_tokens: int = Field(8192, ge=0, le=MAX_TOKENS)
    checkpoint_every: int = Field(0, ge=0, le=10**9)
    compile: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # Rules between fields are checked on the later field, so that an error names where it was set.
    @field_validator("batch_size")
    @classmethod
    def _batch_fits(cls, v: int, info: ValidationInfo) -> int:
        seq = info.data.get("seq_len")
        if seq is not None and v * seq > MAX_BATCH_TOKENS:
            raise ValueError(f"{v} sequences of seq_len {seq} are {v * seq:,} tokens in one micro-batch; at most "
                             f"{MAX_BATCH_TOKENS:,} (use grad_accum for a larger batch)")
        return v

    @field_validator("tokens")
    @classmethod
    def _whole_steps(cls, v: int, info: ValidationInfo) -> int:
        if not {"batch_size", "seq_len", "grad_accum"} <= set(info.data):
            return v
        step = info.data["batch_size"] * info.data["seq_len"] * info.data["grad_accum"]
        if v < step:
            raise ValueError(f"tokens {v} is less than one step of {step} tokens (batch_size x seq_len x grad_accum)")
        if v // step * info.data["grad_accum"] > MAX_MICRO_STEPS:
            raise ValueError(f"tokens {v:,} are {v // step * info.data['grad_accum']:,} micro-batches of {step // info.data['grad_accum']:,} "
                             f"tokens; at most {MAX_MICRO_STEPS:,}")
        return v

    @field_validator("decay_frac")
    @classmethod
    def _schedule_fits(cls, v: float, info: ValidationInfo) -> float:
        warmup = info.data.get("warmup_frac")
        if info.data.get("schedule") == "wsd" and warmup is not None and warmup + v > 1:
            raise ValueError(f"warmup_frac {warmup:g} + decay_frac {v:g} is more than the whole run (at most 1 together)")
        return v

    @model_validator(mode="after")
    def _resolve(self) -> "LMConfig":
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

    @classmethod
    def shape(cls, values: dict[str, Any]) -> "LMConfig":
        """`values` validated as a trial's config at SHAPE_TOKENS tokens (for its shape and sizes, not its budget)."""
        return cls.model_validate({**values, "tokens": SHAPE_TOKENS})

    @property
    def train_flops(self) -> float:
        """Training FLOPs of this trial: 3x the forward count per token of `actbench.lm.flops`, x its tokens."""
        return count(self.to_model(self.expected_vocab_size), self.seq_len).train_flops_per_token * self.steps * self.tokens_per_step

    def memory(self, resources: Resources) -> MemoryNeed:
        """At least what one process of this trial holds: fp32 weights, gradients and AdamW's two
        moments (sharded over the workers with fsdp), and what one micro-batch saves for backward
        (its share of the batch on several workers; bf16 under autocast on a GPU): per token and
        layer the block's inputs, q, k, v and the attention output (9 d_model) and the MLP's
        up-projection and activation output, plus the logits, their log-softmax and gradient.
        Attention is never materialised (flash kernels on CPU and GPU); measured on CPU this
        is 65-95% of the peak resident memory."""
        group = resources.worker_group
        workers = group.workers if group else 1
        shards = workers if group and group.strategy == "fsdp" else 1
        params = count(self.to_model(self.expected_vocab_size), self.seq_len).params
        cuda = uses_cuda(self.device, resources)
        width = 2 if cuda else 4
        up = self.d_ff * (2 if activations.spec(self.activation).gated else 1)
        per_token = self.n_layers * (9 * self.d_model + up + self.d_ff) + 3 * self.expected_vocab_size
        acts = -(-self.batch_size // workers) * self.seq_len * per_token * width
        parts = {"weights": 4.0 * params / shards, "gradients": 4.0 * params / shards, "optimizer state": 8.0 * params / shards,
                 "activations": float(acts)}
        return MemoryNeed("cuda" if cuda else "cpu", parts, "batch_size" if acts > 16 * params / shards else "d_model")

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
