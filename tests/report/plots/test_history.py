"""The regress history's trend (`regress --plot`, drawn every night by scripts/nightly.sh): a
history is data from strangers, so its size bounds the figure, not what its lines name."""

from __future__ import annotations

import time

from PIL import Image

from actbench.report.plots.history import history_plot


def test_planted_metrics_and_many_nights_draw_a_bounded_figure_in_seconds(tmp_path):
    """400 invented metrics (before: a panel each, 28 s for 200 and a hang for 1000) and 600
    nights (before: a tick label each, 38 s for 3000) draw the known metrics' panels only, with
    a readable number of night labels."""
    entries = [{"commit": f"c{i}", "date": "2026-01-01", "figures": {"k t0 eager forward | pct_copy": 1.0 + i % 3,
                                                                      **({f"k | m{j}": 1.0 for j in range(400)} if i == 0 else {})}}
               for i in range(600)]
    started = time.monotonic()
    path = history_plot(entries, tmp_path / "history.png")
    took = time.monotonic() - started
    with Image.open(path) as image:
        width, height = image.size
    assert height < 2000 and width < 3000, (width, height)  # one panel: pct_copy
    assert took < 15, took
