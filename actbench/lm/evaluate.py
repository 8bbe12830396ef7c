"""Evaluation of an lm trial: every validation target scored once, in consecutive windows, loss
per window, bits per byte over the exact bytes of the tokens scored, per-layer sparsity and dead
units, argmax predictions for churn; split over the workers of a trial and gathered in order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from actbench.lm.corpus import Corpus
from actbench.lm.distributed import Ranks
from actbench.lm.model import Llama
from actbench.lm.windows import eval_batch_count, eval_batches, eval_targets, windows_per_chunk

EVAL_BATCH_TOKENS = 2048  # at least this many tokens per evaluation batch (tiny batches are overhead)


def eval_batch_windows(batch_size: int, seq_len: int) -> int:
    """Windows per evaluation batch: the training batch, more when that is under EVAL_BATCH_TOKENS
    (larger batches were slower on CPU: llm_tiny scored 24-31k tokens/s at 16 windows, 14k at 512)."""
    return max(batch_size, -(-EVAL_BATCH_TOKENS // seq_len))


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


@torch.inference_mode()
def evaluate(model: Llama, corpus: Corpus, tokens: np.ndarray, seq_len: int, batch_size: int, device: torch.device,
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

    full = eval_targets(tokens, max_targets) // seq_len
    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    nats, preds, window_bytes, window_tokens, batches, n_preds = [], [], [], [], [], []
    try:
        for k, (x_np, y_np) in enumerate(eval_batches(tokens, seq_len, batch_size, max_targets, (ranks.rank, ranks.world))):
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
            spare = torch.from_numpy(np.asarray(tokens[: min(seq_len, len(tokens))], dtype=np.int64))[None].to(device)
            for _ in range(-(-eval_batch_count(tokens, seq_len, batch_size, max_targets) // ranks.world) - len(batches)):
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
