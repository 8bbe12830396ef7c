"""Shared pieces of activation modules: fp32 trainable scalars, softplus inverse."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def inv_softplus(y: float) -> float:
    """x such that softplus(x) == y (y > 0)."""
    if y <= 0:
        raise ValueError(f"softplus is positive; cannot invert {y}")
    return y + math.log(-math.expm1(-y))


def scalar_param(value: float) -> nn.Parameter:
    """A trainable fp32 scalar of shape [1]."""
    return nn.Parameter(torch.tensor([value], dtype=torch.float32))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Arithmetic dtype for input x: fp32 for half types, fp64 stays fp64 (for gradcheck)."""
    return torch.promote_types(x.dtype, torch.float32)


class FP32Params(nn.Module):
    """Activation whose trainable scalars stay at least fp32 whatever `.to(dtype)` the model gets.

    Outputs follow the input dtype; the scalars and their gradients stay fp32 under bf16/fp16
    casts (the transformers XIELUActivation had dtype bugs from bf16 parameters); `.double()`
    is honoured so float64 gradcheck works.
    """

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True):  # type: ignore[override]
        super()._apply(fn, recurse)
        for p in self.parameters(recurse=False):
            if p.dtype in (torch.float16, torch.bfloat16):
                p.data = p.data.float()
                if p.grad is not None:
                    p.grad = p.grad.float()
        return self

    def extra_repr(self) -> str:
        vals = {k: round(float(v.detach().float().reshape(-1)[0]), 4) for k, v in self.named_parameters(recurse=False)}
        return ", ".join(f"{k}={v}" for k, v in vals.items())


def split_gate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the last dimension of a gated input (width 2*d) as [gate, value]."""
    if x.shape[-1] % 2:
        raise ValueError(f"gated activation needs an even last dimension, got {x.shape[-1]}")
    gate, value = x.chunk(2, dim=-1)
    return gate, value
