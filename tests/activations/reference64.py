"""Independent float64 references (numpy / scipy, no torch) of every built-in activation:
f(x), the vector-Jacobian product with respect to x, and the derivatives with respect to the
trainable parameters, all at each module's default settings.

Each derivative is the one the module's autograd computes for the formula as written:
- xIELU on (eps, 0]: min(x, eps) is flat there, so f' = beta - alpha_n (the transformers
  python path; at the tie x == eps, torch splits the gradient of min in half). The analytic
  derivative, alpha_n expm1(min(x, eps)) + beta, is `XIELU.derivative` and the fused kernel's.
- HeLU's backward is its hysteresis rule g * (x > -t), deliberately not f'.
- Kinks follow torch's conventions: relu'(0) = 0, leaky_relu'(0) = slope, prelu'(0) = a.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import special

Array = np.ndarray
BETA, EPS = 0.5, -1e-6


def sigmoid(x: Array) -> Array:
    return special.expit(x)


def softplus(x: Array) -> Array:
    return np.logaddexp(0.0, x)


def inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


def phi(x: Array) -> Array:
    return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


@dataclass(frozen=True)
class Reference:
    """f(x); vjp(x, g) = g * df/dx (a full vector-Jacobian product for row-wise ones);
    params: name -> (x, g) -> d sum(g * f) / d param."""

    f: Callable[[Array], Array]
    vjp: Callable[[Array, Array], Array]
    params: dict[str, Callable[[Array, Array], float]] = field(default_factory=dict)


def elementwise(f: Callable[[Array], Array], df: Callable[[Array], Array], **params: Callable[[Array], Array]) -> Reference:
    """Reference of an elementwise activation from f, f' and df/dp per parameter."""
    return Reference(f, lambda x, g: g * df(x), {k: (lambda x, g, d=d: float(np.sum(g * d(x)))) for k, d in params.items()})


def gated(f: Callable[[Array], Array], df: Callable[[Array], Array]) -> Reference:
    """[a, b] = split(x, last dim); y = f(a) * b."""

    def split(x: Array) -> tuple[Array, Array]:
        d = x.shape[-1] // 2
        return x[..., :d], x[..., d:]

    def fwd(x: Array) -> Array:
        a, b = split(x)
        return f(a) * b

    def vjp(x: Array, g: Array) -> Array:
        a, b = split(x)
        return np.concatenate([g * b * df(a), g * f(a)], axis=-1)

    return Reference(fwd, vjp)


# --- xIELU family (alpha_p = alpha_n = 0.8 at init; raw parameters through softplus) ---
AP_RAW, AN_RAW = inv_softplus(0.8), inv_softplus(0.8 - BETA)
AP, AN = 0.8, 0.8
EPS32 = float(np.float32(EPS))  # the module evaluates min(x, eps) in fp32 for fp32 and half inputs


def xielu_f(x: Array) -> Array:
    return np.where(x > 0, AP * x * x + BETA * x, AN * np.expm1(np.minimum(x, EPS)) - AN * x + BETA * x)


def xielu_df(x: Array, eps: float = EPS32) -> Array:
    dmin = np.where(x < eps, 1.0, np.where(x == eps, 0.5, 0.0))  # torch's gradient of min(x, eps)
    return np.where(x > 0, 2 * AP * x + BETA, AN * np.exp(np.minimum(x, eps)) * dmin - AN + BETA)


def xielu_analytic_df(x: Array) -> Array:
    return np.where(x > 0, 2 * AP * x + BETA, AN * np.expm1(np.minimum(x, EPS)) + BETA)


def xsilu_df(x: Array, a: float = 0.0) -> Array:
    s = sigmoid(x)
    return (1 + 2 * a) * (s + x * s * (1 - s)) - a


# --- smooth ---
def gelu(x: Array) -> Array:
    return x * special.ndtr(x)


def gelu_df(x: Array) -> Array:
    return special.ndtr(x) + x * phi(x)


C_TANH = math.sqrt(2 / math.pi)


def gelu_tanh(x: Array) -> Array:
    return 0.5 * x * (1 + np.tanh(C_TANH * (x + 0.044715 * x**3)))


def gelu_tanh_df(x: Array) -> Array:
    t = np.tanh(C_TANH * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C_TANH * (1 + 3 * 0.044715 * x * x)


def silu(x: Array) -> Array:
    return x * sigmoid(x)


def silu_df(x: Array) -> Array:
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


def mish(x: Array) -> Array:
    return x * np.tanh(softplus(x))


def mish_df(x: Array) -> Array:
    t = np.tanh(softplus(x))
    return t + x * (1 - t * t) * sigmoid(x)


def golu(x: Array) -> Array:
    with np.errstate(over="ignore"):
        return x * np.exp(-np.exp(-x))


def golu_df(x: Array) -> Array:
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-x)
        # below x = -700 exp(-x) overflows; there f' = exp(-e^-x)(1 + x e^-x) is 0 to any precision
        return np.where(x < -700, 0.0, np.exp(-e) * (1 + x * e))


SAU_ALPHA = 0.01


def sau(x: Array) -> Array:
    return SAU_ALPHA * x + (1 - SAU_ALPHA) * (x * special.ndtr(x) + phi(x))


def sau_df(x: Array) -> Array:
    return SAU_ALPHA + (1 - SAU_ALPHA) * special.ndtr(x)


# --- VeLU: relu(x) + alpha atan(beta sin(x) / sqrt(var(x) + eps)), var over the last dim ---
V_ALPHA, V_BETA, V_EPS = 0.1, 1.0, 1e-5


def velu(x: Array) -> Array:
    s = 1 / np.sqrt(x.var(axis=-1, keepdims=True) + V_EPS)
    return np.maximum(x, 0) + V_ALPHA * np.arctan(V_BETA * np.sin(x) * s)


def velu_vjp(x: Array, g: Array) -> Array:
    v = x.var(axis=-1, keepdims=True) + V_EPS
    s = 1 / np.sqrt(v)
    u = V_BETA * np.sin(x) * s
    w = g * V_ALPHA / (1 + u * u)  # d/du of the atan term, times g
    # u_i = beta sin(x_i) s(x); ds/dx_j = -s^3 (x_j - mean) / n
    direct = w * V_BETA * np.cos(x) * s
    through_var = -np.sum(w * V_BETA * np.sin(x), axis=-1, keepdims=True) * s**3 * (x - x.mean(axis=-1, keepdims=True)) / x.shape[-1]
    return g * (x > 0) + direct + through_var


def smelu(x: Array, b: float = 1.0) -> Array:
    return np.where(x <= -b, 0.0, np.where(x >= b, x, (x + b) ** 2 / (4 * b)))


def smelu_df(x: Array, b: float = 1.0) -> Array:
    return np.where(x <= -b, 0.0, np.where(x >= b, 1.0, (x + b) / (2 * b)))


def _xielu_d_ap(x: Array) -> Array:
    return np.where(x > 0, x * x, 0.0) * sigmoid(AP_RAW)


def _xielu_d_an(x: Array) -> Array:
    return np.where(x > 0, 0.0, np.expm1(np.minimum(x, EPS)) - x) * sigmoid(AN_RAW)


def _relu_df(x: Array) -> Array:
    return (x > 0).astype(float)


REFERENCES: dict[str, Reference] = {
    "xielu": elementwise(xielu_f, xielu_df, alpha_p_raw=_xielu_d_ap, alpha_n_raw=_xielu_d_an),
    "xiprelu": elementwise(
        lambda x: np.where(x > 0, AP * x * x, 0.5 * AN * x * x) + BETA * x,
        lambda x: np.where(x > 0, 2 * AP * x, AN * x) + BETA,
        alpha_p_raw=lambda x: np.where(x > 0, x * x, 0.0) * sigmoid(AP_RAW),
        alpha_n_raw=lambda x: np.where(x > 0, 0.0, 0.5 * x * x) * sigmoid(AN_RAW),
    ),
    "xsilu": elementwise(silu, xsilu_df, a=lambda x: x * (2 * sigmoid(x) - 1)),
    "relu": elementwise(lambda x: np.maximum(x, 0), _relu_df),
    "relu2": elementwise(lambda x: np.maximum(x, 0) ** 2, lambda x: 2 * np.maximum(x, 0)),
    "leaky_relu2": elementwise(lambda x: np.where(x > 0, x, 0.5 * x) ** 2, lambda x: np.where(x > 0, 2 * x, 0.5 * x)),
    "leaky_relu": elementwise(lambda x: np.where(x > 0, x, 0.01 * x), lambda x: np.where(x > 0, 1.0, 0.01)),
    "prelu": elementwise(lambda x: np.where(x > 0, x, 0.25 * x), lambda x: np.where(x > 0, 1.0, 0.25),
                         a=lambda x: np.where(x > 0, 0.0, x)),
    "elu": elementwise(lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0)))),
    "helu": elementwise(lambda x: np.maximum(x, 0), lambda x: (x > -0.05).astype(float)),
    "smelu": elementwise(smelu, smelu_df),
    "gelu": elementwise(gelu, gelu_df),
    "gelu_tanh": elementwise(gelu_tanh, gelu_tanh_df),
    "silu": elementwise(silu, silu_df),
    "swish": elementwise(silu, silu_df, beta=lambda x: x * x * sigmoid(x) * (1 - sigmoid(x))),
    "mish": elementwise(mish, mish_df),
    "golu": elementwise(golu, golu_df),
    "sau": elementwise(sau, sau_df),
    "velu": Reference(velu, velu_vjp),
    "swiglu": gated(silu, silu_df),
    "geglu": gated(gelu, gelu_df),
    "reglu": gated(lambda a: np.maximum(a, 0), _relu_df),
}
