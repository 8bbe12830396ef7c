"""Training throughput and MFU of actbench's Llama at GPT-2-small size, on random tokens.

    python scripts/lm_throughput.py relu2:eager xielu:triton xielu:fused     # on a GPU
    python scripts/lm_throughput.py --tiny relu2:eager xielu:eager           # a tiny model, e.g. on CPU

The model of the README's H200 figures (d 768, 12 layers, 12 heads, d_ff 3072 = 4h, seq 1024,
32 sequences a step, the 50304-token embedding tied: 124M parameters), trained as the lm trainer
trains it: bf16 autocast on a GPU, fused AdamW, clip 1.0, the whole model under torch.compile.
Tokens/s counts the steps after `warm`; MFU = training FLOPs per token (`actbench.lm.flops`) x
tokens/s over the GPU's dense bf16 peak (`actbench.lm.train.peak_flops`; none on a CPU).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from actbench.lm import flops
from actbench.lm.model import Llama
from actbench.lm.shapes import ModelConfig
from actbench.lm.train import peak_flops

GPT2_SMALL = dict(vocab_size=50304, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_seq_len=1024)
GPT2_BATCH = 32
TINY = dict(vocab_size=256, d_model=64, n_layers=2, n_heads=2, d_ff=256, max_seq_len=32)
TINY_BATCH = 2


def measure(activation: str, impl: str, *, tiny: bool = False, steps: int = 30, warm: int = 10, compile_model: bool = True) -> dict[str, float | None]:
    """Tokens/s and MFU (None without a known peak) of `steps` optimizer steps after `warm` untimed
    ones, and the seconds the warm steps took (compiling included)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape, batch = (TINY, TINY_BATCH) if tiny else (GPT2_SMALL, GPT2_BATCH)
    cfg = ModelConfig(activation=activation, impl=impl, **shape)
    model = Llama(cfg, seed=0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_fn = torch.compile(model) if compile_model else model
    seq = cfg.max_seq_len
    gen = torch.Generator(device=device).manual_seed(0)

    def step() -> None:
        idx = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device, generator=gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = step_fn(idx[:, :-1])
        F.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def run(n: int) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    warm_s = run(warm)
    tokens_per_s = steps * batch * seq / run(steps)
    peak = peak_flops(device)
    mfu = flops.count(cfg, seq).train_flops_per_token * tokens_per_s / peak if peak else None
    return {"tokens_per_s": tokens_per_s, "mfu": mfu, "warm_s": warm_s, "params": float(flops.count(cfg, seq).params)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="activation:impl, e.g. xielu:fused")
    parser.add_argument("--tiny", action="store_true", help="a tiny model instead of the 124M one")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warm", type=int, default=10)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    for run in args.runs:
        activation, _, impl = run.partition(":")
        r = measure(activation, impl or "eager", tiny=args.tiny, steps=args.steps, warm=args.warm, compile_model=not args.no_compile)
        mfu = f"{100 * r['mfu']:.1f}% MFU" if r["mfu"] is not None else "MFU n/a (no peak FLOP/s known for this device)"
        print(f"{run:<16} {r['tokens_per_s']:>12,.0f} tokens/s  {mfu}  ({r['params'] / 1e6:.1f}M params; warm-up {r['warm_s']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
