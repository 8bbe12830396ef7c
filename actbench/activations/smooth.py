"""Smooth activations: GELU, SiLU/Swish, Mish, GoLU, SAU, VeLU."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from actbench.activations.base import Activation, FP32Params, scalar_param


class GELU(Activation):
    """GELU (arXiv 1606.08415), exact: f(x) = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class GELUTanh(Activation):
    """GELU, tanh approximation: f(x) = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


class SiLU(Activation):
    """SiLU (arXiv 1702.03118): f(x) = x sigmoid(x)"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x)


class Swish(FP32Params):
    """Swish-beta (arXiv 1710.05941): f(x) = x sigmoid(beta x), trainable beta (init 1)"""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = scalar_param(beta)

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta * x)


class Mish(Activation):
    """Mish (arXiv 1908.08681): f(x) = x tanh(softplus(x))"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(x)


class GoLU(Activation):
    """GoLU, Gompertz linear unit (arXiv 2502.03654): f(x) = x exp(-exp(-x))

    exp(-x) is evaluated at max(x, -30): below that f and f' are 0 to fp32 precision, and the
    clamp keeps exp from overflowing (which would give 0 * inf = nan in the gradient). Half
    inputs are evaluated in fp32: in fp16 exp(-x) overflows already at x < -11.1, and the
    rounded inner exp(-x) is amplified by the outer exp (bf16 f' off by 2.6e-2 near f' = 0).
    """

    fp32_math = True

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.exp(-torch.exp(-torch.clamp(x, min=-30.0)))


class SAU(Activation):
    """SAU, smooth activation unit (arXiv 2109.13210): Leaky ReLU (slope alpha) convolved with a
    Gaussian of standard deviation sigma, in closed form, with z = x / sigma:

        f(x) = alpha x + (1 - alpha) (x Phi(z) + sigma phi(z))

    Phi, phi: standard normal CDF and density. Defaults alpha = 0.01, sigma = 1 (fixed).
    Half inputs are evaluated in fp32: the terms cancel near the root at x ~ -1.75 (in bf16
    f(-1.703125) came out with the wrong sign) and z^2 overflows fp16 beyond |x| = 256.
    """

    fp32_math = True

    def __init__(self, alpha: float = 0.01, sigma: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError("sigma must be > 0")
        self.alpha, self.sigma = alpha, sigma

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        z = x / self.sigma
        cdf = 0.5 * (1 + torch.erf(z * (1 / math.sqrt(2))))
        pdf = torch.exp(-0.5 * z * z) * (1 / math.sqrt(2 * math.pi))
        return self.alpha * x + (1 - self.alpha) * (x * cdf + self.sigma * pdf)


class VeLU(Activation):
    """VeLU, variance-enhanced learning unit, ArcTan-Sin form. Formula used here:

        f(x) = relu(x) + alpha arctan(beta sin(x) / sqrt(Var(x) + eps))

    Var is the (biased) variance over the last dimension, so the unit adapts to the spread of
    its input; alpha = 0.1, beta = 1, eps = 1e-5. This is actbench's reading of the paper's
    ArcTan-Sin construction; the paper's Wasserstein-2 regulariser is not included.
    """

    fp32_math = True

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.alpha, self.beta, self.eps = alpha, beta, eps

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.rsqrt(x.var(dim=-1, unbiased=False, keepdim=True) + self.eps)
        return F.relu(x) + self.alpha * torch.atan(self.beta * torch.sin(x) * scale)
