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
gains further than `max_extrapolation` times the largest rung's compute are refused.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

RUNG_FIELDS = ("d_model", "n_layers", "n_heads", "reference_d_ff", "tokens", "d_ff")


class Rung(BaseModel):
    model_config = ConfigDict(extra="forbid")
    d_model: PositiveInt
    n_layers: PositiveInt
    n_heads: PositiveInt


class Target(BaseModel):
    """Where to extrapolate: a training compute in FLOPs, or a model shape and its tokens."""

    model_config = ConfigDict(extra="forbid")
    compute: float | None = Field(None, gt=0, allow_inf_nan=False)
    d_model: PositiveInt | None = None
    n_layers: PositiveInt | None = None
    seq_len: PositiveInt | None = None
    vocab_size: PositiveInt | None = None
    tokens: float | None = Field(None, gt=0, allow_inf_nan=False)
    label: str = ""

    @model_validator(mode="after")
    def _one_way(self) -> "Target":
        shape = (self.d_model, self.n_layers, self.tokens)
        if (self.compute is None) == all(v is None for v in shape):
            raise ValueError("give either compute, or d_model, n_layers and tokens (seq_len and vocab_size optional)")
        if self.compute is None and any(v is None for v in shape):
            raise ValueError("a target model needs d_model, n_layers and tokens")
        return self


class LadderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rungs: list[Rung] | None = Field(None, min_length=1, max_length=50)
    widths: list[PositiveInt] | None = Field(None, min_length=1, max_length=50)
    ff_ratio: float | None = Field(None, gt=0, le=64, allow_inf_nan=False)
    tokens_per_param: float | None = Field(None, gt=0, le=1e6, allow_inf_nan=False)
    tokens: PositiveInt | None = None
    params: Literal["non_embedding", "total"] = "non_embedding"
    target: Target | None = None
    max_extrapolation: float = Field(1000.0, ge=1, allow_inf_nan=False)

    @model_validator(mode="after")
    def _sizes(self) -> "LadderSpec":
        if (self.rungs is None) == (self.widths is None):
            raise ValueError("give either rungs (d_model, n_layers, n_heads each) or widths")
        if self.tokens is not None and self.tokens_per_param is not None:
            raise ValueError("give tokens or tokens_per_param, not both")
        return self

    def shapes(self, defaults: dict[str, Any]) -> list[dict[str, int]]:
        """d_model, n_layers, n_heads of every rung; `widths` keep the defaults' head size and depth."""
        if self.rungs is not None:
            return [r.model_dump() for r in self.rungs]
        d, heads = int(defaults.get("d_model", 128)), int(defaults.get("n_heads", 4))
        head_dim = d // heads
        out = []
        for w in self.widths or []:
            if w % head_dim:
                raise ValueError(f"width {w} is not a multiple of the head size {head_dim} (d_model / n_heads of the defaults)")
            out.append({"d_model": w, "n_layers": int(defaults.get("n_layers", 2)), "n_heads": w // head_dim})
        return out


def rung_overrides(spec: LadderSpec, defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """The config fields each rung sets, in rung order (each rung's tokens from its reference model)."""
    from actbench.lm.config import LMConfig
    from actbench.lm.flops import count

    rows = []
    for shape in spec.shapes(defaults):
        row: dict[str, Any] = dict(shape)
        if spec.ff_ratio is not None:
            multiple = int(defaults.get("ff_multiple", 64))
            row["reference_d_ff"] = max(multiple, round(spec.ff_ratio * shape["d_model"] / multiple) * multiple)
        if spec.tokens is not None:
            row["tokens"] = spec.tokens
        elif spec.tokens_per_param is not None:
            probe = {**defaults, **row}
            ref = LMConfig.model_validate({**probe, "activation": probe.get("reference", "relu2"), "d_ff": None,
                                           "tokens": 10**15})
            vocab = ref.expected_vocab_size
            params = count(ref.to_model(vocab), ref.seq_len).params
            if spec.params == "non_embedding":
                params -= vocab * ref.d_model * (1 if ref.tied_embeddings else 2)
            steps = int(spec.tokens_per_param * params) // ref.tokens_per_step
            row["tokens"] = max(1, steps) * ref.tokens_per_step
        rows.append(row)
    return rows


def target_compute(spec: LadderSpec, defaults: dict[str, Any]) -> float | None:
    """Training FLOPs of the extrapolation target (the reference activation at the target shape)."""
    t = spec.target
    if t is None:
        return None
    if t.compute is not None:
        return t.compute
    from actbench.lm.config import LMConfig
    from actbench.lm.flops import count

    ratio = spec.ff_ratio or 4.0
    cfg = LMConfig.model_validate({
        **{k: v for k, v in defaults.items() if k not in ("d_ff", "n_heads", "data")},
        # one head: the head count does not change the FLOP count
        "activation": defaults.get("reference", "relu2"), "d_model": t.d_model, "n_layers": t.n_layers, "n_heads": 1,
        "seq_len": t.seq_len or defaults.get("seq_len", 128), "reference_d_ff": int(ratio * t.d_model), "d_ff": None,
        "tokens": 10**15,
    })
    vocab = t.vocab_size or cfg.expected_vocab_size
    return count(cfg.to_model(vocab), cfg.seq_len).train_flops_per_token * float(t.tokens)
