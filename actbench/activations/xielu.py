"""The xIELU family (arXiv 2411.13010, Huang & Schlag): xIELU, xIPReLU and the xSiLU baseline.

Trainable scalars are fp32 whatever the model dtype; inputs of any float dtype are computed
in fp32 and returned in the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from actbench.activations.base import FP32Params, inv_softplus, scalar_param


class _ExpandedIntegral(FP32Params):
    """Common parameterisation: alpha_p = softplus(alpha_p_raw), alpha_n = beta + softplus(alpha_n_raw)."""

    def __init__(self, alpha_p: float = 0.8, alpha_n: float = 0.8, beta: float = 0.5, eps: float = -1e-6):
        super().__init__()
        if alpha_n <= beta:
            raise ValueError(f"alpha_n ({alpha_n}) must exceed beta ({beta})")
        self.beta = float(beta)
        self.eps = float(eps)
        self.alpha_p_raw = scalar_param(inv_softplus(alpha_p))
        self.alpha_n_raw = scalar_param(inv_softplus(alpha_n - beta))

    def alphas(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Effective (alpha_p, alpha_n), fp32 tensors of shape [1]."""
        return F.softplus(self.alpha_p_raw), self.beta + F.softplus(self.alpha_n_raw)


class XIELU(_ExpandedIntegral):
    """xIELU, expanded integral of the ELU (arXiv 2411.13010):

        alpha_p = softplus(alpha_p_raw), alpha_n = beta + softplus(alpha_n_raw)
        f(x) = alpha_p x^2 + beta x                                  x > 0
        f(x) = alpha_n expm1(min(x, eps)) - alpha_n x + beta x       x <= 0

    Defaults alpha_p = alpha_n = 0.8, beta = 0.5, eps = -1e-6 (the paper's and transformers').
    The `triton` impl is a fused kernel that saves only x for backward.

    Gradients: this module's autograd differentiates the formula as written (transformers'
    python path), which is flat in min(x, eps) on (eps, 0] and so gives f' = beta - alpha_n
    there; `derivative` is the analytic one that the fused kernel uses.
    """

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        ap, an = self.alphas()
        pos = ap * x * x + self.beta * x
        neg = an * torch.expm1(torch.minimum(x, x.new_tensor(self.eps))) - an * x + self.beta * x
        return torch.where(x > 0, pos, neg)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """Analytic f'(x): 2 alpha_p x + beta for x > 0, alpha_n expm1(min(x, eps)) + beta for
        x <= 0 (ANCHORS.md; the reference CUDA kernels' and the fused kernel's dx / g)."""
        ap, an = self.alphas()

        def fprime(v: torch.Tensor) -> torch.Tensor:
            neg = an * torch.expm1(torch.minimum(v, v.new_tensor(self.eps))) + self.beta
            return torch.where(v > 0, 2 * ap * v + self.beta, neg)

        return self.evaluate(fprime, x)


class XIPReLU(_ExpandedIntegral):
    """xIPReLU, expanded integral of the PReLU (arXiv 2411.13010 v3), xIELU without the exponential:

        alpha_p = softplus(alpha_p_raw), alpha_n = beta + softplus(alpha_n_raw)
        f(x) = alpha_p x^2 + beta x              x > 0
        f(x) = alpha_n x^2 / 2 + beta x          x <= 0

    Its derivative is a PReLU-shaped ramp plus beta (2 alpha_p x + beta, alpha_n x + beta), the
    same construction as xIELU with the ELU-shaped negative gradient alpha_n expm1(x) replaced by
    the PReLU one; it is also xIELU's negative branch to second order in x.
    Implemented from the construction as described in v3 of the paper; eps is unused.
    """

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        ap, an = self.alphas()
        return torch.where(x > 0, ap * x * x, 0.5 * an * x * x).add(self.beta * x)


class XSiLU(FP32Params):
    """xSiLU, the expanded SiLU baseline of arXiv 2411.13010:

        f(x) = x ((1 + 2a) sigmoid(x) - a),  trainable a (init 0, where it equals SiLU)
    """

    def __init__(self, a: float = 0.0):
        super().__init__()
        self.a = scalar_param(a)

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return x * ((1 + 2 * self.a) * torch.sigmoid(x) - self.a)
