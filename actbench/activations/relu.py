"""Piecewise-linear and piecewise-polynomial activations: the ReLU family."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from actbench.activations.base import Activation, FP32Params, scalar_param


class ReLU(Activation):
    """ReLU: f(x) = max(x, 0)"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


class ReLU2(Activation):
    """Squared ReLU (Primer, arXiv 2109.08668): f(x) = max(x, 0)^2"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


class LeakyReLU2(Activation):
    """Squared leaky ReLU, popular in small-LM speedruns: f(x) = leaky_relu(x, slope)^2, slope 0.5"""

    def __init__(self, negative_slope: float = 0.5):
        super().__init__()
        self.negative_slope = negative_slope

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope).square()


class LeakyReLU(Activation):
    """Leaky ReLU: f(x) = x if x > 0 else slope x, slope 0.01"""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = negative_slope

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)


class PReLU(FP32Params):
    """PReLU (arXiv 1502.01852): f(x) = x if x > 0 else a x, one trainable a (init 0.25)"""

    def __init__(self, a: float = 0.25):
        super().__init__()
        self.a = scalar_param(a)

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, self.a * x)


class ELU(Activation):
    """ELU (arXiv 1511.07289): f(x) = x if x > 0 else alpha expm1(x), alpha 1"""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)


class _HysteresisReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.threshold = threshold
        return F.relu(x)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        # compare in fp32 at least: in fp16 the threshold 0.05 itself would round (to 0.04999)
        return g * (x.to(torch.promote_types(x.dtype, torch.float32)) > -ctx.threshold).to(g.dtype), None


class HeLU(Activation):
    """HeLU, hysteresis ReLU: forward f(x) = max(x, 0); backward passes the gradient
    where x > -t (not only x > 0), so units just below zero keep learning. t = 0.05.
    The backward is deliberately not the derivative of the forward (custom autograd).
    """

    def __init__(self, threshold: float = 0.05):
        super().__init__()
        if threshold < 0:
            raise ValueError("threshold must be >= 0")
        self.threshold = threshold

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return _HysteresisReLU.apply(x, self.threshold)


class SmeLU(Activation):
    """SmeLU, smooth ReLU (arXiv 2010.09458) with half-width beta (default 1):

        f(x) = 0                         x <= -beta
        f(x) = (x + beta)^2 / (4 beta)   |x| <= beta
        f(x) = x                         x >= beta
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if beta <= 0:
            raise ValueError("beta must be > 0")
        self.beta = beta

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        mid = torch.clamp(x, -self.beta, self.beta).add(self.beta).square().div(4 * self.beta)
        return torch.where(x >= self.beta, x, mid)
