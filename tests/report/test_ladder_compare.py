"""compare on a tuned ladder suite, from synthetic records with a known answer: each activation
is compared at its own tuned learning rate, and the scaling frame recovers a planted
compute multiplier (no training: the records are written as the runner would write them)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from actbench import tuning
from actbench.report.compare import compare_results
from actbench.report.scaling import PowerLaw
from actbench.results import ResultStore
from actbench.select import parse_filter
from actbench.suite import load_suite

SUITE = """\
name: lad
kind: lm
defaults: {{d_model: 16, n_heads: 2, n_layers: 1, seq_len: 32, batch_size: 4, ff_multiple: 16, reference: relu2, tokens: 4096}}
matrix:
  activation: [relu2, xielu]
seeds: 5
tune: {{lr: [1.0e-3, 2.0e-3, 4.0e-3], seeds: 1, metric: val_bpb}}
ladder:
  widths: [16, 32, 48, 64, 96]
  ff_ratio: 6
  target: {{compute: {target}}}
"""
BEST_LR = {"relu2": 4.0e-3, "xielu": 2.0e-3}
GAIN = 1.4  # xielu reaches at compute C what relu2 reaches at 1.4 C


def fake_run(path: Path, out: Path, noise: float = 0.004) -> None:
    """Run the suite's stages as the runner would, writing records whose val_bpb follows a power
    law in compute (xielu shifted by GAIN), plus a penalty away from each activation's best lr."""
    suite = load_suite(path)
    store = ResultStore(out)
    store.save_suite(suite.name, suite.raw)
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.01, 5)
    law = PowerLaw(E=1.2, A=1.0, alpha=0.35, C0=1e9)
    for stage in suite.stages(lambda: tuning.metric_values(store.records(), "val_bpb")):
        for t in stage.trials:
            c = t.config
            flops = 6.0 * c.d_model * c.d_model * 12 + 1000.0
            compute = 3 * flops * c.tokens * (1 + 0.001 * (c.activation == "xielu"))
            shift = GAIN if c.activation == "xielu" else 1.0
            bpb = float(law.loss(compute * shift)) + 0.05 * math.log(c.lr / BEST_LR[c.activation]) ** 2
            bpb += seed_effect[c.seed] + rng.normal(0, noise)
            store.append({"trial_id": t.id, "suite": suite.name, "kind": "lm", "config": t.config_dict(), "status": "ok",
                          "attempt": 1, "run_id": "r1", "metrics": {"val_bpb": bpb, "val_loss": bpb * math.log(2),
                          "params": 1000 * c.d_model, "flops_per_token": flops, "tokens": c.tokens}})


@pytest.mark.parametrize("target,refused", [(2e10, False), (1e13, True)])
def test_tuned_ladder_compares_at_each_activations_own_lr_and_recovers_the_gain(tmp_path, target, refused):
    path = tmp_path / "lad.yaml"
    path.write_text(SUITE.format(target=target))
    fake_run(path, tmp_path / "out")
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    lm = c.frames["lm"]
    assert len(lm) == 2 * 5 and (lm["n"] == 5).all()  # 5 rungs x 2 activations, 5 seeds each: tuning-only trials left out
    for act, lr in BEST_LR.items():
        assert set(lm.loc[lm["activation"] == act, "lr"]) == {f"{lr:g}"}
    assert lm["tuned"].str.contains("tuned per activation: lr").all()
    assert (lm.loc[lm["activation"] == "xielu", "verdict"] == "better").all()
    sc = c.frames["scaling"].set_index("activation")
    x = sc.loc["xielu"]
    assert x["gain_low"] <= GAIN <= x["gain_high"] and x["gain"] == pytest.approx(GAIN, rel=0.1)
    assert x["rungs"] == 5 and sc.loc["relu2", "r2"] > 0.99
    line = next(line for line in c.lines["scaling"] if line.startswith("lad: xielu"))
    if refused:
        assert "refused" in line and "max_extrapolation" in line and np.isnan(x["target_gain"])
    else:
        assert x["target_low"] <= GAIN <= x["target_high"] and "beyond the ladder" in line
    # -k picks among the final trials chosen from all the records: never "tuning is incomplete"
    picked = compare_results(["relu2", "xielu"], tmp_path / "out", select=parse_filter("seed=1 or seed=2"))  # seed 0 runs the tuning
    assert (picked.frames["lm"]["n"] == 2).all() and len(picked.frames["lm"]) == 2 * 5
    assert not any("incomplete" in line for line in picked.lines["lm"])


def test_incomplete_tuning_is_not_compared(tmp_path):
    path = tmp_path / "lad.yaml"
    path.write_text(SUITE.format(target=1e13))
    suite = load_suite(path)
    store = ResultStore(tmp_path / "out")
    store.save_suite(suite.name, suite.raw)
    for t in suite.trials[:3]:  # part of the first tuning stage only
        store.append({"trial_id": t.id, "suite": "lad", "kind": "lm", "config": t.config_dict(), "status": "ok", "attempt": 1,
                      "run_id": "r", "metrics": {"val_bpb": 2.0, "params": 1, "flops_per_token": 1.0, "tokens": 4096}})
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert c.frames["lm"].empty and any("tuning is incomplete" in line for line in c.lines["lm"])
