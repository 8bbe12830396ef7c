"""Every GPU target of actbench measured in one call, one line per target (run by scripts/gpu_check.sh).

    scripts/gpu_check.sh            # one GPU, at most 9 minutes (an H100 is what the goals are stated for)
    scripts/gpu_check.sh --cpu      # TRITON_INTERPRET=1, tiny sizes: the same lines, CPU/interpret values

Each line: `target | value | goal | met/not met/unmeasured`. Stages, each reusing a script or suite:
- kernels: suites/xielu_targets.yaml at 64M bf16 elements (compile and triton, xIELU only; inline
  executor, no Ray), read by scripts/xielu_targets.py: the forward as % of the copy measured in the
  same trial, fwd+bwd with alpha gradients against the 10 B/element floor and against torch.compile.
- fused MLP: scripts/fused_mlp_bench.py: a float64 check, then fwd+bwd of the 124M model's MLP,
  fused against unfused and against torch.compile, for xIELU and ReLU².
- 124M model: scripts/lm_throughput.py: MFU of ReLU² and of xIELU (each with the fused MLP where
  the previous stage found it faster, as `impl: auto` would choose), and xIELU's throughput cost.
- packed llm_small round: ReLU² and xIELU of suites/llm_small.yaml, tuning and one look of 4
  paired seeds at 2M tokens, its trials sharing one GPU (resources.gpus) through the embedded Ray:
  how many ran at once on one GPU, compile seconds cold and warm, the wall clock. In CPU mode the
  same round at tiny sizes (2 seeds, no torch.compile) on a Ray told the machine has one GPU.
A stage that fails or would start with too little of the time left leaves its lines unmeasured,
saying why; on SIGTERM (the wrapper's hard limit) the lines not yet printed are printed unmeasured.
In CPU mode no line is a GPU figure: each value says so and every status is `unmeasured`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

TARGETS = {  # key: (target, goal)
    "kernel_fwd": ("xIELU Triton forward, % of copy bandwidth", ">= 90%"),
    "kernel_floor": ("xIELU Triton fwd+bwd with alpha grads / 10 B-per-element floor", "<= 1.15x"),
    "kernel_compile": ("xIELU Triton fwd+bwd speed-up over torch.compile", ">= 2.2x"),
    "mlp_check": ("fused MLP vs float64, worst |error| / max |ref| (y, dx, dW, dalpha; bf16)", "<= 0.02"),
    "mlp_xielu_unfused": ("fused MLP fwd+bwd / unfused MLP, xIELU", "< 1.00x"),
    "mlp_xielu_compile": ("fused MLP fwd+bwd / torch.compile MLP, xIELU", "< 1.00x"),
    "mlp_relu2_unfused": ("fused MLP fwd+bwd / unfused MLP, ReLU²", "< 1.00x"),
    "mlp_relu2_compile": ("fused MLP fwd+bwd / torch.compile MLP, ReLU²", "< 1.00x"),
    "lm_mfu_relu2": ("124M model MFU, ReLU²", ">= 40%"),
    "lm_mfu_xielu": ("124M model MFU, xIELU", ">= 40%"),
    "lm_overhead": ("xIELU throughput cost vs ReLU², 124M model", "<= 3%"),
    "packed": ("packed llm_small round (trials sharing one GPU, warm compiles)", "completes, trials sharing a GPU"),
}
CPU_NOTE = " [CPU/interpret, not a GPU figure]"
NO_COMPILE = "CPU mode skips torch.compile (minutes of C++ compiling on a small CPU)"
BIG = 1 << 26  # elements of the kernel targets
Lines = dict[str, "tuple[str, bool] | str"]
"""A stage's lines: key -> (value, whether the goal is met), or the reason it is unmeasured."""


class OutOfTime(Exception):
    pass


class Report:
    """Prints each target's line once: measured, or unmeasured with the reason."""

    def __init__(self, cpu: bool):
        self.cpu = cpu
        self.printed: set[str] = set()

    def line(self, key: str, value: str, ok: bool | None = None) -> None:
        if key in self.printed:
            return
        self.printed.add(key)
        target, goal = TARGETS[key]
        if self.cpu and ok is not None:
            value += CPU_NOTE
        status = "unmeasured" if ok is None or self.cpu else ("met" if ok else "not met")
        print(f"{target} | {value} | {goal} | {status}", flush=True)

    def unmeasured(self, keys: list[str], why: str) -> None:
        for key in keys:
            self.line(key, f"unmeasured: {why}")


def kernels(cpu: bool, work: Path, budget_s: float) -> Lines:
    from actbench import api
    from actbench.results import load_rows
    from xielu_targets import checks

    size = 4096 if cpu else BIG
    overrides = [f"size={size}", f"resources.timeout_s={max(60, int(budget_s))}"]
    overrides += (["device=cpu", "resources.gpus=0", "width=1024", "impls=[eager,triton]", "rep_ms=1", "warmup_ms=1", "modes=[forward,full]"]
                  if cpu else ["impls=[compile,triton]"])
    api.run(ROOT / "suites" / "xielu_targets.yaml", out=work / "kernels", overrides=overrides, executor="inline", select="activation=xielu")
    rows = load_rows(str(work / "kernels"))
    found = {c.key: c for c in checks(rows, big=size)}
    out: Lines = {"kernel_compile": NO_COMPILE} if cpu else {}
    if c := found.get("forward_pct_copy"):
        out["kernel_fwd"] = (f"{c.value:.1f}% ({size:,} bf16 elements)", c.value >= 90)
    if c := found.get("full_over_floor"):
        out["kernel_floor"] = (f"{c.value:.2f}x ({size:,} bf16 elements)", c.value <= 1.15)
    if c := found.get("full_speedup_over_compile"):
        out["kernel_compile"] = (f"{c.value:.2f}x ({size:,} bf16 elements)", c.value >= 2.2)
    return out


def fused_mlp(cpu: bool) -> tuple[Lines, dict[str, str]]:
    """The lines, and the impl each activation's 124M model should run (fused where it was faster)."""
    import torch

    import fused_mlp_bench as fmb
    from actbench import activations

    device = torch.device("cpu" if cpu else "cuda")
    check_shape = dict(rows=40, d_model=24, d_ff=72) if cpu else dict(rows=300, d_model=256, d_ff=520)  # several tiles, ragged edges
    errs = {f"{act} {k}": v for act in fmb.ACTS for k, v in fmb.check(act, torch.bfloat16, device, **check_shape).items()}
    worst = max(errs, key=errs.__getitem__)
    out: Lines = {"mlp_check": (f"{errs[worst]:.1e} (worst: {worst})", errs[worst] <= 0.02)}
    impls = {}
    shape = dict(rows=32, d_model=16, d_ff=64) if cpu else fmb.GPT2_MLP
    for act in fmb.ACTS:
        ms = fmb.bench(act, device, **shape, compile_mlp=not cpu, repeats=2 if cpu else 5)
        unfused = activations.resolve_impl(act, "auto", device.type)
        out[f"mlp_{act}_unfused"] = (f"{ms['fused'] / ms['unfused']:.2f}x ({ms['fused']:.3f} vs {ms['unfused']:.3f} ms, unfused: {unfused})",
                                     ms["fused"] < ms["unfused"])
        out[f"mlp_{act}_compile"] = ((f"{ms['fused'] / ms['compile']:.2f}x ({ms['fused']:.3f} vs {ms['compile']:.3f} ms)", ms["fused"] < ms["compile"])
                                     if "compile" in ms else NO_COMPILE)
        impls[act] = "fused" if ms["fused"] < ms["unfused"] else unfused
    return out, impls


def lm(cpu: bool, impls: dict[str, str]) -> Lines:
    import lm_throughput

    runs = {act: lm_throughput.measure(act, impls[act], tiny=cpu, steps=3 if cpu else 30, warm=1 if cpu else 10, compile_model=not cpu)
            for act in ("relu2", "xielu")}
    out: Lines = {}
    for act, r in runs.items():
        speed = f"{r['tokens_per_s']:,.0f} tokens/s, impl {impls[act]}, {r['params'] / 1e6:.1f}M params"
        out[f"lm_mfu_{act}"] = ((f"{100 * r['mfu']:.1f}% ({speed})", r["mfu"] >= 0.4) if r["mfu"] is not None
                                else (f"n/a: no peak FLOP/s for this device ({speed})", False))
    cost = 100 * (1 - runs["xielu"]["tokens_per_s"] / runs["relu2"]["tokens_per_s"])
    out["lm_overhead"] = (f"{cost:.1f}%", cost <= 3)
    return out


PACKED_SETS = ["seeds=4", "tokens=2097152"]
"""One round of llm_small on one GPU: ReLU² and xIELU, the tuning and one look of 4 paired seeds at 2M tokens."""
PACKED_CPU_SETS = ["seeds=2", "d_model=32", "n_layers=1", "n_heads=2", "seq_len=32", "batch_size=4", "tokens=2048", "eval_every=100",
                   "eval_tokens=256", "churn_tokens=0", "final_eval=slice", "data.val_tokens=2048", "compile=false", "impl=eager", "device=cpu",
                   "resources.cpus=0.5"]
"""The same round at tiny sizes on the CPU, on a Ray told it has one GPU: the packing is real, the GPU is not."""


def most_at_once(records: list[Any]) -> int:
    """The most of these trials that ran at one time on one GPU (by their records' spans and GPU ids)."""
    events = sorted((t, step, str(r.env.get("ray_gpu_ids"))) for r in records if r.started_at and r.ended_at
                    for t, step in ((r.started_at, 1), (r.ended_at, -1)))
    running: dict[str, int] = {}
    most = 0
    for _, step, gpu in events:
        running[gpu] = running.get(gpu, 0) + step
        most = max(most, running[gpu])
    return most


def packed(cpu: bool, work: Path, budget_s: float) -> Lines:
    """llm_small's trials packed on one GPU (its resources.gpus share), run by the embedded Ray: how
    many ran at once on one GPU, their compiles (cold: a shape's first in the run; warm: a process
    that compiled it before) and the wall clock."""
    import statistics

    from rich.console import Console

    from actbench import api
    from actbench.suite import load_suite

    suite = ROOT / "suites" / "llm_small.yaml"
    gpus = load_suite(suite, check_paths=False).spec.resources.gpus
    if gpus >= 1:
        return {"packed": f"llm_small asks a whole GPU per trial (resources.gpus: {gpus:g}): nothing to pack"}
    try:
        import ray
    except ImportError:
        return {"packed": "Ray is not installed here, and packed trials share a GPU through Ray"}
    from actbench.runner.ray import RayExecutor

    if cpu:  # a Ray told this machine has one GPU (which Ray refuses while CUDA_VISIBLE_DEVICES hides all): the trials hold their shares of it, and run on the CPU
        hidden = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        try:
            ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        finally:
            if hidden is not None:
                os.environ["CUDA_VISIBLE_DEVICES"] = hidden
    sets = [*PACKED_SETS, *(PACKED_CPU_SETS if cpu else []), f"resources.timeout_s={max(60, int(budget_s))}"]
    t0 = time.perf_counter()
    executor = RayExecutor()
    try:
        result = api.run(suite, out=work / "llm_small", overrides=sets, executor=executor, select="activation=xielu or activation=relu2",
                         console=Console(quiet=True))
    finally:
        executor.shutdown()
        if cpu:
            ray.shutdown()
    wall = time.perf_counter() - t0
    lm = [r for r in result.final_records if r.kind == "lm"]
    at_once = most_at_once(lm)
    shares = sorted({r.env.get("gpu_share") for r in lm if r.env.get("gpu_share")})

    def compiles(warm: bool) -> str:
        found = [c for r in lm if (c := r.metric("compile_s")) is not None and bool(r.metrics.get("shape_warm")) == warm]
        return f"{statistics.median(found):.1f} s x {len(found)}" if found else "none"

    made = (f"compiles cold {compiles(False)}, warm {compiles(True)}" if any(r.metric("compile_s") is not None for r in lm)
            else "no compiles (compile=false, impl=eager)")
    value = (f"{len(lm)} lm trial(s) in {wall:.0f} s, exit {result.exit_code}, up to {at_once} at once on one GPU "
             f"(share {', '.join(f'{s:g}' for s in shares) or 'none'}), {made}")
    return {"packed": (value, result.exit_code == 0 and at_once > 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU, Triton interpreted")
    parser.add_argument("--budget-s", type=float, default=540.0, help="seconds for the whole check")
    args = parser.parse_args()
    deadline = time.perf_counter() + args.budget_s
    report = Report(args.cpu)

    def on_term(signum: int, frame: Any) -> None:
        raise OutOfTime(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    mode = "CPU, Triton interpreted: no value below is a GPU figure" if args.cpu else "GPU"
    print(f"actbench GPU check ({mode}); target | value | goal | met/not met/unmeasured", flush=True)
    impls = {"relu2": "eager", "xielu": "eager" if args.cpu else "triton"}

    def stage(keys: list[str], need_s: float, fn: Callable[[], Lines]) -> None:
        left = deadline - time.perf_counter()
        if left < need_s:
            report.unmeasured(keys, f"not started, {left:.0f} s of the time left (needs about {need_s:.0f} s)")
            return
        try:
            for key, got in fn().items():
                if isinstance(got, str):
                    report.unmeasured([key], got)
                else:
                    report.line(key, *got)
            report.unmeasured(keys, "the stage gave no figure for it")
        except OutOfTime:
            raise
        except Exception as e:  # noqa: BLE001 - one stage failing leaves the others to run
            report.unmeasured(keys, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def mlp_stage() -> Lines:
        lines, chosen = fused_mlp(args.cpu)
        impls.update(chosen)
        return lines

    try:
        with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
            work = Path(tmp)
            stage(["mlp_check", "mlp_xielu_unfused", "mlp_xielu_compile", "mlp_relu2_unfused", "mlp_relu2_compile"], 60 * (not args.cpu), mlp_stage)
            stage(["kernel_fwd", "kernel_floor", "kernel_compile"], 90 * (not args.cpu),
                  lambda: kernels(args.cpu, work, deadline - time.perf_counter()))
            stage(["lm_mfu_relu2", "lm_mfu_xielu", "lm_overhead"], 180 * (not args.cpu), lambda: lm(args.cpu, impls))
            stage(["packed"], 60 * (not args.cpu), lambda: packed(args.cpu, work, deadline - time.perf_counter()))
    except OutOfTime as e:
        report.unmeasured(list(TARGETS), f"out of time ({e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
