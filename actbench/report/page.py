"""The report's page: findings first, then each comparison's table with its plots beside it,
then the trials, environments and suites folded. Self-contained and offline: images embedded
as data: URLs, the style and the one script (sortable columns) inline, and a Content Security
Policy that lets nothing else run or load (no network, no script but ours)."""

from __future__ import annotations

import base64
import hashlib
import html
from pathlib import Path

STYLE = """
:root{--better:#1a7f37;--worse:#cf222e;--equivalent:#0969da;--undecided:#57606a;--pending:#9a6700;--line:#d0d7de;--head:#f6f8fa}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:0 auto;padding:12px 16px;max-width:1280px}
h1,h2,h3,p,li,summary,figcaption{overflow-wrap:anywhere}
h1{font-size:1.5em;margin:.3em 0}h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid var(--line)}h3{font-size:1.05em}
.meta,.caption,figcaption,.notes{color:#57606a;font-size:13px}
nav{font-size:13px}nav a{margin-right:.8em}
ul.findings{padding:0}
li.finding{list-style:none;border-left:5px solid var(--undecided);background:#f6f8fa;padding:.35em .7em;margin:.35em 0}
.verdict{font-weight:600}
.v-better{color:var(--better);border-color:var(--better)}.v-worse{color:var(--worse);border-color:var(--worse)}
.v-equivalent{color:var(--equivalent);border-color:var(--equivalent)}.v-undecided{color:var(--undecided);border-color:var(--undecided)}
.v-pending{color:var(--pending);border-color:var(--pending)}.v-none{color:#1f2328;border-color:var(--line)}
li.finding{color:#1f2328}
.scroll{overflow:auto;width:fit-content;max-width:100%;max-height:80vh;border:1px solid var(--line);margin:.4em 0}
table{border-collapse:separate;border-spacing:0;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #eaeef2;white-space:nowrap;text-align:right;vertical-align:top}
th{position:sticky;top:0;z-index:2;background:var(--head);text-align:left;cursor:pointer;user-select:none}
th[data-dir=asc]::after{content:" ▲"}th[data-dir=desc]::after{content:" ▼"}
td.t{text-align:left}td.wrap{text-align:left;white-space:normal;min-width:16em;max-width:40em;overflow-wrap:anywhere}
th:first-child,td:first-child{position:sticky;left:0;z-index:1;background:#fff;border-right:1px solid var(--line);white-space:normal;overflow-wrap:anywhere;min-width:8em;max-width:40vw}
th:first-child{z-index:3;background:var(--head)}
.mark{font-size:11px;border:1px solid var(--line);border-radius:3px;padding:0 3px;color:#57606a}
details{margin:.4em 0}summary{cursor:pointer}
pre{overflow:auto;max-width:100%;max-height:60vh;background:#f6f8fa;padding:.6em;font-size:12px}
figure{margin:1em 0}figure img{display:block;max-width:100%;height:auto;border:1px solid #eaeef2}
ul.lines li{font-size:13px;margin:.2em 0}
"""

SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
    var dir = th.dataset.dir === "asc" ? -1 : 1;
    table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    var key = function (row) {
      var c = row.cells[i];
      if (!c) return "";
      return c.dataset.v !== undefined ? parseFloat(c.dataset.v) : c.textContent;
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (typeof x === "number" && typeof y === "number") return (x - y) * dir;
      if (typeof x === "number") return -1;
      if (typeof y === "number") return 1;
      return String(x).localeCompare(String(y)) * dir;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    body.appendChild(frag);
  });
});
"""

POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
          f"script-src 'sha256-{base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()}'; base-uri 'none'; form-action 'none'")
"""Only our script runs (by its hash), images only from data: URLs, nothing loads from anywhere."""


def figure(path: Path, fig_id: str, caption: str) -> str:
    """An embedded PNG with its one-line caption (how to read it) and the file it was written to."""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure id='{html.escape(fig_id)}'><img src='data:image/png;base64,{data}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)} ({html.escape(path.name)})</figcaption></figure>")


def html_page(title: str, meta: str, findings: list[str], sections: list[tuple[str, str, str]]) -> str:
    """The page: `title`, `meta` (HTML: what was read), the findings, then `sections` as (id,
    heading, HTML content) with a table of contents."""
    nav = " ".join(f"<a href='#{html.escape(i)}'>{html.escape(h)}</a>" for i, h, _ in sections)
    found = f"<ul class='findings'>{''.join(findings)}</ul>" if findings else "<p>no comparison: a single activation, or nothing to compare</p>"
    body = "".join(f"<section id='{html.escape(i)}'><h2>{html.escape(h)}</h2>{content}</section>" for i, h, content in sections)
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{POLICY}\">"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><header><h1>{html.escape(title)}</h1><p class='meta'>{meta}</p><nav>{nav}</nav></header>"
            f"<section id='findings'><h2>Findings</h2>{found}</section>{body}<script>{SCRIPT}</script></body></html>")
