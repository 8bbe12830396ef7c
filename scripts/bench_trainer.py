"""Tokens/s of actbench's lm trainer against a nanoGPT-style plain PyTorch loop, in one process.

The same data (byte-level Shakespeare, actbench's training split), the same sizes (llm_tiny's
ReLU² model: d 128, 3 layers, 4 heads, d_ff 768, seq 128, batch 16), the same threads.
Contenders:
  actbench  `actbench.lm.train.train` (rotary Llama, RMSNorm; impl from --impl)
  nanogpt   a nanoGPT-style GPT (learned positions, LayerNorm, same ReLU² MLP) and training
            loop: random windows, AdamW as nanoGPT configures it on CPU, clip 1.0
  plain     the same plain loop over actbench's own Llama (separates trainer from model costs)

They run in lockstep: after each optimizer step of the trainer (in its progress callback), one
step of each plain loop. A trainer step's time is the time between two callbacks (batch,
forward, backward, optimizer, bookkeeping); a plain loop's is one call of its step. Ratios
compare steps taken at the same moment, so load from other processes on a shared machine hits
every contender alike. Steps after the first five count; evaluation is excluded.

    python scripts/bench_trainer.py --steps 100 --repeats 3 --threads 2
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from actbench.core.trial import TrialContext
from actbench.lm.config import DataConfig, LMConfig
from actbench.lm.corpus import load_corpus
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


def plain_step(model: nn.Module, train_tokens: np.ndarray, cfg: LMConfig) -> Callable[[int], None]:
    """One optimizer step of nanoGPT's training loop on CPU, as a function of the step index."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))  # nanoGPT: fused only on CUDA
    t = cfg.seq_len

    def step(i: int) -> None:
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, i)
        ix = torch.randint(len(train_tokens) - t, (cfg.batch_size,))
        x = torch.stack([torch.from_numpy(train_tokens[j : j + t].astype(np.int64)) for j in ix])
        y = torch.stack([torch.from_numpy(train_tokens[j + 1 : j + 1 + t].astype(np.int64)) for j in ix])
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()

    return step


def lockstep(cfg: LMConfig, train_tokens: np.ndarray) -> tuple[dict[str, list[float]], str]:
    """Seconds of each counted step per contender, from one trainer run with the plain loops
    stepped in its progress callback; and the impl the trainer ran."""
    plain = {"nanogpt": plain_step(NanoGPT(256, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.seq_len), train_tokens, cfg),
             "plain": plain_step(Llama(cfg.to_model(256)), train_tokens, cfg)}
    times: dict[str, list[float]] = {"actbench": [], **{k: [] for k in plain}}
    resumed = [0.0]  # when the trainer got control back from the last callback

    def on_progress(values: dict[str, Any]) -> None:
        if values.get("phase") != "train":
            return
        done = values["step"]  # optimizer steps done
        if done > WARM_STEPS:
            times["actbench"].append(time.perf_counter() - resumed[0])
        for name, step in plain.items():
            t0 = time.perf_counter()
            step(done - 1)
            if done > WARM_STEPS:
                times[name].append(time.perf_counter() - t0)
        resumed[0] = time.perf_counter()

    out = train(cfg, TrialContext(trial_id="bench", progress=on_progress))
    return times, out.metrics["impl_used"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--impl", default="eager", help="actbench's activation impl: eager (the loops' own code), compile, or auto")
    args = ap.parse_args()
    if args.steps < WARM_STEPS + 3:
        ap.error(f"--steps: at least {WARM_STEPS + 3} (the first {WARM_STEPS} are not timed)")
    torch.set_num_threads(args.threads)
    cfg = LMConfig(activation="relu2", impl=args.impl, tokens=args.steps * 16 * 128, eval_every=10**9, eval_tokens=128,
                   final_eval="slice", churn_tokens=0, **SIZES)
    train_tokens = np.asarray(load_corpus(DataConfig()).train)
    params = {"actbench": sum(p.numel() for p in Llama(cfg.to_model(256)).parameters()),
              "nanogpt": sum(p.numel() for p in NanoGPT(256, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.seq_len).parameters())}
    print(f"threads {args.threads}, {args.steps} steps x {args.repeats} repeats, d_ff {cfg.d_ff}, params: "
          f"actbench/plain {params['actbench']:,}, nanogpt {params['nanogpt']:,}, actbench impl {args.impl}")
    pooled: dict[str, list[float]] = {}
    for r in range(args.repeats):
        torch.manual_seed(r)
        times, impl = lockstep(cfg, train_tokens)
        for k, v in times.items():
            pooled.setdefault(k, []).extend(v)
        print(f"repeat {r + 1}, tokens/s of the median step: "
              + ", ".join(f"{k} {cfg.tokens_per_step / statistics.median(v):,.0f}" for k, v in times.items()), flush=True)
    print("all repeats, tokens/s of the median step: "
          + ", ".join(f"{k} {cfg.tokens_per_step / statistics.median(v):,.0f}" for k, v in pooled.items()))
    for other in ("nanogpt", "plain"):
        ratios = sorted(o / a for a, o in zip(pooled["actbench"], pooled[other]))  # their step time / ours = our tokens/s / theirs
        quartiles = statistics.quantiles(ratios, n=4)
        print(f"actbench / {other} tokens/s: {statistics.median(ratios):.3f} (median over {len(ratios)} paired steps, "
              f"quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f})")
    print(f"actbench ran impl {impl}")


if __name__ == "__main__":
    main()
