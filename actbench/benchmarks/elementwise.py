"""Shared by the kernel and memory kinds: the config of one activation at one dtype and size
(torch-free; their tensors and modules are `actbench.benchmarks.inputs`').

`size` counts output elements; the input is (size / width, width), or twice as wide for a gated
activation (split as [gate, value]).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from actbench import activations
from actbench.core.resources import MemoryNeed, Resources, uses_cuda
from actbench.core.trial import ActivationName, TrialConfig

Impl = Literal["eager", "compile", "triton"]
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class ElementwiseConfig(TrialConfig):
    activation: ActivationName
    impls: list[Impl] = Field(default_factory=lambda: ["eager", "compile", "triton"], min_length=1)
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    size: int = Field(gt=0, le=2**34)
    width: int = Field(1024, gt=0, le=2**24)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @field_validator("impls")
    @classmethod
    def _impls_once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"{v}: each impl once")
        return v

    @model_validator(mode="after")
    def _size_fits_width(self) -> "ElementwiseConfig":
        if self.size % self.width:
            raise ValueError(f"size {self.size} is not a multiple of width {self.width}")
        return self

    def elements(self) -> tuple[int, int]:
        """(input, output) elements: the input is twice as wide for a gated activation."""
        return self.size * (2 if activations.spec(self.activation).gated else 1), self.size

    def memory(self, resources: Resources) -> MemoryNeed:
        """At least what the trial holds: its input and output, their gradients (`dtype`)."""
        n_in, n_out = self.elements()
        tensors = float(DTYPE_BYTES[self.dtype] * (n_in + n_out))
        parts = {"inputs and outputs": tensors, "their gradients": tensors}
        return MemoryNeed("cuda" if uses_cuda(self.device, resources) else "cpu", parts, "size")

    @staticmethod
    def check_resources(r: Resources) -> tuple[str, str] | None:
        if r.gpus != int(r.gpus):
            return "gpus", f"timing and memory trials need whole GPUs, got {r.gpus:g}"
        return None
