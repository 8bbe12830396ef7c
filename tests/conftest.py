"""Test setup: Triton kernels run in the interpreter when there is no CUDA device."""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
torch.set_num_threads(2)
