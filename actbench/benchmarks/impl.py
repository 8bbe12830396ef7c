"""The `impl` kind: decides which implementation of an activation the lm trials of one activation
and shape run when their suite says `impl: auto` (`actbench.lm.impl`), where those trials run
(the same resources, so the same device and threads). Its record's metric `impl` is the choice;
on a CPU it also records the timings that made it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from actbench.core.kinds import register_kind
from actbench.core.resources import MemoryNeed, Resources, uses_cuda
from actbench.core.trial import ActivationName, TrialConfig, TrialContext, TrialOutput


class ImplConfig(TrialConfig):
    activation: ActivationName
    rows: int = Field(gt=0, le=2**24)
    width: int = Field(gt=0, le=2**22)
    calls: int = Field(gt=0, le=2**53)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compiled_model: bool = False

    def memory(self, resources: Resources) -> MemoryNeed:
        """At least what timing one call holds: its fp32 input, output and their gradients."""
        return MemoryNeed("cuda" if uses_cuda(self.device, resources) else "cpu",
                          {"inputs and outputs": 16.0 * self.rows * self.width}, "rows")


@register_kind("impl", ImplConfig, memory=ImplConfig.memory)
def run(cfg: ImplConfig, ctx: TrialContext) -> TrialOutput:
    from actbench.core.device import pick_device
    from actbench.lm.impl import choose_impl

    device = pick_device(cfg.device)
    impl, timings = choose_impl(cfg.activation, "auto", device, cfg.rows, cfg.width, cfg.calls, cfg.compiled_model)
    return TrialOutput(metrics={"impl": impl, "device": device.type, **timings})
