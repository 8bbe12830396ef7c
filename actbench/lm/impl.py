"""Which implementation of its activation an lm trial runs when its config says `impl: auto`: on a
GPU the fused Triton kernel where one exists (eager otherwise); on a CPU eager or torch.compile,
whichever a timing at the trial's shape finds faster once compile time is spread over the
trial's calls. A suite decides this once per activation and shape, before its trials run (the
`impl` kind), so every seed of a comparison runs the same implementation."""

from __future__ import annotations

import functools
import time

import numpy as np
import torch

from actbench import activations
from actbench.core.trial import TrialTimeout


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
def fastest_cpu_impl(activation: str, rows: int, width: int, calls_per_trial: int, threads: int) -> tuple[str, dict[str, float]]:
    """`eager` or `compile` for `activation` on this CPU, timed on a (rows, width) input, and the
    timings: compile wins when its time per call plus its compile time spread over the trial's
    `calls_per_trial` beats eager (eager when compiling fails, e.g. without a C++ compiler)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, width, generator=gen).requires_grad_()
    eager_module = activations.build(activation, impl="eager")
    grad = torch.randn(eager_module(x).shape, generator=gen)  # gated: half the input's width
    eager = _time_per_call(eager_module, x, grad)
    timings = {"eager_ms": eager * 1e3}
    try:
        t0 = time.perf_counter()
        module = activations.build(activation, impl="compile")
        module(x).backward(grad)  # compiles
        compile_s = time.perf_counter() - t0
        compiled = _time_per_call(module, x, grad)
    except TrialTimeout:  # the trial ran out of time while timing: it ends, as anywhere else
        raise
    except Exception:  # noqa: BLE001 - no working compiler here: eager it is
        return "eager", timings
    timings.update(compile_ms=compiled * 1e3, compile_s=compile_s)
    return ("compile" if compiled + compile_s / max(calls_per_trial, 1) < eager else "eager"), timings


def choose_impl(activation: str, impl: str, device: torch.device, rows: int, width: int, calls: int,
                compiled_model: bool = False) -> tuple[str, dict[str, float]]:
    """The implementation a trial runs (and the timings that chose it, on CPU): `impl` itself
    unless it is `auto`; `auto` is resolved by the registry on a GPU or when the whole model is
    compiled (torch.compile sees through the activation), by `fastest_cpu_impl` otherwise."""
    if impl != "auto" or device.type != "cpu" or compiled_model:
        return activations.resolve_impl(activation, impl, device.type), {}
    return fastest_cpu_impl(activation, rows, width, calls, torch.get_num_threads())
