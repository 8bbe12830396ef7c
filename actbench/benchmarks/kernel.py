"""The `kernel` kind: forward, backward and forward+backward time of one activation per impl
(the timing itself is `actbench.benchmarks.timing`'s; this module holds the config, free of torch).

Timing: `warmup_ms` of calls first, then repeats for at least `rep_ms` (and at least
MIN_REPEATS of them); each row reports the p20 / p50 / p80 of the per-call time over the
repeats, the number of repeats and of calls per repeat.
- CUDA: triton.testing.do_bench (L2 flushed before every call, one call per repeat).
- CPU: blocks of `calls_per_repeat` calls timed with the stdlib's timeit (perf_counter, gc off),
  sized from the warm-up so that a block lasts >= CPU_BLOCK_MS (timer overhead < 0.1%), with
  torch's thread count pinned to the one this trial runs with (recorded per row as `threads`)
  while warming up and measuring.

`noisy` (per row): the repeats are too spread for a ratio to mean anything, i.e.
(p80 - p20) / p50 > NOISY_SPREAD, or fewer than MIN_REPEATS repeats. A 20% spread between the
20th and 80th percentile means the middle 60% of the calls alone disagree by more than most
differences between activations worth reporting; `compare` gives such rows the verdict
"noisy" instead of a ratio. The copy row carries its own flag: `pct_copy` of a row is only as
good as both. On CPU the spread between processes can exceed the spread within one (issue 14:
0.3x-18x for the same op), so a CPU verdict needs repeated trials, not one.

Achieved GB/s counts the minimal bytes moved (each input read once, each output written once:
forward x + y; backward x + g + dx), and is reported as a percentage of a device copy of the
input measured in the same trial.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from actbench.benchmarks.elementwise import DTYPE_BYTES, ElementwiseConfig
from actbench.core.kinds import register_kind
from actbench.core.resources import MemoryNeed, Resources
from actbench.core.trial import TrialContext, TrialOutput

MODES = ("forward", "backward", "full")


class KernelConfig(ElementwiseConfig):
    modes: list[Literal["forward", "backward", "full"]] = Field(default_factory=lambda: list(MODES), min_length=1)
    warmup_ms: float = Field(25.0, gt=0, le=60_000)
    rep_ms: float = Field(100.0, gt=0, le=60_000)

    @field_validator("modes")
    @classmethod
    def _modes_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v}: each mode once")
        return v

    def metrics(self) -> tuple[str, ...]:
        """What a kernel trial records: the copy's speed, and each impl's time and share of it per mode."""
        return ("copy.gbps", "copy.ms_p50", "threads", *(f"{i}.{m}.{k}" for i in self.impls for m in self.modes for k in ("ms_p50", "pct_copy")))

    def memory(self, resources: Resources) -> MemoryNeed:
        """The elementwise tensors, and the copy of the input it is timed against."""
        need = super().memory(resources)
        n_in, _ = self.elements()
        copy = 2.0 * n_in * DTYPE_BYTES[self.dtype]
        return MemoryNeed(need.device, {**need.parts, "copy of the input": copy}, need.field)


@register_kind("kernel", KernelConfig, metrics=KernelConfig.metrics, memory=KernelConfig.memory)
def run(cfg: KernelConfig, ctx: TrialContext) -> TrialOutput:
    from actbench.benchmarks.timing import run_kernel

    return run_kernel(cfg, ctx)
