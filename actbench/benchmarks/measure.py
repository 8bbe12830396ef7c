"""Measuring a memory trial: peak CUDA memory of forward and forward+backward above the inputs,
and the bytes autograd saves for backward (saved_tensors_hooks), per implementation."""

from __future__ import annotations

from typing import Any

import torch

from actbench.benchmarks.inputs import available_impls, build_module, make_inputs
from actbench.core.device import pick_device
from actbench.core.trial import TrialContext, TrialOutput

MB = 2**20


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


def run_memory(cfg: Any, ctx: TrialContext) -> TrialOutput:
    """One memory trial (`cfg`: a `actbench.benchmarks.memory.MemoryConfig`)."""
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
