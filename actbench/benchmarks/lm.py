"""The `lm` kind: train a small Llama with one activation and measure validation bits per byte.

The config is `actbench.lm.config.LMConfig`; training lives in `actbench.lm.train`. A trial's
work is its optimizer steps; it streams step, training loss, validation bits per byte and
tokens/s. Its candidate is the activation (with the d_ff matched to it and the implementation
that runs it); tuning selects on the tuning part of the validation data (`tune_` metrics), the
verdicts use the test part. `impl: auto` is decided once per activation and shape by an `impl`
trial before the trials run.
"""

from __future__ import annotations

from actbench.core.kinds import Choice, Column, register_kind
from actbench.core.trial import TrialContext, TrialOutput
from actbench.lm.config import LMConfig
from actbench.lm.corpus import check

TUNING_PREFIX = "tune_"
"""Metrics of the tuning part of the validation data carry this prefix (`tune_val_bpb`)."""
METRICS = ("val_loss", "val_bpb", "val_ppl", "tune_val_loss", "tune_val_bpb", "train_loss", "tokens_per_s", "mfu", "peak_mem_mb",
           "final_eval_s", "params", "mlp_params", "flops_per_token", "d_ff", "steps", "tokens", "sparsity", "dead_units",
           "val_tokens_scored", "val_bytes_scored", "tune_val_tokens_scored", "periodic_eval_tokens")
"""The numeric metrics every lm trial records (`actbench.lm.train`), which tune.metric and decide.metric may name."""


def _impl_choice(cfg: LMConfig) -> Choice | None:
    if cfg.impl != "auto":
        return None
    return Choice("impl", "impl", {"activation": cfg.activation, **cfg.impl_shape, "device": cfg.device, "compiled_model": cfg.compile},
                  fallback="eager")


def _tuning_metric(name: str) -> str:
    return TUNING_PREFIX + name if name.startswith("val_") else name


@register_kind(
    "lm", LMConfig, budget_field="tokens", distributed=True, work=lambda cfg: float(cfg.steps),
    columns=(Column("train_loss", "train loss", ".4f", "train/loss"), Column("val_bpb", "val bpb", ".4f", "val/bpb"),
             Column("tokens_per_s", "tokens/s", ",.0f", "train/tokens_per_s"), Column("lr", "", ".3g", "train/lr")),
    identity=("activation", "d_ff", "impl"), no_effect=("eval_every", "checkpoint_every", "churn_tokens", "device", "compile"),
    metric="val_bpb", tuning_metric=_tuning_metric, choice=_impl_choice, check=check, metrics=lambda cfg: METRICS,
    memory=lambda cfg, resources: cfg.memory(resources),
)
def run(cfg: LMConfig, ctx: TrialContext) -> TrialOutput:
    from actbench.lm.train import train

    return train(cfg, ctx)
