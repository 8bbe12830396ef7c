"""Every activation against an independent float64 formula, gradcheck, stability, registry."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.func import functional_call

from actbench import activations
from actbench.errors import UserError


def _sp(r):
    return math.log1p(math.exp(r))


def ref_xielu(x, ap_raw=None, an_raw=None, beta=0.5, eps=-1e-6):
    ap, an = (0.8, 0.8) if ap_raw is None else (_sp(ap_raw), beta + _sp(an_raw))
    return np.where(x > 0, ap * x * x + beta * x, an * np.expm1(np.minimum(x, eps)) - an * x + beta * x)


def _phi_cdf(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def _sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def _softplus(x):
    return np.logaddexp(0, x)


def _glu(fn):
    def f(x):
        d = x.shape[-1] // 2
        return fn(x[..., :d]) * x[..., d:]

    return f


def _velu(x, alpha=0.1, beta=1.0, eps=1e-5):
    var = x.var(axis=-1, keepdims=True)
    return np.maximum(x, 0) + alpha * np.arctan(beta * np.sin(x) / np.sqrt(var + eps))


def _smelu(x, b=1.0):
    return np.where(x <= -b, 0.0, np.where(x >= b, x, (x + b) ** 2 / (4 * b)))


def _gelu(x):
    return x * _phi_cdf(x)


REFERENCES = {
    "xielu": ref_xielu,
    "xiprelu": lambda x: np.where(x > 0, 0.8 * x * x, 0.5 * 0.8 * x * x) + 0.5 * x,
    "xsilu": lambda x: x * _sigmoid(x),
    "relu": lambda x: np.maximum(x, 0),
    "relu2": lambda x: np.maximum(x, 0) ** 2,
    "leaky_relu2": lambda x: np.where(x > 0, x, 0.5 * x) ** 2,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "prelu": lambda x: np.where(x > 0, x, 0.25 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "helu": lambda x: np.maximum(x, 0),
    "smelu": _smelu,
    "gelu": _gelu,
    "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "golu": lambda x: x * np.exp(-np.exp(-np.maximum(x, -700))),
    "sau": lambda x: 0.01 * x + 0.99 * (x * _phi_cdf(x) + np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "velu": _velu,
    "swiglu": _glu(lambda a: a * _sigmoid(a)),
    "geglu": _glu(_gelu),
    "reglu": _glu(lambda a: np.maximum(a, 0)),
}
TOL = {torch.float32: dict(rtol=2e-5, atol=1e-6), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def test_every_registered_builtin_has_a_reference():
    assert set(activations.names()) == set(REFERENCES)


def special_inputs(seed: int = 0) -> torch.Tensor:
    """(4, 64) float64: zero, branch points, tiny and large magnitudes, and random values."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 64, generator=g, dtype=torch.float64) * 3
    specials = [0.0, -1e-6, -5e-7, 1e-6, 1e-30, -1e-30, 1e-8, -1e-8, 1.0, -1.0, -0.05, 0.05, -0.5, 0.5,
                100.0, -100.0, 1e3, -1e3, 1e4, -1e4, 20.0, -20.0, -30.0, -40.0, 35.0]
    x.view(-1)[: len(specials)] = torch.tensor(specials, dtype=torch.float64)
    x.view(-1)[128 : 128 + len(specials)] = -torch.tensor(specials, dtype=torch.float64)
    return x


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_forward_matches_float64_reference(name, dtype):
    x = special_inputs().to(dtype)
    y = activations.build(name)(x)
    assert y.dtype == dtype
    expected = REFERENCES[name](x.double().numpy())
    torch.testing.assert_close(y.double(), torch.from_numpy(expected).to(torch.float64), **TOL[dtype], equal_nan=False)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_stable_at_large_magnitudes(name, dtype):
    base = torch.tensor([-1e4, -3e3, -100.0, -30.0, 0.0, 30.0, 100.0, 3e3, 1e4] * 2)
    x = base.repeat(4, 1).to(dtype).requires_grad_()
    module = activations.build(name).to(dtype)
    y = module(x)
    assert torch.isfinite(y).all(), y
    y.float().sum().backward()
    assert torch.isfinite(x.grad).all(), x.grad
    for p in module.parameters():
        assert torch.isfinite(p.grad).all()


def hf_xielu(x, alpha_p, alpha_n, beta, eps):
    """transformers' XIELUActivation._xielu_python, transcribed (raw parameters alpha_p/alpha_n)."""
    ap = torch.nn.functional.softplus(alpha_p)
    an = beta + torch.nn.functional.softplus(alpha_n)
    return torch.where(x > 0, ap * x * x + beta * x, (torch.expm1(torch.min(x, eps)) - x) * an + beta * x)


def test_xielu_matches_transformers_formula_fp32_forward_and_all_gradients():
    m = activations.build("xielu", alpha_p=0.6, alpha_n=1.3)
    x = special_inputs(3).float().requires_grad_()
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
    x = special_inputs(4).float()
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


def test_unknown_activation_lists_closest_names():
    with pytest.raises(UserError, match=r"unknown activation 'xielo' \(did you mean 'xielu'"):
        activations.build("xielo")
    with pytest.raises(UserError, match="has no implementation 'triton'"):
        activations.build("relu", impl="triton")


def test_auto_impl_is_eager_without_cuda():
    if torch.cuda.is_available():
        assert activations.resolve_impl("xielu", "auto") == "triton"
    else:
        assert activations.resolve_impl("xielu", "auto") == "eager"
    assert activations.resolve_impl("relu2", "auto") == "eager"


def test_register_rejects_a_second_class_under_the_same_name():
    with pytest.raises(ValueError, match="already registered"):

        @activations.register("relu", family="relu")
        class Other(torch.nn.Module):
            pass


PLUGIN = """
import torch
from actbench.activations import register

@register("cube_plugin", family="plugin", paper="none")
class Cube(torch.nn.Module):
    \"\"\"f(x) = x^3\"\"\"
    def forward(self, x):
        return x ** 3
"""


def _cli(args, cwd, pythonpath):
    env = {"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_plugin_via_cli_flag(tmp_path):
    (tmp_path / "my_acts.py").write_text(PLUGIN)
    r = _cli(["--plugin", "my_acts", "info", "cube_plugin"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "x^3" in r.stdout
    r = _cli(["info", "cube_plugin"], tmp_path, tmp_path)
    assert r.returncode == 2 and "unknown activation 'cube_plugin'" in r.stderr
    assert "Traceback" not in r.stderr


def test_plugin_via_entry_point(tmp_path):
    (tmp_path / "ep_acts.py").write_text(PLUGIN)
    dist = tmp_path / "ep_acts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-acts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[actbench.activations]\ncube = ep_acts\n")
    r = _cli(["list"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cube_plugin" in r.stdout


def test_cli_list_info_version_and_bad_arguments(tmp_path):
    r = _cli(["list"], tmp_path, "")
    assert r.returncode == 0 and "xielu" in r.stdout and "swiglu" in r.stdout
    r = _cli(["--version"], tmp_path, "")
    assert r.returncode == 0 and r.stdout.startswith("actbench ")
    for bad in (["lisst"], ["info"], ["info", "xielu", "--nope"], ["--plugin", "no.such.module", "list"]):
        r = _cli(bad, tmp_path, "")
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for cmd in ([], ["list"], ["info"]):
        assert _cli([*cmd, "--help"], tmp_path, "").returncode == 0
