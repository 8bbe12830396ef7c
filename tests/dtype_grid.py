"""Dense input grids per dtype and the per-dtype tolerance against a float64 reference, shared
by the activation sweep (tests/activations/test_numerics.py) and the fused-kernel sweep
(tests/kernels/test_xielu_kernel.py).

The grid: EVERY finite bfloat16 and float16 value (65,280 and 63,488: large |x|, near 0,
subnormals, the overflow range, every point near a root of f or f' at the dtype's resolution);
for float32 each bfloat16 pattern with its low 16 bits zero and with a random low half.
bfloat16 and float32 inputs stop at |x| <= 2^60: beyond it x^2 and x^3 terms (SAU, VeLU,
GELU-tanh, g * x in autograd) overflow float32, and an activation input there means a model
that has already diverged.

Tolerance per element, output y (or dx) against the float64 reference r at the same input:

    |y - r| <= N_ULP[dtype] * ulp_dtype(r) + C_FP32 * 2^-24 * (unit * (1 + min(|x|, 32)) + |x dr/dx|)

- ulp_dtype(r): the spacing of the output dtype at |r| (its subnormal spacing below the normal
  range). N_ULP = 2 for bfloat16 / float16: an fp32 evaluation rounded once to the output dtype
  is within 0.5 ulp plus the fp32 term below; evaluating a formula op by op in the half dtype
  is off by many ulp wherever it cancels, which is what the sweep exists to catch. N_ULP = 4 for
  float32: torch's fp32 exp / erf / tanh are within ~2 ulp each and formulas chain several.
- The second term is the absolute error of evaluating the formula in fp32 (unit roundoff
  2^-24), C_FP32 = 4. Formulas are sums of terms of size up to (1 + |x|) times a bounded factor
  (x * Phi(x) computed as x (1 + erf) / 2, 1 + e^-x in a sigmoid, SAU's pdf), so an error of
  2^-24 in that factor costs 2^-24 (1 + |x|); beyond |x| = 32 those factors are exactly 0 or 1
  in fp32 (e^-32 << 2^-24) and stop contributing. |x dr/dx| (measured on the float64
  reference by a relative perturbation of x) covers terms that keep growing with x (xIELU's
  -alpha_n x + beta x). `unit` is 1, |b| for a gated output, |g| (and |g b|) for gradients.
  This term only matters where r is far below the terms it is computed from: near roots of f
  and f' and in underflowing tails (torch's own fp32 GELU returns 0 for x < -5.5).
- An infinite y is accepted only with the sign of r and |r| > max_dtype / 4 (an intermediate
  2x or 4x the result may overflow first); NaN never.
"""

from __future__ import annotations

from functools import cache
from typing import Callable

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
N_ULP = {torch.float32: 4.0, torch.bfloat16: 2.0, torch.float16: 2.0}
C_FP32 = 4.0
U32 = 2.0**-24
X_MAX = 2.0**60
X_SATURATED = 32.0
WIDTH = 64
DELTA = 2.0**-20  # relative perturbation of x for |x dr/dx| (float64)


@cache
def grid(dtype: torch.dtype) -> torch.Tensor:
    """(rows, WIDTH) of dtype: the grid described above, zero-padded, in bit-pattern order (so
    each row holds neighbouring values)."""
    bits = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16)
    if dtype in (torch.float16, torch.bfloat16):
        x = bits.view(dtype)
    else:
        high = bits.to(torch.int32) << 16
        gen = torch.Generator().manual_seed(0)
        low = torch.randint(0, 1 << 16, high.shape, generator=gen, dtype=torch.int32)
        x = torch.cat([high, high | low]).view(torch.float32)
    x = x[torch.isfinite(x) & (x.float().abs() <= X_MAX)]
    pad = (-x.numel()) % WIDTH
    return torch.cat([x, x.new_zeros(pad)]).reshape(-1, WIDTH)


def signed_uniform(shape: tuple[int, ...], lo: float, hi: float, seed: int, log: bool = False) -> torch.Tensor:
    """float64 values of random sign with magnitude in [lo, hi) (log-uniform when `log`)."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(shape, generator=gen, dtype=torch.float64)
    mag = 2 ** (np.log2(lo) + u * (np.log2(hi) - np.log2(lo))) if log else lo + u * (hi - lo)
    return mag * (torch.randint(0, 2, shape, generator=gen) * 2 - 1)


def ulp(r: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """Spacing of dtype at |r| (its subnormal spacing below the normal range; at max beyond it)."""
    fi = torch.finfo(dtype)
    mag = np.clip(np.abs(r), fi.tiny, fi.max)
    return np.exp2(np.floor(np.log2(mag))) * fi.eps


def sensitivity(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, base: np.ndarray, parts: list) -> np.ndarray:
    """|x dr/dx|: the change of fn's output when each input moves by a relative +-DELTA (random
    signs, so that row-wise functions such as VeLU see their variance move too), over DELTA;
    summed over the parts of x perturbed separately (e.g. a gate and its value), given as index
    expressions into x. `base` is fn(x)."""
    signs = np.where(np.random.default_rng(0).random(x.shape) < 0.5, -1.0, 1.0)
    total = np.zeros(())
    with np.errstate(all="ignore"):
        for part in parts:
            up, down = x.copy(), x.copy()
            up[part] *= 1 + DELTA * signs[part]
            down[part] *= 1 - DELTA * signs[part]
            total = total + np.maximum(np.abs(fn(up) - base), np.abs(fn(down) - base)) / DELTA
    return total


def term_scale(x: np.ndarray) -> np.ndarray:
    """1 + min(|x|, 32): the size of a formula's terms relative to its bounded factors."""
    return 1 + np.minimum(np.abs(x), X_SATURATED)


def excess(y: torch.Tensor, r: np.ndarray, unit: np.ndarray, sens: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """|y - r| over the tolerance above, per element: <= 1 passes; inf for NaN or a wrong inf.
    `unit` is the unit times term_scale(x), `sens` is |x dr/dx|."""
    y = y.detach().double().cpu().numpy()
    tol = N_ULP[dtype] * ulp(r, dtype) + C_FP32 * U32 * (unit + sens)
    with np.errstate(invalid="ignore"):
        ratio = np.abs(y - r) / tol
        overflow_ok = np.isinf(y) & (np.sign(y) == np.sign(r)) & (np.abs(r) > torch.finfo(dtype).max / 4)
    return np.where(overflow_ok, 0.0, np.where(np.isnan(ratio), np.inf, ratio))


def worst(exc: np.ndarray, x: np.ndarray, k: int = 5) -> list[tuple[float, float]]:
    """(input, error / tolerance) of the k worst elements, for failure messages."""
    flat, xs = exc.reshape(-1), np.broadcast_to(x[..., : exc.shape[-1]], exc.shape).reshape(-1)
    idx = np.argsort(flat)[::-1][:k]
    return [(float(xs[i]), float(flat[i])) for i in idx]
