"""Timing a kernel trial: `warmup_ms` of calls, then repeats for at least `rep_ms` (and at least
MIN_REPEATS), p20 / p50 / p80 of the per-call time (CUDA: triton.testing.do_bench with the L2
flushed, timing replays of the call captured in a CUDA graph where it can be captured; CPU: timeit blocks of >= CPU_BLOCK_MS at the trial's thread count), GB/s of the minimal
bytes moved and % of a device copy timed in the same trial."""

from __future__ import annotations

import math
import time
import timeit
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.benchmark.utils.common import set_torch_threads

from actbench.benchmarks.inputs import available_impls, build_module, make_inputs
from actbench.core.device import pick_device
from actbench.core.trial import NOISY_SPREAD, TrialContext, TrialOutput

MIN_REPEATS = 10
CPU_BLOCK_MS = 1.0


@dataclass(frozen=True)
class Timing:
    """Per-call time quantiles (ms) over `repeats` repeats of `calls_per_repeat` calls each."""

    p20: float
    p50: float
    p80: float
    repeats: int
    calls_per_repeat: int
    graphed: bool = False  # CUDA: replays of the call captured in a CUDA graph (device time alone)

    @classmethod
    def of(cls, per_call_ms: list[float] | np.ndarray, calls_per_repeat: int, graphed: bool = False) -> "Timing":
        q = np.quantile(np.asarray(per_call_ms, dtype=float), [0.2, 0.5, 0.8])
        return cls(float(q[0]), float(q[1]), float(q[2]), len(per_call_ms), calls_per_repeat, graphed)

    @property
    def spread(self) -> float:
        """(p80 - p20) / p50."""
        return (self.p80 - self.p20) / self.p50 if self.p50 > 0 else math.inf

    @property
    def noisy(self) -> bool:
        return self.repeats < MIN_REPEATS or self.spread > NOISY_SPREAD

    def row(self) -> dict[str, Any]:
        return {"ms_p20": self.p20, "ms_p50": self.p50, "ms_p80": self.p80, "repeats": self.repeats,
                "calls_per_repeat": self.calls_per_repeat, "noisy": self.noisy, "graphed": self.graphed}


def time_ms(fn: Callable[[], Any], device: torch.device, cfg: Any, reset: list[torch.Tensor], threads: int) -> Timing:
    """Timing of fn(); `reset` tensors get .grad = None before each call."""
    if device.type == "cuda":
        import triton.testing

        replay = graphed(fn, reset)
        call, reset = (replay, []) if replay else (fn, reset)
        times = triton.testing.do_bench(call, warmup=cfg.warmup_ms, rep=cfg.rep_ms, grad_to_none=reset, return_mode="all")
        while len(times) < MIN_REPEATS:  # a call longer than rep_ms / MIN_REPEATS
            times += triton.testing.do_bench(call, warmup=0, rep=cfg.rep_ms, grad_to_none=reset, return_mode="all")
        return Timing.of(times, 1, graphed=replay is not None)

    def call() -> None:
        for t in reset:
            t.grad = None
        fn()

    timer = timeit.Timer(call)  # the stdlib's: perf_counter, gc off while timing
    with set_torch_threads(threads):
        per_repeat = max(1, math.ceil(CPU_BLOCK_MS / warm_up(timer, cfg.warmup_ms)))
        times: list[float] = []
        measured_end = time.perf_counter() + cfg.rep_ms / 1e3
        while len(times) < MIN_REPEATS or time.perf_counter() < measured_end:
            times.append(timer.timeit(per_repeat) / per_repeat * 1e3)
    return Timing.of(times, per_repeat)


def graphed(fn: Callable[[], Any], reset: list[torch.Tensor]) -> Callable[[], Any] | None:
    """fn captured in a CUDA graph on the current stream, a side stream that ran the inputs' forward
    too (autograd runs backward on its forward's stream), after warm-up calls, with grads reset
    first so that the graph writes them afresh each replay: its replay, or None where fn cannot be captured. Timing
    replays measures the device's time alone: launching a custom op or the autograd engine from
    Python costs tens of microseconds a call, which the GPU would otherwise wait for."""
    stream = torch.cuda.current_stream()  # a side stream (`run_kernel`'s), where backward runs too
    try:
        for _ in range(3):
            for t in reset:
                t.grad = None
            fn()
        for t in reset:
            t.grad = None
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            fn()
    except RuntimeError:  # not capturable (a host sync inside, say): time the plain calls
        torch.cuda.synchronize()
        return None
    return graph.replay


def warm_up(timer: timeit.Timer, warmup_ms: float) -> float:
    """Run timer's statement until warmup_ms have passed (at least once); its mean time per call
    in ms."""
    calls, spent = 0, 0.0
    end = time.perf_counter() + warmup_ms / 1e3
    while calls == 0 or time.perf_counter() < end:
        spent += timer.timeit(1)
        calls += 1
    return spent / calls * 1e3


def run_kernel(cfg: Any, ctx: TrialContext) -> TrialOutput:
    """One kernel trial (`cfg`: a `actbench.benchmarks.kernel.KernelConfig`)."""
    device = pick_device(cfg.device)
    if device.type != "cuda":
        return _run_kernel(cfg, device)
    with torch.cuda.device(device), torch.cuda.stream(torch.cuda.Stream(device)):  # graphs are captured on a side stream
        return _run_kernel(cfg, device)


def _run_kernel(cfg: Any, device: torch.device) -> TrialOutput:
    threads = torch.get_num_threads()
    x, g, gated = make_inputs(cfg, device)
    es = x.element_size()
    n_in, n_out = x.numel(), g.numel()
    bytes_moved = {"forward": (n_in + n_out) * es, "backward": (2 * n_in + n_out) * es}
    bytes_moved["full"] = bytes_moved["forward"] + bytes_moved["backward"]
    timed = partial(time_ms, device=device, cfg=cfg, threads=threads)

    src, dst = x.detach().clone(), torch.empty_like(x)
    copy = timed(lambda: dst.copy_(src), reset=[])
    copy_gbps = 2 * n_in * es / (copy.p50 * 1e-3) / 1e9
    common = {"gated": gated, "input_elems": n_in, "output_elems": n_out, "device": device.type, "threads": threads}
    rows: list[dict[str, Any]] = [{"impl": "copy", "mode": "copy", **copy.row(), "bytes": 2 * n_in * es, "gbps": copy_gbps,
                                   "pct_copy": 100.0, **common}]
    metrics: dict[str, Any] = {"copy.gbps": copy_gbps, "copy.ms_p50": copy.p50, "threads": threads}
    impls, note = available_impls(cfg)
    for impl in impls:
        module = build_module(cfg, impl, device, x, g)
        reset = [x, *module.parameters()]
        y_keep = module(x)
        fns = {
            "forward": lambda: module(x),
            "backward": partial(y_keep.backward, g, retain_graph=True),
            "full": lambda: module(x).backward(g),
        }
        for mode in cfg.modes:
            t = timed(fns[mode], reset=reset)
            gbps = bytes_moved[mode] / (t.p50 * 1e-3) / 1e9
            rows.append({"impl": impl, "mode": mode, **t.row(), "bytes": bytes_moved[mode], "gbps": gbps,
                         "pct_copy": 100.0 * gbps / copy_gbps, **common})
            metrics[f"{impl}.{mode}.ms_p50"] = t.p50
            metrics[f"{impl}.{mode}.pct_copy"] = 100.0 * gbps / copy_gbps
        del y_keep
    noisy = sum(r["noisy"] for r in rows)
    if noisy:
        note = "; ".join(filter(None, [note, f"{noisy} of {len(rows)} rows noisy ((p80 - p20) / p50 > {NOISY_SPREAD} or < {MIN_REPEATS} repeats)"]))
    return TrialOutput(metrics=metrics, rows=rows, note=note)
