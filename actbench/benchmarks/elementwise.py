"""Shared by the kernel and memory kinds: the config of one activation at one dtype and size,
its inputs, and its modules per implementation.

`size` counts output elements; the input is (size / width, width), or twice as wide for a gated
activation (split as [gate, value]).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from actbench import activations
from actbench.benchmarks import ActivationName, TrialConfig
from actbench.benchmarks.device import DTYPES
from actbench.suite import Resources

Impl = Literal["eager", "compile", "triton"]


class ElementwiseConfig(TrialConfig):
    activation: ActivationName
    impls: list[Impl] = Field(default_factory=lambda: ["eager", "compile", "triton"], min_length=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    size: int = Field(gt=0, le=2**34)
    width: int = Field(1024, gt=0, le=2**24)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _size_fits_width(self) -> "ElementwiseConfig":
        if self.size % self.width:
            raise ValueError(f"size {self.size} is not a multiple of width {self.width}")
        return self

    @staticmethod
    def check_resources(r: Resources) -> tuple[str, str] | None:
        if r.gpus != int(r.gpus):
            return "gpus", f"timing and memory trials need whole GPUs, got {r.gpus:g}"
        return None


def make_inputs(cfg: ElementwiseConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Input x (random normal, never zeros), upstream grad g, and whether the activation is gated."""
    gated = activations.spec(cfg.activation).gated
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    rows = cfg.size // cfg.width
    x = torch.randn(rows, cfg.width * (2 if gated else 1), generator=gen, device=device, dtype=torch.float32)
    g = torch.randn(rows, cfg.width, generator=gen, device=device, dtype=torch.float32)
    dtype = DTYPES[cfg.dtype]
    return x.to(dtype).requires_grad_(), g.to(dtype), gated


def available_impls(cfg: ElementwiseConfig) -> tuple[list[str], str]:
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


def build_module(cfg: ElementwiseConfig, impl: str, device: torch.device, x: torch.Tensor, g: torch.Tensor) -> nn.Module:
    """The activation on `device`, warmed up once forward and backward (compiles `compile`)."""
    module = activations.build(cfg.activation, impl=impl).to(device=device, dtype=DTYPES[cfg.dtype])
    module(x).backward(g)
    x.grad = None
    module.zero_grad(set_to_none=True)
    return module

