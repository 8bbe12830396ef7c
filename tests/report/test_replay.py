"""compare on a tuned ladder suite, from synthetic records with a known answer: each activation
is compared at its own tuned learning rate, and the scaling frame recovers a planted
compute multiplier (no training: the records are written as the runner would write them)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from actbench.core.record import Record
from actbench.planner.plan import plan, selected_groups
from actbench.report.compare import compare_results
from actbench.report.scaling import PowerLaw
from actbench.results.store import ResultStore
from actbench.select import parse_filter
from actbench.suite import load_suite

SUITE = """\
name: lad
kind: lm
defaults: {{d_model: 16, n_heads: 2, n_layers: 1, seq_len: 32, batch_size: 4, ff_multiple: 16, reference: relu2, tokens: 4096, impl: eager}}
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


def fake_run(path: Path, out: Path, noise: float = 0.004, flops_scale: float = 1.0) -> None:
    """Run the suite's batches as the runner would (the planner decides each from the records so
    far), writing records whose val_bpb (and the tuning part's tune_val_bpb) follows a power law in
    compute (xielu shifted by GAIN), plus a penalty away from each activation's best lr."""
    suite = load_suite(path)
    store = ResultStore(out)
    store.save_suite(suite.name, suite.raw, {})
    rng = np.random.default_rng(0)
    seed_effect = {}
    law = PowerLaw(E=1.2, A=1.0, alpha=0.35, C0=1e9)
    while (batch := plan(suite, store.latest(), set(store.latest())).batch) is not None:
        for t in batch.trials:
            c = t.config
            if t.kind == "impl":
                store.append(Record(trial_id=t.id, suite=suite.name, kind="impl", config=t.config_dict(), status="ok", metrics={"impl": "eager"}))
                continue
            flops = (6.0 * c.d_model * c.d_model * 12 + 1000.0) * flops_scale
            compute = 3 * flops * c.tokens * (1 + 0.001 * (c.activation == "xielu"))
            shift = GAIN if c.activation == "xielu" else 1.0
            bpb = float(law.loss(compute * shift)) + 0.05 * math.log(c.lr / BEST_LR[c.activation]) ** 2
            bpb += seed_effect.setdefault(c.seed, rng.normal(0, 0.01)) + rng.normal(0, noise)
            store.append(Record(trial_id=t.id, suite=suite.name, kind="lm", config=t.config_dict(), status="ok", attempt=1, run_id="r1",
                                metrics={"val_bpb": bpb, "val_loss": bpb * math.log(2), "tune_val_bpb": bpb, "params": 1000 * c.d_model,
                                         "flops_per_token": flops, "tokens": c.tokens}))


@pytest.mark.parametrize("target,refused", [(2e10, False), (3e12, True)])
def test_tuned_ladder_compares_at_each_activations_own_lr_and_recovers_the_gain(tmp_path, target, refused):
    """(3e12 is 685x the largest rung's 4.4e9 FLOPs by its config, within max_extrapolation 1000 when
    the suite loads, and about 1,500x the compute its records measured: compare refuses the gain there.)"""
    path = tmp_path / "lad.yaml"
    path.write_text(SUITE.format(target=target))
    fake_run(path, tmp_path / "out", flops_scale=0.25 if refused else 1.0)
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
    picked = compare_results(["relu2", "xielu"], tmp_path / "out", select=parse_filter("seed=1 or seed=2"))  # tuning has seeds of its own
    assert (picked.frames["lm"]["n"] == 2).all() and len(picked.frames["lm"]) == 2 * 5
    assert not any("incomplete" in line for line in picked.lines["lm"])


def test_a_target_beyond_max_extrapolation_is_refused_when_the_suite_loads_and_a_folder_that_kept_one_is_compared_without_it(tmp_path):
    """1e13 FLOPs is about 2,300x the largest rung's 4.4e9 (default max_extrapolation 1000): the
    suite is refused before anything runs (run and lm plan), naming ladder.target; a folder whose
    kept suite names such a target (kept before this rule) is compared trial by trial, saying why."""
    import yaml

    from actbench.errors import UserError

    path = tmp_path / "lad.yaml"
    path.write_text(SUITE.format(target=1e13))
    with pytest.raises(UserError, match=r"ladder\.target: 1e\+13 training FLOPs is 2\.28e\+03x the largest rung's .* beyond "
                                         r"max_extrapolation 1000"):
        load_suite(path, check_paths=False)
    path.write_text(SUITE.format(target=1e13) + "  max_extrapolation: 3000\n")
    assert load_suite(path, check_paths=False).spec.ladder.max_extrapolation == 3000
    path.write_text(SUITE.format(target=2e10))
    fake_run(path, tmp_path / "out")
    ResultStore(tmp_path / "out").save_suite("lad", yaml.safe_load(SUITE.format(target=1e13)), {})
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert any("cannot read the suite kept by its run" in w and "max_extrapolation" in w for w in c.lines["lm"]), c.lines["lm"]
    assert c.frames["scaling"].empty


def test_incomplete_tuning_is_not_compared(tmp_path):
    path = tmp_path / "lad.yaml"
    path.write_text(SUITE.format(target=2e10))
    suite = load_suite(path)
    store = ResultStore(tmp_path / "out")
    store.save_suite(suite.name, suite.raw, {})
    for t in suite.trials[:3]:  # part of the first tuning stage only
        store.append(Record(trial_id=t.id, suite="lad", kind="lm", config=t.config_dict(), status="ok", attempt=1, run_id="r",
                            metrics={"val_bpb": 2.0, "tune_val_bpb": 2.0, "params": 1, "flops_per_token": 1.0, "tokens": 4096}))
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert c.frames["lm"].empty and any("is incomplete (run the suite again to finish it), so it is not compared" in line for line in c.lines["lm"])


SEQUENTIAL = """\
name: seq
kind: lm
defaults: {d_model: 16, n_heads: 2, n_layers: 1, seq_len: 32, batch_size: 4, ff_multiple: 16, reference: relu2, tokens: 4096, impl: eager}
matrix:
  activation: [relu2, xielu, swiglu, gelu]
seeds: {min: 3, max: 9, round: 3}
decide: {alpha: 0.05, margin: 0.02}
"""
PLANTED = {"relu2": 0.0, "xielu": 0.2, "swiglu": 0.0, "gelu": 0.012}  # gelu: inside the margin, but too noisy to show it by 9 seeds


def fake_sequential(path: Path, out: Path, more_seeds: int = 0, select: str | None = None, batches: int = 1000,
                    chose: str = "eager") -> ResultStore:
    """The suite's batches as the runner would run them (only the points `select` keeps, at most
    `batches` of them, `impl: auto` choosing `chose`), records with the planted effects (noise
    0.002 per trial except gelu's 0.03); then `more_seeds` extra seeds of every activation, as a
    fixed-seed run into the same folder would leave them."""
    suite = load_suite(path)
    store = ResultStore(out)
    store.save_suite(suite.name, suite.raw, {})
    rng = np.random.default_rng(3)
    groups, _ = selected_groups(suite, parse_filter(select) if select else None)

    def record(t) -> Record:
        c = t.config
        if t.kind == "impl":
            return Record(trial_id=t.id, suite=suite.name, kind="impl", config=t.config_dict(), status="ok", metrics={"impl": chose})
        bpb = 2.0 + PLANTED[c.activation] + rng.normal(0, 0.03 if c.activation == "gelu" else 0.002)
        return Record(trial_id=t.id, suite=suite.name, kind="lm", config=t.config_dict(), status="ok", run_id="r1",
                      metrics={"val_bpb": bpb, "val_loss": 1.5 * bpb, "tune_val_bpb": bpb, "params": 1000, "flops_per_token": 6000.0,
                               "tokens": c.tokens})

    while batches and (batch := plan(suite, store.latest(), set(store.latest()), groups).batch) is not None:
        batches -= 1
        for t in batch.trials:
            store.append(record(t))
    for g in range(suite.groups):
        for s in range(9, 9 + more_seeds):
            store.append(record(suite.trial(g, {}, s)))
    return store


def test_a_deciding_suite_is_compared_with_the_verdicts_of_its_own_rule(tmp_path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL)
    store = fake_sequential(path, tmp_path / "out")
    ran = {}
    for r in store.records():
        ran.setdefault(r.config["activation"], []).append(r.config["seed"])
    assert sorted(ran["xielu"]) == sorted(ran["swiglu"]) == [0, 1, 2] and sorted(ran["gelu"]) == list(range(9)) == sorted(ran["relu2"])
    c = compare_results(["relu2", "xielu", "swiglu", "gelu"], tmp_path / "out")
    lm = c.frames["lm"].set_index("activation")
    assert lm.loc["xielu", "verdict"] == "worse" and lm.loc["xielu", "look"] == 1 and lm.loc["xielu", "pairs"] == 3
    assert lm.loc["swiglu", "verdict"] == "equivalent" and -0.02 < lm.loc["swiglu", "low"] < lm.loc["swiglu", "high"] < 0.02
    assert lm.loc["gelu", "verdict"] == "undecided" and lm.loc["gelu", "pairs"] == 9 and lm.loc["gelu", "seeds_needed"] > 9
    line = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    assert "worse at look 1 (looks at 3, 6, 9 paired seeds, pocock alpha spending, Bonferroni over 3 candidate(s), margin ±0.02)" in line
    gelu = next(line for line in c.lines["lm"] if "gelu vs relu2" in line)
    assert "undecided" in gelu and "paired seeds would decide it" in gelu


def test_a_comparison_the_rule_did_not_make_gets_no_verdict_from_its_stopped_seeds(tmp_path):
    """Seeds stopped by looking at candidate-vs-relu2 are no sample for a fixed test of another
    comparison: with another baseline, or pooled over folders, there is no verdict (and why)."""
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL)
    fake_sequential(path, tmp_path / "a" / "out")
    fake_sequential(path, tmp_path / "b" / "out")
    other = compare_results(["gelu", "relu2", "xielu"], tmp_path / "a").frames["lm"].set_index("activation")
    assert set(other.loc[["relu2", "xielu"], "verdict"]) == {"no verdict"}
    assert "the suite's rule compares with relu2" in other.loc["xielu", "design"]
    merged = compare_results(["relu2", "xielu", "gelu"], tmp_path, merge=True).frames["lm"].set_index("activation")
    assert set(merged.loc[["xielu", "gelu"], "verdict"]) == {"no verdict"} and "merged folders" in merged.loc["xielu", "design"]
    apart = compare_results(["relu2", "xielu"], tmp_path).frames["lm"]
    assert list(apart["verdict"]) == ["baseline", "worse"] * 2  # each folder: the rule's own verdict
    alone = compare_results(["relu2", "xielu"], tmp_path / "a", merge=True).frames["lm"]  # --merge over one folder pools nothing
    assert list(alone["verdict"]) == ["baseline", "worse"]


def test_the_table_shows_the_metric_the_rule_decided_on(tmp_path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace("decide: {alpha: 0.05, margin: 0.02}", "decide: {alpha: 0.05, margin: 0.05, metric: val_loss}"))
    fake_sequential(path, tmp_path / "out")
    lm = compare_results(["relu2", "xielu"], tmp_path / "out").frames["lm"].set_index("activation")
    assert lm.loc["xielu", "metric"] == "val_loss" and lm.loc["xielu", "delta"] == pytest.approx(0.2 * 1.5, abs=0.01)


def test_a_folder_with_more_seeds_than_the_rule_needed_gives_the_rule_its_verdict(tmp_path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL)
    fake_sequential(path, tmp_path / "out", more_seeds=6)
    lm = compare_results(["relu2", "xielu", "swiglu", "gelu"], tmp_path / "out").frames["lm"].set_index("activation")
    assert lm.loc["xielu", "verdict"] == "worse" and lm.loc["xielu", "pairs"] == 3 and lm.loc["xielu", "extra_pairs"] == 6
    assert lm.loc["swiglu", "verdict"] == "equivalent" and lm.loc["swiglu", "extra_pairs"] == 6


def test_a_run_of_some_points_is_compared_on_those_points(tmp_path):
    """-k runs whole points; compare replays the points the folder ran, not the suite's others
    (whose impl choices and seeds never ran): the H200 run of llm_small -k 'xielu or relu2' once
    compared nothing, its other activations' helpers counted as missing."""
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace("impl: eager", "impl: auto"))
    fake_sequential(path, tmp_path / "out", select="activation=relu2 or activation=xielu")
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    lm = c.frames["lm"].set_index("activation")
    assert lm.loc["xielu", "verdict"] == "worse" and lm.loc["xielu", "pairs"] == 3
    assert not any("incomplete" in line or "without a record" in line for line in c.lines["lm"])
    assert any("chose activation=xielu: impl=eager" in line for line in c.lines["lm"])


def test_a_swept_auto_value_is_compared_at_the_value_it_chose(tmp_path):
    """Points swept over `impl: [auto, eager]`: the auto points' trials record the chosen impl, not
    'auto', and are compared all the same (they were once dropped as points that did not run), each
    impl in a comparison of its own."""
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace(", impl: eager}", "}").replace("  activation: [relu2, xielu, swiglu, gelu]",
                                                                     "  activation: [relu2, xielu, swiglu, gelu]\n  impl: [auto, eager]"))
    fake_sequential(path, tmp_path / "out", chose="compile")
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    lm = c.frames["lm"]
    # two comparisons (one per impl), not one averaging both impls per seed
    assert sorted(zip(lm["setup_label"], lm["activation"], lm["n"])) == [
        ("impl=compile", "relu2", 9), ("impl=compile", "xielu", 3), ("impl=eager", "relu2", 9), ("impl=eager", "xielu", 3)]
    assert set(lm.loc[lm["activation"] == "xielu", "verdict"]) == {"worse"} and (lm["trials"] == lm["n"]).all()
    assert not any("did not run" in line or "incomplete" in line for line in c.lines["lm"])


def test_a_run_stopped_before_its_seeds_is_not_compared(tmp_path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace("impl: eager", "impl: auto"))
    fake_sequential(path, tmp_path / "out", batches=1)  # only the impl choices ran
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert c.frames["lm"].empty
    assert any("seeds 1-3 (look 1 of 3) is incomplete (run the suite again to finish it), so it is not compared" in line
               for line in c.lines["lm"])


def test_a_missing_kept_suite_is_warned_about(tmp_path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace("impl: eager", "impl: auto"))
    fake_sequential(path, tmp_path / "out")
    (tmp_path / "out" / "suites" / "seq.yaml").unlink()
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    assert any("seq.yaml: missing, but the records of seq" in line and "compared as a plain trial" in line for line in c.lines["lm"])


def test_a_tuned_kernel_suite_is_compared_on_its_final_trials(tmp_path):
    """tune: works for any kind: compare replays a tuned kernel suite as it does an lm one."""
    path = tmp_path / "k.yaml"
    path.write_text("name: k\nkind: kernel\ndefaults: {impls: [eager], width: 64, size: 4096, dtype: float32, device: cpu}\n"
                    "matrix:\n  activation: [relu2, xielu]\ntune: {warmup_ms: [1.0, 2.0], metric: eager.forward.ms_p50}\n")
    suite = load_suite(path)
    store = ResultStore(tmp_path / "out")
    store.save_suite(suite.name, suite.raw, {})
    while (batch := plan(suite, store.latest(), set(store.latest())).batch) is not None:
        for t in batch.trials:
            c = t.config
            ms = (1.0 if c.activation == "relu2" else 2.0) + (0.5 if c.warmup_ms == 2.0 else 0.0)  # warmup 1 is best for both
            rows = [{"impl": impl, "mode": "forward", "ms_p20": ms * 0.99, "ms_p50": ms, "ms_p80": ms * 1.01, "gbps": 1.0, "pct_copy": 50.0,
                     "gated": False, "noisy": False} for impl in ("copy", "eager")]
            store.append(Record(trial_id=t.id, suite="k", kind="kernel", config=t.config_dict(), status="ok", metrics={"eager.forward.ms_p50": ms},
                                rows=rows))
    c = compare_results(["relu2", "xielu"], tmp_path / "out")
    k = c.frames["kernel"]
    assert len(k) == 2 and (k["trials"] == 1).all()  # the final trial of each activation, not the tuning ones
    assert set(k.loc[k["activation"] == "xielu", "verdict"]) == {"slower"} and k["ms_p50"].tolist() == [1.0, 2.0]


def test_a_tuned_suite_of_a_plugin_activation_is_replayed_without_the_plugin(tmp_path):
    plugin = tmp_path / "cube_acts.py"
    plugin.write_text("import torch\nfrom actbench.activations import register\n\n@register('cube3', family='poly', gated=False)\n"
                      "class Cube(torch.nn.Module):\n    def forward(self, x):\n        return x ** 3\n")
    script = tmp_path / "write.py"
    script.write_text(
        "import sys, math\nsys.path.insert(0, sys.argv[1])\nimport cube_acts\nfrom pathlib import Path\n"
        "from actbench.activations.registry import facts\nfrom actbench.core.record import Record\nfrom actbench.planner.plan import plan\n"
        "from actbench.results.store import ResultStore\nfrom actbench.suite import load_suite\n"
        "suite = load_suite(Path(sys.argv[2]))\nstore = ResultStore(Path(sys.argv[3]))\n"
        "store.save_suite(suite.name, suite.raw, facts(['relu2', 'cube3']))\n"
        "while (batch := plan(suite, store.latest(), set(store.latest())).batch) is not None:\n"
        "    for t in batch.trials:\n"
        "        c = t.config\n"
        "        bpb = 2.0 - 0.1 * (c.activation == 'cube3') + 0.05 * math.log(c.lr / 2e-3) ** 2 + 0.001 * c.seed\n"
        "        store.append(Record(trial_id=t.id, suite=suite.name, kind='lm', config=t.config_dict(), status='ok',\n"
        "                            metrics={'val_bpb': bpb, 'tune_val_bpb': bpb, 'params': 1000, 'flops_per_token': 6000.0}))\n")
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nkind: lm\ndefaults: {d_model: 16, n_heads: 2, n_layers: 1, seq_len: 32, batch_size: 4, ff_multiple: 16, "
                    "tokens: 4096, impl: eager}\nmatrix:\n  activation: [relu2, cube3]\nseeds: 3\ntune: {lr: [1.0e-3, 2.0e-3, 4.0e-3]}\n")
    wrote = subprocess.run([sys.executable, str(script), str(tmp_path), str(path), str(tmp_path / "out")], capture_output=True, text=True,
                           timeout=120)
    assert wrote.returncode == 0, wrote.stderr
    r = subprocess.run([sys.executable, "-m", "actbench", "compare", "relu2", "cube3", "--results", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)  # no --plugin: the run kept the registry facts
    assert r.returncode == 0 and "cannot read the suite" not in r.stderr, r.stderr
    assert "tuned per activation: lr" in r.stdout.replace("\n", " ") and "cube3 vs relu2" in r.stdout and "better" in r.stdout


def recorded_run(path: Path, out: Path, diverge: set[tuple[str, int]]) -> ResultStore:
    """The suite's batches as `actbench run` drives them, each look's decision recorded before it is
    printed (`decisions.jsonl`), records with the planted effects of `fake_sequential` (noise 0.002;
    gelu's 0.03); the trials of (activation, seed) in `diverge` diverge."""
    from actbench.results import decisions

    suite = load_suite(path)
    store = ResultStore(out)
    store.save_suite(suite.name, suite.raw, {})
    recorded = decisions.Recorded(writing=True)
    for entry in [decisions.Start(suite=suite.name)]:
        decisions.append(store, entry)
        recorded.add(entry)
    rng = np.random.default_rng(3)
    while True:
        p = plan(suite, store.latest(), set(store.latest()), recorded=recorded)
        for look in p.seeds.fresh:
            decisions.append(store, look)
            recorded.add(look)
        if p.batch is None:
            return store
        for t in p.batch.trials:
            c = t.config
            bpb = 2.0 + PLANTED[c.activation] + rng.normal(0, 0.03 if c.activation == "gelu" else 0.002)
            bad = (c.activation, c.seed) in diverge
            r = store.append(Record(trial_id=t.id, suite=suite.name, kind="lm", config=t.config_dict(), run_id="r1",
                                    status="diverged" if bad else "ok", metrics={"val_bpb": math.nan if bad else bpb, "params": 1000,
                                                                                 "flops_per_token": 6000.0, "tokens": c.tokens}))
            recorded.add_records([r])


def test_compare_says_which_seeds_failed_and_replays_the_recorded_looks(tmp_path):
    """swiglu is relu2's equal but diverges on seed 1: not equivalent (as it was when its failed
    seed was dropped), undecided at the cap, and the line says why; the verdicts are the recorded
    looks', and a recorded look its trials do not give is no verdict."""
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL)
    out = tmp_path / "out"
    recorded_run(path, out, {("swiglu", 1)})
    c = compare_results(["relu2", "xielu", "swiglu"], out)
    lm = c.frames["lm"].set_index("activation")
    assert lm.loc["xielu", "verdict"] == "worse" and lm.loc["xielu", "look"] == 1
    assert lm.loc["swiglu", "verdict"] == "undecided" and lm.loc["swiglu", "pairs"] == 8 and lm.loc["swiglu", "trials"] == 9
    line = next(line for line in c.lines["lm"] if "swiglu vs relu2" in line)
    assert ("swiglu failed 1 of 9 seeds (diverged at seed 1), relu2 0: counted as swiglu's worst; cannot be better or equivalent "
            "(the pairs both finished alone would say equivalent)") in line
    assert "would decide it" not in line and "would be needed" not in line  # no hint: the claim it nears is ruled out
    file = out / "decisions.jsonl"
    file.write_text(file.read_text().replace('"verdict":"worse"', '"verdict":"better"'))
    tampered = compare_results(["relu2", "xielu"], out)
    assert tampered.frames["lm"].set_index("activation").loc["xielu", "verdict"] == "no verdict"
    line = next(line for line in tampered.lines["lm"] if "xielu vs relu2" in line)
    assert "xielu vs relu2: no verdict (the recorded decision does not match its trials: look 1 is recorded better, its trials give worse" \
        in line
