"""Every defect the fuzzer found, as the smallest input that shows it, run through the real CLI
and checked against the same promises (promises.check). Records are written with the project's
own encoder. A test marked xfail(strict=True) names a defect that was still open when it was
written: once the fix lands, the test passes, strict xfail fails, and the mark must go."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from actbench.core.record import Record, encode

from .folders import HUGE_BYTES
from .harness import OUT, OUTSIDE, Sandbox
from .promises import run_and_check


@pytest.fixture
def box(sandboxes: Path) -> Iterator[Sandbox]:
    with Sandbox(sandboxes) as b:
        yield b


def lm_folder(folder: Path, *, activations: tuple[str, ...] = ("relu2", "xielu"), seeds: int = 3, suite: str = "s",
              **fields: Any) -> Path:
    """A results folder of finished lm trials (paired seeds), with `fields` set on every record."""
    (folder / "suites").mkdir(parents=True, exist_ok=True)  # where a run keeps its suite (here none is kept)
    records = []
    for seed in range(seeds):
        for i, act in enumerate(activations):
            config = {"activation": act, "seed": seed, "d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16, "tokens": 640,
                      "reference": "relu2", "reference_d_ff": 64, "d_ff": 64, "impl": "eager", "lr": 3e-3}
            rec = Record(trial_id=f"{act}-{seed}", status="ok", suite=suite, kind="lm", config=config, run_id="r1", ended_at=1.7e9,
                         metrics={"val_bpb": 2.0 + 0.01 * seed + 0.02 * i + 0.003 * ((7 * seed + 3 * i) % 5), "params": 10_000,
                                  "flops_per_token": 60_000, "tokens_per_s": 1000.0 + seed, "d_ff": 64}, env={"git_commit": "abc123"})
            for key, value in fields.items():
                setattr(rec, key, value)
            records.append(rec)
    (folder / "trials.jsonl").write_bytes(b"".join(encode(r) + b"\n" for r in records))
    return folder


def kernel_folder(folder: Path, activation: str = "relu2", pct_copy: float = 50.0) -> Path:
    """A results folder of two kernel trials on the CPU (timing rows and the copy row)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"impl": "copy", "mode": "copy", "ms_p20": 0.1, "ms_p50": 0.1, "ms_p80": 0.1, "gbps": 10.0, "pct_copy": 100.0},
            {"impl": "eager", "mode": "forward", "ms_p20": 0.2, "ms_p50": 0.2, "ms_p80": 0.2, "gbps": 5.0, "pct_copy": pct_copy}]
    records = [Record(trial_id=f"k{seed}", status="ok", suite="k", kind="kernel", rows=rows, run_id="r1", ended_at=1.7e9,
                      config={"activation": activation, "dtype": "float32", "size": 256, "width": 64, "seed": seed},
                      env={"git_commit": "abc123"}) for seed in range(2)]
    (folder / "trials.jsonl").write_bytes(b"".join(encode(r) + b"\n" for r in records))
    return folder


def probe_suite(box: Sandbox, body: str) -> Path:
    path = box.inp / "suite.yaml"
    path.write_text(f"name: p\nkind: probe\nresources: {{timeout_s: 10, retries: 0}}\n{body}")
    return path


def report(box: Sandbox, root: Path, *flags: str, timeout_s: float = 60, codes: tuple[int, ...] = (0, 2)) -> None:
    run_and_check(box, ["report", str(root), "--out", f"{OUT}/report", *flags], timeout_s=timeout_s, codes=codes)


def compare(box: Sandbox, root: Path, codes: tuple[int, ...] = (0, 2)) -> None:
    run_and_check(box, ["compare", "relu2", "xielu", "--results", str(root)], codes=codes)


# --- the folders the regressions start from read cleanly ---------------------------------------

def test_tiny_folders_read_cleanly(box):
    lm_folder(box.inp / "l")
    kernel_folder(box.inp / "k")
    compare(box, box.inp, codes=(0,))
    report(box, box.inp, codes=(0,))
    (box.inp / "base.jsonl").write_bytes((box.inp / "k" / "trials.jsonl").read_bytes())
    run_and_check(box, ["regress", str(box.inp / "k"), "--baseline", str(box.inp / "base.jsonl")], codes=(0,))
    run_and_check(box, ["regress", str(box.inp / "k"), "--history", f"{OUT}/h"], codes=(0,))


# --- results folders: a record's strings used as paths ------------------------------------------

def test_suite_field_that_is_an_absolute_path_is_not_read(box):
    """report read <suite>.yaml and <suite>.activations.json wherever a record's suite field
    pointed and pasted the planted secret into report.html."""
    lm_folder(box.inp / "l", suite=box.sub(f"{OUTSIDE}/secret"))
    report(box, box.inp)


def test_suite_field_with_dotdot_is_not_read(box):
    lm_folder(box.inp / "l", suite="../../../../outside/secret")
    report(box, box.inp)


def test_suite_field_too_long_for_a_file_name(box):
    """compare and report ended in an internal OSError (File name too long)."""
    lm_folder(box.inp / "l", suite="A" * 300)
    compare(box, box.inp)


def test_records_file_linked_out_of_the_folder_is_not_read(box):
    """A trials.jsonl that is a link to a file outside the folder was followed and its content printed."""
    (box.inp / "l").mkdir()
    os.symlink(box.outside / "secret.jsonl", box.inp / "l" / "trials.jsonl")
    report(box, box.inp)


def test_records_file_of_endless_size_is_refused(box):
    """A trials.jsonl of 1.25 GiB without a newline (sparse) was read as one line into memory (MemoryError)."""
    folder = box.inp / "l"
    folder.mkdir()
    with open(folder / "trials.jsonl", "wb") as f:
        f.truncate(HUGE_BYTES)
    compare(box, box.inp)


def test_kept_activation_facts_of_endless_size_are_refused(box):
    """A kept suites/<name>.activations.json of 1.25 GiB (sparse) was read whole (MemoryError)."""
    lm_folder(box.inp / "l", suite="s")
    (box.inp / "l" / "suites" / "s.yaml").write_text("name: s\nkind: lm\nmatrix: {activation: [relu2, xielu]}\n")
    with open(box.inp / "l" / "suites" / "s.activations.json", "wb") as f:
        f.truncate(HUGE_BYTES)
    report(box, box.inp)


def test_baseline_number_beyond_float_range(box):
    """A regress baseline whose val_bpb is 10**400 (valid JSON) crashed regress (OverflowError)."""
    lm_folder(box.inp / "l")
    lines = (box.inp / "l" / "trials.jsonl").read_text().replace('"val_bpb":2.0', '"val_bpb":1' + "0" * 400 + ',"x":2.0')
    (box.inp / "base.jsonl").write_text(lines)
    run_and_check(box, ["regress", str(box.inp / "l"), "--baseline", str(box.inp / "base.jsonl")], codes=(0, 1, 2))


def test_series_file_that_is_a_fifo(box):
    """A series file that is a FIFO hung report (read_series opened it and waited for a writer)."""
    lm_folder(box.inp / "l", series_file="series/x.json")
    (box.inp / "l" / "series").mkdir()
    os.mkfifo(box.inp / "l" / "series" / "x.json")
    report(box, box.inp, timeout_s=15)


def test_kept_suite_linked_to_dev_zero(box):
    """A kept suite that is a link to /dev/zero was read whole by report for its page (MemoryError)."""
    lm_folder(box.inp / "l", suite="s")
    os.symlink("/dev/zero", box.inp / "l" / "suites" / "s.yaml")
    report(box, box.inp)


# --- results folders: names printed and drawn -----------------------------------------------------

def test_activation_named_with_markup(box):
    lm_folder(box.inp / "l", activations=("relu2", "[red]x[red]x[/x]"))
    report(box, box.inp)


def test_folder_name_that_is_not_utf8(box):
    """A folder whose name is not UTF-8 crashed report (UnicodeEncodeError writing its name): now
    skipped with a warning."""
    lm_folder(Path(os.fsdecode(bytes(box.inp) + b"/bad\xff")))
    report(box, box.inp)


def test_suite_named_with_markup(box):
    """A record's suite field `[/x]` crashed report (rich MarkupError printing the summary)."""
    lm_folder(box.inp / "l", suite="[/x]")
    report(box, box.inp)
    compare(box, box.inp)


def test_suite_name_with_escapes_is_not_printed_raw(box):
    """report printed a record's suite field with its ANSI escapes in the summary table; compare in
    its warning about a kept suite it cannot read."""
    lm_folder(box.inp / "l", suite="\x1b[2J\x1b[31mred")
    (box.inp / "l" / "suites" / "\x1b[2J\x1b[31mred.yaml").write_text("name: [\n")
    report(box, box.inp)
    compare(box, box.inp)


def test_activation_with_c1_control_in_regress_summary(box):
    """regress printed its markdown summary raw, C1 controls of an activation name included (in a SLOW row)."""
    kernel_folder(box.inp / "base", activation="x\x9b31m", pct_copy=50.0)
    kernel_folder(box.inp / "k", activation="x\x9b31m", pct_copy=25.0)
    os.replace(box.inp / "base" / "trials.jsonl", box.inp / "base.jsonl")
    run_and_check(box, ["regress", str(box.inp / "k"), "--baseline", str(box.inp / "base.jsonl")], codes=(0, 1, 2))


def test_history_figure_that_is_not_a_number(box):
    """History lines whose figure is a string or an object crashed regress (ValueError, TypeError drawing the trend)."""
    kernel_folder(box.inp / "k")
    from actbench.report import history
    from actbench.results.read import iter_records

    name = history.file_name(history.fingerprint(iter_records(box.inp / "k" / "trials.jsonl")))
    (box.out / "h").mkdir()
    (box.out / "h" / name).write_text(
        '{"commit": "c", "date": "2026-01-01T00:00:00+00:00", "figures": {"eager forward | pct_copy": "x"}}\n'
        '{"commit": "d", "date": "2026-01-02T00:00:00+00:00", "rows": {"eager forward | pct_copy": {"value": "x"}}}\n'
        '{"commit": "e", "date": "2026-01-03T00:00:00+00:00", "rows": {"eager forward | pct_copy": {"value": {}}}}\n')
    run_and_check(box, ["regress", str(box.inp / "k"), "--history", f"{OUT}/h", "--plot", f"{OUT}/h.png"], codes=(0, 1, 2))


@pytest.mark.parametrize("alpha", ["5e-324", "0.9"])
def test_alpha_at_the_ends_of_its_range(box, alpha):
    """report --alpha 5e-324 ended in an internal RuntimeError (a root finder that did not
    converge), --alpha 0.9 in a ValueError (no sign change to find a root in): now refused, exit 2."""
    lm_folder(box.inp / "l")
    report(box, box.inp, "--alpha", alpha)


# --- suites ----------------------------------------------------------------------------------------

def test_unknown_field_with_escapes_is_not_printed_raw(box):
    """The error naming an unknown field printed the field's name raw (OSC 52 here: a clipboard write)."""
    suite = probe_suite(box, 'matrix: {tag: [a]}\ndefaults: {"\\e]52;c;c2VjcmV0\\a": 1}\n')
    run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/r"])


def test_swept_value_with_escapes_in_dry_run(box):
    suite = probe_suite(box, 'matrix: {tag: ["\\e[31mred", b]}\n')
    run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/r"])


def test_swept_value_with_markup_in_dry_run(box):
    """A swept value `[/]` crashed run --dry-run (rich MarkupError)."""
    suite = probe_suite(box, "matrix: {tag: ['[/]']}\n")
    run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/r"])


def test_set_flag_with_a_line_separator(box):
    suite = probe_suite(box, "matrix: {tag: [a]}\n")
    run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/r", "--set", "a\u2028b=1"])


def test_data_path_too_long_for_a_file_name(box):
    """--set data.path=<300 characters> ended in an internal OSError (File name too long)."""
    suite = box.inp / "l.yaml"
    suite.write_text("name: l\nkind: lm\ndefaults: {d_model: 16, n_heads: 2, n_layers: 1, seq_len: 16, batch_size: 4, tokens: 640}\n"
                     "matrix: {activation: [relu2]}\n")
    run_and_check(box, ["run", str(suite), "--dry-run", "--out", f"{OUT}/r", "--set", "data.path=" + "A" * 300], may_read_outside=True)


def test_decide_with_one_seed(box):
    """A suite with a decide: block and the default single seed ended in an internal ValueError
    ('pairs must be strictly increasing') in lm plan and when it ran."""
    suite = probe_suite(box, "matrix: {tag: [a, b]}\ndecide: {field: tag, baseline: a, metric: objective, margin: 0.5}\n")
    run_and_check(box, ["run", str(suite), "--executor", "inline", "--out", f"{OUT}/r"], codes=(0, 1, 2))


def test_glyph_warning_of_a_tag_with_escapes(box):
    """A tuned probe whose tag holds ESC: report's figure warned 'Glyph 27 (\\x1b) missing' with the raw ESC."""
    suite = probe_suite(box, 'matrix: {tag: ["\\e[31m"]}\ntune: {x: [0.0, 1.0], seeds: [5], metric: objective}\nseeds: [7]\n')
    run_and_check(box, ["run", str(suite), "--executor", "inline", "--out", f"{OUT}/r"], codes=(0,))
    report(box, box.out / "r")


def test_a_run_reads_back_every_record_it_wrote(box):
    """A probe whose objective came out at 2e155 was written as it was, then set aside by every
    reader (the record bound is 1e150): report found nothing and a second run ran the trial again."""
    suite = probe_suite(box, "matrix: {tag: [a]}\ndefaults: {noise: 1000000.0, budget: 1.0e-300}\nseeds: [7]\n")
    for _ in range(2):
        run_and_check(box, ["run", str(suite), "--executor", "inline", "--out", f"{OUT}/r"], codes=(0,))
    assert len((box.out / "r" / "trials.jsonl").read_text().splitlines()) == 1, "the trial ran again"
    report(box, box.out / "r", codes=(0,))


def test_text_folder_with_a_link_loop(box):
    """A text folder holding a link to itself (`x -> x`) ended `data prepare` in an internal
    OSError (Too many levels of symbolic links) instead of refusing the link: now refused, exit 2."""
    (box.inp / "text").mkdir()
    (box.inp / "text" / "a.txt").write_text("To be, or not to be.\n" * 100)
    os.symlink("x", box.inp / "text" / "x")
    run_and_check(box, ["data", "prepare", "--text", str(box.inp / "text"), "--out", f"{OUT}/shards", "--tokenizer", "byte"])
