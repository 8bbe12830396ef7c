"""Training loop of the `lm` kind: AdamW, warmup-stable-decay or cosine LR, clipping, bf16
autocast on GPU (fp32 on CPU), optional torch.compile, gradient accumulation, periodic evaluation
(`actbench.lm.evaluate`) and checkpoints (`actbench.lm.checkpoint`) that a retried or resumed
trial continues from; on several workers (`actbench.lm.distributed`) the same experiment.

Evaluation. The validation split has two parts (`Corpus.parts`): the first `data.tune_fraction`
of its tokens, which tuning selects on (`tune_val_loss`, `tune_val_bpb`), and the rest, the test
part, which scores the verdicts (`val_loss`, `val_bpb`): selection and test never share data.
Every `eval_every` steps and at the last step the model scores the fixed slice of the first
`eval_tokens` targets of the test part (the `val` curve). The final evaluation scores each part
whole, every target token including the tail that does not fill a window (`final_eval: full`, the
default; a diverged trial keeps the slice). Bits per byte divide the loss by the bytes of exactly
the tokens scored (`Corpus.token_bytes`). The record says what was scored: `val_parts`,
`eval_scope`, `val_tokens_scored`, `val_bytes_scored`, `tune_val_tokens_scored`,
`periodic_eval_tokens`, and `final_eval_s`; the series `eval_chunks` holds the summed nats, bytes
and tokens of contiguous chunks of the scored test targets (about 512 tokens each, at most 1024 chunks; boundaries fixed by the
corpus and seq_len, see `actbench.lm.windows.windows_per_chunk`) for bootstraps over the
evaluation set. Also at the end: per-layer post-activation sparsity (fraction of exact zeros) and
dead units (zero on every scored token), argmax predictions on the first `churn_tokens`
positions (prediction churn between seeds). A non-finite loss stops the trial as `diverged`.

Throughput: tokens/s over the optimizer steps after the first five (evaluation excluded); MFU is
the analytic training FLOPs of `flops.count` over the GPU's dense bf16 peak (None on CPU).
What the trial cost, in seconds (what `actbench.lm.cost` plans with): `data_s` (loading the
corpus), `setup_s` (the trial's start to its first step), `first_step_s`, `compile_s` (a trial
that compiles its model or runs a compiled or Triton activation: the first step of this process
less a normal step, `compile_seconds`; `shape_warm`: this process had compiled the same shape
before), `loop_s` (the training loop, periodic evaluations and checkpoints included) and
`final_eval_s`; `cpu_s` is this process's CPU seconds (all threads) from loading the corpus to
the end (what a loaded machine stretches less than wall time); `process_trial` counts the trials of its process (1: the first, which paid the
imports); `epochs` is the training tokens over the training split's.
`impl_used` says which implementation of the activation ran (`actbench.lm.impl`).

Series (`series/<trial_id>.json`), each table a dict of equal-length columns:
train {step, loss, lr, tokens, time_s}, val {step, tokens, time_s, loss, bpb}, alphas {step,
layer, alpha_p, alpha_n} from step 0 (the initial values), layers {layer, sparsity, dead},
eval_chunks {nats, bytes, tokens} (bytes absent when unknown), and val_argmax (token ids).
`step` counts optimizer updates done, `tokens` training tokens seen, `time_s` wall seconds since
training started (summed over resumed runs).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from actbench import activations
from actbench.core.device import pick_device
from actbench.core.trial import TrialContext, TrialOutput, TrialTimeout
from actbench.errors import UserError
from actbench.lm import checkpoint, cost, flops, impl
from actbench.lm.corpus import load_corpus
from actbench.lm.distributed import current_ranks, full_tensor, grad_sync, load_optimizer, parallel, state_dicts
from actbench.lm.evaluate import eval_batch_windows, evaluate
from actbench.lm.model import Llama
from actbench.lm.windows import batch, eval_targets

if TYPE_CHECKING:
    from actbench.lm.config import LMConfig

PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak per GPU, by name fragment (first match wins)
    "H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0,
    "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0,
}
WARM_STEPS = 5  # optimizer steps left out of tokens/s
_PROCESS: dict[str, Any] = {"trials": 0, "shapes": set()}
"""What this process has trained: trials started, model shapes compiled (`cost.shape_of`)."""


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, tflops in PEAK_BF16_TFLOPS.items():
        if frag in name:
            return tflops * 1e12
    return None


def compile_seconds(step_times: list[float], train_time: float, timed_steps: int) -> float | None:
    """What compiling cost: this process's first step (which compiles the model) less a normal
    step (the mean of the timed steps after WARM_STEPS, else the median of its other first
    steps); None with a single step."""
    if not step_times:
        return None
    others = sorted(step_times[1:])
    normal = train_time / timed_steps if timed_steps else others[len(others) // 2] if others else None
    return None if normal is None else max(0.0, step_times[0] - normal)


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
    """Weight decay on matrices and embeddings; activation parameters, norms and biases exempt.
    The fused (single-kernel) AdamW on CPU and CUDA: the same update as the per-tensor loop."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def choose_impl(cfg: "LMConfig", device: torch.device) -> str:
    """The activation implementation this trial runs (`actbench.lm.impl`: auto is timed on CPU)."""
    shape = cfg.impl_shape
    return impl.choose_impl(cfg.activation, cfg.impl, device, shape["rows"], shape["width"], shape["calls"], cfg.compile)[0]


def _alphas(model: Llama) -> list[tuple[float, float]]:
    vals = []
    for m in model.activation_modules():
        if hasattr(m, "alphas"):
            ap, an = m.alphas()
            vals.append((float(full_tensor(ap).detach()), float(full_tensor(an).detach())))
    return vals


def _fresh_state(impl: str) -> dict[str, Any]:
    return {
        "step": 0, "elapsed_s": 0.0, "train_time": 0.0, "timed_tokens": 0, "resumed_from": None, "impl_used": impl,
        "train": {"step": [], "loss": [], "lr": [], "tokens": [], "time_s": []},
        "val": {"step": [], "tokens": [], "time_s": [], "loss": [], "bpb": []},
        "alphas": {"step": [], "layer": [], "alpha_p": [], "alpha_n": []},
    }


def _state_problem(state: dict[str, Any], cfg: "LMConfig") -> str | None:
    """Why a checkpoint's training state is not one this trial saved (None when it may be)."""
    fresh = _fresh_state("eager")
    if set(state) != set(fresh):
        return "its training state has other fields"
    step = state["step"]
    if type(step) is not int or not 0 < step < cfg.steps:
        return f"its step is not one of 1..{cfg.steps - 1}"
    impl_used = state["impl_used"]
    if not isinstance(impl_used, str) or impl_used not in activations.spec(cfg.activation).impl_names or cfg.impl not in ("auto", impl_used):
        return "its activation implementation is not one this trial runs"
    for name in ("elapsed_s", "train_time", "timed_tokens", "resumed_from"):
        v = state[name]
        if not (v is None and name == "resumed_from") and not (type(v) in (int, float) and math.isfinite(v) and v >= 0):
            return f"its {name} is not a count"
    for name in ("train", "val", "alphas"):
        table = state[name]
        if (not isinstance(table, dict) or set(table) != set(fresh[name]) or not all(type(c) is list for c in table.values())
                or len({len(c) for c in table.values()}) != 1):
            return f"its {name} series is not a table of equal columns"
    if len(state["train"]["step"]) != step:
        return f"its train series has {len(state['train']['step'])} rows for {step} steps"
    return None


def _resume(cfg: "LMConfig", ckpt_path: str, vocab_size: int) -> tuple[dict[str, Any] | None, str]:
    """The trial's newest usable checkpoint (`checkpoint.newest`: what does not load or fit this
    trial's model, shapes checked on a meta-device copy, is set aside) and the note saying so."""
    mcfg = cfg.to_model(vocab_size)

    def problem(saved: dict[str, Any]) -> str | None:
        if why := _state_problem(saved["state"], cfg):
            return why
        try:
            with torch.device("meta"):
                model = Llama(replace(mcfg, impl=saved["state"]["impl_used"]), seed=cfg.seed)
        except UserError as e:  # its implementation cannot run here
            return str(e)
        return checkpoint.mismatch(saved, model, make_optimizer(model, cfg))

    return checkpoint.newest(ckpt_path, checkpoint.size_cap(flops.count(mcfg, cfg.seq_len).params, cfg.steps, cfg.n_layers), problem)


def _append(table: dict[str, list[Any]], **row: Any) -> None:
    for k, v in row.items():
        table[k].append(v)


def train(cfg: "LMConfig", ctx: TrialContext) -> TrialOutput:
    """`_train`, whose notes (a checkpoint set aside) an exception it raises carries as
    `trial_note`, so that the failed trial's record keeps them too."""
    notes: list[str] = []
    try:
        return _train(cfg, ctx, notes)
    except BaseException as e:
        if notes:
            e.trial_note = "; ".join(notes)  # type: ignore[attr-defined]
        raise


def _train(cfg: "LMConfig", ctx: TrialContext, notes: list[str]) -> TrialOutput:
    """Train and evaluate one model. On several workers (torch.distributed set up by Ray Train,
    `ctx.strategy`) every rank runs this: each takes its equal slice of every micro-batch (the
    global batch, token budget, LR schedule and data are those of one process), the logged loss
    is the mean over all ranks, evaluation is split over ranks and gathered, rank 0 writes
    checkpoints (whole state dicts, the format of one process, so a trial may resume on another
    number of workers) and sends progress, and all ranks stop together past `ctx.past_deadline()`."""
    ranks = current_ranks(ctx.strategy)
    device = pick_device(cfg.device)
    if device.type == "cuda" and device.index is None:  # this worker's GPU (Ray Train sets each rank's current device)
        device = torch.device("cuda", torch.cuda.current_device())
    _PROCESS["trials"] += 1
    process_trial = _PROCESS["trials"]
    cpu_start = time.process_time()
    t_data = time.perf_counter()
    corpus = load_corpus(cfg.data)
    data_s = time.perf_counter() - t_data
    tune_part, test_part = corpus.parts(cfg.data.tune_fraction, cfg.data.val_tokens)
    if min(len(tune_part), len(test_part)) < 2:
        raise UserError(f"data: the validation split has {len(corpus.val)} token(s): too few for a tuning and a test part "
                        f"(data.tune_fraction {cfg.data.tune_fraction:g}) with a target each")
    ckpt_path = str(ctx.checkpoint_dir / "ckpt.pt") if ctx.checkpoint_dir and cfg.checkpoint_every else None
    saved, resume_note = _resume(cfg, ckpt_path, corpus.vocab_size) if ckpt_path else (None, "")
    if resume_note:
        notes.append(resume_note)
    if ranks.world > 1:
        found = ranks.gather(saved["state"]["step"] if saved else None)
        if len(set(found)) > 1:
            raise RuntimeError(f"the trial's workers found different checkpoints at {ckpt_path} (steps by rank: {found}): "
                               "checkpoint storage must be one folder every node reaches (--checkpoints a shared path)")
    if saved:
        state = saved["state"]
    elif ranks.world == 1:
        state = _fresh_state(choose_impl(cfg, device))
    else:  # rank 0 times the implementations; every rank runs the one it picked
        state = _fresh_state(ranks.from_rank0(choose_impl(cfg, device) if ranks.rank == 0 else None))
    torch.manual_seed(cfg.seed)
    mcfg = replace(cfg.to_model(corpus.vocab_size), impl=state["impl_used"])
    model = Llama(mcfg, seed=cfg.seed).to(device)
    if saved:
        model.load_state_dict(saved["model"])
    wrapped = parallel(model, ranks, device)
    opt = make_optimizer(model, cfg)
    if saved:
        load_optimizer(model, opt, saved["optimizer"], ranks)
        state["resumed_from"] = state["step"]
    counts = flops.count(mcfg, cfg.seq_len)
    step_fn = torch.compile(wrapped) if cfg.compile else wrapped
    compiled = cfg.compile or state["impl_used"] != "eager"
    shape = cost.shape_of(cfg, state["impl_used"])
    shape_warm = shape in _PROCESS["shapes"]
    params = list(model.parameters())
    eval_batch = eval_batch_windows(cfg.batch_size, cfg.seq_len)
    rows = slice(ranks.rank * cfg.batch_size // ranks.world, (ranks.rank + 1) * cfg.batch_size // ranks.world)
    t_start = time.perf_counter() - state["elapsed_s"]

    def log_alphas(step: int) -> None:
        for i, (ap, an) in enumerate(_alphas(model)):
            _append(state["alphas"], step=step, layer=i, alpha_p=ap, alpha_n=an)

    def progress(phase: str) -> None:
        last = {k: (col[-1] if col else None) for k, col in (("loss", state["train"]["loss"]), ("lr", state["train"]["lr"]), ("bpb", state["val"]["bpb"]))}
        ctx.report(step=state["step"], total_steps=cfg.steps, tokens=state["step"] * cfg.tokens_per_step, train_loss=last["loss"], lr=last["lr"],
                   tokens_per_s=state["timed_tokens"] / state["train_time"] if state["train_time"] > 0 else None,
                   val_bpb=last["bpb"], phase=phase)

    def log_eval(step: int) -> None:
        ev = evaluate(model, corpus, test_part, cfg.seq_len, eval_batch, device, cfg.eval_tokens, ranks=ranks)
        _append(state["val"], step=step, tokens=step * cfg.tokens_per_step, time_s=time.perf_counter() - t_start, loss=ev.loss, bpb=ev.bpb)
        log_alphas(step)
        progress("eval")

    if not saved:
        log_alphas(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    diverged_at = None
    setup_s = time.time() - ctx.started_at  # the trial's start to its first step: data, implementation choice, model
    t_loop = time.perf_counter()
    step_times: list[float] = []  # this process's first steps (the first one compiles, when compiled)
    while state["step"] < cfg.steps:
        step = state["step"]
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            x, y = batch(corpus.train, cfg.batch_size, cfg.seq_len, cfg.seed, step, micro)
            if ranks.world > 1:
                x, y = x[rows], y[rows]
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with grad_sync(wrapped, ranks, micro == cfg.grad_accum - 1):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                    logits = step_fn(x)
                loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten()) / cfg.grad_accum
                loss.backward()
            loss_sum += loss.detach()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if ranks.world == 1:
            loss_value = float(loss_sum)  # the one host sync per step
        else:  # the mean over ranks, and whether any rank is past the deadline: one all-reduce, one host sync
            both = torch.stack([loss_sum, torch.tensor(float(ctx.past_deadline()), device=device)])
            torch.distributed.all_reduce(both)
            loss_value, late = (float(v) for v in both.cpu())
            loss_value /= ranks.world
            if late:
                raise TrialTimeout(f"ran past timeout_s={ctx.timeout_s:g} (at step {step + 1} of {cfg.steps})")
        now = time.perf_counter()
        if len(step_times) <= WARM_STEPS:
            step_times.append(now - t0)
            if compiled:
                _PROCESS["shapes"].add(shape)
        if step >= WARM_STEPS:
            state["train_time"] += now - t0
            state["timed_tokens"] += cfg.tokens_per_step
        state["step"] = step + 1
        _append(state["train"], step=step, loss=loss_value, lr=lr, tokens=state["step"] * cfg.tokens_per_step, time_s=now - t_start)
        progress("train")
        if not math.isfinite(loss_value):
            diverged_at = step
            break
        last = state["step"] == cfg.steps
        if state["step"] % cfg.eval_every == 0 or last:
            log_eval(state["step"])
        if ckpt_path and state["step"] % cfg.checkpoint_every == 0 and not last:
            state["elapsed_s"] = time.perf_counter() - t_start
            model_state, optimizer_state = state_dicts(model, opt, ranks)
            if ranks.rank == 0:
                checkpoint.save({"format": checkpoint.CHECKPOINT_FORMAT, "model": model_state, "optimizer": optimizer_state, "state": state}, ckpt_path)

    loop_s = time.perf_counter() - t_loop
    scope = "full" if cfg.final_eval == "full" and diverged_at is None else "slice"
    progress("eval")
    t_eval = time.perf_counter()
    limit = None if scope == "full" else cfg.eval_tokens
    final = evaluate(model, corpus, test_part, cfg.seq_len, eval_batch, device, limit, diagnostics=True, churn_tokens=cfg.churn_tokens,
                     ranks=ranks)
    tuning = evaluate(model, corpus, tune_part, cfg.seq_len, eval_batch, device, limit, ranks=ranks)
    final_eval_s = time.perf_counter() - t_eval
    tokens_per_s = state["timed_tokens"] / state["train_time"] if state["train_time"] > 0 else None
    peak = peak_flops(device)
    mfu = counts.train_flops_per_token * tokens_per_s / (peak * ranks.world) if peak and tokens_per_s else None
    alphas = _alphas(model)
    metrics: dict[str, Any] = {
        "val_loss": final.loss, "val_bpb": final.bpb, "val_ppl": final.ppl,
        "val_tokens_scored": final.tokens, "val_bytes_scored": final.bytes, "val_bytes_exact": corpus.bytes_exact,
        "tune_val_loss": tuning.loss, "tune_val_bpb": tuning.bpb, "tune_val_tokens_scored": tuning.tokens,
        "val_parts": f"tune_val_*: validation tokens [0, {len(tune_part)}) (the tuning part); val_*: [{len(tune_part)}, "
                     f"{len(tune_part) + len(test_part)}) (the test part) of {len(corpus.val)}",
        "eval_scope": scope, "periodic_eval_tokens": eval_targets(test_part, cfg.eval_tokens), "final_eval_s": final_eval_s,
        "train_loss": state["train"]["loss"][-1] if state["train"]["loss"] else None,
        "tokens_per_s": tokens_per_s, "mfu": mfu, "impl_used": state["impl_used"],
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "params": counts.params, "mlp_params": counts.mlp_params, "flops_per_token": counts.flops_per_token,
        "d_ff": cfg.d_ff, "steps": state["step"], "tokens": state["step"] * cfg.tokens_per_step,
        "sparsity": sum(final.sparsity) / len(final.sparsity), "dead_units": sum(final.dead) / len(final.dead),
        "resumed_from_step": state["resumed_from"], "device": device.type,
        "epochs": state["step"] * cfg.tokens_per_step / len(corpus.train), "data_s": data_s, "setup_s": setup_s, "loop_s": loop_s,
        "first_step_s": step_times[0] if step_times else None,
        "compile_s": compile_seconds(step_times, state["train_time"], state["timed_tokens"] // cfg.tokens_per_step) if compiled else None,
        "process_trial": process_trial, "shape_warm": shape_warm if compiled else None, "cpu_s": time.process_time() - cpu_start,
    }
    if alphas:
        metrics["alpha_p_mean"] = sum(a for a, _ in alphas) / len(alphas)
        metrics["alpha_n_mean"] = sum(b for _, b in alphas) / len(alphas)
    if ranks.rank == 0:
        checkpoint.remove(ckpt_path)  # finished: a later --rerun starts from scratch
    series = {"train": state["train"], "val": state["val"], "alphas": state["alphas"],
              "layers": {"layer": list(range(len(final.sparsity))), "sparsity": final.sparsity, "dead": final.dead},
              "eval_chunks": final.chunks(cfg.seq_len), "val_argmax": final.argmax.tolist()}
    if diverged_at is not None:
        note = "; ".join(n for n in (resume_note, f"non-finite loss at step {diverged_at}") if n)
        return TrialOutput(metrics=metrics, series=series, status="diverged", note=note)
    return TrialOutput(metrics=metrics, series=series, note=resume_note)
