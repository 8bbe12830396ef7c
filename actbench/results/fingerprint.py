"""Where and how a trial ran: host, GPU, driver/CUDA, library versions, git commit of a checkout,
and the process's torch threads and determinism settings (which change results bitwise)."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import actbench


def fingerprint() -> dict[str, Any]:
    """Where and how a trial ran: host, GPU, driver/CUDA, library versions, git commit of a
    checkout, and this process's torch threads and determinism settings (which change results
    bitwise, and can differ per trial)."""
    import torch

    return {
        **_machine_fingerprint(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


@lru_cache(maxsize=1)
def _machine_fingerprint() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__),  # a TorchVersion would make a Ray driver import torch to unpickle it
        "actbench": actbench.__version__,
        "gpu_name": None,
        "gpu_count": 0,
        "cuda": torch.version.cuda,
        "driver": None,
        "git_commit": _git_commit(),
    }
    for mod in ("triton", "ray"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    if torch.cuda.is_available():
        env["gpu_name"] = torch.cuda.get_device_name(0)
        env["gpu_count"] = torch.cuda.device_count()
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def _git_commit() -> str | None:
    here = Path(actbench.__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


