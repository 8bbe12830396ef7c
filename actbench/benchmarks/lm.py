"""The `lm` kind: train a small Llama with one activation and measure validation bits per byte.

The config is `actbench.lm.config.LMConfig`; training lives in `actbench.lm.train`.
"""

from __future__ import annotations

from actbench.benchmarks import TrialContext, TrialOutput, register_kind
from actbench.lm.config import LMConfig


@register_kind("lm", LMConfig, budget_field="tokens", distributed=True)
def run(cfg: LMConfig, ctx: TrialContext) -> TrialOutput:
    from actbench.lm.train import train

    return train(cfg, ctx)
