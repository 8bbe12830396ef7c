"""Which implementation of its activation an lm trial runs when its config says `impl: auto`: on a
GPU the registry's choice (the elementwise Triton kernel where one exists, eager otherwise), or
the fused MLP (`actbench.kernels.fused_mlp`) where the activation has one and a timing of the
MLP's forward and backward at the trial's shape finds it faster; on a CPU eager or
torch.compile, whichever a timing at the trial's shape finds faster once compile time is spread
over the trial's calls (never the fused MLP: its kernels only run interpreted there). A suite
decides this once per activation and shape, before its trials run (the `impl` kind), so every
seed of a comparison runs the same implementation."""

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


@functools.cache
def faster_cuda_mlp(activation: str, unfused: str, rows: int, d_model: int, d_ff: int, compiled_model: bool) -> tuple[str, dict[str, float]]:
    """`fused` or `unfused` for `activation`'s MLP on this GPU, and the timings: the median of
    forward and backward (triton.testing.do_bench) on a (rows, d_model) input as training runs it
    (fp32 weights, bf16 autocast; each MLP under torch.compile when the model is compiled).
    `unfused` when the fused MLP fails to run here."""
    import triton.testing

    from actbench.lm.model import MLP
    from actbench.lm.shapes import ModelConfig

    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, d_model, device="cuda", generator=gen).requires_grad_()
    grad = torch.randn(rows, d_model, device="cuda", generator=gen, dtype=torch.bfloat16)
    timings = {}
    for impl in (unfused, "fused"):
        mlp = MLP(ModelConfig(d_model=d_model, d_ff=d_ff, activation=activation, impl=impl)).cuda()
        step = torch.compile(mlp) if compiled_model else mlp

        def fwd_bwd() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = step(x)
            y.backward(grad)

        try:
            timings[f"mlp_{impl}_ms"] = float(triton.testing.do_bench(fwd_bwd, return_mode="median"))
        except TrialTimeout:
            raise
        except Exception:  # noqa: BLE001 - the fused kernels do not run on this GPU: the unfused MLP it is
            if impl == unfused:
                raise
            return unfused, timings
    return ("fused" if timings["mlp_fused_ms"] < timings[f"mlp_{unfused}_ms"] else unfused), timings


def choose_impl(activation: str, impl: str, device: torch.device, rows: int, width: int, calls: int,
                compiled_model: bool = False, d_model: int | None = None) -> tuple[str, dict[str, float]]:
    """The implementation a trial runs (and the timings that chose it): `impl` itself unless it is
    `auto`. `auto`: on CUDA the registry's choice, or `fused` where `faster_cuda_mlp` finds it
    faster (at `d_model`; without it, width / 6, the non-gated MLP width of the shipped suites);
    on CPU by `fastest_cpu_impl`, or the registry's choice when the whole model is compiled
    (torch.compile sees through the activation)."""
    if impl == "auto" and device.type == "cpu" and not compiled_model:
        return fastest_cpu_impl(activation, rows, width, calls, torch.get_num_threads())
    chosen = activations.resolve_impl(activation, impl, device.type)
    spec = activations.spec(activation)
    if impl == "auto" and device.type == "cuda" and "fused" in spec.impls and spec.unavailable_reason("fused") is None:
        return faster_cuda_mlp(activation, chosen, rows, d_model or max(16, width // 6), width, compiled_model)
    return chosen, {}
