"""Fused Triton xIELU against a float64 reference: forward, dx, both alpha gradients; the dense
grid of every bf16 / fp16 value (tests/dtype_grid.py, same tolerances as the activation sweep);
NaN and +-inf inputs as eager.

Runs under TRITON_INTERPRET=1 on CPU (set by conftest) and natively on CUDA when present.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from dtype_grid import DTYPES, excess, grid, sensitivity, signed_uniform, term_scale, worst

from actbench import activations
from actbench.kernels import xielu as kx

pytestmark = pytest.mark.skipif(kx.unavailable_reason() is not None, reason=str(kx.unavailable_reason()))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOL = {  # per dtype: outputs are rounded once to the storage dtype
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
}
BETA, EPS = 0.5, -1e-6


def reference(x: np.ndarray, g: np.ndarray, ap_raw: float, an_raw: float):
    """float64 xIELU forward and gradients as written in ANCHORS.md."""
    sp = lambda r: math.log1p(math.exp(r))  # noqa: E731
    sig = lambda r: 1 / (1 + math.exp(-r))  # noqa: E731
    ap, an = sp(ap_raw), BETA + sp(an_raw)
    em = np.expm1(np.minimum(x, EPS))
    pos = x > 0
    y = np.where(pos, ap * x * x + BETA * x, an * em - an * x + BETA * x)
    dx = g * np.where(pos, 2 * ap * x + BETA, an * em + BETA)
    d_ap = np.sum(np.where(pos, g * x * x, 0.0)) * sig(ap_raw)
    d_an = np.sum(np.where(pos, 0.0, g * (em - x))) * sig(an_raw)
    return y, dx, d_ap, d_an


def make_input(shape, dtype, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
    flat = x.view(-1)
    specials = torch.tensor([0.0, EPS, -5e-7, 1e-7, -0.1, 0.1, -0.0999, 1e-30, -20.0, 7.0], dtype=torch.float64)
    k = min(flat.numel(), specials.numel())
    flat[:k] = specials[:k]
    return x.to(dtype)


def run_kernel(x, g, alpha_p=0.8, alpha_n=0.8):
    m = activations.build("xielu", impl="triton", alpha_p=alpha_p, alpha_n=alpha_n).to(DEVICE)
    xd = x.detach().clone().to(DEVICE).requires_grad_()
    y = m(xd)
    y.backward(g.to(DEVICE))
    return m, y.detach().cpu(), xd.grad.cpu(), m.alpha_p_raw.grad.cpu(), m.alpha_n_raw.grad.cpu()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("shape", [(1,), (7,), (4095,), (4097,), (3, 5, 7), (2, 4096 * 2 + 3)])
def test_forward_and_gradients_match_float64(shape, dtype):
    x = make_input(shape, dtype)
    g = make_input(shape, dtype, seed=1, scale=1.0)
    m, y, dx, d_ap, d_an = run_kernel(x, g, alpha_p=0.6, alpha_n=1.1)
    ap_raw, an_raw = m.alpha_p_raw.item(), m.alpha_n_raw.item()
    ry, rdx, rap, ran = reference(x.double().numpy(), g.double().numpy(), ap_raw, an_raw)
    assert y.dtype == dtype and dx.dtype == dtype and d_ap.dtype == torch.float32
    torch.testing.assert_close(y.double(), torch.from_numpy(ry), **TOL[dtype])
    torch.testing.assert_close(dx.double(), torch.from_numpy(rdx), **TOL[dtype])
    # alpha grads are fp32 sums over exactly-rounded products: relative 1e-4 of the total magnitude
    scale_ap = float(np.sum(np.abs(g.double().numpy() * x.double().numpy() ** 2))) + 1e-6
    scale_an = float(np.sum(np.abs(g.double().numpy() * x.double().numpy()))) + 1e-6
    assert abs(d_ap.item() - rap) <= 1e-4 * scale_ap
    assert abs(d_an.item() - ran) <= 1e-4 * scale_an


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_large_magnitudes_are_finite_and_correct(dtype):
    x = torch.tensor([-1e4, -1e3, -50.0, 50.0, 1e3, 1e4], dtype=torch.float64).to(dtype)
    g = torch.ones_like(x)
    m, y, dx, d_ap, d_an = run_kernel(x, g)
    for t in (y, dx, d_ap, d_an):
        assert torch.isfinite(t).all()
    ry, rdx, _, _ = reference(x.double().numpy(), g.double().numpy(), m.alpha_p_raw.item(), m.alpha_n_raw.item())
    torch.testing.assert_close(y.double(), torch.from_numpy(ry), **TOL[dtype])
    torch.testing.assert_close(dx.double(), torch.from_numpy(rdx), **TOL[dtype])


def test_empty_tensor():
    x = torch.empty(0, 5)
    m, y, dx, d_ap, d_an = run_kernel(x, torch.empty(0, 5))
    assert y.shape == (0, 5) and dx.shape == (0, 5)
    assert d_ap.item() == 0.0 and d_an.item() == 0.0


def test_matches_eager_module_away_from_the_clamp_interval():
    x = make_input((3, 1000), torch.float32, seed=5)
    x = torch.where((x >= EPS) & (x <= 0), torch.full_like(x, -0.5), x)  # incl. the tie at eps
    g = torch.randn_like(x)
    eager = activations.build("xielu").to(DEVICE)
    xe = x.detach().clone().to(DEVICE).requires_grad_()
    eager(xe).backward(g.to(DEVICE))
    _, y, dx, d_ap, d_an = run_kernel(x, g)
    torch.testing.assert_close(y, eager(x.to(DEVICE)).detach().cpu(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dx, xe.grad.cpu(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d_ap, eager.alpha_p_raw.grad.cpu(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(d_an, eager.alpha_n_raw.grad.cpu(), rtol=1e-4, atol=1e-4)


def test_non_contiguous_input():
    base = make_input((64, 48), torch.float32, seed=2)
    xt = base.t()
    assert not xt.is_contiguous()
    g = torch.randn(48, 64)
    _, y, dx, _, _ = run_kernel(xt, g)
    ry, rdx, _, _ = reference(xt.double().numpy(), g.double().numpy(), math.log(math.expm1(0.8)), math.log(math.expm1(0.3)))
    torch.testing.assert_close(y.double(), torch.from_numpy(ry), **TOL[torch.float32])
    torch.testing.assert_close(dx.double(), torch.from_numpy(rdx), **TOL[torch.float32])


def test_alpha_gradients_are_deterministic():
    x = make_input((3, 9000), torch.bfloat16, seed=3)
    g = make_input((3, 9000), torch.bfloat16, seed=4)
    grads = {tuple(t.item() for t in run_kernel(x, g)[3:]) for _ in range(3)}
    assert len(grads) == 1


def test_saves_only_x_for_backward():
    x = make_input((4096,), torch.bfloat16).to(DEVICE).requires_grad_()
    m = activations.build("xielu", impl="triton").to(DEVICE)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        m(x)
    big = [t for t in saved if t.numel() > 1]
    assert len(big) == 1 and big[0].dtype == torch.bfloat16 and big[0].numel() == 4096


def test_compiles_without_graph_breaks():
    m = activations.build("xielu", impl="triton").to(DEVICE)
    compiled = torch.compile(m, fullgraph=True)
    x = make_input((2, 300), torch.float32, seed=6).to(DEVICE).requires_grad_()
    y = compiled(x)
    y.sum().backward()
    torch.testing.assert_close(y, m(x))
    assert torch.isfinite(m.alpha_p_raw.grad).all()


def test_state_dict_is_shared_with_the_eager_module():
    eager = activations.build("xielu", alpha_p=0.3)
    fused = activations.build("xielu", impl="triton")
    fused.load_state_dict(eager.state_dict())
    x = make_input((100,), torch.float32).to(DEVICE)
    torch.testing.assert_close(fused.to(DEVICE)(x).cpu(), eager(x.cpu()), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy under TRITON_INTERPRET: x^2 of huge x
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
def test_dense_grid_forward_and_dx_against_float64(dtype):
    x = grid(dtype)
    if dtype == torch.bfloat16 and DEVICE == "cpu":
        # Triton's interpreter converts bf16 subnormals to fp32 wrongly (to 0; _convert_float in
        # triton/runtime/interpreter.py); on a GPU that cast is a bit shift
        x = torch.where(x.abs() < torch.finfo(dtype).tiny, torch.zeros_like(x), x)
    g = signed_uniform(tuple(x.shape), 0.5, 1.5, seed=2).to(dtype)
    m, y, dx, d_ap, d_an = run_kernel(x, g)
    x64, g64 = x.double().numpy(), g.double().numpy()
    ap_raw, an_raw = m.alpha_p_raw.item(), m.alpha_n_raw.item()
    ry, rdx, _, _ = reference(x64, g64, ap_raw, an_raw)
    parts = [np.s_[...]]
    exc_y = excess(y, ry, term_scale(x64), sensitivity(lambda v: reference(v, g64, ap_raw, an_raw)[0], x64, ry, parts), dtype)
    exc_dx = excess(dx, rdx, np.abs(g64) * term_scale(x64),
                    sensitivity(lambda v: reference(v, g64, ap_raw, an_raw)[1], x64, rdx, parts), dtype)
    assert exc_y.max() <= 1, worst(exc_y, x64)
    assert exc_dx.max() <= 1, worst(exc_dx, x64)
    assert torch.isfinite(d_ap).all() and torch.isfinite(d_an).all()


NAN, INF = float("nan"), float("inf")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # numpy under TRITON_INTERPRET, on inf - inf
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES.keys())
@pytest.mark.parametrize("special", [NAN, INF, -INF], ids=["nan", "+inf", "-inf"])
def test_non_finite_inputs_give_what_eager_gives(special, dtype):
    """NaN in: NaN y and dx and both alpha gradients (tl.minimum used to drop the NaN: dx came
    out 0.5 g and the sums finite). +inf: y = inf, dx = g * inf, alpha_p gradient inf, alpha_n
    NaN. -inf: y = NaN, alpha_p gradient NaN, alpha_n inf, as eager's autograd through
    torch.where; only dx differs there: the limit g (beta - alpha_n) where eager gives NaN."""
    x = make_input((3, 700), dtype, seed=7)
    x = torch.where((x >= EPS) & (x <= 0), torch.full_like(x, -0.5), x)  # eager's dx differs there
    lanes = (torch.tensor([0, 2]), torch.tensor([5, 699]))
    x[lanes] = special
    g = make_input((3, 700), dtype, seed=8, scale=1.0)
    g = torch.where(g == 0, torch.ones_like(g), g)
    eager = activations.build("xielu").to(dtype)
    xe = x.clone().requires_grad_()
    ye = eager(xe)
    ye.backward(g)
    m, y, dx, d_ap, d_an = run_kernel(x, g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else TOL[dtype]
    torch.testing.assert_close(y, ye.detach(), equal_nan=True, **tol)
    dx_eager = xe.grad.clone()
    if special == -INF:
        assert torch.isnan(dx_eager[lanes]).all()
        dx_eager[lanes] = (g[lanes].float() * (BETA - m.alphas()[1].detach())).to(dtype)
    torch.testing.assert_close(dx, dx_eager, equal_nan=True, **tol)
    for fused, ref in ((d_ap, eager.alpha_p_raw.grad), (d_an, eager.alpha_n_raw.grad)):
        assert (torch.isnan(fused).item(), torch.isinf(fused).item()) == (torch.isnan(ref).item(), torch.isinf(ref).item())
    if special != special:
        assert torch.isnan(y[lanes]).all() and torch.isnan(dx[lanes]).all()
        assert torch.isnan(d_ap).item() and torch.isnan(d_an).item()
