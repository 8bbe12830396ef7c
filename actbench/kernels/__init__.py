"""Triton kernels, one module per kernel (each imports triton and registers its ops), and
`unavailable_reason`: whether Triton kernels can run here, told without importing triton."""

from __future__ import annotations

import importlib.util
import os


def unavailable_reason() -> str | None:
    """Why Triton kernels cannot run here, or None when they can: triton installed, and a CUDA
    device (or TRITON_INTERPRET=1, to run them on CPU). Without importing triton (seconds): for
    listings. Choosing an impl also imports it (`actbench.kernels.xielu.unavailable_reason`)."""
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    import torch

    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        return "no CUDA device (set TRITON_INTERPRET=1 to run the kernels on CPU, slowly)"
    return None
