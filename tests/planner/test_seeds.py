"""Seeds in rounds, with real trials (the probe kind's objective: a planted offset per candidate
plus noise drawn from the seed): each candidate stops at the look that decides it, the baseline's
seeds are shared, a crash resumes without rerunning anything, and a replay of a folder holding
more seeds than the rule needed gives the rule's verdict."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actbench import api
from actbench.errors import UserError
from actbench.planner.plan import plan
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.select import parse_filter
from actbench.suite import load_suite
from tests.planner.interrupted import InterruptedAfter

SUITE = """\
name: q
kind: probe
defaults: {{noise: {noise}}}
zip:
  tag: [base, same, worse, close]
  x: [0.0, 0.0, 2.0, 0.2]
seeds: {seeds}
decide: {{field: tag, baseline: base, metric: objective, margin: 0.2}}
"""


def write(tmp_path: Path, seeds: str = "{min: 3, max: 12, round: 3}", noise: float = 0.3, name: str = "q.yaml") -> Path:
    p = tmp_path / name
    p.write_text(SUITE.format(seeds=seeds, noise=noise))
    return p


def seeds_run(records, field: str = "tag") -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in records:
        out.setdefault(r.config[field], []).append(r.config["seed"])
    return {k: sorted(v) for k, v in out.items()}


def test_each_candidate_stops_at_the_look_that_decides_it(tmp_path, capsys):
    store = ResultStore(tmp_path / "out")
    result = api.run(load_suite(write(tmp_path)), out=store.root, executor=InlineExecutor())
    assert result.exit_code == 0
    ran = seeds_run(iter_records(store.path))
    # same: the same function on the same seeds: every difference exactly 0, equivalent at the first look;
    # worse: 2^2 = 4 above the baseline with noise 0.3 per trial: decided worse early;
    # close: 0.04 above, noise 0.3: neither shown within +-0.2 nor apart by the cap
    assert ran["same"] == [0, 1, 2]
    assert ran["worse"] in ([0, 1, 2], list(range(6)), list(range(9)))
    assert ran["close"] == list(range(12)) and ran["base"] == list(range(12))  # the baseline runs what any candidate needs
    verdicts = plan(load_suite(write(tmp_path)), store.latest(), set(store.latest())).seeds.verdicts
    by_tag = {load_suite(write(tmp_path)).value(g, "tag"): v.decision.verdict for g, v in verdicts.items()}
    assert by_tag == {"same": "equivalent", "worse": "worse", "close": "undecided"}
    err = capsys.readouterr().err
    assert "look 1 of 4 (3 paired seeds): tag=same x=0.0 vs tag=base x=0.0: equivalent" in err
    assert "tag=close x=0.2 vs tag=base x=0.0: undecided" in err and "paired seeds would decide it" in err


def test_a_crashed_run_resumes_where_it_stopped_and_nothing_reruns(tmp_path):
    full = ResultStore(tmp_path / "full")
    api.run(load_suite(write(tmp_path)), out=full.root, executor=InlineExecutor())
    lines = full.path.read_bytes().splitlines(keepends=True)
    crashed = ResultStore(tmp_path / "crashed")
    crashed.root.mkdir()
    crashed.path.write_bytes(b"".join(lines[:14]) + lines[14][:25])  # the first look and part of the second, a torn line
    again = api.run(load_suite(write(tmp_path)), out=crashed.root, executor=InlineExecutor())
    assert again.skipped == 14 and len(again.records) == len(lines) - 14
    assert sorted(r.trial_id for r in crashed.latest().values()) == sorted(r.trial_id for r in full.latest().values())


def test_a_folder_with_more_seeds_gives_the_verdict_of_the_rule(tmp_path):
    fixed = ResultStore(tmp_path / "fixed")  # every seed of every candidate, as a fixed suite would run them
    api.run(load_suite(write(tmp_path, seeds="12", name="f.yaml")), out=fixed.root, executor=InlineExecutor())
    assert len(fixed.records()) == 4 * 12
    rounds = load_suite(write(tmp_path))
    p = plan(rounds, fixed.latest(), set(fixed.latest()))
    assert p.batch is None
    verdicts = {rounds.value(g, "tag"): v for g, v in p.seeds.verdicts.items()}
    assert verdicts["same"].decision.verdict == "equivalent" and verdicts["same"].seeds == (0, 1, 2)  # its look 1, not all 12
    assert {len(ts) for g, ts in p.final.items() if rounds.value(g, "tag") == "same"} == {3}


def test_k_must_keep_the_baseline_of_a_comparison(tmp_path):
    with pytest.raises(UserError, match=r"selects tag=worse x=2.0 without the baseline it is compared with"):
        api.run(load_suite(write(tmp_path)), out=tmp_path / "o", executor=InlineExecutor(), select=parse_filter("tag=worse"))
    result = api.run(load_suite(write(tmp_path)), out=tmp_path / "o", executor=InlineExecutor(), select=parse_filter("tag=worse or tag=base"))
    assert set(seeds_run(result.records)) == {"worse", "base"}


def test_rounds_need_a_decide_block_and_seeds_disjoint_from_tuning(tmp_path):
    p = tmp_path / "n.yaml"
    p.write_text("name: n\nkind: probe\nmatrix:\n  tag: [a, b]\nseeds: {min: 3, max: 6, round: 3}\n")
    with pytest.raises(UserError, match=r"n.yaml:5: seeds: seeds in rounds need a decide: block"):
        load_suite(p)
    p.write_text(SUITE.format(seeds="{min: 3, max: 6, round: 3}", noise=0.1).replace("baseline: base", "baseline: nope"))
    with pytest.raises(UserError, match=r"decide.baseline: 'nope' is not among the values of tag"):
        load_suite(p)


KNOWN = """\
name: known
kind: lm
defaults: {d_model: 32, n_heads: 2, n_layers: 1, seq_len: 64, batch_size: 8, ff_multiple: 16, reference: relu2, reference_d_ff: 128,
           tokens: 30720, lr: 3.0e-3, impl: eager, eval_every: 20, eval_tokens: 2048, final_eval: slice, churn_tokens: 256}
matrix:
  activation: [relu2, relu2_again, dead]
seeds: {min: 3, max: 6, round: 3}
decide: {alpha: 0.05, margin: 0.02}
"""
PLUGIN = """\
import torch
from actbench.activations import register
from actbench.activations.relu import ReLU2

register("relu2_again", family="relu", paper="a second name for ReLU2")(type("ReLU2Again", (ReLU2,), {}))


@register("dead", family="none", paper="far worse by construction: the MLP contributes nothing")
class Dead(torch.nn.Module):
    def forward(self, x):
        return x * 0.0
"""


@pytest.mark.slow
def test_real_training_a_dead_mlp_is_worse_at_the_first_look_and_a_second_name_is_equivalent(tmp_path, monkeypatch):
    """Ground truth with real training: a second registry name for ReLU2 trains bit for bit the
    same model on the same seeds (equivalent at the first look), and an activation that zeroes the
    MLP is far worse (worse at the first look); nothing needs a second round."""
    (tmp_path / "known_acts.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    import known_acts  # noqa: F401 - registers relu2_again and dead

    (tmp_path / "known.yaml").write_text(KNOWN)
    store = ResultStore(tmp_path / "out")
    result = api.run(load_suite(tmp_path / "known.yaml"), out=store.root, executor=InlineExecutor())
    assert result.exit_code == 0
    ran = seeds_run((r for r in iter_records(store.path) if r.kind == "lm"), "activation")
    assert ran == {a: [0, 1, 2] for a in ("relu2", "relu2_again", "dead")}
    suite = load_suite(tmp_path / "known.yaml")
    verdicts = {suite.value(g, "activation"): v.decision for g, v in plan(suite, store.latest(), set(store.latest())).seeds.verdicts.items()}
    assert verdicts["relu2_again"].verdict == "equivalent" and verdicts["relu2_again"].look == 1
    assert verdicts["relu2_again"].interval.low == verdicts["relu2_again"].interval.high == 0.0  # the same numbers, exactly
    assert verdicts["dead"].verdict == "worse" and verdicts["dead"].look == 1 and verdicts["dead"].interval.low > 0.02


def test_the_baseline_alone_runs_its_first_look(tmp_path):
    result = api.run(load_suite(write(tmp_path)), out=tmp_path / "o", executor=InlineExecutor(), select=parse_filter("tag=base"))
    assert seeds_run(result.records) == {"base": [0, 1, 2]}


def test_a_baseline_that_fails_every_seed_stops_the_rounds(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text(SUITE.format(seeds="{min: 3, max: 12, round: 3}", noise=0.3).replace("x: [0.0, 0.0, 2.0, 0.2]",
                    "x: [0.0, 0.0, 2.0, 0.2]\n  fail: [raise, none, none, none]"))
    result = api.run(load_suite(path), out=tmp_path / "o", executor=InlineExecutor())
    ran = seeds_run(result.records)
    assert all(seeds == [0, 1, 2] for seeds in ran.values()), ran  # one look, not twelve seeds of nothing to pair
    records = ResultStore(tmp_path / "o").latest()
    verdicts = plan(load_suite(path), records, set(records)).seeds.verdicts
    assert {v.decision.verdict for v in verdicts.values()} == {"no baseline"}


def test_ctrl_c_in_a_round_decides_nothing_from_the_trials_that_did_not_run(tmp_path, capsys):
    result = api.run(load_suite(write(tmp_path)), out=tmp_path / "o", executor=InterruptedAfter(5))
    assert result.interrupted and len(result.records) == 5
    err = capsys.readouterr().err
    assert "interrupted:" in err and not re.search(r"^look \d", err, re.M)  # look 1 never completed: no decision printed


def test_a_folder_refuses_a_suite_whose_stages_differ_from_those_its_records_were_planned_with(tmp_path):
    out = tmp_path / "o"
    api.run(load_suite(write(tmp_path)), out=out, executor=InlineExecutor())
    kept = (out / "suites" / "q.yaml").read_bytes()
    with pytest.raises(UserError, match=r"q.yaml: the records of q in .* were planned with other seeds than .*--out"):
        api.run(load_suite(write(tmp_path, seeds="{min: 3, max: 24, round: 3}")), out=out, executor=InlineExecutor())
    assert (out / "suites" / "q.yaml").read_bytes() == kept  # the kept suite is untouched
    again = api.run(load_suite(write(tmp_path)), out=out, executor=InlineExecutor())  # the same suite resumes as before
    assert again.exit_code == 0 and not again.records
    # resources change no trial and no decision: a longer timeout resumes the same folder
    (tmp_path / "q.yaml").write_text((tmp_path / "q.yaml").read_text() + "resources: {timeout_s: 7200, retries: 2}\n")
    longer = api.run(load_suite(tmp_path / "q.yaml"), out=out, executor=InlineExecutor())
    assert longer.exit_code == 0 and not longer.records


@pytest.mark.parametrize("name", ["llm_small", "llm_tiny"])
def test_the_forecast_costs_every_seed_a_sequential_suite_can_run(name):
    """`lm plan` prices a sequential suite at its cap: every point, baseline included, to its last look."""
    from actbench.planner.plan import forecast

    suite = load_suite(Path(__file__).resolve().parents[2] / "suites" / f"{name}.yaml", check_paths=False)
    p = forecast(suite)
    assert {g: len(t) for g, t in p.final.items()} == {g: suite.spec.looks[-1] for g in range(suite.groups)}
    assert all(v.decision.verdict == "undecided" for v in p.seeds.verdicts.values())


def test_a_relative_margin_is_that_fraction_of_the_baselines_mean(tmp_path):
    """Baseline objective 9 (x = 0, optimum 3): a relative margin of 0.02 is +-0.18, so 'near'
    (0.06 below) is equivalent, which an absolute margin of 0.02 could never call it."""
    text = ("name: r\nkind: probe\ndefaults: {{optimum: 3.0, noise: 0.01}}\nzip:\n  tag: [base, near, far]\n  x: [0.0, 0.01, 1.0]\n"
            "seeds: {{min: 3, max: 9, round: 3}}\ndecide: {{field: tag, baseline: base, metric: objective, margin: {m}{rel}}}\n")
    verdicts = {}
    for name, m, rel in (("rel", 0.02, ", relative: true"), ("abs", 0.02, "")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.format(m=m, rel=rel))
        suite = load_suite(path)
        store = ResultStore(tmp_path / name)
        api.run(suite, out=store.root, executor=InlineExecutor())
        verdicts[name] = {suite.value(g, "tag"): v for g, v in plan(suite, store.latest(), set(store.latest())).seeds.verdicts.items()}
    rel, absolute = verdicts["rel"], verdicts["abs"]
    assert rel["near"].decision.verdict == "equivalent" and rel["far"].decision.verdict == "better"
    assert rel["near"].margin == pytest.approx(0.18, rel=0.01) and absolute["near"].margin == 0.02
    assert absolute["near"].decision.verdict == "better"  # 0.06 below, well outside +-0.02 and clear of 0 at noise 0.01
