"""The `memory` kind (measured by `actbench.benchmarks.measure`; this module is torch-free): peak memory of forward and forward+backward above the inputs, and the
bytes saved for backward per output element, per implementation.

Peak memory comes from the CUDA caching allocator (reset, then max_memory_allocated), so it is
reported on CUDA only (None on CPU). Saved bytes are counted on any device with
saved_tensors_hooks: the distinct storages autograd keeps for backward (the input included, as
it is kept alive by the graph), divided by the number of output elements.
"""

from __future__ import annotations

from actbench.benchmarks.elementwise import ElementwiseConfig
from actbench.core.kinds import register_kind
from actbench.core.trial import TrialContext, TrialOutput


class MemoryConfig(ElementwiseConfig):
    def metrics(self) -> tuple[str, ...]:
        """What a memory trial records per impl: bytes saved for backward, and CUDA's peaks."""
        return tuple(f"{i}.{k}" for i in self.impls for k in ("saved_bytes_per_elem", "peak_fwd_mb", "peak_fwd_bwd_mb"))


@register_kind("memory", MemoryConfig, metrics=MemoryConfig.metrics, memory=MemoryConfig.memory)
def run(cfg: MemoryConfig, ctx: TrialContext) -> TrialOutput:
    from actbench.benchmarks.measure import run_memory

    return run_memory(cfg, ctx)
