"""`resources.gpus: auto`: each trial's share of a GPU, sized so that the trials packed on one
GPU fit in its memory together.

A trial needs its memory estimate (`KindSpec.memory`, below the real peak) times
ESTIMATE_MARGIN, or, when an earlier run in the results folder measured the peak of a trial of
the same memory shape (lm records' `peak_mem_mb`) and that peak times PEAK_MARGIN is more, that
(a measured peak only raises the need: the estimate covers as little as 58% of a real peak, and a
results folder is untrusted, so a planted low peak packs no more trials than no record); plus CONTEXT_BYTES for the CUDA context and libraries' workspaces. The share is the smallest of SHARES whose
trials (1 / share of them) fit in the GPU's memory; one share for the whole suite, sized for its
largest trial, so that no mix of its trials on one GPU can sum past the memory. The GPU is the
one this machine sees; without one (a driver that only submits to a cluster) an 80 GB GPU is
assumed, and the note says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from actbench.core.resources import gib, machine_memory
from actbench.lm.cost import shape

if TYPE_CHECKING:
    from actbench.core.kinds import KindSpec
    from actbench.core.record import Record
    from actbench.core.trial import Trial

SHARES = (0.125, 0.25, 0.5, 1.0)
"""The shares of a GPU `auto` picks from (Ray's fractions that split a GPU evenly)."""
ESTIMATE_MARGIN = 1.75
"""The memory estimate covered 58-97% of a measured CPU peak (README): 1 / 0.58, rounded up."""
PEAK_MARGIN = 1.25
"""A measured peak (torch's max_memory_allocated) leaves out the caching allocator's free blocks and fragmentation: assumed."""
CONTEXT_BYTES = float(2**30)
"""A CUDA context, cuBLAS and Triton workspaces per process: assumed."""
ASSUMED_GPU_BYTES = float(80 * 2**30)
"""The GPU memory assumed where this machine sees no GPU (an H100's 80 GB)."""


def share(need: float, device_bytes: float) -> float:
    """The smallest of SHARES at which 1 / share trials of `need` bytes each fit in `device_bytes` (1 when none does)."""
    return next((s for s in SHARES if need / s <= device_bytes), 1.0)


def memory_key(config: dict[str, Any]) -> tuple[str, ...]:
    """What a trial's memory depends on, from its config (its compile shape, whatever implementation runs)."""
    return shape({**config, "impl": None})


def measured_peaks(records: Iterable["Record"]) -> dict[tuple[str, ...], float]:
    """The largest peak GPU memory (bytes) an ok record measured, by `memory_key` of its config."""
    out: dict[tuple[str, ...], float] = {}
    for r in records:
        mb = r.metrics.get("peak_mem_mb") if r.ok and isinstance(r.metrics, dict) else None
        if isinstance(mb, (int, float)) and not isinstance(mb, bool) and 0 < mb < 2**40:
            key = memory_key(r.config)
            out[key] = max(out.get(key, 0.0), float(mb) * 2**20)
    return out


def auto_share(trials: list["Trial"], kind: "KindSpec", records: Iterable["Record"] = ()) -> tuple[float, str]:
    """The share of a GPU that every one of `trials` (each shape its suite runs) gets, and a line
    saying how it was sized; ValueError, saying why, when it cannot be (no estimate, a CPU trial)."""
    if kind.memory is None:
        raise ValueError(f"auto sizes each trial's share of a GPU from its memory estimate, and kind {kind.name!r} has none: set a "
                         "share by hand (e.g. gpus: 0.25)")
    peaks = measured_peaks(records)
    largest, how = 0.0, ""
    for t in trials:
        est = kind.memory(t.config, t.resources.model_copy(update={"gpus": 1.0}))
        if est is None or est.device != "cuda":
            raise ValueError("auto sizes a share of a GPU, and this suite's trials run on the CPU (device: cpu): set gpus: 0")
        peak = peaks.get(memory_key(t.config_dict()))
        if peak and peak * PEAK_MARGIN > est.total * ESTIMATE_MARGIN:
            need, how_here = peak * PEAK_MARGIN, f"a measured peak of {gib(peak)} x {PEAK_MARGIN:g}"
        else:  # a measured peak only raises the need
            need = est.total * ESTIMATE_MARGIN
            how_here = f"the estimate of {gib(est.total)} x {ESTIMATE_MARGIN:g}" + (f", above {gib(peak)} x {PEAK_MARGIN:g} measured" if peak else "")
        if CONTEXT_BYTES + need > largest:
            largest, how = CONTEXT_BYTES + need, f"{how_here} + {gib(CONTEXT_BYTES)} of CUDA context"
    have = machine_memory("cuda")
    device_bytes, device = have if have else (ASSUMED_GPU_BYTES, "an 80 GB GPU assumed (this machine sees none)")
    picked = share(largest, device_bytes)
    return picked, (f"resources.gpus: auto: {picked:g} ({int(1 / picked)} trial(s) per GPU): the largest trial needs {gib(largest)} "
                    f"({how}) of the {gib(device_bytes)} of {device}")
