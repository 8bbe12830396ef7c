"""Suite parsing and expansion: grid x zip x seeds, stable ids, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from actbench.errors import UserError
from actbench.suite import load_suite, parse_overrides

GOOD = """\
name: t
kind: kernel
defaults:
  impls: [eager]
  width: 4
matrix:
  activation: [xielu, relu2]
  dtype: [float32, bfloat16]
zip:
  size: [8, 16, 32]
  rep_ms: [1, 2, 3]
seeds: [0, 7]
resources:
  cpus: 1
"""


def write(tmp_path, text, name="s.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_grid_times_zip_times_seeds(tmp_path):
    s = load_suite(write(tmp_path, GOOD))
    assert len(s.trials) == 2 * 2 * 3 * 2
    sizes_to_rep = {(t.config.size, t.config.rep_ms) for t in s.trials}
    assert sizes_to_rep == {(8, 1.0), (16, 2.0), (32, 3.0)}
    assert {t.config.seed for t in s.trials} == {0, 7}
    assert len({t.id for t in s.trials}) == len(s.trials)


def test_ids_are_stable_and_depend_only_on_resolved_config(tmp_path):
    a = load_suite(write(tmp_path, GOOD, "a.yaml"))
    reordered = GOOD.replace("activation: [xielu, relu2]", "activation: [relu2, xielu]").replace("name: t", "name: other")
    b = load_suite(write(tmp_path, reordered, "b.yaml"))
    assert {t.id for t in a.trials} == {t.id for t in b.trials}
    # an explicit default gives the same resolved config, hence the same id
    c = load_suite(write(tmp_path, GOOD.replace("  width: 4\n", "  width: 4\n  device: auto\n"), "c.yaml"))
    assert {t.id for t in a.trials} == {t.id for t in c.trials}
    d = load_suite(write(tmp_path, GOOD.replace("width: 4", "width: 8"), "d.yaml"))
    assert not ({t.id for t in a.trials} & {t.id for t in d.trials})


def test_seed_count_and_overrides(tmp_path):
    s = load_suite(write(tmp_path, GOOD.replace("seeds: [0, 7]", "seeds: 3")), parse_overrides(["width=8"]))
    assert {t.config.seed for t in s.trials} == {0, 1, 2}
    assert {t.config.width for t in s.trials} == {8}
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        parse_overrides(["oops"])


BAD = [
    ("name: t\nkind: kernel\nmatrix: [unclosed\n", r"s.yaml:\d+: invalid YAML"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n   size: [4]\n", r"s.yaml:\d+: invalid YAML"),
    ("- just\n- a list\n", r"s.yaml:1: \(top level\): a suite must be a mapping"),
    ("", r"a suite must be a mapping"),
    ("name: t\nkind: kernal\nmatrix:\n  activation: [xielu]\n", r"s.yaml:2: kind: unknown trial kind 'kernal'"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\ncolour: red\n", r"s.yaml:5: colour: unknown field"),
    ("kind: kernel\nmatrix:\n  activation: [xielu]\n", r"name: Field required"),
    ("name: 'a b/c'\nkind: kernel\nmatrix:\n  activation: [xielu]\n", r"s.yaml:1: name: String should match"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielo]\n  size: [4]\n",
     r"s.yaml:4: matrix.activation: unknown activation 'xielo' \(did you mean 'xielu'"),
    ("name: t\nkind: kernel\nmatrix: {}\n", r"s.yaml:3: matrix: empty"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: []\n", r"s.yaml:4: matrix.activation: empty list"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [-4]\n", r"s.yaml:5: matrix.size: Input should be greater than 0"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [abc]\n", r"matrix.size: Input should be a valid integer"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  sizes: [4]\n", r"s.yaml:5: matrix.sizes: unknown field for kind 'kernel'"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: xielu\n", r"s.yaml:4: matrix.activation: Input should be a valid list"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n", r"defaults.size: required for kind 'kernel'"),
    ("name: t\nkind: kernel\ndefaults:\n  size: 4\n  width: 3\nmatrix:\n  activation: [xielu]\n", r"size 4 is not a multiple of width 3"),
    ("name: t\nkind: kernel\ndefaults:\n  dtype: float8\nmatrix:\n  activation: [xielu]\n  size: [4]\n",
     r"s.yaml:4: defaults.dtype: Input should be 'float32', 'bfloat16' or 'float16'"),
    ("name: t\nkind: kernel\ndefaults:\n  colour: 1\nmatrix:\n  activation: [xielu]\n", r"s.yaml:4: defaults.colour: unknown field"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\nzip:\n  size: [4, 8]\n  width: [4]\n", r"s.yaml:5: zip: lists must have equal lengths"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nzip:\n  size: [4]\n", r"zip.size: appears in both matrix and zip"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nseeds: 0\n", r"s.yaml:6: seeds: seeds must be a positive count"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nseeds: [1, 1]\n", r"seeds: .*without repeats"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nresources:\n  gpus: -1\n",
     r"s.yaml:7: resources.gpus: Input should be greater than or equal to 0"),
    ("name: t\nkind: kernel\ndefaults: {width: 4}\nmatrix:\n  activation: [xielu]\n  size: [4]\nresources:\n  gpus: 0.5\n",
     r"resources.gpus: timing and memory trials need whole GPUs"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nresources:\n  memory: 3\n", r"s.yaml:7: resources.memory: unknown field"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\n  seed: [1]\n", r"matrix.seed: use the top-level `seeds`"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\n  modes: [[sideways]]\n", r"matrix.modes: Input should be 'forward'"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\n  impls: [[fast]]\n", r"matrix.impls: Input should be 'eager'"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nresources:\n  timeout_s: 0\n", r"resources.timeout_s: Input should be greater than 0"),
    ("name: t\nkind: probe\nmatrix:\n  fail: [sometimes]\n", r"s.yaml:4: matrix.fail: Input should be"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\n!!python/object:os.system ls: 1\n", r"invalid YAML"),
]


@pytest.mark.parametrize("text,pattern", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_malformed_suites_give_one_line_errors(tmp_path, text, pattern):
    p = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_suite(p)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(p)), msg
    import re

    assert re.search(pattern, msg), msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read suite"):
        load_suite(tmp_path / "nope.yaml")


def test_cli_bad_suite_exit_2_no_traceback_and_results_untouched(tmp_path):
    good = write(tmp_path, "name: t\nkind: probe\nmatrix:\n  tag: [a]\n", "good.yaml")
    out = tmp_path / "res"
    run = lambda *a: subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    r = run("run", str(good), "--executor", "inline", "--out", str(out))
    assert r.returncode == 0, r.stderr
    before = (out / "trials.jsonl").read_bytes()
    bad = write(tmp_path, "name: t\nkind: probe\nmatrix:\n  tag: [a]\n  fail: [maybe]\n", "bad.yaml")
    r = run("run", str(bad), "--executor", "inline", "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().startswith("actbench: error:") and len(r.stderr.strip().splitlines()) == 1
    assert "bad.yaml:5: matrix.fail" in r.stderr
    assert (out / "trials.jsonl").read_bytes() == before
    r = run("run", str(good), "--dry-run")
    assert r.returncode == 0 and "probe trial(s)" in r.stdout
