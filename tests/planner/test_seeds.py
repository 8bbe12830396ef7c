"""Seeds in rounds, with real trials (the probe kind's objective: a planted offset per candidate
plus noise drawn from the seed): each candidate stops at the look that decides it, the baseline's
seeds are shared, a crash resumes without rerunning anything, and a replay of a folder holding
more seeds than the rule needed gives the rule's verdict."""

from __future__ import annotations

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


def seeds_run(records) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for r in records:
        out.setdefault(r.config["tag"], []).append(r.config["seed"])
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
