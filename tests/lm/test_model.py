"""The Llama: the rotary embedding against the textbook rotation in float64, and the paired
per-parameter initialisation."""

from __future__ import annotations

import pytest
import torch

from actbench.lm.config import LMConfig
from actbench.lm.model import Llama, ModelConfig, apply_rotary, rotary_tables

TINY = dict(d_model=32, n_layers=2, n_heads=2, seq_len=32, ff_multiple=16)


def test_rotary_equals_the_textbook_rotation_forward_and_backward():
    cfg = ModelConfig(d_model=64, n_heads=4, max_seq_len=32)
    t, hd = 32, cfg.head_dim
    cos, sin = (z.double() for z in rotary_tables(cfg))
    x = torch.randn(3, t, 2 * cfg.d_model, dtype=torch.float64, requires_grad=True)  # q and k of 4 heads each
    angles = torch.outer(torch.arange(t, dtype=torch.float64), 1.0 / 10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    c, s = angles.cos()[:, None], angles.sin()[:, None]
    x1, x2 = x.view(3, t, 8, hd).split(hd // 2, dim=-1)
    ref = torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).reshape(3, t, -1)
    got = apply_rotary(x, cos, sin, hd)
    torch.testing.assert_close(got, ref, atol=2e-6, rtol=0)  # the tables are fp32
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(ref, x, g)[0], atol=2e-6, rtol=0)
    assert torch.autograd.gradcheck(lambda z: apply_rotary(z, cos[:4], sin[:4], hd), (x[:1, :4].detach().requires_grad_(),))


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
