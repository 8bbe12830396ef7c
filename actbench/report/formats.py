"""A comparison (`Comparison`) and its tables as text: cells (missing values as "-", never nan),
markdown tables, and a comparison as one JSON document, one long CSV table or markdown."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from actbench.core.text import plain

if TYPE_CHECKING:
    import pandas as pd

    from actbench.planner.plan import Plan
    from actbench.report.series import Series
    from actbench.suite import Suite


@dataclass
class Comparison:
    """What `actbench.report.compare.build` makes: frames per kind (kernel, memory, lm, scaling;
    empty where none), verdict lines, and the staged suites with their replayed plans."""

    names: list[str]
    root: Path
    alpha: float
    merge: bool
    frames: dict[str, "pd.DataFrame"]
    lines: dict[str, list[str]]
    series: "Series | None" = None
    suites: "dict[tuple[str, str], Suite] | None" = None
    plans: "dict[tuple[str, str], Plan] | None" = None
    replayed: "pd.DataFrame | None" = None  # the trials as replayed, before -k: staged suites' final trials only

    @property
    def baseline(self) -> str:
        return self.names[0]

    def to_json(self) -> str:
        return to_json(self)

    def to_csv(self) -> str:
        return to_csv(self)

    def to_markdown(self) -> str:
        return to_markdown(self)


LIST_COLUMNS = ["values", "paired_seeds", "setup", "compute", "losses", "shapes", "rung_gains"]
"""Columns holding lists, left out of markdown and HTML tables."""


def verdict_alpha(df: "pd.DataFrame", alpha: float) -> str:
    """The family-wise alpha behind the verdicts of a frame's rows (its `alpha` column: the suite's
    decide.alpha where a design decided, else compare's), as "alpha=0.05"; `alpha` where none says."""
    used = sorted({float(a) for a in df["alpha"] if np.isfinite(a)}) if "alpha" in df else []
    return f"alpha={alpha:g}" if not used else f"alpha={used[0]:g}" if len(used) == 1 else \
        f"alpha {', '.join(f'{a:g}' for a in used)} (by table: the alpha column)"


def num(v: Any, fmt: str = ".4g") -> str:
    """A number as text with `fmt`; "-" when it is missing or not finite."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return format(v, fmt)


def fmt_cell(v: Any, digits: int = 4) -> str:
    """A table cell as text: "-" for missing values (None, nan), never "nan" or "None"."""
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, (float, np.floating)):
        return f"{v:.{digits}g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt_cell(x, digits) for x in v) or "-"
    return str(v)


def display(df: "pd.DataFrame", digits: int = 4) -> "pd.DataFrame":
    """A copy of df with every cell as text from `fmt_cell` (for printed and HTML tables)."""
    return df.astype(object).map(lambda v: fmt_cell(v, digits))


def _md_text(v: Any) -> str:
    """A string as markdown text: control characters as escapes (`plain`, nothing cut) and `|`
    escaped, so a value stays one cell of one row."""
    return plain(v, limit=None).replace("|", "\\|")


def markdown(df: "pd.DataFrame") -> str:
    """A GitHub markdown table of a DataFrame."""
    cols = [_md_text(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in display(df).itertuples(index=False):
        lines.append("| " + " | ".join(map(_md_text, row)) + " |")
    return "\n".join(lines)


def to_json(c: Comparison) -> str:
    """One JSON document: baseline, alpha, and per kind its rows and verdict lines."""
    doc: dict[str, Any] = {"baseline": c.baseline, "candidates": c.names[1:], "alpha": c.alpha, "merged": c.merge, "results": str(c.root)}
    for kind, df in c.frames.items():
        doc[kind] = {"rows": json.loads(df.to_json(orient="records")) if not df.empty else [], "verdicts": c.lines.get(kind, [])}
    return json.dumps(doc, indent=1, allow_nan=False)


def to_csv(c: Comparison) -> str:
    """One long-format table of every kind's rows, with a `table` column (lists as JSON)."""
    import pandas as pd

    parts = [df.assign(table=kind) for kind, df in c.frames.items() if not df.empty]
    if not parts:
        return "table\n"
    df = pd.concat(parts, ignore_index=True)
    return json_lists(df[["table", *[col for col in df.columns if col != "table"]]]).to_csv(index=False)


def json_lists(df: "pd.DataFrame") -> "pd.DataFrame":
    """Lists and dicts in object columns as JSON text (CSV and Parquet cells are scalars); each
    object once (the rows of a trial share its config's lists: 100k records hold a million such cells)."""
    import pandas as pd

    df = df.copy(deep=False)  # the columns it replaces are new; the others stay shared (copy on write)
    for c in df.columns:
        if df[c].dtype != object:
            continue
        values = df[c].to_numpy()
        codes, ids = pd.factorize(np.fromiter(map(id, values), dtype=np.uint64, count=len(values)))  # the column holds them: no id reused
        first = np.empty(len(ids), np.int64)
        first[codes[::-1]] = np.arange(len(codes))[::-1]  # each object's first row
        texts = [json.dumps(v) if isinstance(v, (list, dict)) else v for v in values[first]]
        typed = pd.Series(texts, dtype=object).map(lambda v: v)  # typed as mapping the whole column types it
        df[c] = pd.Series(typed.array.take(codes), index=df.index)
    return df


def to_markdown(c: Comparison) -> str:
    parts = []
    for kind, df in c.frames.items():
        if not df.empty:
            verdict = "\n".join(f"- {plain(line, limit=None)}" for line in c.lines.get(kind, []))
            parts.append(f"### {kind} (baseline: {plain(c.baseline, limit=None)})\n\n{markdown(df.drop(columns=LIST_COLUMNS, errors='ignore'))}\n\n{verdict}\n")
    return "\n".join(parts)
