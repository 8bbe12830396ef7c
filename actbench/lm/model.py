"""A small decoder-only Llama: token embedding, pre-norm RMSNorm blocks with rotary causal
attention (scaled_dot_product_attention, flash kernels on GPU) and an MLP whose activation comes
from the registry. Non-gated MLP: up d_ff -> act -> down; gated: up 2*d_ff -> act -> down.

Initialisation: every Linear and the embedding ~ N(0, 0.02); the two residual output
projections (attention out, MLP down) ~ N(0, 0.02 / sqrt(2 * n_layers)) (GPT-2); no biases;
RMSNorm weights 1. Activation parameters keep their own init (xIELU: alpha_p = alpha_n = 0.8).
Each weight is drawn from its own generator seeded by (seed, parameter name), so models of one
seed share every tensor whose name and shape do not depend on the activation (embedding,
attention, norms): a paired design, where seed s of two activations differs only in the MLP.
`norm: none` removes every RMSNorm (the norm-free variant of "ReLU's Revival").
The q and k features of each head hold their rotary pairs interleaved (one complex multiply);
their rows are drawn as for the halves layout and reordered, so a seed's model is the same.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from actbench import activations
from actbench.lm.shapes import ModelConfig


class _RMSNormFunction(torch.autograd.Function):
    """y = x_hat * w with x_hat = x * r, r = (mean(x^2) + eps)^-1/2 over the last dimension, as one
    autograd node with its gradients written out (x's: r (g w - x_hat mean(g w x_hat)); w's: the
    sum of g x_hat over rows). Statistics and x_hat in fp32 or wider. Off CUDA, F.rms_norm is a
    chain of elementwise ops whose autograd makes a small model's training step about 7% slower."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        wide = torch.promote_types(x.dtype, torch.float32)
        r = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=wide).square_().div_(x.shape[-1]).add_(eps).rsqrt_()
        x_hat = x * r
        ctx.save_for_backward(x_hat, weight, r)
        return (x_hat * weight).to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable  # no double backward
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:  # type: ignore[override]
        x_hat, weight, r = ctx.saved_tensors
        gx = gw = None
        d = x_hat.shape[-1]
        if ctx.needs_input_grad[1]:
            gw = torch.linalg.vecdot(g.reshape(-1, d).to(x_hat.dtype), x_hat.reshape(-1, d), dim=0).to(weight.dtype)
        if ctx.needs_input_grad[0]:
            gxw = g.to(x_hat.dtype) * weight
            minus_mean = torch.linalg.vecdot(gxw, x_hat).unsqueeze_(-1).div_(-x_hat.shape[-1])
            gx = torch.addcmul(gxw, x_hat, minus_mean).mul_(r).to(g.dtype)
        return gx, gw, None


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda:  # a fused kernel there
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        return _RMSNormFunction.apply(x, self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rms" else nn.Identity()


def rotary_tables(cfg: ModelConfig) -> torch.Tensor:
    """The (cos, sin) of every position and frequency: shape (max_seq_len, head_dim / 2, 2)."""
    inv_freq = 1.0 / cfg.rope_base ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    angles = torch.outer(torch.arange(cfg.max_seq_len, dtype=torch.float32), inv_freq)
    return torch.stack([angles.cos(), angles.sin()], dim=-1)


def apply_rotary(x: torch.Tensor, table: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rotary embedding of q and k laid out as in the qkv projection (..., T, heads * head_dim),
    in fp32 or wider: each head's features hold its pairs interleaved, (x1_j, x2_j) at 2j and
    2j + 1, and pair j at position p becomes (x1 cos - x2 sin, x2 cos + x1 sin) at angle p * freq_j;
    `table` from `rotary_tables`, cut to T rows. Eager: one complex multiply (one pass forward, one
    backward); under torch.compile, which generates no code for complex numbers, real arithmetic."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    pairs = xf.unflatten(-1, (-1, head_dim // 2, 2))
    rot = table.to(xf.dtype).unsqueeze(-3)  # (T, 1, head_dim / 2, 2): one row per position, for all heads
    if torch.compiler.is_compiling():
        (x1, x2), (cos, sin) = pairs.unbind(-1), rot.unbind(-1)
        out = torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    else:
        out = torch.view_as_real(torch.view_as_complex(pairs) * torch.view_as_complex(rot))
    return out.flatten(-3).type_as(x)


def interleave_halves(rows: int, head_dim: int) -> torch.Tensor:
    """The index that reorders q/k features from halves per head ([x1_0..x1_n, x2_0..x2_n]) to
    interleaved pairs ([x1_0, x2_0, x1_1, ...]), for `rows` features."""
    return torch.arange(rows).view(-1, 2, head_dim // 2).transpose(1, 2).reshape(-1)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h, hd = self.n_heads, d // self.n_heads
        qk, v = self.qkv(x).split((2 * d, d), dim=-1)  # a split along the features: its backward is one cat
        q, k = apply_rotary(qk, rope, hd).view(b, t, 2, h, hd).permute(2, 0, 3, 1, 4).unbind(0)  # q and k in one pass
        y = F.scaled_dot_product_attention(q, k, v.view(b, t, h, hd).transpose(1, 2), is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff * (2 if cfg.gated else 1), bias=False)
        self.act = activations.build(cfg.activation, impl=cfg.impl)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.fused = cfg.impl == "fused"  # up, activation and down in the activation's fused kernels (actbench.kernels.fused_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return self.act.mlp(x, self.up.weight, self.down.weight)
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), Attention(cfg)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope)
        return x + self.mlp(self.norm2(x))


def param_seed(seed: int, name: str) -> int:
    """The seed of parameter `name`'s initial values in a model of seed `seed`."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little") >> 1


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tied_embeddings:
            self.lm_head.weight = self.embed.weight
        self.register_buffer("rope", rotary_tables(cfg), persistent=False)
        self._init_weights(seed)

    def _init_weights(self, seed: int) -> None:
        residual_std = 0.02 / math.sqrt(2 * self.cfg.n_layers)
        done: set[int] = set()  # a tied weight is drawn once, under its first name (embed.weight)
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Embedding)) and id(module.weight) not in done:
                done.add(id(module.weight))
                std = residual_std if name.endswith(("attn.out", "mlp.down")) else 0.02
                gen = torch.Generator().manual_seed(param_seed(seed, f"{name}.weight"))
                nn.init.normal_(module.weight, mean=0.0, std=std, generator=gen)
                if name.endswith("attn.qkv"):  # drawn in the halves layout, then interleaved: the same model as a halves-layout rotary
                    qk = module.weight.data[: 2 * self.cfg.d_model]
                    qk.copy_(qk[interleave_halves(len(qk), self.cfg.head_dim)])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids idx (B, T)."""
        t = idx.shape[1]
        rope = self.rope[:t]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, rope)
        return self.lm_head(self.norm(x))

    def activation_modules(self) -> list[nn.Module]:
        """The MLP activation of every layer, in order (eager modules under compile wrappers)."""
        return [getattr(b.mlp.act, "_orig_mod", b.mlp.act) for b in self.blocks]
