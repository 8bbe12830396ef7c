"""Shared pieces of the built-in activation modules: the `Activation` base (formula, fp32
arithmetic for half-precision inputs), fp32 trainable scalars, softplus inverse, gate split."""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import torch
from torch import nn

HALF_DTYPES = (torch.float16, torch.bfloat16)


def inv_softplus(y: float) -> float:
    """x such that softplus(x) == y (y > 0)."""
    if y <= 0:
        raise ValueError(f"softplus is positive; cannot invert {y}")
    return y + math.log(-math.expm1(-y))


def scalar_param(value: float) -> nn.Parameter:
    """A trainable fp32 scalar of shape [1]."""
    return nn.Parameter(torch.tensor([value], dtype=torch.float32))


class Activation(nn.Module):
    """Base of the built-in activations: `formula(x)` is the maths, `forward` evaluates it.

    With `fp32_math = True` a bfloat16 / float16 input is evaluated in fp32 and the result (and,
    through autograd, the input gradient) is returned in the input dtype, rounded once. A class
    sets it when its formula, evaluated op by op in the input dtype, is wrong by more than ~2 ulp
    of that dtype somewhere on the input range (cancellation, exp overflow, rounded intermediates;
    the float64 sweep in tests/activations/test_numerics.py finds these). Single torch ops such as
    F.gelu or F.silu already compute in fp32 internally and round once, so they leave it False
    and keep their memory and speed. float32 and float64 inputs are evaluated as they are.
    """

    fp32_math: ClassVar[bool] = False

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.evaluate(self.formula, x)

    def evaluate(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """fn(x) in this activation's arithmetic dtype, returned in x's dtype."""
        if self.fp32_math and x.dtype in HALF_DTYPES:
            return fn(x.float()).to(x.dtype)
        return fn(x)


class FP32Params(Activation):
    """Activation whose trainable scalars stay fp32 whatever `.to(dtype)` the model gets.

    A cast to bf16/fp16 neither changes the scalars' dtype nor rounds their values (they are
    kept, not round-tripped through the half type); the scalars and their gradients stay fp32
    (the transformers XIELUActivation had dtype bugs from bf16 parameters). `.double()` is
    honoured so float64 gradcheck works. The arithmetic is fp32 (the scalars promote it).
    """

    fp32_math = True

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True):  # type: ignore[override]
        before = {name: (p.data, p.grad) for name, p in self._parameters.items() if p is not None}
        super()._apply(fn, recurse)
        for name, p in self._parameters.items():
            if p is not None and p.dtype in HALF_DTYPES:
                data, grad = before[name]
                p.data = data.to(device=p.device, dtype=torch.float32)
                if grad is not None:
                    p.grad = grad.to(device=p.device, dtype=torch.float32)
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
