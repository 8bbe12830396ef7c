"""What the report found, one line per comparison (candidate against baseline per lm table,
kernel, memory and scaling), coloured by verdict and linking to its table and plot."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from actbench.report.cells import esc, missing, with_interval
from actbench.report.htmltables import verdict_class
from actbench.report.kernels import shape_tallies

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.formats import Comparison


def _links(table: str, plot: str | None) -> str:
    return f" <a href='#{table}'>table</a>" + (f" · <a href='#{plot}'>plot</a>" if plot else "")


def _item(cls: str, verdict: str, body: str, links: str) -> str:
    return f"<li class='finding {cls}'><span class='verdict {cls}'>{html.escape(verdict)}</span> {body}{links}</li>"


def lm_findings(g: "pd.DataFrame", base: str, table: str, plot: str | None) -> list[str]:
    """One line per candidate of an lm table: verdict, Δ with its interval, seeds, cost ratio."""
    out = []
    for r in g.itertuples():
        if r.activation == base:
            continue
        where = esc(r.suite) + (f" [{esc(r.setup_label)}]" if r.setup_label else "") + (f" ({esc(r.results)})" if r.results not in (".",) else "")
        body = f"<b>{esc(r.activation)}</b> vs {esc(base)} on {where}"
        if not missing(r.delta):
            body += f": Δ {esc(r.metric)} {html.escape(with_interval(r.delta, r.low, r.high))} (lower is better)"
        body += f", {int(r.pairs)} paired seed(s)" if r.pairs else ""
        if not missing(r.look) and r.look > 0:
            body += f", look {int(r.look)}"
        if not missing(r.speed_ratio):
            body += f"; cost: {r.speed_ratio:.2f}× {esc(base)}'s tokens/s" + \
                    (f" [{r.speed_low:.2f}, {r.speed_high:.2f}]" if not missing(r.speed_low) else "") + (" on CPU" if r.device == "cpu" else "")
        out.append(_item(verdict_class(r.verdict), str(r.verdict), body, _links(table, plot)))
    return out


def kernel_findings(k: "pd.DataFrame", names: list[str], table: str, plot: str | None) -> list[str]:
    """Per candidate, its best impl at every shape against the baseline's: how many shapes faster,
    slower, the same or too noisy to say, with the range of the ratios."""
    out = []
    for n, best, tally, ratios in shape_tallies(k, names):
        parts = []
        for word, r in ratios.items():
            if len(r):
                parts.append(f"{word} at {len(r)} ({r.min():.2f}×" + (f" to {r.max():.2f}×)" if r.max() != r.min() else ")"))
        parts += [f"{word} at {tally[word]}" for word in ("same", "noisy", "no baseline") if tally.get(word)]
        fast, slow = tally.get("faster", 0), tally.get("slower", 0)
        verdict = "faster" if fast and not slow else "slower" if slow and not fast else "mixed" if fast else "same" if tally.get("same") else "noisy"
        cpu = " (CPU timings)" if bool((best["gpu_name"] == "cpu").all()) else ""
        body = f"<b>{esc(n)}</b> vs {esc(names[0])} kernels, best impl per shape, over {len(best)} shape(s){cpu}: {esc('; '.join(parts))}"
        out.append(_item(verdict_class(verdict), verdict, body, _links(table, plot)))
    return out


def findings(c: "Comparison", anchors: dict[str, str], plots: dict[str, str]) -> list[str]:
    """Every finding of a comparison as an HTML list item; `anchors`: table id per lm group key
    (suite, setup, results) and per kind; `plots`: figure id per the same keys, where one exists."""
    items: list[str] = []
    lm = c.frames["lm"]
    for key, g in (lm.groupby(["suite", "setup", "results"], sort=False) if not lm.empty else []):
        items += lm_findings(g, c.baseline, anchors[str(key)], plots.get(str(key)))
    if not c.frames["kernel"].empty:
        items += kernel_findings(c.frames["kernel"], c.names, anchors["kernel"], plots.get("kernel"))
    for kind in ("memory", "scaling"):
        if not c.frames[kind].empty:
            items += [_item("v-none", kind, esc(line), _links(anchors[kind], plots.get(kind))) for line in c.lines.get(kind, [])]
    return items
