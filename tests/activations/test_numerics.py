"""Every registered built-in activation, forward and backward (input and parameter gradients),
in float32 / bfloat16 / float16, against the independent float64 references of reference64.py,
on the dense grids of tests/dtype_grid.py (which also documents the per-dtype tolerances).

Activations whose op-by-op evaluation in a half dtype breaks these tolerances set
`fp32_math = True` (actbench/activations/base.py); this sweep is what decides it.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
from dtype_grid import DTYPES, U32, WIDTH, excess, grid, sensitivity, signed_uniform, term_scale, worst
from reference64 import REFERENCES

from actbench import activations


def test_every_registered_builtin_has_a_reference():
    assert set(activations.names()) == set(REFERENCES)


def inputs(name: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """x (the grid; for a gated activation [grid as gate, value in +-[1/16, 16]]) and an
    upstream gradient g in +-[0.5, 1.5)."""
    return _inputs(activations.spec(name).gated, dtype)


@cache
def _inputs(gated: bool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    x = grid(dtype)
    if gated:
        x = torch.cat([x, signed_uniform(tuple(x.shape), 1 / 16, 16, seed=1, log=True).to(dtype)], dim=-1)
    return x, signed_uniform((x.shape[0], WIDTH), 0.5, 1.5, seed=2).to(dtype)


def run(name: str, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The module cast to x's dtype, y = module(x), and dx from y.backward(g)."""
    module = activations.build(name).to(x.dtype)
    xr = x.clone().requires_grad_()
    y = module(xr)
    y.backward(g)
    return module, y.detach(), xr.grad


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_and_input_gradient_against_float64(name, dtype):
    ref = REFERENCES[name]
    x, g = inputs(name, dtype)
    _, y, dx = run(name, x, g)
    assert y.dtype == dtype and dx.dtype == dtype
    x64, g64 = x.double().numpy(), g.double().numpy()
    gated = activations.spec(name).gated
    if gated:
        d = WIDTH
        parts = [np.s_[..., :d], np.s_[..., d:]]
        a, b = np.abs(x64[..., :d]), np.abs(x64[..., d:])
        unit_y = term_scale(a) * b
        unit_dx = np.concatenate([np.abs(g64) * unit_y, np.abs(g64) * term_scale(a)], axis=-1)
    else:
        parts = [np.s_[...]]
        unit_y, unit_dx = term_scale(x64), np.abs(g64) * term_scale(x64)
    with np.errstate(all="ignore"):
        ry, rdx = ref.f(x64), ref.vjp(x64, g64)
    checks = {
        "y": excess(y, ry, unit_y, sensitivity(ref.f, x64, ry, parts), dtype),
        "dx": excess(dx, rdx, unit_dx, sensitivity(lambda v: ref.vjp(v, g64), x64, rdx, parts), dtype),
    }
    for what, exc in checks.items():
        assert exc.max() <= 1, f"{name} {dtype} {what}: worst (x, error / tolerance): {worst(exc, x64)}"


PARAM_X_MAX = 64.0
PARAM_RTOL = 64 * U32  # fp32 products summed over ~30k-100k terms (pairwise/cascade summation)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", sorted(n for n, r in REFERENCES.items() if r.params))
def test_parameter_gradients_against_float64(name, dtype):
    """Gradients of the trainable scalars are fp32 whatever the input dtype and equal the float64
    sum of g * df/dp, to PARAM_RTOL of the sum of the magnitudes of what autograd adds up (the
    partial and the linear terms that cancel in it, e.g. xIELU's expm1(x) - x). Inputs
    |x| <= 64: beyond it x^2 terms summed over the grid overflow fp32."""
    x, g = inputs(name, dtype)
    keep = x.abs().amax(dim=-1) <= PARAM_X_MAX
    x, g = x[keep], g[keep]
    module, _, _ = run(name, x, g)
    x64, g64 = x.double().numpy(), g.double().numpy()
    for pname, partial in REFERENCES[name].params.items():
        grad = dict(module.named_parameters())[pname].grad
        assert grad.dtype == torch.float32 and grad.shape == (1,)
        expected = partial(x64, g64)
        magnitude = float(np.sum(np.abs(g64) * (np.abs(x64) + x64 * x64)))
        assert abs(grad.item() - expected) <= PARAM_RTOL * magnitude, (pname, grad.item(), expected)


@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_nan_input_gives_nan_output(name, dtype):
    """A NaN input is never turned into a number by the forward pass (it would hide a diverged
    model); gated: a NaN gate or value; VeLU: NaN spreads over its row through the variance."""
    x = torch.linspace(-3, 3, 8, dtype=dtype).repeat(2, 2 if activations.spec(name).gated else 1)
    x[0, 3] = float("nan")
    x[1, -1] = float("nan")
    y = activations.build(name).to(dtype)(x)
    d = y.shape[-1]
    assert torch.isnan(y[0, 3 % d]) and torch.isnan(y[1, (x.shape[-1] - 1) % d])


def test_a_cast_to_half_keeps_the_exact_fp32_parameter_values():
    """`.to(bfloat16)` used to round the fp32 scalars through bf16 (xIELU's alpha_n moved from
    0.8 to 0.798, so f(-2.4375) came out 2x too large)."""
    for name in ("xielu", "xiprelu", "xsilu", "prelu", "swish"):
        module = activations.build(name)
        before = {k: v.detach().clone() for k, v in module.named_parameters()}
        for dtype in (torch.bfloat16, torch.float16):
            module.to(dtype)
            for k, v in module.named_parameters():
                assert v.dtype == torch.float32 and torch.equal(v.detach(), before[k]), (name, k)
    assert activations.build("xielu").double().alpha_p_raw.dtype == torch.float64
