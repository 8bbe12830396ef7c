"""Gated linear units (arXiv 2002.05202): input width 2*d split as [gate, value], output width d."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from actbench.activations.base import Activation, split_gate


class SwiGLU(Activation):
    """SwiGLU: [a, b] = split(x); f(x) = silu(a) * b"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = split_gate(x)
        return F.silu(gate) * value


class GeGLU(Activation):
    """GeGLU: [a, b] = split(x); f(x) = gelu(a) * b  (exact erf GELU)"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = split_gate(x)
        return F.gelu(gate) * value


class ReGLU(Activation):
    """ReGLU: [a, b] = split(x); f(x) = relu(a) * b"""

    def formula(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = split_gate(x)
        return F.relu(gate) * value
