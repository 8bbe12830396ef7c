"""The activation modules: gradcheck in float64, xIELU against the transformers formula and its
analytic derivative, fp32 parameters, HeLU's backward rule, gated widths, the compile impl."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dtype_grid import DTYPES, excess, grid, sensitivity, term_scale, worst
from reference64 import REFERENCES, xielu_analytic_df
from torch.func import functional_call

from actbench import activations


def xielu_inputs(seed: int) -> torch.Tensor:
    """(4, 64) float64: the branch points and tie (0, eps), tiny and large magnitudes, randoms."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 64, generator=g, dtype=torch.float64) * 3
    specials = [0.0, -1e-6, -5e-7, 1e-6, 1e-30, 1e-8, 1.0, -0.05, 0.5, 100.0, 1e3, 1e4, 20.0, -30.0, -40.0, 35.0]
    x.view(-1)[: len(specials)] = torch.tensor(specials, dtype=torch.float64)
    x.view(-1)[128 : 128 + len(specials)] = -torch.tensor(specials, dtype=torch.float64)
    return x


def _gradcheck_inputs(name: str) -> torch.Tensor:
    """Random float64 inputs kept away from kinks (0, +-1, -0.05) where finite differences lie."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, generator=g, dtype=torch.float64) * 2
    x = torch.where(x.abs() < 0.15, x.sign() * 0.3 + x, x)
    x = torch.where((x.abs() - 1).abs() < 0.1, x * 1.3, x)
    return x.requires_grad_()


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_gradcheck_inputs_and_parameters(name):
    module = activations.build(name).double()
    params = dict(module.named_parameters())
    assert tuple(params) == activations.spec(name).params
    for p in params.values():
        assert p.dtype == torch.float64
    x = _gradcheck_inputs(name)
    leaves = [p.detach().clone().requires_grad_() for p in params.values()]

    def f(x, *ps):
        return functional_call(module, dict(zip(params, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *leaves), eps=1e-6, atol=1e-5)


def hf_xielu(x, alpha_p, alpha_n, beta, eps):
    """transformers' XIELUActivation._xielu_python, transcribed (raw parameters alpha_p/alpha_n)."""
    ap = torch.nn.functional.softplus(alpha_p)
    an = beta + torch.nn.functional.softplus(alpha_n)
    return torch.where(x > 0, ap * x * x + beta * x, (torch.expm1(torch.min(x, eps)) - x) * an + beta * x)


def test_xielu_matches_transformers_formula_fp32_forward_and_all_gradients():
    m = activations.build("xielu", alpha_p=0.6, alpha_n=1.3)
    x = xielu_inputs(3).float().requires_grad_()
    ap = m.alpha_p_raw.detach().clone().requires_grad_()
    an = m.alpha_n_raw.detach().clone().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y = m(x)
    y_hf = hf_xielu(x2, ap, an, torch.tensor(0.5), torch.tensor(-1e-6))
    torch.testing.assert_close(y, y_hf, rtol=1e-6, atol=1e-6)
    g = torch.randn_like(y)
    y.backward(g)
    y_hf.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m.alpha_p_raw.grad, ap.grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(m.alpha_n_raw.grad, an.grad, rtol=1e-6, atol=1e-6)


def test_transformers_class_when_installed():
    acts = pytest.importorskip("transformers.activations")
    hf = acts.XIELUActivation(dtype=torch.float32)
    m = activations.build("xielu")
    torch.testing.assert_close(m.alpha_p_raw.detach(), hf.alpha_p.detach().float(), rtol=1e-6, atol=1e-7)
    x = xielu_inputs(4).float()
    torch.testing.assert_close(m(x), hf._xielu_python(x), rtol=1e-6, atol=1e-6)


def test_xielu_parameters_stay_fp32_in_a_bf16_model():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), activations.build("xielu")).to(torch.bfloat16)
    assert model[0].weight.dtype == torch.bfloat16
    assert model[1].alpha_p_raw.dtype == torch.float32
    x = torch.randn(4, 8, dtype=torch.bfloat16)
    y = model(x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert model[1].alpha_p_raw.grad.dtype == torch.float32
    assert model[1].alpha_n_raw.grad.dtype == torch.float32


def test_xielu_init_values():
    a_p, a_n = activations.build("xielu").alphas()
    assert a_p.item() == pytest.approx(0.8, abs=1e-6) and a_n.item() == pytest.approx(0.8, abs=1e-6)
    with pytest.raises(ValueError):
        activations.build("xielu", alpha_n=0.4)


def test_helu_backward_passes_gradient_above_minus_threshold():
    x = torch.tensor([-1.0, -0.06, -0.04, -0.01, 0.0, 0.5], requires_grad=True)
    activations.build("helu", threshold=0.05)(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["swiglu", "geglu", "reglu"])
def test_gated_halves_width_and_rejects_odd(name):
    assert activations.spec(name).gated
    m = activations.build(name)
    assert m(torch.randn(2, 10)).shape == (2, 5)
    with pytest.raises(ValueError):
        m(torch.randn(2, 7))


def test_compile_impl_matches_eager():
    x = torch.randn(64)
    torch.testing.assert_close(activations.build("xielu", impl="compile")(x), activations.build("xielu")(x))




@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_xielu_derivative_is_the_analytic_one(dtype):
    """`XIELU.derivative` (used by plot-activation; the fused kernel's dx / g) against float64 on
    the dense grid, with the sweep's tolerances; on (eps, 0] it is alpha_n expm1(x) + beta, not
    autograd's beta - alpha_n."""
    x = grid(dtype)
    d = activations.build("xielu").to(dtype).derivative(x).detach()
    assert d.dtype == dtype
    x64 = x.double().numpy()
    r = xielu_analytic_df(x64)
    exc = excess(d, r, term_scale(x64), sensitivity(xielu_analytic_df, x64, r, [np.s_[...]]), dtype)
    assert exc.max() <= 1, worst(exc, x64)
    near_zero = torch.tensor([-5e-7, 0.0])
    torch.testing.assert_close(activations.build("xielu").derivative(near_zero).detach(), torch.full((2,), 0.5), rtol=0, atol=1e-6)
