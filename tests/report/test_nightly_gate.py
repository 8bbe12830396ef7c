"""regress --history: a history per GPU model and environment, a step confirmed by a second night
or an immediate rerun (with its commits and commands), a machine event kept out of the level,
--accept restarting a row's level, --row for git bisect, and hostile history files."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import msgspec
import numpy as np
import pytest

from actbench import api
from actbench.report import history as store
from actbench.results.gate import ResultsWarning
from actbench.results.store import ResultStore

from .synthetic import kernel_record

ACTS = ("xielu", "relu2", "gelu", "silu", "swiglu", "mish")


def _night(tmp_path, name: str, rng, *, slow: dict[str, float] | None = None, machine: float = 1.0, gpu: str = "NVIDIA H100") -> str:
    """A run of six kernel trials at 0.4% noise a night (each of row and copy); `slow`: activation -> factor on its time;
    `machine`: every time, the copy's too, times this factor."""
    store_ = ResultStore(tmp_path / name)
    for i, act in enumerate(ACTS):
        noise = 1 + rng.normal(0, 0.004, 2)
        p50 = 1.0 * (slow or {}).get(act, 1.0) * machine * noise[0]
        rec = kernel_record(f"t{i}", act, [("triton", "forward", p50, 0.005)], copy=(0.1 * machine * noise[1], 0.005), gpu=gpu)
        store_.append(msgspec.structs.replace(rec, env={**rec.env, "git_commit": name}))
    return str(tmp_path / name)


def _history(tmp_path, nights: int, rng) -> None:
    for i in range(nights):
        r = api.regress(_night(tmp_path, f"good{i}", rng), history=tmp_path / "h")
        assert r.exit_code == 0, r.markdown


def _statuses(r) -> dict[str, str]:
    return {v.row.label.split()[1]: v.judgement.status for v in r.night.judged.verdicts}


def test_a_step_is_suspect_one_night_and_confirmed_by_the_second(tmp_path):
    rng = np.random.default_rng(1)
    _history(tmp_path, 8, rng)
    r = api.regress(_night(tmp_path, "bad1", rng, slow={"relu2": 1.2}), history=tmp_path / "h")
    assert r.exit_code == 0 and _statuses(r)["relu2"] == "suspect" and r.night.suspects == [("k", "t1")], r.markdown
    assert {s for a, s in _statuses(r).items() if a != "relu2"} <= {"ok"}
    r = api.regress(_night(tmp_path, "bad2", rng, slow={"relu2": 1.2}), history=tmp_path / "h")
    assert r.exit_code == 1 and _statuses(r)["relu2"] == "regression", r.markdown
    [v] = r.night.judged.with_status("regression")
    assert (v.last_good, v.first_bad) == ("good7", "bad1") and v.judgement.change == pytest.approx(1 / 1.2 - 1, abs=0.03)
    low, high = v.judgement.interval
    assert low < 1 / 1.2 - 1 < high < 0
    assert "last good good7, first bad bad1; confirmed over 2 nights" in r.markdown
    [name] = [p.name for p in (tmp_path / "h").iterdir()]
    assert name.startswith("nvidia-h100-") and name.endswith(".jsonl")
    nights = store.read_nights(tmp_path / "h", name)
    assert [n.commit for n in nights][-3:] == ["good7", "bad1", "bad2"] and len(nights[0].rows) == 12  # 6 rows + 6 copies


def test_an_immediate_rerun_confirms_a_suspect_and_suspects_only_lists(tmp_path):
    rng = np.random.default_rng(2)
    _history(tmp_path, 7, rng)
    run = _night(tmp_path, "bad", rng, slow={"gelu": 1.3})
    before = (tmp_path / "h").joinpath(*[p.name for p in (tmp_path / "h").iterdir()]).read_bytes()
    r = api.regress(run, history=tmp_path / "h", suspects=tmp_path / "suspects.txt")
    assert r.exit_code == 0 and (tmp_path / "suspects.txt").read_text() == "k t2\n"
    assert (tmp_path / "h").joinpath(*[p.name for p in (tmp_path / "h").iterdir()]).read_bytes() == before  # nothing recorded
    rerun = _night(tmp_path, "rerun", rng, slow={"gelu": 1.3})
    r = api.regress(run, history=tmp_path / "h", rerun=rerun)
    assert r.exit_code == 1 and _statuses(r)["gelu"] == "regression" and "confirmed by an immediate rerun" in r.markdown, r.markdown
    quiet = _night(tmp_path, "quiet", rng)  # a rerun back at the old level clears the night's suspect
    r = api.regress(_night(tmp_path, "bad3", rng, slow={"silu": 1.3}), history=tmp_path / "h", rerun=quiet)
    assert _statuses(r)["silu"] == "ok" and r.exit_code == 0


def test_a_machine_event_is_reported_and_kept_out_of_the_level(tmp_path):
    rng = np.random.default_rng(3)
    _history(tmp_path, 7, rng)
    # every activation 40% slower but the copy only 10%: each row's % of copy falls, the copy's GB/s too
    r = api.regress(_night(tmp_path, "throttled", rng, slow=dict.fromkeys(ACTS, 1.4 / 1.1), machine=1.1), history=tmp_path / "h")
    assert r.exit_code == 0 and r.night.judged.machine_event and "**Machine event**" in r.markdown, r.markdown
    assert not r.night.judged.verdicts
    for i in range(2):  # the nights after it are judged on the level before it: nothing moved
        r = api.regress(_night(tmp_path, f"after{i}", rng), history=tmp_path / "h")
        assert r.exit_code == 0 and set(_statuses(r).values()) == {"ok"}, r.markdown


def test_accept_keeps_the_old_level_and_restarts_the_row(tmp_path):
    rng = np.random.default_rng(4)
    _history(tmp_path, 7, rng)
    api.regress(_night(tmp_path, "step1", rng, slow={"mish": 1.5}), history=tmp_path / "h")
    r = api.regress(_night(tmp_path, "step2", rng, slow={"mish": 1.5}), history=tmp_path / "h", accept=True)
    assert r.exit_code == 0 and r.night.accepted == ["k t5 triton forward | pct_copy"] and "Accepted 1 step" in r.markdown
    r = api.regress(_night(tmp_path, "step3", rng, slow={"mish": 1.5}), history=tmp_path / "h")
    assert r.exit_code == 0 and _statuses(r)["mish"] == "short", r.markdown
    [path] = (tmp_path / "h").iterdir()
    assert len(store.read_nights(path.parent, path.name)) == 10  # the old level is kept


def test_row_check_for_git_bisect(tmp_path):
    rng = np.random.default_rng(5)
    _history(tmp_path, 7, rng)
    for i in range(2):
        api.regress(_night(tmp_path, f"bad{i}", rng, slow={"xielu": 1.25}), history=tmp_path / "h")
    key = "k t0 triton forward | pct_copy"
    assert api.regress_row(_night(tmp_path, "probe_bad", rng, slow={"xielu": 1.25}), tmp_path / "h", key)[0] == 1
    assert api.regress_row(_night(tmp_path, "probe_good", rng), tmp_path / "h", key)[0] == 0
    assert api.regress_row(_night(tmp_path, "probe_good2", rng), tmp_path / "h", "k nothing | pct_copy")[0] == 125


def test_each_environment_has_its_own_history_and_hostile_lines_are_skipped(tmp_path):
    rng = np.random.default_rng(6)
    gpu = "../../evil\x1b[31m name"
    r = api.regress(_night(tmp_path, "n0", rng, gpu=gpu), history=tmp_path / "h")
    name = r.night.path.name
    assert r.night.path.parent == tmp_path / "h" and name.startswith("evil-31m-name-") and name.endswith(".jsonl")
    with r.night.path.open("a") as f:
        f.write("not json\n" + json.dumps({"commit": "x", "date": "d", "rows": {"k": {"value": "1"}}}) + "\n"
                + json.dumps({"commit": "y", "date": "d", "rows": {"k": {"value": 1e300}}}) + "\n[1, 2]\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [n.commit for n in store.read_nights(tmp_path / "h", name)] == ["n0"]
    assert any(issubclass(w.category, ResultsWarning) and "skipped 4 line(s)" in str(w.message) for w in caught)
    api.regress(_night(tmp_path, "other", rng, gpu="NVIDIA A100"), history=tmp_path / "h")
    assert len(list((tmp_path / "h").iterdir())) == 2
    # a history file that is a link is not followed, for reading or for writing
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    (tmp_path / "h2").mkdir()
    (tmp_path / "h2" / name).symlink_to(target)
    cli = subprocess.run([sys.executable, "-m", "actbench", "regress", str(tmp_path / "n0"), "--history", str(tmp_path / "h2")],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2 and "--history" in cli.stderr and "Traceback" not in cli.stderr and target.read_text() == ""


def test_repro_command_selects_exactly_the_trial(tmp_path):
    """The command printed with an alert, rebuilt from the record and suites/<suite>.yaml, with the
    --set values the night ran with, selects that trial and no other (--dry-run lists it)."""
    from actbench.report.repro import repro_args
    from actbench.suite import load_suite, parse_overrides

    s = load_suite("suites/smoke.yaml", parse_overrides(["impls=[eager]", "rep_ms=7"]), check_paths=False)
    trial = s.trials[3]
    rec = msgspec.structs.replace(kernel_record(trial.id, "x", []), suite="smoke", config=trial.config_dict())
    args = repro_args(rec)
    assert args[:5] == ["actbench", "run", "suites/smoke.yaml", "-k", "activation=relu2 and dtype=bfloat16 and size=65536"]
    assert args[5:9] == ["--set", "impls=[\"eager\"]", "--set", "rep_ms=7.0"]
    dry = subprocess.run([sys.executable, "-m", "actbench", *args[1:], "--dry-run"], capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and "smoke: 1 kernel trial(s)" in dry.stdout and trial.id in dry.stdout, dry.stdout + dry.stderr


def test_every_night_written_is_read_back(tmp_path):
    """A record whose row key would pass the history's bound (a 600-character trial id) leaves its
    rows out of the night, instead of writing a line the history would then skip."""
    run = ResultStore(tmp_path / "run")
    for tid in ("t0", "x" * 600):
        run.append(kernel_record(tid, "xielu", [("triton", "forward", 1.0, 0.01)]))
    r = api.regress(tmp_path / "run", history=tmp_path / "h")
    [night] = store.read_nights(r.night.path.parent, r.night.path.name)
    assert sorted(night.rows) == ["k t0 copy | gbps", "k t0 triton forward | pct_copy"]


def test_lm_rows_over_seeds_and_memory_rows_exact(tmp_path):
    """An lm row is its config over seeds (the mean; its noise the seeds' sd over the mean, n the
    seeds); a memory row is exact: a 5% growth of saved bytes is a step on its first night."""
    from actbench.core.record import Record

    from .synthetic import lm_record

    rng = np.random.default_rng(7)

    def night(name: str, bpb_shift: float = 0.0, saved: float = 2.0) -> str:
        run = ResultStore(tmp_path / name)
        for seed in range(3):
            rec = lm_record("xielu", seed, 1.5 + bpb_shift + rng.normal(0, 0.003))
            run.append(msgspec.structs.replace(rec, env={**rec.env, "git_commit": name}))
        run.append(Record(trial_id="m0", status="ok", suite="mem", kind="memory", config={"activation": "xielu"},
                          rows=[{"impl": "eager", "saved_bytes_per_elem": saved, "peak_fwd_bwd_mb": 64.0}], env={"git_commit": name}))
        return str(tmp_path / name)

    for i in range(7):
        assert api.regress(night(f"good{i}"), history=tmp_path / "h").exit_code == 0
    [path] = (tmp_path / "h").iterdir()
    rows = store.read_nights(path.parent, path.name)[-1].rows
    bpb = next(p for k, p in rows.items() if k.startswith("s ") and k.endswith("| val_bpb"))
    assert bpb.n == 3 and bpb.value == pytest.approx(1.5, abs=0.01) and 0 < bpb.noise < 0.01
    assert rows["mem m0 eager | saved_bytes_per_elem"] == store.Point(2.0, 0.0, 1)
    r = api.regress(night("grew", saved=2.1), history=tmp_path / "h")
    statuses = {v.row.metric: v.judgement.status for v in r.night.judged.verdicts}
    assert statuses == {"val_bpb": "ok", "tokens_per_s": "ok", "saved_bytes_per_elem": "suspect", "peak_fwd_bwd_mb": "ok"}, r.markdown
    r = api.regress(night("worse", bpb_shift=0.05, saved=2.1), history=tmp_path / "h")
    statuses = {v.row.metric: v.judgement.status for v in r.night.judged.verdicts}
    assert statuses["saved_bytes_per_elem"] == "regression" and statuses["val_bpb"] == "suspect" and r.exit_code == 1, r.markdown


def test_the_gate_confirms_a_5pct_step_at_1pct_noise_within_2_nights():
    """The gate's defaults meet the issue's target: 1200 kernel rows at 1% noise a night over 60
    nights (the target holds from about 45: with 30, 95%; with 14, 80%), a 5% slowdown planted in
    400 of them; the second night of the step confirms >= 95% of them (binomial sd about 0.8 points
    near 97%) and none of the others. With `--threshold`'s 5% as the minimum effect (before) about
    64% were confirmed."""
    from actbench.report.alerts import Row, judge_night

    rng = np.random.default_rng(8)
    rows, nights = 1200, 62
    stepped = np.arange(rows) % 3 == 0
    values = 50 * np.exp(rng.normal(0, 0.01, (rows, nights)) + np.where(stepped[:, None] & (np.arange(nights) >= 60), np.log(0.95), 0))
    keys = [f"k t{i} triton forward | pct_copy" for i in range(rows)]
    history = [store.Night(f"c{t}", "d", {k: store.Point(float(values[i, t]), 0.005, 5) for i, k in enumerate(keys)})
               for t in range(nights)]
    record = kernel_record("t0", "xielu", [("triton", "forward", 1.0, 0.005)])
    judged = judge_night(history[:-1], history[-1], {k: Row(k, record, k, "pct_copy", "kernel") for k in keys})
    status = np.array([v.judgement.status for v in judged.verdicts])
    assert not judged.machine_event and (status[stepped] == "regression").mean() >= 0.95
    assert not np.isin(status[~stepped], ("regression", "improvement")).any()
    commits = [(v.last_good, v.first_bad) for v in judged.verdicts if v.judgement.status == "regression"]
    assert commits.count(("c59", "c60")) >= 0.95 * len(commits)


def test_a_move_of_every_kernel_that_the_copy_did_not_share_is_judged_not_a_machine_event(tmp_path):
    """Two modes a trial: every kernel 30% slower on a night whose copy bandwidth did not move (a
    code change in what every kernel shares) is two thirds of the rows moving together, but not a
    machine event: the copies stayed, so each row is a suspect step (before: a machine event, no
    row judged). Moved with the copies, the same night is a machine event."""
    rng = np.random.default_rng(9)

    def night(name: str, slow: float = 1.0, machine: float = 1.0) -> str:
        run = ResultStore(tmp_path / name)
        for i, act in enumerate(ACTS):
            noise = 1 + rng.normal(0, 0.004, 3)
            rec = kernel_record(f"t{i}", act, [("triton", "forward", slow * machine * noise[0], 0.005),
                                               ("triton", "backward", 2 * slow * machine * noise[1], 0.005)],
                                copy=(0.1 * machine * noise[2], 0.005))
            run.append(msgspec.structs.replace(rec, env={**rec.env, "git_commit": name}))
        return str(tmp_path / name)

    for i in range(8):
        assert api.regress(night(f"good{i}"), history=tmp_path / "h").exit_code == 0
    r = api.regress(night("slower", slow=1.3), history=tmp_path / "h", suspects=tmp_path / "s.txt")
    assert not r.night.judged.machine_event and r.night.judged.moved == (12, 18), r.markdown
    assert {v.judgement.status for v in r.night.judged.verdicts} == {"suspect"} and len(r.night.suspects) == 6
    r = api.regress(night("throttled", slow=1.3 / 1.1, machine=1.1), history=tmp_path / "h", suspects=tmp_path / "s.txt")
    assert r.night.judged.machine_event and not r.night.judged.verdicts, r.markdown


def test_a_step_between_nights_of_one_commit_is_no_code_change(tmp_path):
    """Last good and first bad the same commit (a driver, machine or data change): the alert says
    so and prints the command that reproduces it but no `git bisect start X X`; still exit 1."""
    from actbench.suite import load_suite, parse_overrides

    trial = load_suite("suites/smoke.yaml", parse_overrides(["impls=[eager]"]), check_paths=False).trials[3]
    rng = np.random.default_rng(3)

    def night(name: str, slow: float = 1.0) -> str:
        noise = 1 + rng.normal(0, 0.004, 2)
        rec = kernel_record(trial.id, "relu2", [("eager", "forward", slow * noise[0], 0.005)], copy=(0.1 * noise[1], 0.005))
        ResultStore(tmp_path / name).append(msgspec.structs.replace(rec, suite="smoke", config=trial.config_dict()))
        return str(tmp_path / name)

    for i in range(8):
        assert api.regress(night(f"good{i}"), history=tmp_path / "h", commit="c1").exit_code == 0
    api.regress(night("bad1", 1.2), history=tmp_path / "h", commit="c1")
    r = api.regress(night("bad2", 1.2), history=tmp_path / "h", commit="c1")
    assert r.exit_code == 1 and "no code change between the nights (environment, machine or data)" in r.markdown, r.markdown
    assert "reproduce: ` actbench run suites/smoke.yaml" in r.markdown and "git bisect" not in r.markdown
