"""report.html's figures: every legend and title inside its PNG (no ink cut at an edge, however
long a label from the results), and the alpha figure naming its layers."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.image import imread

from actbench.report.html import build_report
from actbench.results.store import ResultStore

from .synthetic import lm_record

LONG = "xielu_with_a_long_plugin_name_for_its_learned_alphas_and_a_suffix"
STEPS = [0, 10, 20, 30]


def _lm_with_alphas(root) -> None:
    """relu2 and a long-named activation that learns alphas in 3 layers, 2 seeds, with curves."""
    store = ResultStore(root)
    for act in ("relu2", LONG):
        for seed in range(2):
            series = {"val": {"step": STEPS, "tokens": [s * 64 for s in STEPS], "time_s": STEPS, "loss": [2.0] * 4, "bpb": [1.5] * 4},
                      "train": {"step": STEPS, "loss": [3.0, 2.5, 2.2, 2.0], "tokens": [s * 64 for s in STEPS], "time_s": STEPS}}
            if act == LONG:
                series["alphas"] = {"step": STEPS * 3, "layer": [i for i in range(3) for _ in STEPS],
                                    "alpha_p": [0.8 + 0.01 * i * s / 30 for i in range(3) for s in STEPS],
                                    "alpha_n": [0.8 - 0.01 * i * s / 30 for i in range(3) for s in STEPS]}
            store.append(lm_record(act, seed, 1.5 + seed / 100, lr=0.0015), series=series)


def _edge_ink(png) -> float:
    """The darkest value on the image's outermost 3 pixels (1.0: white)."""
    rgb = imread(png)[..., :3]
    return float(min(rgb[:3].min(), rgb[-3:].min(), rgb[:, :3].min(), rgb[:, -3:].min()))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    _lm_with_alphas(root / "run")
    return build_report(root / "run", root / "out")


def test_every_figure_holds_its_legend_and_title_however_long_the_labels(report):
    names = {p.name for p in report["images"]}
    assert {"lm_s.png", "alphas_s.png"} <= names
    for p in report["images"]:
        assert _edge_ink(p) > 0.95, f"{p.name}: ink at the edge (a legend or title cut off)"


def test_the_alpha_figure_names_its_layers_and_the_page_captions_it(report):
    from actbench.report.plots.lm import alpha_figure, figures
    from actbench.results.frames import load

    (fig,) = figures(load(report["html"].parent.parent / "run"))
    drawn = alpha_figure(fig.title, fig.alphas)
    entries = [t.get_text() for t in drawn.legends[0].get_texts()]
    assert entries[-3:] == ["layer 0 (L0)", "layer 1 (L1)", "layer 2 (L2)"] and LONG[:20] in entries[0]
    for ax in drawn.axes:
        assert sorted(t.get_text() for t in ax.texts) == ["L0", "L1", "L2"]  # each line's end names its layer
    page = report["html"].read_text()
    assert "How to read: each layer" in page and "(alphas_s.png)" in page
