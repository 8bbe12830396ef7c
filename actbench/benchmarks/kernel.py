"""The `kernel` kind: forward, backward and forward+backward time of one activation per impl.

CUDA timings use triton.testing.do_bench (L2 flushed between runs, median of many); CPU timings
use torch.utils.benchmark. Quantiles p20/p50/p80. Achieved GB/s counts the minimal bytes moved
(each input read once, each output written once: forward x + y; backward x + g + dx), and is
reported as a percentage of a device copy of the input measured in the same trial.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Literal

import numpy as np
import torch
from pydantic import Field

from actbench.benchmarks import TrialContext, TrialOutput, register_kind
from actbench.benchmarks.device import pick_device
from actbench.benchmarks.elementwise import ElementwiseConfig, available_impls, build_module, make_inputs

MODES = ("forward", "backward", "full")


class KernelConfig(ElementwiseConfig):
    modes: list[Literal["forward", "backward", "full"]] = Field(default_factory=lambda: list(MODES), min_length=1)
    warmup_ms: float = Field(25.0, gt=0, le=60_000)
    rep_ms: float = Field(100.0, gt=0, le=60_000)


def time_ms(fn: Callable[[], Any], device: torch.device, cfg: KernelConfig, reset: list[torch.Tensor]) -> tuple[float, float, float]:
    """p20, p50, p80 of fn() in milliseconds; `reset` tensors get .grad = None before each call."""
    if device.type == "cuda":
        import triton.testing

        q = triton.testing.do_bench(fn, warmup=cfg.warmup_ms, rep=cfg.rep_ms, quantiles=[0.2, 0.5, 0.8], grad_to_none=reset)
        return float(q[0]), float(q[1]), float(q[2])
    from torch.utils.benchmark import Timer

    def call() -> None:
        for t in reset:
            t.grad = None
        fn()

    m = Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=cfg.rep_ms / 1e3)
    q = np.quantile(np.asarray(m.times) * 1e3, [0.2, 0.5, 0.8])
    return float(q[0]), float(q[1]), float(q[2])


@register_kind("kernel", KernelConfig)
def run(cfg: KernelConfig, ctx: TrialContext) -> TrialOutput:
    device = pick_device(cfg.device)
    x, g, gated = make_inputs(cfg, device)
    es = x.element_size()
    n_in, n_out = x.numel(), g.numel()
    bytes_moved = {"forward": (n_in + n_out) * es, "backward": (2 * n_in + n_out) * es}
    bytes_moved["full"] = bytes_moved["forward"] + bytes_moved["backward"]

    src, dst = x.detach().clone(), torch.empty_like(x)
    copy = time_ms(lambda: dst.copy_(src), device, cfg, [])
    copy_gbps = 2 * n_in * es / (copy[1] * 1e-3) / 1e9
    common = {"gated": gated, "input_elems": n_in, "output_elems": n_out, "device": device.type}
    rows: list[dict[str, Any]] = [{"impl": "copy", "mode": "copy", "ms_p20": copy[0], "ms_p50": copy[1], "ms_p80": copy[2],
                                   "bytes": 2 * n_in * es, "gbps": copy_gbps, "pct_copy": 100.0, **common}]
    metrics: dict[str, Any] = {"copy.gbps": copy_gbps, "copy.ms_p50": copy[1]}
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
            p20, p50, p80 = time_ms(fns[mode], device, cfg, reset)
            gbps = bytes_moved[mode] / (p50 * 1e-3) / 1e9
            rows.append({"impl": impl, "mode": mode, "ms_p20": p20, "ms_p50": p50, "ms_p80": p80,
                         "bytes": bytes_moved[mode], "gbps": gbps, "pct_copy": 100.0 * gbps / copy_gbps, **common})
            metrics[f"{impl}.{mode}.ms_p50"] = p50
            metrics[f"{impl}.{mode}.pct_copy"] = 100.0 * gbps / copy_gbps
        del y_keep
    return TrialOutput(metrics=metrics, rows=rows, note=note)
