"""What a trial asks the scheduler for: CPUs and GPUs of one process, or a group of Ray Train
workers; and what one process of a trial needs in memory (`MemoryNeed`), against what this
machine has (`memory_problem`)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def trial_threads(cpus: float) -> int:
    """The torch threads a process granted `cpus` CPUs runs with."""
    return max(1, int(cpus))


@dataclass(frozen=True)
class WorkerGroup:
    """The Ray Train workers of one trial: how many, what each one holds, how they split the model."""

    workers: int
    cpus: float  # per worker
    gpus: float  # per worker
    strategy: str  # ddp (replicas) or fsdp (sharded parameters, gradients and optimizer state)

    def asks(self) -> str:
        return f"{self.workers} worker(s) of {self.cpus:g} CPU(s) and {self.gpus:g} GPU(s) each"


class Resources(BaseModel):
    """What each trial asks the scheduler for: `gpus`/`cpus` for a trial of one process, or
    `workers` x (`gpus_per_worker`, `cpus_per_worker`) for a trial run by Ray Train on several
    workers (`strategy` ddp or fsdp); the two forms do not mix."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
    gpus: float = Field(0, ge=0, le=1024)
    cpus: float = Field(1, gt=0, le=1024)
    workers: int | None = Field(None, ge=1, le=4096)
    gpus_per_worker: float | None = Field(None, ge=0, le=1024)
    cpus_per_worker: float | None = Field(None, gt=0, le=1024)
    strategy: Literal["ddp", "fsdp"] | None = None
    timeout_s: float = Field(3600, ge=0.1, le=30 * 86400)
    retries: int = Field(1, ge=0, le=20)

    @field_validator("gpus", "cpus", "gpus_per_worker", "cpus_per_worker")
    @classmethod
    def _ray_precision(cls, v: float | None) -> float | None:
        if v is not None and abs(v * 10_000 - round(v * 10_000)) > 1e-6:
            raise ValueError(f"{v!r} is not a multiple of 0.0001 (the precision of Ray's resources)")
        return v

    @model_validator(mode="after")
    def _one_form(self) -> "Resources":
        if self.workers is None:
            given = [f for f in ("gpus_per_worker", "cpus_per_worker", "strategy") if getattr(self, f) is not None]
            if given:
                raise ValueError(f"{given[0]} needs workers (the number of Ray Train workers that run each trial)")
        else:
            given = [f for f in ("gpus", "cpus") if f in self.model_fields_set]
            if given:
                raise ValueError(f"{given[0]} is for a trial of one process; with workers, set {given[0]}_per_worker")
            if self.gpus_per_worker not in (None, 0, 1):
                raise ValueError(f"gpus_per_worker {self.gpus_per_worker:g}: each worker trains on one GPU of its own (NCCL needs "
                                 "that), so 0 or 1; for more GPUs per trial, raise workers")
        return self

    @property
    def worker_group(self) -> WorkerGroup | None:
        """The trial's Ray Train workers, or None for a trial of one process."""
        if self.workers is None:
            return None
        return WorkerGroup(self.workers, 1.0 if self.cpus_per_worker is None else self.cpus_per_worker,
                           self.gpus_per_worker or 0.0, self.strategy or "ddp")

    @property
    def gpus_per_process(self) -> float:
        """The GPUs one process of the trial holds (a worker's, for a trial on several workers)."""
        group = self.worker_group
        return group.gpus if group else self.gpus

    def one_process(self) -> "Resources":
        """The resources of one process of this trial (a worker's), for a helper trial that must
        run where the trial's processes run (on the same kind of device, with as many threads)."""
        group = self.worker_group
        if group is None:
            return self
        return Resources(cpus=group.cpus, gpus=group.gpus, timeout_s=self.timeout_s, retries=self.retries)

    def asks(self) -> str:
        """What one trial asks for, in words."""
        group = self.worker_group
        return group.asks() if group else f"{self.cpus:g} CPU(s) and {self.gpus:g} GPU(s)"


def gib(n: float) -> str:
    """Bytes in words: MiB below a GiB, else GiB."""
    if n < 2**20:
        return "<1 MiB"
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.1f} GiB"


@dataclass(frozen=True)
class MemoryNeed:
    """At least what one process of a trial holds at its peak, in bytes by part (an estimate from
    the shapes, below the real peak), on `device` (cpu or cuda); `field` is the config field
    that drives the largest part, named when the trial is refused."""

    device: str
    parts: dict[str, float]
    field: str

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self) -> str:
        return f"at least {gib(self.total)} ({', '.join(f'{k} {gib(v)}' for k, v in self.parts.items() if v)})"


def uses_cuda(device: str, resources: Resources) -> bool:
    """Whether a trial whose config asks for `device` (auto, cpu, cuda) runs on a GPU."""
    return device == "cuda" or (device == "auto" and resources.gpus_per_process > 0)


@functools.lru_cache(maxsize=2)
def machine_memory(device: str) -> tuple[float, str] | None:
    """This machine's total RAM (`cpu`) or its first GPU's memory (`cuda`), with words for it;
    None when not known (no GPU visible, or no sysconf)."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(0)
        return float(props.total_memory), f"GPU memory ({props.name})"
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "RAM"
    except (ValueError, OSError, AttributeError):
        return None


def memory_problem(need: MemoryNeed) -> str | None:
    """Why one trial cannot fit in this machine's memory, or None (also when its memory is unknown)."""
    have = machine_memory(need.device)
    if have is None or need.total <= have[0]:
        return None
    return (f"one trial needs {need.describe()} and this machine has {gib(have[0])} of {have[1]}: make the trial smaller, "
            "or run it anyway with --force")
