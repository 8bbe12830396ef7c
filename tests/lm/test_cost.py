"""The cost model behind `lm plan` (`actbench.lm.cost`, `actbench.report.cost`): the MFU curve,
compiles counted per shape and worker, what a trial records of its costs, figures calibrated
from a real run's records, the epochs a suite reads, and a run's cost set beside its plan."""

from __future__ import annotations

import math
import random

import pytest
from rich.console import Console

from actbench import api
from actbench.core.record import Record
from actbench.lm import cost
from actbench.lm.config import LMConfig
from actbench.lm.corpus import load_corpus
from actbench.lm.train import compile_seconds
from actbench.report.compare import compare_results
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor

TINY = dict(d_model=32, n_layers=1, n_heads=2, seq_len=32, batch_size=8, ff_multiple=16, reference_d_ff=64, eval_tokens=1024,
            eval_every=10, churn_tokens=64, impl="eager", tokens=10240)
SUITE = """name: tinycost
kind: lm
defaults: {d_model: 32, n_layers: 1, n_heads: 2, seq_len: 32, batch_size: 8, ff_multiple: 16, reference_d_ff: 64, eval_tokens: 1024,
           eval_every: 10, churn_tokens: 64, impl: eager, tokens: 10240, data: {val_tokens: 4096}}
matrix:
  activation: [relu2, xielu]
seeds: 2
resources: {cpus: 1, timeout_s: 600, retries: 0}
"""


def text(renderable) -> str:
    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - rich closes nothing
    console.print(renderable)
    return console.export_text()


def test_the_mfu_curve_is_the_measurement_where_one_exists_and_says_where_it_is_assumed():
    at_124m = cost.curve_mfu(1.24e8)
    assert at_124m.value == 0.353 and at_124m.source.startswith("measured: README")
    between = cost.curve_mfu(1.9e7 * 2)
    assert 0.15 < between.value < 0.353 and between.source.startswith("between 20M (assumed) and 124M (measured")
    sizes = [1e4, 1e6, 5e6, 2e7, 6e7, 1.24e8, 5e8, 1e9, 1e11]
    values = [cost.curve_mfu(p).value for p in sizes]
    assert values == sorted(values) and values[0] == 0.02 and values[-1] == 0.45


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_trials_alike_but_for_their_seed_cost_what_each_costs_alone(device):
    """`Costing.add` computes each distinct config's shape and seconds once: over random configs
    (repeated with other seeds, on other units and validation tokens, in random order) every
    trial's cost is what costing it alone gives (`trial_cost` at the compile level its shape has
    reached), and so is their sum."""
    rng = random.Random(7)
    bases = [dict(activation=a, compile=c, lr=lr, **{**TINY, "impl": impl}) for a in ("relu2", "xielu", "swiglu")
             for impl, c in (("eager", False), ("compile", True), ("eager", True)) for lr in (1e-3, 2e-3)]
    trials = [(rng.randrange(len(bases)), rng.randrange(40), rng.choice([1, 2, 4]), rng.choice([None, 4096, 8192])) for _ in range(300)]
    figures, at_once = cost.DEFAULTS[device], rng.choice([1, 2, 3])
    run = cost.Costing(figures, cost.Workers(at_once))
    got = [run.add(LMConfig(seed=seed, **bases[b]), units, val, alike=b) for b, seed, units, val in trials]
    compiled: dict = {}
    want = []
    for i, (b, seed, units, val) in enumerate(trials):
        cfg, level = LMConfig(seed=seed, **bases[b]), None
        if cost.compiles(cfg, device):
            n = compiled[cost.shape_of(cfg)] = compiled.get(cost.shape_of(cfg), 0) + 1
            level = "cold" if n == 1 else "fresh" if n <= at_once else "warm"
        want.append(cost.trial_cost(cfg, figures, units, level, val, first_in_worker=i < at_once))
    assert got == want and {c.compile for c in got} >= {None, "cold", "warm"}
    assert sum(c.total for c in got) == sum(c.total for c in want)


def test_each_shape_compiles_cold_once_then_fresh_in_each_other_worker_then_warm():
    relu = [LMConfig(activation="relu2", compile=True, seed=s, lr=lr, **{**TINY, "impl": "compile"}) for s, lr in ((0, 1e-3), (1, 2e-3), (2, 1e-3))]
    xielu = [LMConfig(activation="xielu", compile=True, seed=s, **{**TINY, "impl": "compile"}) for s in (0, 1)]
    eager = LMConfig(activation="relu2", seed=0, **TINY)
    workers = cost.Workers(at_once=2)
    got = cost.costs([*relu, *xielu, eager], cost.DEFAULTS["cpu"], 1, 4096, workers)
    assert [c.compile for c in got] == ["cold", "fresh", "warm", "cold", "fresh", None]
    compile_s = cost.DEFAULTS["cpu"].compile_s
    assert [c.compile_s for c in got[:3]] == [compile_s["cold"].value, compile_s["fresh"].value, compile_s["warm"].value]
    assert got[-1].compile_s == 0 and workers.trials == 6
    assert got[0].fixed_s > got[2].fixed_s  # the first trial of each of the 2 workers pays its imports


def test_a_compile_is_the_first_step_less_a_normal_one():
    assert compile_seconds([10.0, 1.0, 1.2, 0.8], train_time=5.0, timed_steps=5) == 9.0  # a normal step: the timed mean
    assert compile_seconds([10.0, 1.0, 1.2, 0.8], train_time=0.0, timed_steps=0) == 9.0  # else the median of the others
    assert compile_seconds([10.0], 0.0, 0) is None and compile_seconds([], 0.0, 0) is None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real run of 4 tiny lm trials, inline (one process)."""
    root = tmp_path_factory.mktemp("cost")
    (root / "tinycost.yaml").write_text(SUITE)
    result = api.run(root / "tinycost.yaml", out=root / "out", executor=InlineExecutor())
    assert result.exit_code == 0
    return root / "out"


def test_a_trial_records_its_costs_and_the_epochs_it_read(tiny_run):
    records = sorted(iter_records(tiny_run / "trials.jsonl"), key=lambda r: r.started_at)
    train = len(load_corpus(LMConfig(activation="relu2", **TINY).data).train)
    for r in records:
        m = r.metrics
        assert m["epochs"] == pytest.approx(10240 / train)
        assert m["compile_s"] is None and m["shape_warm"] is None  # eager: nothing compiles
        parts = m["setup_s"] + m["loop_s"] + m["final_eval_s"]
        assert 0 < m["cpu_s"]  # this process's CPU seconds over the trial's work (its threads: not bounded by the wall time)
        assert 0 < m["data_s"] < m["setup_s"] and 0 < m["first_step_s"] < m["loop_s"] and parts <= r.duration_s
    assert [r.metrics["process_trial"] for r in records] == list(range(records[0].metrics["process_trial"], records[0].metrics["process_trial"] + 4))


def test_figures_calibrated_from_a_run_cost_its_trials_as_they_ran(tiny_run):
    records = list(iter_records(tiny_run / "trials.jsonl"))
    figures = cost.calibrate(cost.DEFAULTS["cpu"], records, "the tiny run")
    per_thread = sorted(3 * r.metrics["flops_per_token"] * r.metrics["tokens_per_s"] / r.env["torch_threads"] for r in records)
    assert figures.thread_flops.value == pytest.approx((per_thread[1] + per_thread[2]) / 2)
    assert figures.thread_flops.source == "measured: the tiny run, median of 4 record(s)"
    assert figures.eval_speed.source.startswith("measured") and figures.setup_s.source.startswith("measured")
    assert figures.compile_s == cost.DEFAULTS["cpu"].compile_s  # nothing compiled: the defaults stand, with their sources
    records.sort(key=lambda r: r.started_at)
    fresh = records[0].metrics["process_trial"] == 1  # the first trial of this process paid its imports
    workers = cost.Workers(1, trials=0 if fresh else 1)
    planned = sum(c.total for c in cost.costs([LMConfig.model_validate(r.config) for r in records], figures, 1, 4096, workers))
    planned -= len(records) * figures.dispatch_s.value  # the run was inline: no Ray task dispatched (0.13 s a trial, half of one)
    spent = sum(r.duration_s for r in records)
    assert planned == pytest.approx(spent, rel=0.25, abs=0.5)  # abs: trials of about 0.25 s each, whose fixed costs vary with the machine's load


def test_compare_sets_a_runs_cost_beside_its_plan(tiny_run):
    c = compare_results(["relu2", "xielu"], tiny_run)
    line = next(line for line in c.lines["lm"] if "the run cost" in line)
    assert line.startswith(f"tinycost ({tiny_run}): the run cost ") and "(trials 4 trial(s)" in line and "of wall clock over 1 run(s)" in line
    assert "the plan's figures (lm plan's, not this run's) say" in line


def test_the_cost_beside_the_plan_is_the_models_for_the_trials_that_ran(tmp_path):
    """Two compiled trials one after the other, their durations known: the plan side is the cost
    model's for them run as they ran (one at a time: the second compile of a shape warm), and the
    difference is their ratio."""
    (tmp_path / "s.yaml").write_text(SUITE.replace("impl: eager", "impl: compile"))
    suite = api.suite_of(tmp_path / "s.yaml", check_paths=False)
    store = ResultStore(tmp_path / "run")
    trials = [t for t in suite.trials if t.config.activation == "relu2"]
    for i, t in enumerate(trials):
        store.append(Record(trial_id=t.id, status="ok", suite=suite.name, kind="lm", config=t.config_dict(), run_id="r",
                            started_at=1000.0 + 100 * i, ended_at=1090.0 + 100 * i, duration_s=90.0,
                            metrics={"val_bpb": 2.0, "val_tokens_scored": 2047, "tune_val_tokens_scored": 2047, "device": "cpu"}))
    expect = cost.costs([t.config for t in trials], cost.DEFAULTS["cpu"], 1, 4096, cost.Workers(1))
    assert [c.compile for c in expect] == ["cold", "warm"]
    said = sum(c.total for c in expect)
    line = next(line for line in compare_results(["relu2"], tmp_path).lines["lm"] if "the run cost" in line)
    assert f"the run cost 180 trial-seconds (trials 2 trial(s) 180 s (plan {said:,.0f} s)), 0:03:10 of wall clock over 1 run(s)" in line
    assert f"say {said:,.0f} s for these trials: {100 * (said / 180 - 1):+.0f}%" in line and line.endswith("at 1 at a time")


def test_the_cost_beside_the_plan_sets_the_trials_cpu_seconds_beside_the_plans_work(tmp_path):
    """On a loaded machine wall time stretches with the load: the line also sets the CPU seconds the
    trials' processes recorded (cpu_s) beside the plan's training, evaluation and compiles for them."""
    (tmp_path / "s.yaml").write_text(SUITE.replace("impl: eager", "impl: compile"))
    suite = api.suite_of(tmp_path / "s.yaml", check_paths=False)
    store = ResultStore(tmp_path / "run")
    trials = [t for t in suite.trials if t.config.activation == "relu2"]
    for i, (t, cpu) in enumerate(zip(trials, (25.0, 15.0))):
        store.append(Record(trial_id=t.id, status="ok", suite=suite.name, kind="lm", config=t.config_dict(), run_id="r",
                            started_at=1000.0 + 100 * i, ended_at=1090.0 + 100 * i, duration_s=90.0,
                            metrics={"val_bpb": 2.0, "val_tokens_scored": 2047, "tune_val_tokens_scored": 2047, "device": "cpu", "cpu_s": cpu}))
    expect = cost.costs([t.config for t in trials], cost.DEFAULTS["cpu"], 1, 4096, cost.Workers(1))
    work = sum(c.train_s + c.eval_s + c.compile_s for c in expect)
    line = next(line for line in compare_results(["relu2"], tmp_path).lines["lm"] if "the run cost" in line)
    assert f"(trials 2 trial(s) 180 s, CPU 40 s (plan {sum(c.total for c in expect):,.0f} s))" in line
    assert line.endswith(f"; their work (training, evaluation, compiles; no process start) took 40 CPU seconds, the plan's {work:,.0f} s: "
                         f"{100 * (work / 40 - 1):+.0f}%")


def test_the_plan_states_the_epochs_and_warns_past_one_naming_the_shards_suite():
    small = text(api.plan("suites/llm_small.yaml"))
    assert "each final trial reads 0.91 epochs of its training data" in small and "WARNING" not in small
    assert "MFU by parameters" in small and "124M 35.3% (measured: README" in small and "unmeasured" in small
    four = text(api.plan("suites/llm_small.yaml", ["tokens=16777216", "eval_every=64"]))
    assert "WARNING: each final trial reads 3.66 epochs" in four and "suites/llm_small_web.yaml" in four
    web = text(api.plan("suites/llm_small_web.yaml"))
    assert "epochs unknown: data.path: no shard matches" in web


def test_the_plan_costs_with_what_an_earlier_run_measured(tiny_run, tmp_path):
    (tmp_path / "tinycost.yaml").write_text(SUITE)
    out = text(api.plan(tmp_path / "tinycost.yaml", results=tiny_run))
    assert f"(measured: {tiny_run}, median of 4 record(s))" in out and "compiles:" not in out
    assert math.isfinite(float(out.split("GFLOP/s per CPU thread")[0].split("training ")[-1]))


def test_figures_from_a_folder_of_strangers_are_used_only_where_they_make_sense():
    """Records are data from anyone: a rate of zero or next to it, a negative, infinite or absurd
    time, a bool or a string measures nothing, and the default stands (a rate near zero would cost
    a trial forever)."""
    def rec(i: int, **metrics) -> Record:
        return Record(trial_id=f"t{i}", status="ok", kind="lm", config={"activation": "relu2"}, started_at=float(i), env={"torch_threads": 1},
                      metrics={"device": "cpu", "flops_per_token": 1e6, **metrics})

    records = [rec(0, tokens_per_s=0.0, setup_s=-1.0, final_eval_s=True, val_tokens_scored=100),
               rec(1, tokens_per_s=1e-320, setup_s="slow", compile_s=float("inf")),
               rec(2, tokens_per_s=float("nan"), mfu=0.5, compile_s=1e200)]
    figures = cost.calibrate(cost.DEFAULTS["cpu"], records, "strangers")
    assert figures == cost.DEFAULTS["cpu"]
    assert all(c.total < 1e6 for c in cost.costs([LMConfig(activation="relu2", seed=0, **TINY)], figures, 1, 4096, cost.Workers(1)))
