"""Shared by the kernel and memory kinds: the config of one activation at one dtype and size
(torch-free; their tensors and modules are `actbench.benchmarks.inputs`').

`size` counts output elements; the input is (size / width, width), or twice as wide for a gated
activation (split as [gate, value]).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from actbench.core.resources import Resources
from actbench.core.trial import ActivationName, TrialConfig

Impl = Literal["eager", "compile", "triton"]


class ElementwiseConfig(TrialConfig):
    activation: ActivationName
    impls: list[Impl] = Field(default_factory=lambda: ["eager", "compile", "triton"], min_length=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    size: int = Field(gt=0, le=2**34)
    width: int = Field(1024, gt=0, le=2**24)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _size_fits_width(self) -> "ElementwiseConfig":
        if self.size % self.width:
            raise ValueError(f"size {self.size} is not a multiple of width {self.width}")
        return self

    @staticmethod
    def check_resources(r: Resources) -> tuple[str, str] | None:
        if r.gpus != int(r.gpus):
            return "gpus", f"timing and memory trials need whole GPUs, got {r.gpus:g}"
        return None
