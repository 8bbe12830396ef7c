"""Test setup: Triton kernels run in the interpreter when there is no CUDA device."""

import os
import signal

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# pytest started in the background of a non-interactive shell inherits SIGINT ignored, and so would
# the actbench runs the tests interrupt with SIGINT; a handler here is reset to the default in them
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
torch.set_num_threads(2)
