"""The Llama: the rotary embedding and RMSNorm against their formulas in float64, and the paired
per-parameter initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from actbench.lm.config import LMConfig
from actbench.lm.model import Llama, ModelConfig, RMSNorm, apply_rotary, param_seed, rotary_tables

TINY = dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, ff_multiple=16)


def test_rotary_equals_the_textbook_rotation_forward_and_backward():
    cfg = ModelConfig(d_model=64, n_heads=4, max_seq_len=32)
    t, hd = 32, cfg.head_dim
    table = rotary_tables(cfg).double()
    x = torch.randn(3, t, 2 * cfg.d_model, dtype=torch.float64, requires_grad=True)  # q and k of 4 heads each
    angles = torch.outer(torch.arange(t, dtype=torch.float64), 1.0 / 10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    c, s = angles.cos()[:, None], angles.sin()[:, None]
    pairs = x.view(3, t, 8, hd // 2, 2)  # each head's pairs interleaved: (x1_j, x2_j) at 2j, 2j + 1
    x1, x2 = pairs[..., 0], pairs[..., 1]
    ref = torch.stack([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).reshape(3, t, -1)
    got = apply_rotary(x, table, hd)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=0)  # the tables are fp32
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(ref, x, g)[0], atol=2e-6, rtol=0)
    assert torch.autograd.gradcheck(lambda z: apply_rotary(z, table[:4], hd), (x[:1, :4].detach().requires_grad_(),))
    assert apply_rotary(x.detach().float(), rotary_tables(cfg), hd).dtype == torch.float32


def test_rotary_under_torch_compile_is_the_same_rotation():
    """Compiled code takes the real-arithmetic form (no complex numbers there)."""
    cfg = ModelConfig(d_model=64, n_heads=4, max_seq_len=16)
    table = rotary_tables(cfg)
    x = torch.randn(2, 16, 2 * cfg.d_model, requires_grad=True)
    compiled = torch.compile(apply_rotary, backend="aot_eager", fullgraph=True)
    g = torch.randn(2, 16, 2 * cfg.d_model)
    want, got = apply_rotary(x, table, cfg.head_dim), compiled(x, table, cfg.head_dim)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0])


def test_qk_rows_are_the_halves_layout_draw_interleaved():
    """The q and k rows of the qkv projection are drawn as for a halves-layout rotary ([x1, x2] per
    head) and reordered into pairs, so a seed's model does not depend on the layout."""
    model = Llama(LMConfig(activation="relu2", **TINY).to_model(256), seed=5)
    d, hd = model.cfg.d_model, model.cfg.head_dim
    drawn = torch.empty(3 * d, d).normal_(0, 0.02, generator=torch.Generator().manual_seed(param_seed(5, "blocks.0.attn.qkv.weight")))
    w = model.blocks[0].attn.qkv.weight.detach()
    torch.testing.assert_close(w[2 * d :], drawn[2 * d :], rtol=0, atol=0)  # v untouched
    halves = w[: 2 * d].view(-1, hd // 2, 2, d).transpose(1, 2).reshape(2 * d, d)  # back to [x1, x2] per head
    torch.testing.assert_close(halves, drawn[: 2 * d], rtol=0, atol=0)


def test_rmsnorm_equals_the_formula_forward_and_backward():
    norm = RMSNorm(16).double()
    with torch.no_grad():
        norm.weight.normal_()
    x = (torch.randn(3, 5, 16, dtype=torch.float64) * 4).requires_grad_()
    ref = x * (x.pow(2).mean(-1, keepdim=True) + norm.eps).rsqrt() * norm.weight
    got = norm(x)
    torch.testing.assert_close(got, ref)
    g = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, (x, norm.weight), g), torch.autograd.grad(ref, (x, norm.weight), g)):
        torch.testing.assert_close(a, b)
    assert torch.autograd.gradcheck(norm, (x[:1].detach().requires_grad_(),))
    flat = x[0, 0].detach().requires_grad_()  # one vector
    ref_flat = F.rms_norm(flat, (16,), norm.weight, norm.eps)
    torch.testing.assert_close(torch.autograd.grad(norm(flat).sum(), flat)[0], torch.autograd.grad(ref_flat.sum(), flat)[0])
    with pytest.raises(RuntimeError):  # no double backward (rather than a wrong one)
        (gx,) = torch.autograd.grad(norm(x).sum(), x, create_graph=True)
        gx.sum().backward()
    half = RMSNorm(16).to(torch.bfloat16)
    xb = x.detach().to(torch.bfloat16).requires_grad_()
    out = half(xb)
    out.sum().backward()
    assert out.dtype == xb.grad.dtype == half.weight.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), F.rms_norm(xb.float(), (16,), half.weight.float(), norm.eps), atol=0.05, rtol=0.02)


def test_same_seed_same_weights_outside_the_mlp_for_every_activation():
    models = {}
    for i, act in enumerate(("xielu", "relu2", "swiglu")):
        torch.manual_seed(100 + i)  # the global RNG plays no part
        models[act] = Llama(LMConfig(activation=act, **TINY).to_model(256), seed=7)
    ref = dict(models["relu2"].named_parameters())
    shared = [n for n in ref if ".mlp." not in n]
    assert {"embed.weight", "blocks.0.attn.qkv.weight", "blocks.1.attn.out.weight", "blocks.0.norm1.weight", "norm.weight"} <= set(shared)
    for act in ("xielu", "swiglu"):
        params = dict(models[act].named_parameters())
        assert all(torch.equal(params[n], ref[n]) for n in shared), act
    assert models["swiglu"].blocks[0].mlp.up.weight.shape != models["relu2"].blocks[0].mlp.up.weight.shape
    other = dict(Llama(LMConfig(activation="relu2", **TINY).to_model(256), seed=8).named_parameters())
    assert all(not torch.equal(other[n], ref[n]) for n in ref if ref[n].ndim == 2)
    assert not torch.equal(ref["blocks.0.attn.qkv.weight"], ref["blocks.1.attn.qkv.weight"])  # each tensor its own draw
    assert ref["blocks.0.attn.qkv.weight"].std().item() == pytest.approx(0.02, rel=0.05)
    assert ref["blocks.0.attn.out.weight"].std().item() == pytest.approx(0.02 / 2, rel=0.05)  # residual: 0.02 / sqrt(2 n_layers)
