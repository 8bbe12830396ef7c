"""Everything actbench prints or draws, one module per job: `tables` (registry, suites, plans),
`stats`, `compare`, `regression`, `html` (the report page and exports) and `plots`.

The main entry points are re-exported here and imported on first use, so that printing the
registry does not load pandas or matplotlib."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compare_results": "compare", "setup_key": "compare", "Comparison": "compare",
    "build_report": "html", "regress": "regression", "regress_failed": "regression", "regress_markdown": "regression",
    "append_history": "regression", "churn": "stats", "mean_ci": "stats", "paired_t": "stats", "holm": "stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"actbench.report.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'actbench.report' has no attribute {name!r}")
