"""The tensors and modules of a kernel or memory trial: inputs (x, and the upstream gradient g),
the impls that can run here, and the activation built per impl (warmed up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from actbench import activations
from actbench.core.device import DTYPES

if TYPE_CHECKING:
    from actbench.benchmarks.elementwise import ElementwiseConfig


def make_inputs(cfg: "ElementwiseConfig", device: torch.device) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Input x (random normal, never zeros), upstream grad g, and whether the activation is gated."""
    gated = activations.spec(cfg.activation).gated
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rows = cfg.size // cfg.width
    x = torch.randn(rows, cfg.width * (2 if gated else 1), generator=gen, device=device, dtype=torch.float32)
    g = torch.randn(rows, cfg.width, generator=gen, device=device, dtype=torch.float32)
    dtype = DTYPES[cfg.dtype]
    return x.to(dtype).requires_grad_(), g.to(dtype), gated


def available_impls(cfg: "ElementwiseConfig") -> tuple[list[str], str]:
    """Impls of cfg.impls that this activation has and can run here, and a note saying why the
    others are skipped."""
    spec = activations.spec(cfg.activation)
    ok, skipped = [], {}
    for impl in cfg.impls:
        if impl not in spec.impl_names:
            skipped[impl] = "not registered for this activation"
        elif (why := spec.unavailable_reason(impl)) is not None:
            skipped[impl] = why
        else:
            ok.append(impl)
    return ok, "; ".join(f"{i}: {why}" for i, why in skipped.items())


def build_module(cfg: "ElementwiseConfig", impl: str, device: torch.device, x: torch.Tensor, g: torch.Tensor) -> nn.Module:
    """The activation on `device`, warmed up once forward and backward (compiles `compile`)."""
    module = activations.build(cfg.activation, impl=impl).to(device=device, dtype=DTYPES[cfg.dtype])
    module(x).backward(g)
    x.grad = None
    module.zero_grad(set_to_none=True)
    return module
