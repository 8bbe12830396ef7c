"""Synthetic results with known answers: lm records (with per-chunk validation losses) and
kernel records, written through the real ResultStore."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from actbench.core.record import Record
from actbench.results.store import ResultStore

LM_CONFIG = {"d_model": 64, "n_layers": 2, "n_heads": 4, "seq_len": 64, "tokens": 20480, "reference": "relu2",
             "reference_d_ff": 384, "impl": "eager", "eval_every": 10, "churn_tokens": 64, "device": "cpu", "compile": False}
PARAMS = {"relu2": 120_000, "xielu": 120_004, "swiglu": 120_000, "cube": 120_000, "wide": 130_000}


def lm_record(activation: str, seed: int, bpb: float, *, lr: float = 3e-3, suite: str = "s", run_id: str = "r1",
              params: int | None = None, status: str = "ok", **config: Any) -> Record:
    cfg = {**LM_CONFIG, "activation": activation, "seed": seed, "lr": lr, "d_ff": 384, **config}
    p = params or PARAMS.get(activation, 120_000)
    tid = f"{suite}-{activation}-{seed}-{lr}-" + "-".join(f"{k}{v}" for k, v in sorted(config.items()))
    return Record(trial_id=tid, attempt=1, kind="lm", suite=suite, status=status, run_id=run_id, config=cfg,
                  env={"gpu_name": None, "git_commit": "abc123"}, ended_at=1.7e9,
                  metrics={"val_bpb": bpb, "val_loss": bpb * math.log(2) * 2.3, "params": p, "flops_per_token": 6 * p,
                           "tokens_per_s": 1000.0, "d_ff": 384} if status == "ok" else {})


def chunks(rng: np.random.Generator, difficulty: np.ndarray, bytes_: np.ndarray, offset: float, noise: float = 0.02) -> dict[str, list]:
    """eval_chunks whose bits per byte are `difficulty + offset` plus per-chunk noise."""
    bpb = difficulty + offset + rng.normal(0, noise, len(bytes_))
    return {"nats": (bpb * bytes_ * math.log(2)).tolist(), "bytes": bytes_.tolist(), "tokens": (bytes_ // 2).tolist()}


def write_lm(root: Path, effects: dict[str, float], seeds: int, *, seed_sd: float = 0.05, noise_sd: float = 0.01, n_chunks: int = 40,
             rng_seed: int = 0, **kw: Any) -> ResultStore:
    """lm records of activations with the given true effects (bits per byte) on paired seeds:
    a shared seed effect, an independent noise per trial, and per-chunk losses whose bpb is
    exactly the record's val_bpb."""
    rng = np.random.default_rng(rng_seed)
    store = ResultStore(root)
    difficulty = rng.normal(1.5, 0.2, n_chunks)
    bytes_ = rng.integers(1000, 3000, n_chunks).astype(float)
    for s in range(seeds):
        u = rng.normal(0, seed_sd)
        for act, effect in effects.items():
            c = chunks(rng, difficulty, bytes_, u + effect + rng.normal(0, noise_sd))
            rec = lm_record(act, s, sum(c["nats"]) / math.log(2) / sum(c["bytes"]), **kw)
            store.append(rec, series={"eval_chunks": c, "val_argmax": rng.integers(0, 4, 64).tolist()})
    return store


def kernel_record(tid: str, activation: str, rows: list[tuple[str, str, float, float]], *, copy: tuple[float, float] = (0.1, 0.0),
                  gpu: str = "NVIDIA H100 80GB HBM3", run_id: str = "r1", seed: int = 0, size: int = 1 << 20) -> Record:
    """A kernel record: rows (impl, mode, p50 ms, relative p20-p80 spread) and a copy row."""
    def row(impl: str, mode: str, p50: float, spread: float) -> dict[str, Any]:
        copy_gbps = 2e-3 * size / copy[0]
        gbps = 2e-3 * size / p50
        return {"impl": impl, "mode": mode, "ms_p20": p50 * (1 - spread / 2), "ms_p50": p50, "ms_p80": p50 * (1 + spread / 2),
                "gbps": gbps, "pct_copy": 100 * gbps / copy_gbps, "gated": False, "device": "cuda"}
    return Record(trial_id=tid, attempt=1, kind="kernel", status="ok", suite="k", run_id=run_id, metrics={},
                  config={"activation": activation, "dtype": "bfloat16", "size": size, "width": 1024, "seed": seed},
                  rows=[row("copy", "copy", *copy), *(row(*r) for r in rows)], env={"gpu_name": gpu, "git_commit": "abc123"},
                  ended_at=1.7e9)
