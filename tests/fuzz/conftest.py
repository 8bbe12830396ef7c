"""The fuzzer's profiles and shared fixtures.

Profiles (hypothesis settings): `ci` (the default) runs a fixed, small number of examples per
property, derandomized (the same examples on every run, so CI cannot flake) and without an example
database; `long` (ACTBENCH_FUZZ=long) runs ACTBENCH_FUZZ_EXAMPLES examples per property (default
2000), random, for a session that hunts: `ACTBENCH_FUZZ=long python -m pytest -p no:cacheprovider
tests/fuzz` (ACTBENCH_FUZZ_SHRINK=0 reports each failure as found, unshrunk: faster on a slow
machine; ACTBENCH_FUZZ_COLLECT=FILE appends the first broken promise of each class to FILE and goes
on, to list every distinct defect one session meets). ACTBENCH_FUZZ_TIMEOUT bounds one command
(seconds, default 60).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

os.environ.setdefault("MPLBACKEND", "Agg")
# the harness bounds each command's address space (harness.MEMORY_HEADROOM); pyarrow's default
# allocator reserves more than that the first time it is used, so it allocates through malloc here
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
for var in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "LINES"):
    os.environ.pop(var, None)  # the CLI's consoles decide colour and width from these; the promises are about plain output

_COMMON: dict[str, Any] = {"deadline": None, "print_blob": True, "suppress_health_check": list(HealthCheck)}
# CI does not shrink: a failure is reported as generated (the same one on every run), within the
# time the CI budget allows; the long profile shrinks it to the smallest input
settings.register_profile("actbench-fuzz-ci", derandomize=True, database=None, phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.register_profile("actbench-fuzz-long", derandomize=False, database=None,
                          max_examples=int(os.environ.get("ACTBENCH_FUZZ_EXAMPLES", "2000")),
                          phases=[Phase.explicit, Phase.generate, Phase.target,
                                  *([Phase.shrink, Phase.explain] if os.environ.get("ACTBENCH_FUZZ_SHRINK", "1") != "0" else [])],
                          **_COMMON)


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[Path]:
    """The folder every example's sandbox lives in, removed (FIFOs and links too) at the end; the
    indexes of the folders read are kept in a cache folder inside it (XDG_CACHE_HOME), not the user's."""
    base = Path(tempfile.mkdtemp(prefix="actbench-fuzz-"))
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(base / "cache")
    yield base
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def real_results(sandboxes: Path) -> Path:
    """A results root made once per session by real runs through the CLI (inline): a probe suite
    tuned per tag and decided in rounds, a probe suite with a failing trial, kernel timings and an
    lm suite with series files (see `folders.make_real_results`)."""
    from .folders import make_real_results

    return make_real_results(sandboxes)
