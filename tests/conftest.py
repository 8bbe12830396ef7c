"""Test setup: Triton kernels run in the interpreter when there is no CUDA device, and the columnar
indexes of the results the tests read go to a session folder, not the user's cache."""

import atexit
import os
import shutil
import signal
import tempfile

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# the columnar indexes (actbench.results.index.cache_root) go to a session folder, inherited by the
# CLI runs in subprocesses, not to ~/.cache/actbench; tests of the cache itself set their own
_CACHE = tempfile.mkdtemp(prefix="actbench-test-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
# pytest started in the background of a non-interactive shell inherits SIGINT ignored, and so would
# the actbench runs the tests interrupt with SIGINT; a handler here is reset to the default in them
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
torch.set_num_threads(2)
