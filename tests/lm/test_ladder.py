"""A smaller ladder_tiny, trained for real (inline): tuning, rungs, compare's scaling frame, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from actbench import api
from actbench.report.compare import compare_results
from actbench.report.html import build_report
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite

ROOT = Path(__file__).resolve().parents[2]


def small_ladder(tmp_path: Path) -> Path:
    """suites/ladder_tiny.yaml shrunk: 2 activations, 4 rungs of widths 16-40, half a token per
    parameter, 2 learning rates, an evaluation of 1024 tokens every 20 steps, the final one on that slice."""
    data = yaml.safe_load((ROOT / "suites/ladder_tiny.yaml").read_text())
    data["name"] = "ladder_small"
    data["defaults"].update(d_model=16, n_heads=2, seq_len=32, batch_size=8, eval_every=20, eval_tokens=1024, final_eval="slice",
                            churn_tokens=0, checkpoint_every=0)
    data["matrix"]["activation"] = ["relu2", "xielu"]
    data["tune"]["lr"] = [3.0e-3, 1.0e-2]
    data["ladder"].update(widths=[16, 24, 32, 40], tokens_per_param=0.5)
    data["ladder"]["target"] = {"d_model": 64, "n_layers": 2, "tokens": 2.0e5}
    path = tmp_path / "ladder_small.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_small_ladder_trains_tunes_and_states_a_gain_with_an_interval(tmp_path):
    suite = load_suite(small_ladder(tmp_path))
    assert len(suite.trials) == 2 * 4 * 2  # tuning: activations x rungs x lrs (1 seed)
    store = ResultStore(tmp_path / "out")
    assert api.run(suite, out=store.root, executor=InlineExecutor()).exit_code == 0
    recs = [r for r in iter_records(store.path) if r.kind == "lm"]  # and one `impl` trial per activation and rung (impl: auto)
    assert len(recs) == 16 + 2 * 4 * 2  # + final: activations x rungs x seeds
    tokens = sorted({r.config["tokens"] for r in recs if r.config["seed"] == 1})
    assert len(tokens) == 4 and tokens == sorted(tokens)  # one budget per rung, growing with the width

    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert len(c.frames["lm"]) == 2 * 4 and c.frames["lm"]["tuned"].str.contains("lr").all()
    sc = c.frames["scaling"].set_index("activation")
    assert (sc["rungs"] == 4).all() and np.isfinite(sc.loc["relu2", "alpha"])
    x = sc.loc["xielu"]
    assert np.isfinite(x["gain"]) and x["gain_low"] <= x["gain"] <= x["gain_high"]
    assert any(line.startswith("ladder_small: xielu vs relu2: compute-equivalent gain") for line in c.lines["scaling"])

    r = build_report(tmp_path / "out", tmp_path / "rep")
    assert {p.name for p in r["images"]} >= {"scaling_ladder_small.png", "tuning_ladder_small.png"}
