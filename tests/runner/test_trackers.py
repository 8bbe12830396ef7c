"""`run --log tensorboard,wandb,mlflow`: a real run of a tiny lm suite (one trial ok, one that
diverges) read back from what each tracker wrote (TensorBoard's event files, W&B's offline run
files, an MLflow file store), never from a mock; trackers that cannot be used stop the run before
anything runs; a planted link in a tracker's folder is refused; a tracker failing during a trial
is said once and loses no record. The W&B and MLflow parts skip without their packages
(`pip install -e ".[wandb,mlflow]"`)."""

from __future__ import annotations

import importlib.util
import io
import json
import struct
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest
from rich.console import Console

from actbench import cli
from actbench.results.read import iter_records
from actbench.suite import load_suite

TINY_LM = """\
name: tiny
kind: lm
defaults: {d_model: 32, n_layers: 1, n_heads: 2, seq_len: 32, batch_size: 8, ff_multiple: 16, impl: eager,
           tokens: 2560, eval_every: 5, eval_tokens: 512, churn_tokens: 256, final_eval: slice}
matrix:
  activation: [relu2, nan_act]
resources: {cpus: 1}
"""
NAN_ACTS = """\
import torch
from actbench.activations import register


@register("nan_act", family="test", paper="none")
class NanAct(torch.nn.Module):
    \"\"\"f(x) = nan: the trial diverges at its first step.\"\"\"

    def forward(self, x):
        return x * float("nan")
"""
SLOW = pytest.mark.slow  # the four tests of one real run: 10 to 25 s on 2 busy cores (torch's compiler and the trackers
# imported, two tiny trials trained), shared by them; the only place a tracker is read back from a real sweep
INSTALLED = [name for name in ("wandb", "mlflow") if importlib.util.find_spec(name) is not None]


def actbench(mp: pytest.MonkeyPatch, cwd: Path, *args: str) -> tuple[int, str]:
    """Exit code and everything printed by `actbench ARGS` run in this process from `cwd` (a run's
    progress only with --verbose: else it goes to the terminal, its other output to run.log)."""
    buf = io.StringIO()
    mp.chdir(cwd)
    mp.setattr(sys, "argv", ["actbench", *args])
    mp.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    mp.setattr(warnings, "showwarning", lambda message, *_, **__: buf.write(f"{message}\n"))
    mp.setattr(cli, "console", Console(file=buf, width=300))
    mp.setattr(cli, "err_console", Console(file=buf, width=300))
    with pytest.raises(SystemExit) as e:
        cli.main()
    return e.value.code, buf.getvalue()


def tiny(root: Path, activations: str = "relu2, nan_act") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.yaml").write_text(TINY_LM.replace("relu2, nan_act", activations))
    (root / "nan_acts.py").write_text(NAN_ACTS)
    return root


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any], str]]:
    """One real inline run with every installed tracker (W&B offline, MLflow's file store in the
    results folder), TensorBoard's folder for the diverging trial taken by a file (that tracker
    fails for it); its folder, its records by activation and what it printed."""
    root = tiny(tmp_path_factory.mktemp("trackers"))
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        import nan_acts  # noqa: F401 - registers nan_act, to find the trial ids

        for var in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_EXPERIMENT_NAME", "WANDB_DIR", "WANDB_PROJECT"):
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_MODE", "offline")
        for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
            mp.setenv(var, str(root / var.lower()))
        nan_trial = next(t for t in load_suite(root / "tiny.yaml").trials if t.config_dict()["activation"] == "nan_act")
        (root / "out" / "tensorboard").mkdir(parents=True)
        (root / "out" / "tensorboard" / f"activation=nan_act_{nan_trial.id}").write_text("not a folder")
        code, out = actbench(mp, root, "--plugin", "nan_acts", "run", "tiny.yaml", "--executor", "inline", "--out", "out",
                             "--verbose", "--tensorboard", *(["--log", ",".join(INSTALLED)] if INSTALLED else []))
    assert code == 1, out  # a trial did not succeed
    records = {r.config["activation"]: r for r in iter_records(root / "out" / "trials.jsonl")}
    assert {a: r.status for a, r in records.items()} == {"relu2": "ok", "nan_act": "diverged"}, out
    yield root / "out", records, out


@SLOW
def test_a_tracker_failing_for_a_trial_is_said_once_and_the_trial_is_kept(logged):
    out, records, printed = logged
    assert printed.count("--log tensorboard: ") == 1 and "the sweep goes on" in printed, printed
    assert [p.name for p in (out / "tensorboard").iterdir() if p.is_dir()] == [f"activation=relu2_{records['relu2'].trial_id}"]


@SLOW
def test_tensorboard_gets_the_streamed_scalars_the_final_metrics_and_the_status(logged):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, records, _ = logged
    ev = EventAccumulator(str(out / "tensorboard" / f"activation=relu2_{records['relu2'].trial_id}"), size_guidance={"tensors": 0})
    ev.Reload()
    assert sorted({e.step for e in ev.Scalars("val/bpb")}) == [5, 10]
    assert {"train/loss", "train/lr", "train/tokens_per_s"} <= set(ev.Tags()["scalars"])
    assert ev.Scalars("val_bpb")[-1].value == pytest.approx(records["relu2"].metrics["val_bpb"], rel=1e-6)
    assert [t.tensor_proto.string_val[0] for t in ev.Tensors("status/text_summary")] == [b"ok"]


@SLOW
def test_mlflow_runs_read_back_from_the_file_store(logged):
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    out, records, _ = logged
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    runs = {r.data.params["activation"]: r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])}
    assert {a: (r.info.status, r.data.tags["actbench.status"]) for a, r in runs.items()} == \
        {"relu2": ("FINISHED", "ok"), "nan_act": ("FAILED", "diverged")}
    for act, run in runs.items():
        assert run.data.tags["actbench.trial_id"] == records[act].trial_id and run.info.run_name == f"activation={act}"
        assert run.data.params["tokens"] == "2560" and json.loads(run.data.params["data"])["source"] == "shakespeare"
    relu2 = runs["relu2"]
    assert relu2.data.metrics["val_bpb"] == pytest.approx(records["relu2"].metrics["val_bpb"], rel=1e-12)
    assert sorted({m.step for m in client.get_metric_history(relu2.info.run_id, "val/bpb")}) == [5, 10]
    assert {"train/loss", "train/lr", "train/tokens_per_s"} <= set(relu2.data.metrics)


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B run file (`run-<id>.wandb`: a 7-byte header, then LevelDB-log
    blocks of 32 KiB, each chunk a 7-byte header: CRC, length, type (1 full, 2 first, 3 middle, 4 last))."""
    from wandb.proto import wandb_internal_pb2

    data, pos, chunk = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        _, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = chunk + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            chunk = b""
            yield record


@SLOW
def test_wandb_offline_runs_read_back_from_their_files(logged):
    pytest.importorskip("wandb")
    out, records, _ = logged
    assert not [p for p in (out / "wandb").iterdir() if p.is_symlink()]  # wandb's latest-run and debug.log links are not made
    runs = {}
    for path in (out / "wandb").glob("offline-run-*/run-*.wandb"):
        config, history, summary, exit_code = {}, [], {}, None
        for r in wandb_records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                config = {u.key: json.loads(u.value_json) for u in r.run.config.update}
                name = r.run.display_name
            elif kind == "history":
                history.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item})
            elif kind == "summary":
                summary.update({"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in r.summary.update})
            elif kind == "exit":
                exit_code = r.exit.exit_code
        runs[config["activation"]] = (name, config, history, summary, exit_code)
    assert sorted(runs) == ["nan_act", "relu2"]
    for act, (name, config, _, summary, exit_code) in runs.items():
        assert name == f"activation={act}" and config["trial_id"] == records[act].trial_id and config["tokens"] == 2560
        assert (summary["status"], exit_code) == (("ok", 0) if act == "relu2" else ("diverged", 1))
    _, _, history, summary, _ = runs["relu2"]
    assert sorted({h["_step"] for h in history if "val/bpb" in h}) == [5, 10]
    assert summary["val_bpb"] == pytest.approx(records["relu2"].metrics["val_bpb"], rel=1e-12)


def test_unknown_tracker_or_missing_package_stops_before_anything_runs(tmp_path):
    root = tiny(tmp_path, "relu2")
    with pytest.MonkeyPatch.context() as mp:
        code, out = actbench(mp, root, "run", "tiny.yaml", "--executor", "inline", "--out", "out", "--log", "tensorboard,neptune")
    assert code == 2 and "--log 'neptune': not a tracker; choose from tensorboard, wandb, mlflow" in out
    for name in ("wandb", "mlflow"):
        with pytest.MonkeyPatch.context() as mp:
            mp.setitem(sys.modules, name, None)  # as if it were not installed: importing it fails
            code, out = actbench(mp, root, "run", "tiny.yaml", "--executor", "inline", "--out", "out", "--log", name)
        assert code == 2 and f"--log {name} needs the {name} package" in out and f"pip install 'actbench[{name}]'" in out, out
        assert len(out.strip().splitlines()) == 1 and not (root / "out" / "trials.jsonl").exists()


@pytest.mark.parametrize("planted", ["tensorboard", "tensorboard/run", *(f"{d}/x" for d in ("wandb", "mlruns"))])
def test_a_planted_link_in_a_tracker_folder_is_refused_before_anything_runs(tmp_path, planted):
    """`<out>/tensorboard` (or an entry below a tracker's folder) linked elsewhere: nothing is
    written there and no trial runs."""
    tracker = {"tensorboard": "tensorboard", "wandb": "wandb", "mlruns": "mlflow"}[planted.split("/")[0]]
    if tracker != "tensorboard":
        pytest.importorskip(tracker)
    root = tiny(tmp_path, "relu2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = root / "out" / planted
    link.parent.mkdir(parents=True)
    link.symlink_to(elsewhere)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.delenv("WANDB_DIR", raising=False)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        flags = ["--tensorboard"] if tracker == "tensorboard" else ["--log", tracker]
        code, out = actbench(mp, root, "run", "tiny.yaml", "--executor", "inline", "--out", "out", *flags)
    assert list(elsewhere.iterdir()) == [] and not (root / "out" / "trials.jsonl").exists(), out
    assert code == 2 and f"{Path('out', planted)} is a symbolic link" in out, out


def test_strings_from_a_suite_reach_trackers_as_values(tmp_path, monkeypatch):
    """A swept value with a path, markup and escape sequences: TensorBoard's folder is named from
    its plain characters inside <out>/tensorboard, MLflow keeps it verbatim as the run's name and a
    parameter; the board goes on."""
    from actbench.runner.progress import Board
    from actbench.runner.trackers import open_trackers

    hostile = "../../etc/x [/b]\x1b]52;c;AAAA\x07 \u202e"
    installed = ("tensorboard", *(["mlflow"] if "mlflow" in INSTALLED else []))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    (tmp_path / "out").mkdir()
    buf = io.StringIO()
    board = Board("s", Console(file=buf), trackers=open_trackers(installed, tmp_path / "out", "s"), plain_every_s=3600)
    with board:
        board.submitted("abc123", f"tag={hostile}", 1.0, "probe", {"tag": hostile})
        board.finished("abc123", ok=True)
    assert "warning" not in buf.getvalue(), buf.getvalue()
    assert [p.name for p in (tmp_path / "out" / "tensorboard").iterdir()] == ["tag=.._.._etc_x_b_52_c_AAAA_abc123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    if "mlflow" in installed:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=(tmp_path / "out" / "mlruns").resolve().as_uri())
        (run,) = client.search_runs([client.get_experiment_by_name("s").experiment_id])
        assert run.info.run_name == f"tag={hostile}" and run.data.params["tag"] == hostile and run.info.status == "FINISHED"


def test_a_sweep_that_stops_leaves_its_open_runs_killed(tmp_path, monkeypatch):
    """Ctrl-C or a lost cluster ends the board with trials still running: their runs are
    finished as killed, not left running."""
    from actbench.runner.progress import Board
    from actbench.runner.trackers import open_trackers

    installed = ("tensorboard", *(["mlflow"] if "mlflow" in INSTALLED else []))
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv(var, raising=False)
    board = Board("s", Console(file=io.StringIO()), trackers=open_trackers(installed, tmp_path, "s"), plain_every_s=3600)
    with pytest.raises(KeyboardInterrupt), board:
        board.submitted("t1", "a=1", 2.0, "probe", {"a": 1})
        board.report("t1", {"step": 1, "total_steps": 2, "train_loss": 0.5})  # not one of this board's columns: not logged
        raise KeyboardInterrupt
    assert all(not t.runs for t in board.trackers.trackers)
    if "mlflow" in installed:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=(tmp_path / "mlruns").resolve().as_uri())
        (run,) = client.search_runs([client.get_experiment_by_name("s").experiment_id])
        assert (run.info.status, run.data.tags["actbench.status"], run.data.metrics) == ("KILLED", "killed", {})
