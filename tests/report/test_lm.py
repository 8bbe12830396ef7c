"""The lm comparison beyond the verdict: the cost beside the quality (the measured throughput
ratio, the difference at equal wall-clock from the validation curve's slope), where the seed noise
comes from (the correlation of paired seeds, the share of the variance pairing removes), what a
table shares untuned, and equivalence within a stated margin for tables without a rule of their own."""

from __future__ import annotations

import math
import re

import msgspec
import numpy as np
import pytest
from scipy import stats as scipy_stats

from actbench.report.compare import compare_results
from actbench.results.store import ResultStore

from .synthetic import lm_record

STEPS = list(range(25, 201, 25))


def curve(final: float, slope: float) -> dict[str, list[float]]:
    """A validation curve that falls by `slope` per unit of ln(tokens) (the stable phase) and lands on `final`."""
    tokens = [s * 2048 for s in STEPS]
    bpb = [final + slope * (math.log(t) - math.log(tokens[-1])) for t in tokens]
    return {"step": STEPS, "tokens": tokens, "time_s": [s / 4 for s in STEPS], "loss": bpb, "bpb": bpb}


def write(root, speeds: dict[str, float], effects: dict[str, float], slope: float, seed_sd: float, noise_sd: float, seeds: int = 6):
    rng = np.random.default_rng(1)
    store = ResultStore(root)
    for s in range(seeds):
        u = rng.normal(0, seed_sd)
        for act, effect in effects.items():
            bpb = 2.8 + u + effect + rng.normal(0, noise_sd)
            rec = lm_record(act, s, bpb, schedule="wsd", decay_frac=0.2, warmup_frac=0.05)
            rec = msgspec.structs.replace(rec, metrics={**rec.metrics, "tokens_per_s": speeds[act] * (1 + rng.normal(0, 0.01)),
                                                        "device": "cpu"})
            store.append(rec, series={"val": curve(bpb, slope)})
    return store


def test_throughput_ratio_and_the_difference_at_equal_wall_clock(tmp_path):
    # xielu is 0.03 better per token but trains 20% slower; the loss falls 0.1 per e-fold of tokens
    write(tmp_path / "run", {"relu2": 1000.0, "xielu": 800.0}, {"relu2": 0.0, "xielu": -0.03}, slope=-0.1, seed_sd=0.02, noise_sd=0.002)
    c = compare_results(["relu2", "xielu"], tmp_path)
    x = c.frames["lm"].set_index("activation").loc["xielu"]
    assert x["speed_ratio"] == pytest.approx(0.8, rel=0.02) and x["speed_low"] < 0.8 < x["speed_high"]
    # at the baseline's wall-clock xielu sees 0.8x the tokens: 0.1 * ln(1 / 0.8) = +0.022 back, so -0.03 + 0.022
    assert x["delta_wall"] == pytest.approx(-0.03 + 0.1 * math.log(1 / 0.8), abs=0.004) and x["delta_wall_ci95"] > 0
    line = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    assert re.search(r"speed 0\.[78]\d\dx relu2's \[", line) and "(CPU throughput, not the GPU kernel)" in line
    assert "Δ at equal wall-clock -0.00" in line


@pytest.mark.parametrize("seed_sd,corr_low,gain_low", [(0.05, 0.9, 0.8), (0.0, -1.0, -1.0)])
def test_where_the_seed_noise_comes_from(tmp_path, seed_sd, corr_low, gain_low):
    write(tmp_path / "run", {"relu2": 1000.0, "xielu": 1000.0}, {"relu2": 0.0, "xielu": -0.03}, slope=-0.1, seed_sd=seed_sd,
          noise_sd=0.01, seeds=12)
    c = compare_results(["relu2", "xielu"], tmp_path)
    x = c.frames["lm"].set_index("activation").loc["xielu"]
    assert x["pair_corr"] >= corr_low and x["pairing_gain"] >= gain_low
    if seed_sd == 0:  # nothing shared between the paired runs: pairing removes nothing (up to sampling)
        assert abs(x["pair_corr"]) < 0.7 and abs(x["pairing_gain"]) < 0.7
    line = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    assert f"paired seeds correlate {x['pair_corr']:+.2f}, pairing removed" in line
    assert ("mostly shared by the paired runs" if x["pairing_gain"] >= 0.5 else "mostly each run's own") in line


def test_a_shared_untuned_learning_rate_is_said_beside_the_verdict(tmp_path):
    write(tmp_path / "run", {"relu2": 1000.0, "xielu": 1000.0}, {"relu2": 0.0, "xielu": 0.05}, slope=-0.1, seed_sd=0.01, noise_sd=0.005)
    c = compare_results(["relu2", "xielu"], tmp_path)
    line = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    assert ": worse" in line and "lr=0.003 shared by every activation, not tuned per activation" in line


def test_equivalence_within_a_margin_needs_the_whole_interval_inside_it(tmp_path):
    write(tmp_path / "run", {"relu2": 1000.0, "xielu": 1000.0, "swiglu": 1000.0}, {"relu2": 0.0, "xielu": 0.0, "swiglu": 0.03},
          slope=-0.1, seed_sd=0.02, noise_sd=0.003, seeds=8)
    plain = compare_results(["relu2", "xielu", "swiglu"], tmp_path).frames["lm"].set_index("activation")
    assert plain.loc["xielu", "verdict"] == "undecided"  # no margin: no detectable difference is never "equivalent"
    c = compare_results(["relu2", "xielu", "swiglu"], tmp_path, margin=0.02)
    lm = c.frames["lm"].set_index("activation")
    assert lm.loc["xielu", "verdict"] == "equivalent" and -0.02 < lm.loc["xielu", "low"] < lm.loc["xielu", "high"] < 0.02
    assert lm.loc["swiglu", "verdict"] == "worse" and lm.loc["swiglu", "low"] > 0
    assert "Bonferroni over 2 candidate(s), margin ±0.02" in lm.loc["xielu", "design"]


def test_holm_rows_show_their_interval_at_the_level_of_their_step(tmp_path):
    # three candidates, clear effects of different sizes: Holm tests the smallest p at alpha/3, the next at alpha/2, the last at alpha
    write(tmp_path / "run", {a: 1000.0 for a in ("relu2", "xielu", "swiglu", "gelu")},
          {"relu2": 0.0, "xielu": 0.08, "swiglu": 0.04, "gelu": -0.03}, slope=-0.1, seed_sd=0.02, noise_sd=0.01, seeds=8)
    lm = compare_results(["relu2", "xielu", "swiglu", "gelu"], tmp_path).frames["lm"].set_index("activation").drop("relu2")
    order = lm["p"].sort_values().index
    assert [lm.loc[a, "test_level"] for a in order] == pytest.approx([0.05 / 3, 0.05 / 2, 0.05])
    for a in order:
        r = lm.loc[a]
        half = scipy_stats.t.ppf(1 - r["test_level"] / 2, r["pairs"] - 1) * r["sd_diff"] / math.sqrt(r["pairs"])
        assert (r["high"] - r["low"]) / 2 == pytest.approx(half, rel=1e-9)
        assert (r["verdict"] in ("better", "worse")) == (r["low"] > 0 or r["high"] < 0)  # interval and verdict agree
