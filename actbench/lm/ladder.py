"""Scaling ladders: the `ladder:` block of an lm suite.

    ladder:
      rungs:                       # model sizes; or `widths: [64, 96, 128]` on the defaults' shape
        - {d_model: 64, n_layers: 2, n_heads: 2}
        - {d_model: 128, n_layers: 4, n_heads: 4}
      ff_ratio: 6                  # reference_d_ff = 6 d_model at every rung (the paper's 6h)
      tokens_per_param: 20         # or `tokens: 2000000` at every rung; default: the suite's tokens
      target: {d_model: 1536, n_layers: 24, seq_len: 4096, tokens: 125e9}   # or {compute: 8e20}

Every rung is crossed with the suite's matrix and seeds, and every activation at a rung is
matched to the reference exactly as without a ladder (params and FLOPs). With
`tokens_per_param`, a rung trains on that many tokens per parameter of the reference model at
that rung (non-embedding parameters unless `params: total`), rounded down to whole steps, so all
activations at one rung get the same tokens. `target` names the compute at which gains are
extrapolated (training FLOPs, 3x the forward count of `actbench.lm.flops`, as for the rungs);
a target further than `max_extrapolation` times the largest rung's compute is refused when the
suite loads (`target_problem`), and a gain there by compare and report (`report.scaling`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from actbench.lm.config import MAX_D_MODEL, MAX_LAYERS, MAX_SEQ_LEN, MAX_TOKENS, HeadCount, LMConfig

RUNG_FIELDS = ("d_model", "n_layers", "n_heads", "reference_d_ff", "tokens", "d_ff")
MIN_RUNGS = 2
"""A ladder has at least this many rungs (one rung is one model size: no ladder)."""
MIN_RUNGS_TO_EXTRAPOLATE = 4
"""A target needs this many rungs: with 3 the 3-parameter curve passes through every rung mean, so nothing tests it."""


class LadderError(ValueError):
    """A ladder that cannot be built; `where` is the suite path of the field at fault."""

    def __init__(self, where: tuple[str | int, ...], msg: str, error: Any = None):
        super().__init__(msg)
        self.where, self.error = where, error  # error: pydantic's, when it is one


class Rung(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    d_model: int = Field(gt=0, le=MAX_D_MODEL)
    n_layers: int = Field(gt=0, le=MAX_LAYERS)
    n_heads: HeadCount


class Target(BaseModel):
    """Where to extrapolate: a training compute in FLOPs, or a model shape and its tokens."""

    model_config = ConfigDict(extra="forbid", strict=True)
    compute: float | None = Field(None, gt=0, le=1e35, allow_inf_nan=False)
    d_model: int | None = Field(None, gt=0, le=MAX_D_MODEL)
    n_layers: int | None = Field(None, gt=0, le=MAX_LAYERS)
    seq_len: int | None = Field(None, gt=0, le=MAX_SEQ_LEN)
    vocab_size: int | None = Field(None, gt=0, le=2**24)
    tokens: float | None = Field(None, gt=0, le=MAX_TOKENS, allow_inf_nan=False)
    label: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _one_way(self) -> "Target":
        shape = (self.d_model, self.n_layers, self.tokens)
        if (self.compute is None) == all(v is None for v in shape):
            raise ValueError("give either compute, or d_model, n_layers and tokens (seq_len and vocab_size optional)")
        if self.compute is None and any(v is None for v in shape):
            raise ValueError("a target model needs d_model, n_layers and tokens")
        return self


class LadderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    rungs: list[Rung] | None = Field(None, min_length=MIN_RUNGS, max_length=50)
    widths: list[Annotated[int, Field(gt=0, le=MAX_D_MODEL)]] | None = Field(None, min_length=MIN_RUNGS, max_length=50)
    ff_ratio: float | None = Field(None, gt=0, le=64, allow_inf_nan=False)
    tokens_per_param: float | None = Field(None, gt=0, le=1e6, allow_inf_nan=False)
    tokens: int | None = Field(None, gt=0, le=MAX_TOKENS)
    params: Literal["non_embedding", "total"] = "non_embedding"
    target: Target | None = None
    max_extrapolation: float = Field(1000.0, ge=1, le=1e12, allow_inf_nan=False)

    @field_validator("rungs", "widths")
    @classmethod
    def _distinct(cls, v: list[Any] | None) -> list[Any] | None:
        sizes = [(r.d_model, r.n_layers) if isinstance(r, Rung) else r for r in v or []]
        repeated = next((i for i, s in enumerate(sizes) if s in sizes[:i]), None)
        if repeated is not None:
            raise ValueError(f"rung {repeated} repeats rung {sizes.index(sizes[repeated])}: every rung is a model size of its own")
        return v

    @field_validator("target")
    @classmethod
    def _enough_rungs(cls, v: Target | None, info: ValidationInfo) -> Target | None:
        listed = info.data.get("rungs") or info.data.get("widths")
        if v is not None and listed is not None and len(listed) < MIN_RUNGS_TO_EXTRAPOLATE:
            raise ValueError(f"a target needs at least {MIN_RUNGS_TO_EXTRAPOLATE} rungs to extrapolate from (with 3, the fitted "
                             f"curve's 3 parameters pass through every rung, so nothing tests it); this ladder has {len(listed)}: "
                             "add rungs or drop the target")
        return v

    @model_validator(mode="after")
    def _sizes(self) -> "LadderSpec":
        if (self.rungs is None) == (self.widths is None):
            raise ValueError("give either rungs (d_model, n_layers, n_heads each) or widths")
        if self.tokens is not None and self.tokens_per_param is not None:
            raise ValueError("give tokens or tokens_per_param, not both")
        return self

    @property
    def block(self) -> str:
        """The key its rungs are listed under: rungs or widths."""
        return "rungs" if self.rungs is not None else "widths"

    def shapes(self, defaults: dict[str, Any]) -> list[dict[str, int]]:
        """d_model, n_layers, n_heads of every rung; `widths` keep the defaults' head size and depth."""
        if self.rungs is not None:
            return [r.model_dump() for r in self.rungs]
        base = _base(defaults, ("d_model", "n_heads", "n_layers"))
        head_dim = base.d_model // base.n_heads
        out = []
        for i, w in enumerate(self.widths or []):
            if w % head_dim:
                raise LadderError(("ladder", "widths", i), f"width {w} is not a multiple of the head size {head_dim} (d_model / "
                                  "n_heads of the defaults)")
            shape = {"d_model": w, "n_layers": base.n_layers, "n_heads": w // head_dim}
            try:
                Rung.model_validate(shape)
            except ValidationError as e:
                raise LadderError(("ladder", "widths", i), f"width {w} at head size {head_dim} has {w // head_dim} heads: {_msg(e)}") from None
            out.append(shape)
        return out


def _msg(e: ValidationError) -> str:
    err = e.errors()[0]
    return str(err["msg"]).removeprefix("Value error, ")


def _validated(values: dict[str, Any], where: dict[str, tuple[str | int, ...]], fallback: tuple[str | int, ...]) -> LMConfig:
    """`values` as an LMConfig for its shape (`LMConfig.shape`); an error raises LadderError at
    `where[field]` (the defaults' field when not there, else `fallback`)."""
    try:
        return LMConfig.shape(values)
    except ValidationError as e:
        loc = tuple(e.errors()[0]["loc"])
        key = str(loc[0]) if loc else ""
        at = where.get(key) or (("defaults", *loc) if key in values else fallback)
        raise LadderError(at, _msg(e), e.errors()[0]) from None


def _base(defaults: dict[str, Any], keys: tuple[str, ...]) -> LMConfig:
    """A config of the defaults' `keys` (the others at their default values), validated: what a
    ladder builds on (the head size, the MLP's rounding, the reference, the vocabulary)."""
    return _validated({k: defaults[k] for k in keys if k in defaults} | {"activation": "relu2"}, {}, ("defaults",))


def rung_overrides(spec: LadderSpec, defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """The config fields each rung sets, in rung order (each rung's tokens from its reference model).
    Raises LadderError naming the field at fault (a rung, or a default the rungs build on)."""
    from actbench.lm.flops import count

    multiple = _base(defaults, ("ff_multiple",)).ff_multiple
    rows = []
    for i, shape in enumerate(spec.shapes(defaults)):
        row: dict[str, Any] = dict(shape)
        if spec.ff_ratio is not None:
            row["reference_d_ff"] = max(multiple, round(spec.ff_ratio * shape["d_model"] / multiple) * multiple)
        if spec.tokens is not None:
            row["tokens"] = spec.tokens
        elif spec.tokens_per_param is not None:
            probe = {**defaults, **row}
            where = {**{k: ("ladder", spec.block, i) for k in row}, "activation": ("defaults", "reference")}
            ref = _validated({**probe, "activation": probe.get("reference", "relu2"), "d_ff": None}, where, ("ladder", spec.block, i))
            vocab = ref.expected_vocab_size
            params = count(ref.to_model(vocab), ref.seq_len).params
            if spec.params == "non_embedding":
                params -= vocab * ref.d_model * (1 if ref.tied_embeddings else 2)
            steps = int(spec.tokens_per_param * params) // ref.tokens_per_step
            row["tokens"] = max(1, steps) * ref.tokens_per_step
            if row["tokens"] > MAX_TOKENS:
                raise LadderError(("ladder", "tokens_per_param"), f"{spec.tokens_per_param:g} tokens per parameter are "
                                  f"{row['tokens']:.3g} tokens at rung {i}; at most {MAX_TOKENS:.0e}")
        rows.append(row)
    return rows


def target_compute(spec: LadderSpec, defaults: dict[str, Any]) -> float | None:
    """Training FLOPs of the extrapolation target (the reference activation at the target shape)."""
    from dataclasses import replace

    from actbench.lm.flops import count, match_d_ff

    t = spec.target
    if t is None:
        return None
    if t.compute is not None:
        return t.compute
    assert t.d_model is not None and t.n_layers is not None and t.tokens is not None  # Target._one_way
    base = _base(defaults, ("ff_multiple", "reference", "tied_embeddings", "norm", "data", "seq_len"))
    d_ff = match_d_ff(base.reference, t.d_model, base.reference, int((spec.ff_ratio or 4.0) * t.d_model), base.ff_multiple)
    # one head: the head count does not change the FLOP count
    model = replace(base.to_model(t.vocab_size or base.expected_vocab_size), activation=base.reference, d_model=t.d_model,
                    n_layers=t.n_layers, n_heads=1, d_ff=d_ff)
    return count(model, t.seq_len or base.seq_len).train_flops_per_token * float(t.tokens)


def target_problem(spec: LadderSpec, defaults: dict[str, Any], largest: float) -> LadderError | None:
    """Why the target makes no sense for rungs whose largest trains on `largest` FLOPs: a target
    is where the gains are extrapolated to, so it lies beyond the largest rung (each rung's own
    gain is reported at that rung), and no further than `max_extrapolation` times it. None when
    there is no target or it is fine."""
    target = target_compute(spec, defaults)
    if target is None:
        return None
    if target > largest * spec.max_extrapolation:
        return LadderError(("ladder", "target"), f"{target:.3g} training FLOPs is {target / largest:.3g}x the largest rung's "
                           f"({largest:.3g} FLOPs), beyond max_extrapolation {spec.max_extrapolation:g}: add a larger rung, choose a "
                           "nearer target, or raise max_extrapolation (the gain there would be refused)")
    if target >= largest:
        return None
    return LadderError(("ladder", "target"), f"{target:.3g} training FLOPs is below the largest rung ({largest:.3g} FLOPs): a "
                       "target is where the gains are extrapolated to (each rung's own gain is reported at that rung)")
