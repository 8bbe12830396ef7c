"""Training loop of the `lm` kind: AdamW, warmup-stable-decay or cosine LR, clipping, bf16
autocast on GPU (fp32 on CPU), optional torch.compile, gradient accumulation, periodic evaluation
and checkpoints that a retried or resumed trial continues from.

Diagnostics gathered at each evaluation: validation loss, bits per byte and perplexity; every
xIELU-family layer's alpha_p / alpha_n; post-activation sparsity (fraction of exact zeros) and
dead-unit rate (hidden units zero on the whole validation slice) per layer. At the end the argmax
predictions on the first `churn_tokens` validation positions are saved, so reports can compute
prediction churn between seeds. A non-finite loss stops the trial as `diverged`. MFU uses the
analytic training FLOPs of `flops.count` (full attention matrix, the nanoGPT convention) over the
GPU's dense bf16 peak; it is None on CPU and on GPUs missing from the table.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from actbench.benchmarks import TrialContext, TrialOutput
from actbench.benchmarks.device import pick_device
from actbench.lm import flops
from actbench.lm.data import batch, load_corpus, validation_windows
from actbench.lm.model import Llama

if TYPE_CHECKING:
    from actbench.lm.config import LMConfig

PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak per GPU, by name fragment (first match wins)
    "H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0,
    "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0,
}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, tflops in PEAK_BF16_TFLOPS.items():
        if frag in name:
            return tflops * 1e12
    return None


def lr_at(cfg: "LMConfig", step: int) -> float:
    """Learning rate at optimizer step `step` (0-based)."""
    total = cfg.steps
    warmup = int(cfg.warmup_frac * total)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    floor = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    decay = int(cfg.decay_frac * total)
    start = total - decay
    if step < start or decay == 0:
        return cfg.lr
    return cfg.lr + (floor - cfg.lr) * (step - start + 1) / decay


def make_optimizer(model: torch.nn.Module, cfg: "LMConfig") -> torch.optim.AdamW:
    """Weight decay on matrices and embeddings; activation parameters, norms and biases exempt."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=False)


def _save(obj: dict[str, Any], path: str) -> None:
    if "://" in path and not path.startswith("file://"):
        import fsspec

        buf = io.BytesIO()
        torch.save(obj, buf)
        with fsspec.open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    path = path.removeprefix("file://")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _load(path: str) -> dict[str, Any] | None:
    if "://" in path and not path.startswith("file://"):
        try:
            import fsspec
        except ImportError as e:
            raise RuntimeError(f"checkpoint storage {path!r} needs fsspec (pip install fsspec and its backend)") from e
        fs, p = fsspec.core.url_to_fs(path)
        if not fs.exists(p):
            return None
        with fs.open(p, "rb") as f:
            return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=False)
    path = path.removeprefix("file://")
    return torch.load(path, map_location="cpu", weights_only=False) if os.path.exists(path) else None


def _remove(path: str | None) -> None:
    if path and "://" not in path and os.path.exists(path):
        os.remove(path)


@torch.no_grad()
def evaluate(model: Llama, vx: torch.Tensor, vy: torch.Tensor, device: torch.device, batch_size: int,
             bytes_per_token: float | None, churn_tokens: int = 0) -> dict[str, Any]:
    """Validation loss, bpb, perplexity, per-layer sparsity / dead units, argmax predictions."""
    model.eval()
    acts = model.activation_modules()
    zeros = [0] * len(acts)
    seen = [0] * len(acts)
    alive = [None] * len(acts)

    def hook(i: int):  # noqa: ANN202
        def fn(module: torch.nn.Module, inputs: Any, out: torch.Tensor) -> None:
            nz = out != 0
            zeros[i] += int((~nz).sum())
            seen[i] += out.numel()
            a = nz.reshape(-1, out.shape[-1]).any(dim=0)
            alive[i] = a if alive[i] is None else alive[i] | a
        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    total, count, preds = 0.0, 0, []
    try:
        for s in range(0, len(vx), batch_size):
            x, y = vx[s : s + batch_size].to(device), vy[s : s + batch_size].to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x)
            total += F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
            if churn_tokens and sum(p.numel() for p in preds) < churn_tokens:
                preds.append(logits.argmax(-1).flatten().cpu())
    finally:
        for h in handles:
            h.remove()
    model.train()
    loss = total / count
    out: dict[str, Any] = {
        "val_loss": loss,
        "val_bpb": loss / math.log(2) / bytes_per_token if bytes_per_token else None,
        "val_ppl": math.exp(min(loss, 700.0)),
        "sparsity": [z / max(n, 1) for z, n in zip(zeros, seen)],
        "dead": [float((~a).float().mean()) if a is not None else 0.0 for a in alive],
    }
    if churn_tokens:
        out["argmax"] = torch.cat(preds)[:churn_tokens].tolist() if preds else []
    return out


def _alphas(model: Llama) -> list[tuple[float, float]]:
    vals = []
    for m in model.activation_modules():
        if hasattr(m, "alphas"):
            ap, an = m.alphas()
            vals.append((float(ap.detach()), float(an.detach())))
    return vals


def train(cfg: "LMConfig", ctx: TrialContext) -> TrialOutput:
    device = pick_device(cfg.device)
    corpus = load_corpus(cfg.data)
    torch.manual_seed(cfg.seed)
    mcfg = cfg.to_model(corpus.vocab_size)
    model = Llama(mcfg).to(device)
    opt = make_optimizer(model, cfg)
    counts = flops.count(mcfg, cfg.seq_len)
    step_fn = torch.compile(model) if cfg.compile else model
    vx, vy = validation_windows(corpus.val, cfg.seq_len, cfg.eval_tokens)

    ckpt_path = str(ctx.checkpoint_dir / "ckpt.pt") if ctx.checkpoint_dir else None
    state: dict[str, Any] = {"step": 0, "train_loss": [], "val": [], "alphas": [], "train_time": 0.0, "timed_tokens": 0, "resumed_from": None}
    if ckpt_path and cfg.checkpoint_every and (saved := _load(ckpt_path)) is not None:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        state["resumed_from"] = state["step"]

    def log_eval(step: int, churn_tokens: int = 0) -> dict[str, Any]:
        ev = evaluate(model, vx, vy, device, cfg.batch_size, corpus.bytes_per_token, churn_tokens)
        state["val"].append([step, ev["val_loss"], ev["val_bpb"]])
        state["alphas"].extend([step, i, ap, an] for i, (ap, an) in enumerate(_alphas(model)))
        return ev

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    warm_steps = min(5, cfg.steps // 5)
    diverged_at = None
    while state["step"] < cfg.steps:
        step = state["step"]
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        t0 = time.perf_counter()
        loss_sum = 0.0
        for micro in range(cfg.grad_accum):
            x, y = batch(corpus.train, cfg.batch_size, cfg.seq_len, cfg.seed, step, micro)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = step_fn(x)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) / cfg.grad_accum
            loss.backward()
            loss_sum += loss.detach()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss_value = float(loss_sum)  # the one host sync per step
        if step >= warm_steps:
            state["train_time"] += time.perf_counter() - t0
            state["timed_tokens"] += cfg.tokens_per_step
        state["train_loss"].append([step, loss_value])
        state["step"] = step + 1
        if not math.isfinite(loss_value):
            diverged_at = step
            break
        last = state["step"] == cfg.steps
        if state["step"] % cfg.eval_every == 0 and not last:
            log_eval(state["step"])
        if ckpt_path and cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and not last:
            _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "state": state}, ckpt_path)

    final = log_eval(state["step"], cfg.churn_tokens)
    tokens_per_s = state["timed_tokens"] / state["train_time"] if state["train_time"] > 0 else None
    peak = peak_flops(device)
    mfu = counts.train_flops_per_token * tokens_per_s / peak if peak and tokens_per_s else None
    bpbs = [v[2] for v in state["val"] if v[2] is not None]
    alphas = _alphas(model)
    metrics: dict[str, Any] = {
        "val_loss": final["val_loss"], "val_bpb": final["val_bpb"], "val_ppl": final["val_ppl"],
        "best_val_bpb": min(bpbs) if bpbs else None,
        "train_loss": state["train_loss"][-1][1] if state["train_loss"] else None,
        "tokens_per_s": tokens_per_s, "mfu": mfu,
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "params": counts.params, "mlp_params": counts.mlp_params, "flops_per_token": counts.flops_per_token,
        "d_ff": cfg.d_ff, "steps": state["step"], "tokens": state["step"] * cfg.tokens_per_step,
        "sparsity": sum(final["sparsity"]) / len(final["sparsity"]), "dead_units": sum(final["dead"]) / len(final["dead"]),
        "resumed_from_step": state["resumed_from"], "device": device.type,
    }
    if alphas:
        metrics["alpha_p_mean"] = sum(a for a, _ in alphas) / len(alphas)
        metrics["alpha_n_mean"] = sum(b for _, b in alphas) / len(alphas)
    _remove(ckpt_path)  # finished: a later --rerun starts from scratch
    series = {"train_loss": state["train_loss"], "val": state["val"], "alphas": state["alphas"],
              "sparsity": final["sparsity"], "dead": final["dead"], "val_argmax": final.get("argmax", [])}
    if diverged_at is not None:
        return TrialOutput(metrics=metrics, series=series, status="diverged", note=f"non-finite loss at step {diverged_at}")
    return TrialOutput(metrics=metrics, series=series)
