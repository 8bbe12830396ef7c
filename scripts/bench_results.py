"""Time and peak memory of reading results: `results.load`, `compare`, `regress` and `report` on
synthetic results of 1k / 10k / 100k records of mixed kinds.

    python scripts/bench_results.py                 # 1000 10000 100000 records, every step
    python scripts/bench_results.py --sizes 1000 --keep /tmp/bench
    python scripts/bench_results.py --sizes 100000 --keep /work/bench/r100k --reuse   # the records kept there

The records have the shapes the kinds write: kernel records (70%: a copy row and 3 impls x 3
modes), memory records (23.5%: 3 impls), lm records (6.5%, as in the issue that asked for this:
paired seeds over 8 activations x 4 setups, each with a series file holding train/val curves,
alphas, 64 validation chunks and 8,192 argmax predictions); 2% of trials failed. They are spread
over results folders of at most 10,000 records. Every step runs in a fresh process, so its peak
RSS is its own (including the Python, pandas and scipy imports, ~150 MB); times exclude those
imports; the CPU seconds include any child process's. The steps share a cache folder of their own
(XDG_CACHE_HOME: `<keep>/cache`, emptied first, or a temporary one), so `index` builds the
columnar index (`actbench.results.index`) from the JSON and every later step reads it; `prefix`
is what checking that the index still covers trials.jsonl costs (the SHA-256 of every
trials.jsonl). The first compare or report also parses every series file it reads into the series
cache (`actbench.results.seriescache`), as the first after a run does for its new lm trials, and
later ones read that: `--steps index compare compare` times the first and a later one. `regress` compares the whole root with its first kernel folder as the baseline.
cli-compare and cli-report run the commands as a user does (`actbench compare relu2 xielu swiglu
--results ROOT`, `actbench report ROOT`): imports and terminal output included; their "child MB" is
the command's own peak. On a shared machine the wall time grows with the load, the CPU time much
less, and both with the speed the machine gives at the time: the fixed pure-Python loop timed
before and after ("machine speed") shows that speed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


ACTIVATIONS = ["relu2", "xielu", "swiglu", "gelu", "silu", "mish", "golu", "relu"]
COMPARED = ["relu2", "xielu", "swiglu"]
ENV = {"hostname": "bench", "platform": "Linux", "python": "3.11", "cpu_count": 16, "torch": "2.13.0", "actbench": "0.1.0",
       "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_count": 8, "cuda": "12.8", "driver": "570.1", "git_commit": "0" * 40,
       "triton": "3.5.0", "ray": "2.60.0"}
STEPS = {
    "index": "from actbench.results.frames import load_tables\nt, r = load_tables(ROOT)\nprint(len(t), len(r))",
    "prefix": "import hashlib\nfor p in sorted(ROOT.glob('*/trials.jsonl')):\n    h = hashlib.file_digest(open(p, 'rb'), 'sha256')\n"
              "print(sum(p.stat().st_size for p in ROOT.glob('*/trials.jsonl')) >> 20, 'MiB')",
    "load": "from actbench.results.frames import load_tables\nt, r = load_tables(ROOT)\nprint(len(t), len(r))",
    "compare": f"from actbench.report.compare import compare_results\nc = compare_results({COMPARED!r}, ROOT)\n"
               "print(*(len(f) for f in c.frames.values()))",
    "regress": "from actbench.api import regress\nr = regress(ROOT, ROOT / 'kernel_0')\nprint(len(r.rows), 'rows')",
    "report": "from actbench.report.html import build_report\nr = build_report(ROOT, OUT)\nprint(len(r['images']), len(r['exports']))",
    # the commands as a user runs them: imports and printing to the terminal included
    "cli-compare": "import subprocess, sys\nr = subprocess.run([sys.executable, '-m', 'actbench', 'compare', *" + repr(COMPARED) + ", "
                   "'--results', str(ROOT)], capture_output=True, text=True)\nprint(r.returncode, len(r.stdout.splitlines()), 'lines')",
    "cli-report": "import subprocess, sys\nr = subprocess.run([sys.executable, '-m', 'actbench', 'report', str(ROOT), '--out', str(OUT)], "
                  "capture_output=True, text=True)\nprint(r.returncode, len(r.stdout.splitlines()), 'lines')",
}


def _kernel(i: int, rng: np.random.Generator) -> dict:
    act, dtype, size = ACTIVATIONS[i % 8], ("float32", "bfloat16", "float16")[(i // 8) % 3], 2 ** (16 + (i // 24) % 10)
    copy = 1e-3 * size / 2e6
    rows = [{"impl": "copy", "mode": "copy", "ms_p20": copy * 0.98, "ms_p50": copy, "ms_p80": copy * 1.02, "bytes": 4 * size,
             "gbps": 2000.0, "pct_copy": 100.0, "gated": False, "input_elems": size, "output_elems": size, "device": "cuda"}]
    metrics = {"copy.gbps": 2000.0, "copy.ms_p50": copy}
    for impl in ("eager", "compile", "triton"):
        for mode in ("forward", "backward", "full"):
            p50 = copy * rng.uniform(1.0, 3.0)
            rows.append({"impl": impl, "mode": mode, "ms_p20": p50 * 0.97, "ms_p50": p50, "ms_p80": p50 * 1.03, "bytes": 4 * size,
                         "gbps": 2000.0 * copy / p50, "pct_copy": 100 * copy / p50, "gated": act == "swiglu", "input_elems": size,
                         "output_elems": size, "device": "cuda"})
            metrics[f"{impl}.{mode}.ms_p50"] = p50
            metrics[f"{impl}.{mode}.pct_copy"] = 100 * copy / p50
    cfg = {"activation": act, "impls": ["eager", "compile", "triton"], "dtype": dtype, "size": size, "width": 4096,
           "modes": ["forward", "backward", "full"], "warmup_ms": 25.0, "rep_ms": 100.0, "seed": i // 240, "device": "auto"}
    return {"kind": "kernel", "suite": "kernels", "config": cfg, "metrics": metrics, "rows": rows}


def _memory(i: int, rng: np.random.Generator) -> dict:
    act, size = ACTIVATIONS[i % 8], 2 ** (16 + (i // 8) % 10)
    rows = [{"impl": impl, "peak_fwd_mb": rng.uniform(1, 9), "peak_fwd_bwd_mb": rng.uniform(2, 19), "saved_bytes_per_elem": 2.0,
             "gated": act == "swiglu", "device": "cuda"} for impl in ("eager", "compile", "triton")]
    cfg = {"activation": act, "impls": ["eager", "compile", "triton"], "dtype": "bfloat16", "size": size, "width": 4096, "seed": i // 80}
    return {"kind": "memory", "suite": "memory", "config": cfg, "metrics": {"eager.saved_bytes_per_elem": 2.0}, "rows": rows}


def _lm(i: int, rng: np.random.Generator, folder: Path) -> dict:
    act, setup, seed = ACTIVATIONS[i % 8], (i // 8) % 4, i // 32
    lr, d_model = (1e-3, 3e-3)[setup % 2], (64, 128)[setup // 2]
    cfg = {"activation": act, "impl": "auto", "data": {"source": "shakespeare", "tokenizer": "byte"}, "d_model": d_model, "n_layers": 3,
           "n_heads": 4, "seq_len": 128, "d_ff": 768 if act != "swiglu" else 512, "reference": "relu2", "reference_d_ff": 768,
           "ff_multiple": 16, "batch_size": 16, "tokens": 614400, "lr": lr, "schedule": "wsd", "eval_every": 100,
           "eval_tokens": 32768, "churn_tokens": 8192, "checkpoint_every": 100, "compile": False, "device": "auto", "seed": seed}
    bytes_ = rng.integers(1000, 3000, 64).astype(float)
    bpb = 1.6 + 0.01 * (i % 8) + rng.normal(0, 0.02)
    nats = (bpb + rng.normal(0, 0.05, 64)) * bytes_ * math.log(2)
    steps = list(range(300))
    series = {"train": {"step": steps, "loss": rng.uniform(1, 3, 300).tolist(), "lr": [lr] * 300, "tokens": [s * 2048 for s in steps],
                        "time_s": [s * 0.05 for s in steps]},
              "val": {"step": [100, 200, 300], "tokens": [204800, 409600, 614400], "time_s": [5.0, 10.0, 15.0],
                      "loss": [2.0, 1.5, bpb * 0.69], "bpb": [2.9, 2.1, bpb]},
              "alphas": {"step": [0, 0, 0, 300, 300, 300], "layer": [0, 1, 2, 0, 1, 2], "alpha_p": [0.8] * 6, "alpha_n": [0.8] * 6},
              "eval_chunks": {"nats": nats.tolist(), "bytes": bytes_.tolist(), "tokens": bytes_.tolist()},
              "val_argmax": rng.integers(0, 256, 8192).tolist()}
    tid = f"lm{i:08d}"
    (folder / "series").mkdir(exist_ok=True)
    (folder / "series" / f"{tid}.json").write_text(json.dumps(series))
    metrics = {"val_loss": bpb * 0.69, "val_bpb": float(nats.sum() / math.log(2) / bytes_.sum()), "val_ppl": 2.0, "best_val_bpb": bpb,
               "val_tokens_scored": 250000, "val_bytes_scored": 250000, "eval_scope": "full", "train_loss": 1.1, "tokens_per_s": 15000.0,
               "mfu": None, "params": 800000, "mlp_params": 600000, "flops_per_token": 4.8e6, "d_ff": cfg["d_ff"], "steps": 300,
               "tokens": 614400, "alpha_p_mean": 0.8, "alpha_n_mean": 0.8, "impl_used": "eager"}
    return {"trial_id": tid, "kind": "lm", "suite": "llm", "config": cfg, "metrics": metrics, "rows": [], "series_file": f"series/{tid}.json"}


def generate(root: Path, n: int, seed: int = 0) -> None:
    """n records: 70% kernel, 23.5% memory, 6.5% lm, 2% of them failed, <= 10,000 per folder."""
    rng = np.random.default_rng(seed)
    counts = {"kernel": int(n * 0.70), "lm": int(n * 0.065)}
    counts["memory"] = n - counts["kernel"] - counts["lm"]
    makers = {"kernel": _kernel, "memory": _memory}
    for kind, count in counts.items():
        for start in range(0, count, 10_000):
            folder = root / f"{kind}_{start // 10_000}"
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "trials.jsonl", "w") as f:
                for i in range(start, min(count, start + 10_000)):
                    rec = _lm(i, rng, folder) if kind == "lm" else makers[kind](i, rng)
                    rec = {"trial_id": rec.pop("trial_id", f"{kind}{i:08d}"), "attempt": 1, "run_id": f"run{start // 10_000}", **rec,
                           "status": "ok", "error": None, "note": "", "started_at": 1.7e9 + i, "ended_at": 1.7e9 + i + 1,
                           "duration_s": 1.0, "executor": "ray", "env": ENV}
                    if rng.random() < 0.02:
                        rec.update(status="failed", metrics={}, rows=[], error={"type": "RuntimeError", "message": "injected"})
                    f.write(json.dumps(rec) + "\n")


def measure(step: str, root: Path, out: Path, cache: Path) -> tuple[float, float, float, float, str]:
    """(wall seconds, CPU seconds, peak RSS in MB, the largest peak RSS of its child processes
    in MB (0: none), what it printed) of one step in a fresh process (imports excluded from the
    times, included in the memory; CPU seconds its own and its children's), with `cache` as its
    XDG_CACHE_HOME."""
    code = (f"import resource, time\nfrom pathlib import Path\nROOT, OUT = Path({str(root)!r}), Path({str(out)!r})\n"
            "import pandas, scipy.stats, actbench.results, actbench.report.compare\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\nc0, t0 = u.ru_utime + u.ru_stime, time.perf_counter()\n"
            f"{STEPS[step]}\nu = resource.getrusage(resource.RUSAGE_SELF)\n"
            "w = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
            "print('BENCH', time.perf_counter() - t0, u.ru_utime + u.ru_stime - c0 + w.ru_utime + w.ru_stime, u.ru_maxrss / 1024, "
            "w.ru_maxrss / 1024)")
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    if r.returncode:
        raise SystemExit(f"{step} failed:\n{r.stderr}")
    lines = r.stdout.strip().splitlines()
    _, seconds, cpu, rss, worker_rss = lines[-1].split()
    return float(seconds), float(cpu), float(rss), float(worker_rss), " ".join(lines[:-1])


def machine_speed() -> float:
    """Seconds of a fixed pure-Python loop (10M additions): how fast this machine runs right now."""
    t0, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    ap.add_argument("--keep", type=Path, help="Generate into this folder and keep it (default: a temporary folder).")
    ap.add_argument("--reuse", action="store_true", help="Read the records already in --keep instead of generating them again.")
    args = ap.parse_args()
    if args.reuse and not args.keep:
        ap.error("--reuse reads the records kept in --keep: name it")
    print(f"machine speed: {machine_speed():.2f} s")
    print(f"{'records':>8} {'step':>11} {'wall s':>8} {'CPU s':>8} {'peak MB':>8} {'child MB':>9}  output")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = (args.keep or Path(tmp)) / f"n{n}"
            cache = (args.keep or Path(tmp)) / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            t0, fresh = time.perf_counter(), not (args.reuse and any(root.glob("*/trials.jsonl")))
            if fresh:
                generate(root, n)
            print(f"{n:>8} {'generate' if fresh else 'reuse':>11} {time.perf_counter() - t0:>8.1f} {'':>8} {'':>8}  "
                  f"{sum(1 for _ in root.glob('*/trials.jsonl'))} folders", flush=True)
            for step in args.steps:
                seconds, cpu, rss, worker_rss, printed = measure(step, root, root.parent / f"report{n}", cache)
                print(f"{n:>8} {step:>11} {seconds:>8.2f} {cpu:>8.2f} {rss:>8.0f} {worker_rss:>9.0f}  {printed}", flush=True)
    print(f"machine speed: {machine_speed():.2f} s")


if __name__ == "__main__":
    main()
