"""Tokens/s of actbench's lm trainer against a nanoGPT-style plain PyTorch loop, in one process.

The same data (byte-level Shakespeare, actbench's training split), the same sizes (llm_tiny's
ReLU² model: d 128, 3 layers, 4 heads, d_ff 768, seq 128, batch 16), the same threads, and the
same measure: tokens per second over the optimizer steps after the first five, evaluation
excluded. Contenders, run interleaved `--repeats` times:
  actbench  `actbench.lm.train.train` (rotary Llama, RMSNorm; impl from --impl)
  nanogpt   a nanoGPT-style GPT (learned positions, LayerNorm, same ReLU² MLP) and training
            loop: random windows, AdamW as nanoGPT configures it on CPU, clip 1.0
  plain     the same plain loop over actbench's own Llama (separates trainer from model costs)

    python scripts/bench_trainer.py --steps 100 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actbench.benchmarks import TrialContext
from actbench.lm.config import LMConfig
from actbench.lm.data import DataConfig, load_corpus
from actbench.lm.model import Llama
from actbench.lm.train import WARM_STEPS, lr_at, train

SIZES = dict(d_model=128, n_layers=3, n_heads=4, seq_len=128, batch_size=16, reference_d_ff=768, ff_multiple=16, lr=3e-3)


class NanoBlock(nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d, bias=False), nn.LayerNorm(d, bias=False)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(d, d_ff, bias=False), nn.Linear(d_ff, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))
        return x + self.mlp_proj(F.relu(self.c_fc(self.ln_2(x))).square())


class NanoGPT(nn.Module):
    """nanoGPT's GPT with a ReLU² MLP of width d_ff and no biases."""

    def __init__(self, vocab: int, d: int, layers: int, heads: int, d_ff: int, seq_len: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(seq_len, d)
        self.h = nn.ModuleList(NanoBlock(d, heads, d_ff) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d, bias=False)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():
            if p.ndim == 2:
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def plain_loop(model: nn.Module, train_tokens: np.ndarray, cfg: LMConfig, steps: int) -> float:
    """nanoGPT's training loop on CPU; tokens/s after WARM_STEPS steps."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))  # nanoGPT: fused only on CUDA
    t = cfg.seq_len
    for step in range(steps):
        if step == WARM_STEPS:
            t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        ix = torch.randint(len(train_tokens) - t, (cfg.batch_size,))
        x = torch.stack([torch.from_numpy(train_tokens[i : i + t].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(train_tokens[i + 1 : i + 1 + t].astype(np.int64)) for i in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    return (steps - WARM_STEPS) * cfg.tokens_per_step / (time.perf_counter() - t0)


def _actbench(cfg: LMConfig) -> float:
    m = train(cfg, TrialContext(trial_id="bench")).metrics
    _actbench.impl_used = m["impl_used"]
    return m["tokens_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--impl", default="eager", help="actbench's activation impl: eager (the loops' own code), compile, or auto")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = LMConfig(activation="relu2", impl=args.impl, tokens=args.steps * 16 * 128, eval_every=10**9, eval_tokens=128,
                   final_eval="slice", churn_tokens=0, **SIZES)
    train_tokens = np.asarray(load_corpus(DataConfig()).train)
    contenders = {
        "actbench": lambda: _actbench(cfg),
        "nanogpt": lambda: plain_loop(NanoGPT(256, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.seq_len), train_tokens, cfg, args.steps),
        "plain": lambda: plain_loop(Llama(cfg.to_model(256)), train_tokens, cfg, args.steps),
    }
    params = {"actbench": sum(p.numel() for p in Llama(cfg.to_model(256)).parameters()),
              "nanogpt": sum(p.numel() for p in NanoGPT(256, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.seq_len).parameters())}
    print(f"threads {args.threads}, {args.steps} steps x {args.repeats} repeats, d_ff {cfg.d_ff}, params: "
          f"actbench/plain {params['actbench']:,}, nanogpt {params['nanogpt']:,}, actbench impl {args.impl}")
    rates: dict[str, list[float]] = {k: [] for k in contenders}
    for r in range(args.repeats):
        order = list(contenders)[r % 3:] + list(contenders)[: r % 3]  # rotate who goes first
        for name in order:
            torch.manual_seed(r)
            rates[name].append(contenders[name]())
        print(f"repeat {r + 1}: " + ", ".join(f"{k} {rates[k][-1]:,.0f}" for k in contenders), flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("median tokens/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in med.items()))
    ratios = [a / n for a, n in zip(rates["actbench"], rates["nanogpt"])]
    print(f"actbench / nanogpt: {med['actbench'] / med['nanogpt']:.3f} (per repeat: {', '.join(f'{x:.3f}' for x in ratios)}); "
          f"actbench / plain: {med['actbench'] / med['plain']:.3f}; actbench ran impl {_actbench.impl_used}")


if __name__ == "__main__":
    main()
