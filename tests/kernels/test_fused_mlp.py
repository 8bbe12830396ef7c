"""The fused MLP (actbench/kernels/act_matmul.py, fused_mlp.py) against the registry's activation in
float64: y, dx, both weight gradients and xIELU's two alpha gradients, at shapes that span several
tiles with ragged edges; its alpha sums are the same bits run to run; under autocast it casts as
F.linear would; torch.compile traces it whole; a Llama with `impl: fused` trains as the eager one.

Runs under TRITON_INTERPRET=1 on CPU (set by conftest; small shapes, a few seconds) and natively on
CUDA when present.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from actbench import activations
from actbench.errors import UserError
from actbench.kernels import fused_mlp as fm

pytestmark = pytest.mark.skipif(fm.unavailable_reason() is not None, reason=str(fm.unavailable_reason()))
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
ROWS, D_MODEL, D_FF = 38, 24, 72  # CPU tiles are 16 x 32 x 16: 3 x 3 tiles, both edges ragged, two K steps
TOL = {  # worst |error| / max |reference| of each output, per dtype: fp32 accumulates in fp32; bf16 rounds pre, post and dpre once
    torch.float32: 2e-6,
    torch.bfloat16: 2e-2,
}
ALPHAS = {"xielu": dict(alpha_p=0.6, alpha_n=1.1), "relu2": {}}


def inputs(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """x (ROWS, D_MODEL), the two nn.Linear weights and an upstream gradient: float64 values that
    `dtype` holds exactly (pre-activations of both signs and a spread of sizes)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS, D_MODEL, generator=gen, dtype=torch.float64)
    w_up = torch.randn(D_FF, D_MODEL, generator=gen, dtype=torch.float64) * 0.4
    w_down = torch.randn(D_MODEL, D_FF, generator=gen, dtype=torch.float64) * 0.1
    dy = torch.randn(ROWS, D_MODEL, generator=gen, dtype=torch.float64)
    return tuple(t.to(dtype).double() for t in (x, w_up, w_down, dy))  # values the storage dtype holds exactly


def reference(act: str, x, w_up, w_down, dy, module) -> dict[str, torch.Tensor]:
    """float64 y and gradients from the registry's module: f' is its analytic `derivative` for
    xIELU (the one the kernels compute; eager autograd differs on (eps, 0]), autograd elsewhere;
    the alpha gradients by autograd through its formula."""
    module = module.double()
    pre = F.linear(x, w_up)
    post = module.formula(pre)
    dpost = dy @ w_down
    if act == "xielu":
        dpre = dpost * module.derivative(pre).detach()
        d_ap, d_an = torch.autograd.grad(post, (module.alpha_p_raw, module.alpha_n_raw), dpost)
    else:
        p = pre.detach().requires_grad_()
        (dpre,) = torch.autograd.grad(module.formula(p), p, dpost)
    out = {"y": F.linear(post, w_down).detach(), "dx": dpre @ w_up, "dw_up": dpre.t() @ x, "dw_down": dy.t() @ post.detach()}
    if act == "xielu":
        out.update(d_alpha_p=d_ap, d_alpha_n=d_an)
    return out


def run_fused(act: str, dtype: torch.dtype, seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The fused MLP's outputs and gradients, and the float64 reference at the same (rounded) inputs."""
    x, w_up, w_down, dy = inputs(dtype, seed)
    module = activations.build(act, impl="fused", **ALPHAS[act])
    ref = reference(act, x, w_up, w_down, dy, activations.build(act, **ALPHAS[act]))
    xd, wu, wd = (t.to(DEVICE, dtype).requires_grad_() for t in (x, w_up, w_down))
    module = module.to(DEVICE)
    y = module.mlp(xd.view(2, ROWS // 2, D_MODEL), wu, wd)  # leading dims as in a model
    y.backward(dy.to(DEVICE, dtype).view(y.shape))
    got = {"y": y.reshape(ROWS, D_MODEL), "dx": xd.grad, "dw_up": wu.grad, "dw_down": wd.grad}
    if act == "xielu":
        got.update(d_alpha_p=module.alpha_p_raw.grad, d_alpha_n=module.alpha_n_raw.grad)
    return {k: v.detach().cpu() for k, v in got.items()}, ref


def errors(got: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Per output: (max abs error, max abs error / max |reference|)."""
    out = {}
    for k, r in ref.items():
        err = float((got[k].double() - r).abs().max())
        out[k] = (err, err / float(r.abs().max()))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("act", ["xielu", "relu2"])
def test_outputs_and_gradients_match_float64(act, dtype):
    got, ref = run_fused(act, dtype)
    assert got["y"].dtype == dtype and got["dw_up"].dtype == dtype
    if act == "xielu":
        assert got["d_alpha_p"].dtype == torch.float32 and got["d_alpha_p"].shape == (1,)
    worst = {k: rel for k, (_, rel) in errors(got, ref).items()}
    assert max(worst.values()) <= TOL[dtype], worst


def test_xielu_alpha_sums_are_the_same_bits_every_run():
    from actbench.kernels.act_matmul import act_matmul_grad

    x, w_up, w_down, dy = (t.to(DEVICE, torch.bfloat16) for t in inputs(torch.bfloat16, seed=3))
    alphas = torch.tensor([0.3], device=DEVICE), torch.tensor([-0.4], device=DEVICE)
    pre = x @ w_up.t()
    runs = {tuple(act_matmul_grad(dy, w_down, pre, "xielu", *alphas, 0.5, -1e-6)[2].tolist()) for _ in range(3)}
    assert len(runs) == 1


def test_saves_the_pre_activation_not_the_activation():
    """Backward keeps x, the two weights and pre (the activation is recomputed in its epilogue)."""
    x, w_up, w_down, _ = (t.float().to(DEVICE) for t in inputs(torch.float32))
    module = activations.build("xielu", impl="fused").to(DEVICE)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        module.mlp(x.requires_grad_(), w_up.requires_grad_(), w_down.requires_grad_())
    assert sorted(tuple(t.shape) for t in saved if t.numel() > 1) == sorted([(ROWS, D_MODEL), (D_FF, D_MODEL), (D_MODEL, D_FF), (ROWS, D_FF)])


def test_autocast_casts_the_operands_and_keeps_fp32_weight_gradients():
    x, w_up, w_down, dy = (t.float().to(DEVICE) for t in inputs(torch.bfloat16, seed=1))
    module = activations.build("xielu", impl="fused").to(DEVICE)
    wu, wd = w_up.requires_grad_(), w_down.requires_grad_()
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        y = module.mlp(x, wu, wd)
        y_unfused = F.linear(module(F.linear(x, wu)), wd)
    assert y.dtype == y_unfused.dtype == torch.bfloat16
    y.float().backward(dy)
    assert wu.grad.dtype == torch.float32 and module.alpha_n_raw.grad.dtype == torch.float32
    torch.testing.assert_close(y.float(), y_unfused.float(), rtol=3e-2, atol=3e-2 * float(y_unfused.detach().abs().max()))


def test_compiles_whole_with_its_backward():
    module = activations.build("relu2", impl="fused").to(DEVICE)
    x, w_up, w_down, dy = (t.float().to(DEVICE).requires_grad_() for t in inputs(torch.float32, seed=2))
    compiled = torch.compile(module.mlp, backend="aot_eager", fullgraph=True)
    y = compiled(x, w_up, w_down)
    y.backward(dy)
    torch.testing.assert_close(y, module.mlp(x, w_up, w_down))
    assert torch.isfinite(w_up.grad).all() and w_up.grad.abs().sum() > 0


def test_fused_is_an_impl_of_xielu_and_relu2_only_and_never_auto():
    with pytest.raises(UserError, match="has no implementation 'fused'"):
        activations.build("swiglu", impl="fused")
    assert "fused" in activations.spec("relu2").impl_names
    for name in ("xielu", "relu2"):
        assert activations.resolve_impl(name, "auto") != "fused"


@pytest.mark.parametrize("act", ["xielu", "relu2"])
def test_a_llama_with_impl_fused_is_the_eager_model(act):
    """Same seed, same weights and state_dict names; loss and every gradient as with the eager MLP."""
    from actbench.lm.model import Llama
    from actbench.lm.shapes import ModelConfig

    models = [Llama(ModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, activation=act, impl=impl, max_seq_len=8), seed=1).to(DEVICE)
              for impl in ("eager", "fused")]
    assert models[0].state_dict().keys() == models[1].state_dict().keys()
    idx = torch.randint(0, 256, (2, 8), generator=torch.Generator().manual_seed(0)).to(DEVICE)
    losses = []
    for m in models:
        loss = F.cross_entropy(m(idx).flatten(0, 1), idx.flatten())
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)
    for (name, p), q in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_auto_never_picks_the_fused_mlp_on_a_cpu():
    from actbench.lm.impl import choose_impl

    cpu = torch.device("cpu")
    assert choose_impl("xielu", "auto", cpu, rows=64, width=96, calls=10, compiled_model=True) == ("eager", {})
    assert choose_impl("relu2", "fused", cpu, rows=64, width=96, calls=10) == ("fused", {})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="times the MLP on a GPU")
def test_auto_on_cuda_times_both_mlps_and_keeps_the_faster():
    from actbench.lm.impl import choose_impl

    impl, timings = choose_impl("xielu", "auto", torch.device("cuda"), rows=4096, width=1536, calls=10, d_model=256)
    assert set(timings) == {"mlp_triton_ms", "mlp_fused_ms"}
    assert impl == min(("triton", "fused"), key=lambda i: timings[f"mlp_{i}_ms"])
