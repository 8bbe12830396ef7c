"""Everything actbench prints or draws: activation tables, run summaries, comparisons, plots."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from actbench import activations


def activation_table() -> Table:
    """Rich table of every registered activation."""
    t = Table(title="actbench activations")
    for col in ("name", "family", "gated", "trainable params", "implementations", "paper"):
        t.add_column(col)
    for name in activations.names():
        s = activations.spec(name)
        impls = [i if s.unavailable_reason(i) is None else f"{i} (n/a here)" for i in s.impls]
        t.add_row(name, s.family, "yes" if s.gated else "", ", ".join(s.params), ", ".join(impls), s.paper or "")
    return t


def activation_info(name: str) -> Panel:
    """Formula, defaults, parameters and implementations of one activation."""
    s = activations.spec(name)
    lines = [
        Text(s.formula),
        Text(""),
        Text(f"family: {s.family}    gated: {'yes (input 2*d -> d, split [gate, value])' if s.gated else 'no'}"),
        Text(f"defaults: {s.defaults or '-'}"),
        Text(f"trainable parameters (fp32): {', '.join(s.params) or '-'}"),
    ]
    for impl in s.impls:
        why = s.unavailable_reason(impl)
        lines.append(Text(f"impl {impl}: " + ("available" if why is None else f"unavailable here ({why})")))
    lines.append(Text(f"paper: {s.paper or '-'}"))
    return Panel(Group(*lines), title=name)
