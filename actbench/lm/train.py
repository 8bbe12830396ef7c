"""Training loop of the `lm` kind: AdamW, warmup-stable-decay or cosine LR, clipping, bf16
autocast on GPU (fp32 on CPU), optional torch.compile, gradient accumulation, periodic evaluation
and checkpoints that a retried or resumed trial continues from.

Evaluation. Every `eval_every` steps and at the last step the model scores the fixed slice of
the first `eval_tokens` validation targets (the `val` curve). The final evaluation scores the
whole validation split, every target token including the tail that does not fill a window
(`final_eval: full`, the default; a diverged trial keeps the slice). Bits per byte divide the
loss by the bytes of exactly the tokens scored (`Corpus.token_bytes`). The record says what was
scored: `eval_scope`, `val_tokens_scored`, `val_bytes_scored`, `periodic_eval_tokens`, and
`final_eval_s`; the series `eval_chunks` holds the summed nats, bytes and tokens of contiguous
chunks of the scored targets (about 512 tokens each, at most 1024 chunks; boundaries fixed by the
corpus and seq_len, see `actbench.lm.data.windows_per_chunk`) for bootstraps over the
evaluation set. Also at the end: per-layer post-activation sparsity (fraction of exact zeros) and
dead units (zero on every scored token), argmax predictions on the first `churn_tokens`
positions (prediction churn between seeds). A non-finite loss stops the trial as `diverged`.

Throughput: tokens/s over the optimizer steps after the first five (evaluation excluded); MFU is
the analytic training FLOPs of `flops.count` over the GPU's dense bf16 peak (None on CPU). With
`impl: auto` on CPU the activation runs eager or under torch.compile, whichever a timing at
trial start finds faster once compile time is spread over the trial (`impl_used` says which).

Series (`series/<trial_id>.json`), each table a dict of equal-length columns:
train {step, loss, lr, tokens, time_s}, val {step, tokens, time_s, loss, bpb}, alphas {step,
layer, alpha_p, alpha_n} from step 0 (the initial values), layers {layer, sparsity, dead},
eval_chunks {nats, bytes, tokens} (bytes absent when unknown), and val_argmax (token ids packed
by `results.pack_ints`). `step` counts optimizer updates done, `tokens` training tokens seen,
`time_s` wall seconds since training started (summed over resumed runs).

Checkpoints hold tensors and plain values only (model and optimizer state, the series so far,
step) and are loaded with `torch.load(weights_only=True)`: a file that needs more (a planted
pickle) is refused without running it and the trial fails naming the file; it is not replaced
silently, since a checkpoint that is not ours means tampering or a foreign file.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from actbench import activations
from actbench.benchmarks import TrialContext, TrialOutput, TrialTimeout
from actbench.benchmarks.device import pick_device
from actbench.errors import UserError
from actbench.lm import flops
from actbench.lm.data import Corpus, batch, eval_batch_count, eval_batches, eval_targets, load_corpus, windows_per_chunk
from actbench.lm.model import Llama
from actbench.results import pack_ints

if TYPE_CHECKING:
    from actbench.lm.config import LMConfig

PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peak per GPU, by name fragment (first match wins)
    "H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0,
    "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0,
}
CHECKPOINT_FORMAT = 3  # 2: column series, tensors and plain values only; 3: q/k rows of qkv in interleaved rotary pairs
WARM_STEPS = 5  # optimizer steps left out of tokens/s
EVAL_BATCH_TOKENS = 2048  # at least this many tokens per evaluation batch (tiny batches are overhead)


def eval_batch_windows(batch_size: int, seq_len: int) -> int:
    """Windows per evaluation batch: the training batch, more when that is under EVAL_BATCH_TOKENS
    (larger batches were slower on CPU: llm_tiny scored 24-31k tokens/s at 16 windows, 14k at 512)."""
    return max(batch_size, -(-EVAL_BATCH_TOKENS // seq_len))


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
    """Weight decay on matrices and embeddings; activation parameters, norms and biases exempt.
    The fused (single-kernel) AdamW on CPU and CUDA: the same update as the per-tensor loop."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused)


def _time_per_call(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor, calls: int = 5) -> float:
    """Median seconds of one forward and backward through `module` (after one untimed call)."""
    module(x).backward(grad)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        module(x).backward(grad)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@functools.cache
def fastest_cpu_impl(activation: str, rows: int, width: int, calls_per_trial: int, threads: int) -> str:
    """`eager` or `compile` for `activation` on this CPU, timed on a (rows, width) input: compile
    wins when its time per call plus its compile time spread over the trial's `calls_per_trial`
    beats eager (falls back to eager when compiling fails, e.g. without a C++ compiler)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen).requires_grad_()
    eager_module = activations.build(activation, impl="eager")
    grad = torch.randn(eager_module(x).shape, generator=gen)  # gated: half the input's width
    eager = _time_per_call(eager_module, x, grad)
    try:
        t0 = time.perf_counter()
        module = activations.build(activation, impl="compile")
        module(x).backward(grad)  # compiles
        compile_s = time.perf_counter() - t0
        compiled = _time_per_call(module, x, grad)
    except TrialTimeout:  # the trial ran out of time while timing: it ends, as anywhere else
        raise
    except Exception:  # noqa: BLE001 - no working compiler here: eager it is
        return "eager"
    return "compile" if compiled + compile_s / max(calls_per_trial, 1) < eager else "eager"


def choose_impl(cfg: "LMConfig", device: torch.device) -> str:
    """The activation implementation this trial runs (see `fastest_cpu_impl` for auto on CPU)."""
    if cfg.impl != "auto" or device.type != "cpu" or cfg.compile:
        return activations.resolve_impl(cfg.activation, cfg.impl, device.type)
    width = cfg.d_ff * (2 if activations.spec(cfg.activation).gated else 1)
    calls = cfg.steps * cfg.grad_accum * cfg.n_layers
    return fastest_cpu_impl(cfg.activation, cfg.batch_size * cfg.seq_len, width, calls, torch.get_num_threads())


def _local(path: str) -> str | None:
    """The filesystem path of a local checkpoint location, None for remote (fsspec) ones."""
    return path.removeprefix("file://") if "://" not in path or path.startswith("file://") else None


def _save(obj: dict[str, Any], path: str) -> None:
    local = _local(path)
    if local is None:
        import fsspec

        buf = io.BytesIO()
        torch.save(obj, buf)
        with fsspec.open(path, "wb") as f:
            f.write(buf.getvalue())
        return
    tmp = f"{local}.tmp{os.getpid()}"
    try:
        Path(local).parent.mkdir(parents=True, exist_ok=True)
    except FileNotFoundError:  # a finishing trial removed the empty checkpoint root meanwhile
        Path(local).parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, tmp)
    os.replace(tmp, local)


def _load(path: str) -> dict[str, Any] | None:
    """The checkpoint at `path`, or None; tensors and plain values only (never unpickles code)."""
    local = _local(path)
    if local is None:
        try:
            import fsspec
        except ImportError as e:
            raise RuntimeError(f"checkpoint storage {path!r} needs fsspec (pip install fsspec and its backend)") from e
        fs, p = fsspec.core.url_to_fs(path)
        if not fs.exists(p):
            return None
        with fs.open(p, "rb") as f:
            source: Any = io.BytesIO(f.read())
    elif os.path.exists(local):
        source = local
    else:
        return None
    try:
        saved = torch.load(source, map_location="cpu", weights_only=True)
    except TrialTimeout:
        raise
    except Exception as e:  # noqa: BLE001 - refused (not plain tensors) or unreadable
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"checkpoint {path} is not a plain-tensor actbench checkpoint, refused to load it ({first}); "
                           "delete it to start the trial afresh") from None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        raise RuntimeError(f"checkpoint {path} is of another format than {CHECKPOINT_FORMAT}; delete it to start the trial afresh")
    return saved


def _remove(path: str | None) -> None:
    """Delete a finished trial's checkpoint and any temporary file a killed save left beside it, then its folder and
    the checkpoint root if empty."""
    local = _local(path) if path else None
    if local is None:
        return
    p = Path(local)
    for leftover in (p, *p.parent.glob(f"{p.name}.tmp*")):
        leftover.unlink(missing_ok=True)
    for folder in (p.parent, p.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty (other trials) or already gone
            return


@dataclass
class Evaluation:
    loss: float
    bpb: float | None
    tokens: int
    bytes: float | None
    window_nats: np.ndarray  # per scored window, in order
    window_tokens: np.ndarray
    window_bytes: np.ndarray | None
    sparsity: list[float]
    dead: list[float]
    argmax: np.ndarray  # token ids

    @property
    def ppl(self) -> float:
        return math.exp(min(self.loss, 700.0))

    def chunks(self, seq_len: int) -> dict[str, list[Any]]:
        """Summed nats, bytes and tokens per chunk of `windows_per_chunk` windows."""
        idx = np.arange(len(self.window_nats)) // windows_per_chunk(self.tokens, seq_len)
        out: dict[str, list[Any]] = {"nats": np.bincount(idx, self.window_nats).tolist()}
        if self.window_bytes is not None:
            b = np.bincount(idx, self.window_bytes)
            out["bytes"] = b.astype(np.int64).tolist() if np.all(b == np.round(b)) else b.tolist()
        out["tokens"] = np.bincount(idx, self.window_tokens).astype(np.int64).tolist()
        return out


@dataclass(frozen=True)
class Ranks:
    """This process's place among the workers of a trial: one process is rank 0 of 1."""

    rank: int = 0
    world: int = 1
    strategy: str = "ddp"  # ddp: every rank holds the model; fsdp: parameters, gradients and optimizer state sharded

    @property
    def sharded(self) -> bool:
        return self.world > 1 and self.strategy == "fsdp"

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every rank, in rank order (a collective: every rank calls it)."""
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def from_rank0(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (a collective)."""
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]


def current_ranks(strategy: str = "ddp") -> Ranks:
    """The ranks of torch.distributed's default group when it is set up (Ray Train), else one process."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Ranks(torch.distributed.get_rank(), torch.distributed.get_world_size(), strategy)
    return Ranks(strategy=strategy)


def _full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor of a (possibly FSDP-sharded) parameter or value computed from one."""
    return t.full_tensor() if hasattr(t, "full_tensor") else t


@torch.inference_mode()
def evaluate(model: Llama, corpus: Corpus, seq_len: int, batch_size: int, device: torch.device,
             max_targets: int | None = None, diagnostics: bool = False, churn_tokens: int = 0, ranks: Ranks = Ranks()) -> Evaluation:
    """Score the validation targets (all, or the first `max_targets`), `batch_size` windows at a
    time: loss per window, bits per byte over the exact bytes scored; with `diagnostics`,
    per-layer sparsity and dead units. On several workers each rank scores every world-th batch
    (under FSDP every rank runs as many forward passes, some on a spare window, since a forward
    pass is a collective) and the pieces are gathered in order: every rank returns the
    Evaluation one process would (the same windows, chunks and counts)."""
    model.eval()
    acts = model.activation_modules() if diagnostics else []
    zeros = [torch.zeros((), dtype=torch.int64, device=device) for _ in acts]
    seen = [0] * len(acts)
    alive: list[torch.Tensor | None] = [None] * len(acts)
    counting = [True]

    def hook(i: int):  # noqa: ANN202
        def fn(module: torch.nn.Module, inputs: Any, out: torch.Tensor) -> None:
            if not counting[0]:
                return
            nz = out != 0
            zeros[i] += (~nz).sum()
            seen[i] += out.numel()
            a = nz.reshape(-1, out.shape[-1]).any(dim=0)
            alive[i] = a if alive[i] is None else alive[i] | a
        return fn

    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return model(x)

    full = eval_targets(corpus.val, max_targets) // seq_len
    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    nats, preds, window_bytes, window_tokens, batches, n_preds = [], [], [], [], [], []
    try:
        for k, (x_np, y_np) in enumerate(eval_batches(corpus.val, seq_len, batch_size, max_targets, (ranks.rank, ranks.world))):
            i = ranks.rank + k * ranks.world  # the batch's place in the split
            x, y = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)
            logits = forward(x)
            nll = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none")
            nats.append(nll.view(y.shape).double().sum(dim=1))
            window_tokens.append(np.full(len(y_np), y_np.shape[1]))
            if (wb := corpus.window_bytes(y_np)) is not None:
                window_bytes.append(wb)
            first = min(i * batch_size, full) * seq_len  # targets before this batch
            if first < churn_tokens:
                preds.append(logits.argmax(-1).flatten()[: churn_tokens - first])
            n_preds.append(len(preds[-1]) if first < churn_tokens else 0)
            batches.append(i)
        if ranks.sharded:
            counting[0] = False
            spare = torch.from_numpy(np.asarray(corpus.val[: min(seq_len, len(corpus.val))], dtype=np.int64))[None].to(device)
            for _ in range(-(-eval_batch_count(corpus.val, seq_len, batch_size, max_targets) // ranks.world) - len(batches)):
                forward(spare)
    finally:
        for h in handles:
            h.remove()
    model.train()
    window_nats = torch.cat(nats).cpu().numpy() if nats else np.zeros(0)  # the one host sync of the evaluation
    parts = [window_nats, np.concatenate(window_tokens) if window_tokens else np.zeros(0, dtype=np.int64),
             np.concatenate(window_bytes) if window_bytes else None, torch.cat(preds).cpu().numpy() if preds else np.zeros(0, np.int64)]
    counts = [[int(z) for z in zeros], seen, [a.cpu().numpy() if a is not None else None for a in alive]]
    if ranks.world > 1:
        parts, counts = _gathered(ranks, batches, [len(t) for t in window_tokens], n_preds, parts, counts)
    window_nats, wtokens, wbytes, argmax = parts
    tokens = int(wtokens.sum())
    n_bytes = float(wbytes.sum()) if wbytes is not None else None
    loss = float(window_nats.sum()) / tokens
    return Evaluation(
        loss=loss, bpb=float(window_nats.sum()) / math.log(2) / n_bytes if n_bytes else None, tokens=tokens, bytes=n_bytes,
        window_nats=window_nats, window_tokens=wtokens, window_bytes=wbytes,
        sparsity=[z / max(n, 1) for z, n in zip(counts[0], counts[1])],
        dead=[float((~a).mean()) if a is not None else 0.0 for a in counts[2]],
        argmax=argmax,
    )


def _gathered(ranks: Ranks, batches: list[int], windows: list[int], n_preds: list[int], parts: list[Any],
              counts: list[list[Any]]) -> tuple[list[Any], list[list[Any]]]:
    """The evaluation pieces of every rank, in the split's batch order, and the diagnostics summed."""
    cut = lambda a, sizes: np.split(a, np.cumsum(sizes)[:-1]) if sizes else []  # noqa: E731
    mine = {i: (n, t, b, p) for i, n, t, b, p in zip(batches, cut(parts[0], windows), cut(parts[1], windows),
                                                     cut(parts[2], windows) if parts[2] is not None else [None] * len(batches),
                                                     cut(parts[3], n_preds))}
    everyone = ranks.gather((mine, counts))
    pieces = dict(sorted((i, piece) for part, _ in everyone for i, piece in part.items()))
    join = lambda j, dtype: np.concatenate([p[j] for p in pieces.values()]) if pieces else np.zeros(0, dtype)  # noqa: E731
    has_bytes = all(p[2] is not None for p in pieces.values())
    merged = [join(0, np.float64), join(1, np.int64), join(2, np.float64) if has_bytes and pieces else None, join(3, np.int64)]
    zeros = [sum(c[0][layer] for _, c in everyone) for layer in range(len(counts[0]))]
    seen = [sum(c[1][layer] for _, c in everyone) for layer in range(len(counts[1]))]
    alive = []
    for layer in range(len(counts[2])):
        masks = [c[2][layer] for _, c in everyone if c[2][layer] is not None]
        alive.append(np.logical_or.reduce(masks) if masks else None)
    return merged, [zeros, seen, alive]


def _alphas(model: Llama) -> list[tuple[float, float]]:
    vals = []
    for m in model.activation_modules():
        if hasattr(m, "alphas"):
            ap, an = m.alphas()
            vals.append((float(_full(ap).detach()), float(_full(an).detach())))
    return vals


def _fresh_state(impl: str) -> dict[str, Any]:
    return {
        "step": 0, "elapsed_s": 0.0, "train_time": 0.0, "timed_tokens": 0, "resumed_from": None, "impl_used": impl,
        "train": {"step": [], "loss": [], "lr": [], "tokens": [], "time_s": []},
        "val": {"step": [], "tokens": [], "time_s": [], "loss": [], "bpb": []},
        "alphas": {"step": [], "layer": [], "alpha_p": [], "alpha_n": []},
    }


def _append(table: dict[str, list[Any]], **row: Any) -> None:
    for k, v in row.items():
        table[k].append(v)


def _parallel(model: Llama, ranks: Ranks, device: torch.device) -> torch.nn.Module:
    """What the training step calls: the model itself on one worker; on several, DDP around it
    (every rank holds the model; gradients averaged) or the model with its blocks and itself
    sharded by FSDP2 `fully_shard` (parameters in fp32, as on one worker; autocast as usual)."""
    if ranks.world == 1:
        return model
    if ranks.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.blocks:
            fully_shard(block)
        return fully_shard(model)
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, forward_sync_buffers=False)


def _grad_sync(wrapped: torch.nn.Module, ranks: Ranks, sync: bool) -> Any:
    """A context for one micro-step's backward: gradients are reduced across ranks only in the
    step's last micro-step (before it they add up locally)."""
    if ranks.sharded:
        wrapped.set_requires_gradient_sync(sync)
    elif ranks.world > 1 and not sync:
        return wrapped.no_sync()
    return contextlib.nullcontext()


def _optimizer_order(model: torch.nn.Module, opt: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the optimizer's order: the ids of a plain optimizer state dict."""
    name = {id(p): n for n, p in model.named_parameters()}
    return [name[id(p)] for group in opt.param_groups for p in group["params"]]


def _state_dicts(model: torch.nn.Module, opt: torch.optim.Optimizer, ranks: Ranks) -> tuple[dict[str, Any], dict[str, Any]]:
    """Whole model and optimizer state dicts, as one process saves them (a collective under FSDP,
    whose values are then on rank 0 only)."""
    if not ranks.sharded:
        return model.state_dict(), opt.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    msd, osd = get_model_state_dict(model, options=options), get_optimizer_state_dict(model, opt, options=options)
    if ranks.rank:
        return {}, {}
    ids = {n: i for i, n in enumerate(_optimizer_order(model, opt))}
    return msd, {"state": {ids[n]: v for n, v in osd["state"].items()},
                 "param_groups": [{**g, "params": [ids[n] for n in g["params"]]} for g in osd["param_groups"]]}


def _load_optimizer(model: torch.nn.Module, opt: torch.optim.Optimizer, saved: dict[str, Any], ranks: Ranks) -> None:
    """Load a saved (plain, whole) optimizer state into this worker's optimizer."""
    if not ranks.sharded:
        opt.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _optimizer_order(model, opt)
    by_name = {"state": {names[i]: v for i, v in saved["state"].items()},
               "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, opt, by_name, options=StateDictOptions(full_state_dict=True))


def train(cfg: "LMConfig", ctx: TrialContext) -> TrialOutput:
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
    corpus = load_corpus(cfg.data)
    if len(corpus.val) < 2:
        raise UserError(f"data: the validation split has {len(corpus.val)} token(s), nothing to score")
    ckpt_path = str(ctx.checkpoint_dir / "ckpt.pt") if ctx.checkpoint_dir and cfg.checkpoint_every else None
    saved = _load(ckpt_path) if ckpt_path else None
    if ranks.world > 1:
        found = ranks.gather(saved["state"]["step"] if saved else None)
        if len(set(found)) > 1:
            raise RuntimeError(f"the trial's workers found different checkpoints at {ckpt_path} (steps by rank: {found}): "
                               "checkpoint storage must be one folder every node reaches (--checkpoints a shared path or URI)")
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
    wrapped = _parallel(model, ranks, device)
    opt = make_optimizer(model, cfg)
    if saved:
        _load_optimizer(model, opt, saved["optimizer"], ranks)
        state["resumed_from"] = state["step"]
    counts = flops.count(mcfg, cfg.seq_len)
    step_fn = torch.compile(wrapped) if cfg.compile else wrapped
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
        ev = evaluate(model, corpus, cfg.seq_len, eval_batch, device, cfg.eval_tokens, ranks=ranks)
        _append(state["val"], step=step, tokens=step * cfg.tokens_per_step, time_s=time.perf_counter() - t_start, loss=ev.loss, bpb=ev.bpb)
        log_alphas(step)
        progress("eval")

    if not saved:
        log_alphas(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    diverged_at = None
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
            with _grad_sync(wrapped, ranks, micro == cfg.grad_accum - 1):
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
            model_state, optimizer_state = _state_dicts(model, opt, ranks)
            if ranks.rank == 0:
                _save({"format": CHECKPOINT_FORMAT, "model": model_state, "optimizer": optimizer_state, "state": state}, ckpt_path)

    scope = "full" if cfg.final_eval == "full" and diverged_at is None else "slice"
    progress("eval")
    t_eval = time.perf_counter()
    final = evaluate(model, corpus, cfg.seq_len, eval_batch, device, None if scope == "full" else cfg.eval_tokens,
                     diagnostics=True, churn_tokens=cfg.churn_tokens, ranks=ranks)
    final_eval_s = time.perf_counter() - t_eval
    tokens_per_s = state["timed_tokens"] / state["train_time"] if state["train_time"] > 0 else None
    peak = peak_flops(device)
    mfu = counts.train_flops_per_token * tokens_per_s / (peak * ranks.world) if peak and tokens_per_s else None
    alphas = _alphas(model)
    metrics: dict[str, Any] = {
        "val_loss": final.loss, "val_bpb": final.bpb, "val_ppl": final.ppl,
        "val_tokens_scored": final.tokens, "val_bytes_scored": final.bytes, "val_bytes_exact": corpus.bytes_exact,
        "eval_scope": scope, "periodic_eval_tokens": eval_targets(corpus.val, cfg.eval_tokens), "final_eval_s": final_eval_s,
        "train_loss": state["train"]["loss"][-1] if state["train"]["loss"] else None,
        "tokens_per_s": tokens_per_s, "mfu": mfu, "impl_used": state["impl_used"],
        "peak_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "params": counts.params, "mlp_params": counts.mlp_params, "flops_per_token": counts.flops_per_token,
        "d_ff": cfg.d_ff, "steps": state["step"], "tokens": state["step"] * cfg.tokens_per_step,
        "sparsity": sum(final.sparsity) / len(final.sparsity), "dead_units": sum(final.dead) / len(final.dead),
        "resumed_from_step": state["resumed_from"], "device": device.type,
    }
    if alphas:
        metrics["alpha_p_mean"] = sum(a for a, _ in alphas) / len(alphas)
        metrics["alpha_n_mean"] = sum(b for _, b in alphas) / len(alphas)
    if ranks.rank == 0:
        _remove(ckpt_path)  # finished: a later --rerun starts from scratch
    series = {"train": state["train"], "val": state["val"], "alphas": state["alphas"],
              "layers": {"layer": list(range(len(final.sparsity))), "sparsity": final.sparsity, "dead": final.dead},
              "eval_chunks": final.chunks(cfg.seq_len), "val_argmax": pack_ints(final.argmax)}
    if diverged_at is not None:
        return TrialOutput(metrics=metrics, series=series, status="diverged", note=f"non-finite loss at step {diverged_at}")
    return TrialOutput(metrics=metrics, series=series)
