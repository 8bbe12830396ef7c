"""report.html in a real browser (Debian's chromium, driven by Playwright; skipped without them):
no wider than the window at 1280 and 390 px (tables scroll in their own boxes), every image
loads, no script error, no request leaves the page, the findings come before the first table,
the columns sort, and markup from a record stays text. Screenshots go to ACTBENCH_SCREENSHOTS
(default: a tmp folder); the test prints where."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from actbench.report.html import build_report
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<img src=x onerror=alert(1)></script><script>alert(2)</script>"
STEPS = [0, 10, 20, 30]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed (Debian: apt-get install chromium)")

PROBE = """() => {
  const first = document.querySelector("table");
  const findings = document.querySelector("#findings");
  return {
    width: document.documentElement.scrollWidth, window: window.innerWidth,
    images: Array.from(document.images).map(i => [i.complete && i.naturalWidth > 0, i.getBoundingClientRect().right <= window.innerWidth + 1]),
    findingsFirst: !!(first && findings && (findings.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_FOLLOWING)),
    findings: document.querySelectorAll("li.finding").length,
    injected: document.querySelectorAll("img:not([src^='data:'])").length + document.scripts.length - 1,  // ours: one script
  };
}"""


def _results(root: Path) -> None:
    """A kernel folder and an lm folder with curves and alphas; one activation's name is markup."""
    kernels = ResultStore(root / "kernels")
    for i, act in enumerate(["relu2", "xielu", HOSTILE]):
        for size in (1 << 16, 1 << 20):
            kernels.append(kernel_record(f"k{i}-{size}", act, [("eager", "forward", 0.1 + i / 50, 0.05), ("eager", "backward", 0.2 + i / 40, 0.05)],
                                         size=size))
    lm = ResultStore(root / "lm")
    for act, bpb in (("relu2", 1.50), ("xielu", 1.45), (HOSTILE, 1.52)):
        for seed in range(3):
            series = {"val": {"step": STEPS, "tokens": [s * 64 for s in STEPS], "time_s": STEPS, "loss": [2.0] * 4, "bpb": [bpb + 0.1] * 4},
                      "train": {"step": STEPS, "loss": [3.0, 2.5, 2.2, 2.0], "tokens": [s * 64 for s in STEPS], "time_s": STEPS},
                      "alphas": {"step": STEPS * 2, "layer": [0] * 4 + [1] * 4, "alpha_p": [0.8] * 8, "alpha_n": [0.8] * 8}}
            lm.append(lm_record(act, seed, bpb + seed / 100 + (0.004 if act == "xielu" and seed == 1 else 0)), series=series)
    failed = lm_record("xielu", 9, 1.0, status="failed")
    failed.note, failed.error = HOSTILE, {"type": "RuntimeError", "message": HOSTILE}
    lm.append(failed)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    _results(root / "results")
    return build_report(root / "results", root / "report")["html"]


def test_report_in_chromium(page_file, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (the test extra) drives chromium")
    shots = Path(os.environ.get("ACTBENCH_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {shots}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for width in (1280, 390):
                page = browser.new_page(viewport={"width": width, "height": 900})
                errors, dialogs, requests = [], [], []
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                page.on("request", lambda r: requests.append(r.url))
                page.goto(page_file.as_uri(), wait_until="load")
                seen = page.evaluate(PROBE)
                page.screenshot(path=str(shots / f"report_{width}.png"))
                page.screenshot(path=str(shots / f"report_{width}_full.png"), full_page=True)
                assert seen["width"] <= seen["window"] == width, f"the page is {seen['width']} px wide in a {width} px window"
                assert seen["images"] and all(loaded and inside for loaded, inside in seen["images"]), seen["images"]
                assert seen["findingsFirst"] and seen["findings"] >= 3  # 2 lm candidates and the kernels
                assert seen["injected"] == 0 and not dialogs and not errors, (dialogs, errors)
                assert [u for u in requests if not u.startswith("data:")] == [page_file.as_uri()]  # nothing leaves the page
                heading = page.locator("#lm-1 th", has_text="Δ val_bpb")
                heading.dispatch_event("click")  # the script, not the pointer: at 390 px the heading sits under the fixed column
                shown = page.locator("#lm-1 tbody tr td:nth-child(3)").evaluate_all("cells => cells.map(c => c.dataset.v === undefined ? null : +c.dataset.v)")
                numbers = [v for v in shown if v is not None]
                assert numbers == sorted(numbers) and len(numbers) == 2 and shown[-1] is None  # sorted by value, the baseline's "-" last
                assert HOSTILE in page.locator("#findings").inner_text()  # the markup shown as text
                page.close()
        finally:
            browser.close()
