"""Cells of the HTML report for people: numbers rounded to what their intervals support, with
units and thousands separators, booleans as words, every string from the results escaped; and one
table builder (sortable columns, the first column fixed, in a box that scrolls on its own)."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any, Sequence

MISSING = "-"


def missing(v: Any) -> bool:
    """None, NaN or an infinite number."""
    if v is None:
        return True
    try:
        return not math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def esc(v: Any) -> str:
    """A value from the results as HTML text ("-" when missing)."""
    return MISSING if v is None or (isinstance(v, float) and v != v) else html.escape(str(v))


def places(half: float, significant: int = 2) -> int:
    """Decimal places that show an interval's half-width to `significant` digits (0 to 8): what
    the interval supports."""
    if missing(half) or half <= 0:
        return 4
    return int(min(8, max(0, significant - 1 - math.floor(math.log10(half)))))


def signed(v: Any, decimals: int) -> str:
    return MISSING if missing(v) else f"{float(v):+.{decimals}f}"


def with_interval(mean: Any, low: Any, high: Any, sign: bool = True) -> str:
    """'+0.07 [-0.15, +0.28]': the mean and its interval, rounded to the interval's precision."""
    if missing(mean):
        return MISSING
    if missing(low) or missing(high):
        return signed(mean, 4) if sign else f"{float(mean):.4g}"
    d = places((float(high) - float(low)) / 2)
    fmt = (lambda x: f"{x:+.{d}f}") if sign else (lambda x: f"{x:.{d}f}")
    return f"{fmt(float(mean))} [{fmt(float(low))}, {fmt(float(high))}]"


def plus_minus(mean: Any, half: Any) -> str:
    """'1.523 ± 0.041', rounded to the half-width's precision."""
    if missing(mean):
        return MISSING
    if missing(half):
        return f"{float(mean):.4g}"
    d = places(float(half))
    return f"{float(mean):.{d}f} ± {float(half):.{d}f}"


def si(v: Any, unit: str = "") -> str:
    """Three significant digits with k / M / G: 0.82M, 35.2k, 1.20G."""
    if missing(v):
        return MISSING
    x = float(v)
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale * 0.5 and prefix != "k" or abs(x) >= scale:
            return f"{x / scale:.3g}{prefix}{unit}"
    return f"{x:.3g}{unit}"


def duration_ms(ms: Any) -> str:
    """A time given in milliseconds with a unit people read: 35.2 µs, 1.74 ms, 2.10 s."""
    if missing(ms):
        return MISSING
    x = float(ms)
    if abs(x) < 1:
        return f"{x * 1000:.3g} µs"
    return f"{x:.3g} ms" if abs(x) < 1000 else f"{x / 1000:.3g} s"


def count(v: Any) -> str:
    """An integer with thousands separators."""
    return MISSING if missing(v) else f"{int(v):,}"


def yes_no(v: Any, yes: str = "yes", no: str = "no") -> str:
    return MISSING if v is None or (isinstance(v, float) and v != v) else yes if bool(v) else no


@dataclass
class Cell:
    """One table cell: its HTML (already escaped), the value it sorts by (a number, else its text)
    and its class (`t`: text, left-aligned; `wrap`: long text that may wrap)."""

    html: str
    key: float | None = None
    cls: str = ""


def text(v: Any, cls: str = "t") -> Cell:
    return Cell(esc(v), None, cls)


def number(shown: str, v: Any, cls: str = "") -> Cell:
    return Cell(html.escape(shown), None if missing(v) else float(v), cls)


def _td(c: Cell) -> str:
    cls = f' class="{c.cls}"' if c.cls else ""
    key = f' data-v="{c.key:.17g}"' if c.key is not None else ""
    return f"<td{cls}{key}>{c.html}</td>"


def table(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Cell]], caption: str = "", table_id: str = "") -> str:
    """A sortable table (click a heading) in a box that scrolls on its own, its first column fixed.
    `columns`: (heading, what it means: the heading's tooltip); `caption`: HTML."""
    head = "".join(f'<th title="{html.escape(why)}">{html.escape(name)}</th>' for name, why in columns)
    body = "\n".join("<tr>" + "".join(map(_td, row)) + "</tr>" for row in rows)
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    cap = f"<p class='caption'>{caption}</p>" if caption else ""
    return f'{cap}<div class="scroll"><table class="sortable"{ident}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>'
