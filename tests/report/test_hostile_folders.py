"""A results folder is data from strangers, through the real CLI (in process, under a time bound):
a record's suite field holding `..`, planted names and links, FIFOs and a link to /dev/zero where
records, series and kept suites should be, and numbers near the float limits. Every command ends
with exit 0 or 2, no traceback, a warning naming what was not read, nothing read from outside
the folder and nothing written outside --out."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from rich.console import Console

from actbench import cli
from actbench.results.store import ResultStore

from .synthetic import lm_record

SECRET = "SECRET-7f3a"
STEPS = [10, 20, 30]


class Hung(BaseException):
    """The command did not finish in time (not an Exception: the CLI must not turn it into an error line)."""


def actbench(capfd, monkeypatch, *args: str, seconds: int = 60) -> tuple[int, str, str]:
    """Exit code, stdout and stderr (warnings as one line each, as outside pytest) of `actbench
    ARGS` run in this process; Hung after `seconds`."""
    monkeypatch.setattr(sys, "argv", ["actbench", *args])
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() sets its own
    monkeypatch.setattr(cli, "console", Console(width=200))  # fresh ones on this test's captured stdout and stderr
    monkeypatch.setattr(cli, "err_console", Console(stderr=True, width=200))
    monkeypatch.setattr(warnings, "showwarning", lambda message, category, filename, lineno, file=None, line=None:
                        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line)))
    capfd.readouterr()

    def hung(*_: object) -> None:
        raise Hung(f"actbench {' '.join(args)} did not finish in {seconds} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        with pytest.raises(SystemExit) as e, warnings.catch_warnings():
            warnings.simplefilter("always")
            cli.main()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err, err
    assert e.value.code in (0, 2), (e.value.code, err)
    return e.value.code, out, err


def lm_folder(root: Path, suite: str = "s", seeds: int = 2) -> Path:
    """An lm results folder of relu2 and xielu with curves (val and train series), its records
    naming `suite` (planted after they were written: a run writes only plain suite names)."""
    store = ResultStore(root)
    for seed in range(seeds):
        for act, bpb in (("relu2", 1.5), ("xielu", 1.45)):
            series = {"val": {"step": STEPS, "tokens": [s * 64 for s in STEPS], "time_s": STEPS, "loss": [2.0] * 3, "bpb": [bpb] * 3},
                      "train": {"step": STEPS, "loss": [3.0, 2.5, 2.0], "tokens": [s * 64 for s in STEPS], "time_s": STEPS}}
            store.append(lm_record(act, seed, bpb + seed / 100), series=series)
    lines = [json.loads(line) for line in store.path.read_text().splitlines()]
    store.path.write_text("".join(json.dumps({**doc, "suite": suite}) + "\n" for doc in lines))
    return root


def listing(root: Path) -> set[str]:
    """Every path below `root` (links not followed)."""
    return {str(Path(d, n).relative_to(root)) for d, dirs, files in os.walk(root) for n in dirs + files}


def test_a_suite_field_with_dotdot_reads_no_file_outside_the_folder(tmp_path, capfd, monkeypatch):
    (tmp_path / "secret.yaml").write_text(f"password: {SECRET}\n")  # where results/run/suites/../../../secret.yaml lands
    run = lm_folder(tmp_path / "results" / "run", suite="../../../secret")
    (run / "suites").mkdir()  # every run keeps its suite there
    code, out, err = actbench(capfd, monkeypatch, "report", str(run), "--out", str(tmp_path / "out"))
    page = (tmp_path / "out" / "report.html").read_text()
    assert code == 0 and SECRET not in page + out + err
    assert "the records&#x27; suite field is not a plain suite name" in page


def test_a_planted_suite_name_writes_no_png_outside_out(tmp_path, capfd, monkeypatch):
    run = lm_folder(tmp_path / "results" / "run", suite="x/../../../planted")
    before = listing(tmp_path)
    code, _, _ = actbench(capfd, monkeypatch, "report", str(run), "--out", str(tmp_path / "out"))
    written = listing(tmp_path) - before
    assert code == 0 and written and all(p.startswith("out") for p in written), written
    assert any(p.startswith("out/lm_x_.._.._.._planted-") and p.endswith(".png") for p in written), written  # a file name, not a path


def test_report_writes_through_no_planted_link_in_out_and_refuses_a_linked_default_out(tmp_path, capfd, monkeypatch):
    run = lm_folder(tmp_path / "results" / "run")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("report.html", "trials.csv", "lm_s.png", ".trials.csv.partial"):
        (tmp_path / f"victim_{name}").write_text(SECRET)
        (out / name).symlink_to(tmp_path / f"victim_{name}")
    code, _, _ = actbench(capfd, monkeypatch, "report", str(run), "--out", str(out))
    assert code == 0 and all((tmp_path / f"victim_{n}").read_text() == SECRET for n in ("report.html", "trials.csv", "lm_s.png"))
    assert not (out / "report.html").is_symlink() and (out / "lm_s.png").stat().st_size > 1000
    umask = os.umask(0o22)
    os.umask(umask)
    assert {(out / n).stat().st_mode & 0o777 for n in ("report.html", "trials.csv", "lm_s.png")} == {0o666 & ~umask}  # as a plain write
    (run / "report").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    code, _, err = actbench(capfd, monkeypatch, "report", str(run))
    assert code == 2 and "report: not a folder (a symbolic link or a file is in the way of the report); give --out" in err
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("target", ["a_file", "run/trials.jsonl"])
def test_report_out_naming_an_existing_file_is_refused_and_the_file_kept(tmp_path, capfd, monkeypatch, target):
    run = lm_folder(tmp_path / "run")
    victim = tmp_path / target
    if not victim.exists():
        victim.write_text(SECRET)
    before = victim.read_bytes()
    code, _, err = actbench(capfd, monkeypatch, "report", str(run), "--out", str(victim))
    assert code == 2 and f"--out {victim}: not a folder" in err
    assert victim.read_bytes() == before


@pytest.mark.parametrize("where", ["trials.jsonl", "series", "suites/s.yaml"])
def test_a_fifo_in_the_folder_hangs_neither_compare_nor_report(tmp_path, capfd, monkeypatch, where):
    root = tmp_path / "results"
    run = lm_folder(root / "run")
    lm_folder(root / "other")
    fifo = run / where if where != "series" else next((run / "series").iterdir())
    fifo.parent.mkdir(exist_ok=True)
    fifo.unlink(missing_ok=True)
    os.mkfifo(fifo)
    code, out, err = actbench(capfd, monkeypatch, "compare", "relu2", "xielu", "--results", str(root), seconds=30)
    assert code == 0 and f"{fifo}: not read: a FIFO, not a regular file" in err
    code, out, err = actbench(capfd, monkeypatch, "report", str(run), "--out", str(tmp_path / "out"), seconds=30)
    assert code == (2 if where == "trials.jsonl" else 0) and f"{fifo}: not read: a FIFO, not a regular file" in err


def test_links_out_of_the_folder_are_not_followed(tmp_path, capfd, monkeypatch):
    outside = lm_folder(tmp_path / "outside", suite="elsewhere")
    for line in (outside / "trials.jsonl").read_text().splitlines():
        assert json.loads(line)["config"]["activation"] in ("relu2", "xielu")
    root = tmp_path / "results"
    run = lm_folder(root / "run")
    (root / "linked").mkdir()
    (root / "linked" / "trials.jsonl").symlink_to(outside / "trials.jsonl")  # records from outside
    (root / "dir").symlink_to(outside, target_is_directory=True)  # a folder link out of the root
    (root / "loop").symlink_to(root, target_is_directory=True)  # and one that loops
    series = next((run / "series").iterdir())
    series.unlink()
    series.symlink_to(next((outside / "series").iterdir()))
    code, out, err = actbench(capfd, monkeypatch, "compare", "relu2", "xielu", "--results", str(root), "--format", "json", seconds=30)
    assert code == 0 and "elsewhere" not in out
    assert f"{root / 'linked' / 'trials.jsonl'}: not read: a symbolic link" in err and f"{series}: not read: a symbolic link" in err
    assert json.loads(out)["lm"]["rows"][0]["n"] == 2  # the two seeds of `run`, not the outside ones


def test_a_kept_suite_linked_to_dev_zero_is_refused_in_bounded_memory(tmp_path):
    run = lm_folder(tmp_path / "run")
    (run / "suites").mkdir()
    (run / "suites" / "s.yaml").symlink_to("/dev/zero")
    (run / "suites" / "s.activations.json").symlink_to("/dev/urandom")

    def limit() -> None:  # reading the device whole would end here (MemoryError), not in the machine's OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    r = subprocess.run([sys.executable, "-m", "actbench", "report", str(run), "--out", str(tmp_path / "out")], capture_output=True,
                       text=True, timeout=120, preexec_fn=limit, env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{run / 'suites' / 's.yaml'}: not read: a symbolic link" in r.stderr


def test_numbers_beyond_the_record_bound_or_of_the_wrong_type_set_their_record_aside(tmp_path, capfd, monkeypatch):
    run = lm_folder(tmp_path / "run", seeds=3)
    lines = (run / "trials.jsonl").read_text().splitlines()
    absurd = []
    for i, (place, field, value) in enumerate([("metrics", "val_bpb", "1e308"), ("metrics", "tokens_per_s", "-1.7e308"),
                                               ("metrics", "params", "1" + "0" * 400), ("config", "seed", '"abc"'),
                                               ("metrics", "tokens_per_s", "[1000.0]")]):
        doc = json.loads(lines[i])
        doc["trial_id"] += "-absurd"
        doc[place][field] = "@"
        absurd.append(json.dumps(doc).replace('"@"', value))
    doc = json.loads(lines[3])
    doc["config"]["lr"] = json.loads("[" * 40 + "1" + "]" * 40)  # deeper than a record nests
    (run / "trials.jsonl").write_text("\n".join([*lines, *absurd, json.dumps(doc)]) + "\n")
    (tmp_path / "baseline.jsonl").write_text("\n".join([*lines, *absurd]) + "\n")
    first = len(lines) + 1
    code, out, err = actbench(capfd, monkeypatch, "compare", "relu2", "xielu", "--results", str(run), "--format", "json")
    assert code == 0 and err.count("actbench: warning:") == 1
    assert f"{run / 'trials.jsonl'}:{first}: skipped 6 line(s) that are not trial records (line {first}: metrics.val_bpb is 1e+308, " \
           f"beyond the 1e+150 a number in a record may reach; line {first + 1}: metrics.tokens_per_s is -1.7e+308" in err
    assert [r["n"] for r in json.loads(out)["lm"]["rows"]] == [3, 3]
    code, _, err = actbench(capfd, monkeypatch, "report", str(run), "--out", str(tmp_path / "out"))
    assert code == 0 and "skipped 6 line(s)" in err
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--baseline", str(tmp_path / "baseline.jsonl"))
    assert code == 0 and "baseline.jsonl:" in err and "skipped 5 line(s)" in err
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--history", str(tmp_path / "history"))
    assert code == 0 and "skipped 6 line(s)" in err


def test_regress_refuses_a_fifo_baseline_or_history(tmp_path, capfd, monkeypatch):
    from actbench.report import history
    from actbench.results.read import iter_records

    run = lm_folder(tmp_path / "run")
    os.mkfifo(tmp_path / "baseline.jsonl")
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--baseline", str(tmp_path / "baseline.jsonl"), seconds=30)
    assert code == 2 and f"--baseline {tmp_path / 'baseline.jsonl'}: not read: a FIFO, not a regular file" in err
    os.unlink(tmp_path / "baseline.jsonl")
    (tmp_path / "baseline.jsonl").write_bytes((run / "trials.jsonl").read_bytes())
    os.mkfifo(tmp_path / "history")
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--history", str(tmp_path / "history"), seconds=30)
    assert code == 2 and f"--history {tmp_path / 'history'}: not a folder" in err
    (tmp_path / "h").mkdir()  # the history file in the folder is a FIFO: refused for reading and for writing
    os.mkfifo(tmp_path / "h" / history.file_name(history.fingerprint(iter_records(run / "trials.jsonl"))))
    code, _, err = actbench(capfd, monkeypatch, "regress", str(run), "--history", str(tmp_path / "h"), seconds=30)
    assert code == 2 and "not read: a FIFO, not a regular file" in err and "--history" in err


def test_a_series_with_numbers_beyond_the_record_bound_is_not_drawn(tmp_path, capfd, monkeypatch):
    run = lm_folder(tmp_path / "run")
    path = sorted((run / "series").iterdir())[0]
    doc = json.loads(path.read_text())
    doc["val"]["bpb"][0] = -1.7e308  # the report's plot failed on its axis ("arange: cannot compute length")
    path.write_text(json.dumps(doc))
    code, _, err = actbench(capfd, monkeypatch, "report", str(run), "--out", str(tmp_path / "out"))
    assert code == 0 and f"{path}: not read: a number beyond ±1e+150 or nesting deeper than 32 levels" in err
    assert (tmp_path / "out" / "lm_s.png").stat().st_size > 1000  # the other curves are drawn
