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
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from actbench import activations
from actbench.lm.config import ModelConfig


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rms" else nn.Identity()


def rotary_tables(cfg: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables of shape (max_seq_len, 2 * d_model), laid out like the q and k
    part of the qkv projection: per head [cos, cos] and [-sin, sin] over the head's two halves."""
    inv_freq = 1.0 / cfg.rope_base ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
    angles = torch.outer(torch.arange(cfg.max_seq_len, dtype=torch.float32), inv_freq)
    cos, sin = angles.cos(), angles.sin()
    per_head = 2 * cfg.n_heads
    return torch.cat([cos, cos], dim=-1).repeat(1, per_head), torch.cat([-sin, sin], dim=-1).repeat(1, per_head)


def _swap_halves(x: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[x1, x2] -> [x2, x1] within every head of the last dimension (a copy)."""
    return x.unflatten(-1, (-1, 2, head_dim // 2)).roll(1, dims=-2).flatten(-3)  # roll: 3x faster than flip on CPU


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rotary embedding of q and k laid out as in the qkv projection (..., T, heads * head_dim),
    in fp32 or wider: each head's halves (x1, x2) become (x1 cos - x2 sin, x2 cos + x1 sin), with
    the tables of `rotary_tables` (cut to T rows)."""
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    return (xf * cos + _swap_halves(xf, head_dim) * sin).type_as(x)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h, hd = self.n_heads, d // self.n_heads
        qk, v = self.qkv(x).split((2 * d, d), dim=-1)  # a split along the features: its backward is one cat
        q, k = apply_rotary(qk, cos, sin, hd).view(b, t, 2, h, hd).permute(2, 0, 3, 1, 4).unbind(0)  # q and k in one pass
        y = F.scaled_dot_product_attention(q, k, v.view(b, t, h, hd).transpose(1, 2), is_causal=True)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = nn.Linear(cfg.d_model, cfg.d_ff * (2 if cfg.gated else 1), bias=False)
        self.act = activations.build(cfg.activation, impl=cfg.impl)
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1, self.attn = make_norm(cfg), Attention(cfg)
        self.norm2, self.mlp = make_norm(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
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
        cos, sin = rotary_tables(cfg)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
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

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, vocab) for token ids idx (B, T)."""
        t = idx.shape[1]
        cos, sin = self.cos[:t], self.sin[:t]
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.lm_head(self.norm(x))

    def activation_modules(self) -> list[nn.Module]:
        """The MLP activation of every layer, in order (eager modules under compile wrappers)."""
        return [getattr(b.mlp.act, "_orig_mod", b.mlp.act) for b in self.blocks]
