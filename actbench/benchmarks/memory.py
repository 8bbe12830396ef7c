"""The `memory` kind: peak memory of forward and forward+backward above the inputs, and the
bytes saved for backward per output element, per implementation.

Peak memory comes from the CUDA caching allocator (reset, then max_memory_allocated), so it is
reported on CUDA only (None on CPU). Saved bytes are counted on any device with
saved_tensors_hooks: the distinct storages autograd keeps for backward (the input included, as
it is kept alive by the graph), divided by the number of output elements.
"""

from __future__ import annotations

from typing import Any

import torch

from actbench.benchmarks import TrialContext, TrialOutput, register_kind
from actbench.benchmarks.device import pick_device
from actbench.benchmarks.elementwise import ElementwiseConfig, available_impls, build_module, make_inputs

MB = 2**20


class MemoryConfig(ElementwiseConfig):
    pass


def saved_bytes(module: torch.nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for backward in one forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    del y
    return sum(storages.values())


def peak_mb(module: torch.nn.Module, x: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """Peak MB above what is allocated before the call: forward alone, then forward+backward."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    y = module(x)
    torch.cuda.synchronize()
    fwd = (torch.cuda.max_memory_allocated() - base) / MB
    y.backward(g)
    del y
    torch.cuda.synchronize()
    total = (torch.cuda.max_memory_allocated() - base) / MB
    x.grad = None
    return fwd, total


@register_kind("memory", MemoryConfig)
def run(cfg: MemoryConfig, ctx: TrialContext) -> TrialOutput:
    device = pick_device(cfg.device)
    x, g, gated = make_inputs(cfg, device)
    impls, note = available_impls(cfg)
    rows: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    common = {"gated": gated, "input_elems": x.numel(), "output_elems": g.numel(), "device": device.type}
    for impl in impls:
        module = build_module(cfg, impl, device, x, g)
        per_elem = saved_bytes(module, x) / g.numel()
        fwd, total = peak_mb(module, x, g) if device.type == "cuda" else (None, None)
        rows.append({"impl": impl, "saved_bytes_per_elem": per_elem, "peak_fwd_mb": fwd, "peak_fwd_bwd_mb": total, **common})
        metrics[f"{impl}.saved_bytes_per_elem"] = per_elem
        if fwd is not None:
            metrics[f"{impl}.peak_fwd_mb"], metrics[f"{impl}.peak_fwd_bwd_mb"] = fwd, total
    return TrialOutput(metrics=metrics, rows=rows, note=note)
