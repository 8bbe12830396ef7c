"""Suite parsing and expansion: grid x zip x seeds, stable ids, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actbench.errors import UserError
from actbench.lm.prepare import prepare_shards
from actbench.suite import load_suite, parse_overrides
from actbench.suite.schema import TUNE_SEED_BASE

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
    ("name: 'a b/c'\nkind: kernel\nmatrix:\n  activation: [xielu]\n", r"s.yaml:1: name: 'a b/c' is not a plain name"),
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
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\nresources:\n  timeout_s: 0\n", r"resources.timeout_s: Input should be greater than or equal to 0.1"),
    ("name: t\nkind: probe\nmatrix:\n  fail: [sometimes]\n", r"s.yaml:4: matrix.fail: Input should be"),
    ("name: t\nkind: kernel\nmatrix:\n  activation: [xielu]\n  size: [4]\n!!python/object:os.system ls: 1\n", r"invalid YAML"),
    ("name: t\nkind: probe\nzip:\n  tag: [a, b, a]\n  x: [0.0, 1.0, 2.0]\ndecide: {field: tag, baseline: a, metric: objective}\n",
     r"s.yaml:4: zip.tag: 'a' appears twice: the candidates of decide.field must be distinct"),
    ("name: t\nkind: probe\nmatrix:\n  tag: [a, 1.0, 1]\ndecide: {field: tag, baseline: a, metric: objective}\n",
     r"s.yaml:4: matrix.tag: 1 appears twice: the candidates of decide.field must be distinct"),
]


@pytest.mark.parametrize("block,field", [("seeds: {min: 3, max: 2}", "seeds"), ("seeds: {min: 3, max: 100000}", "seeds.max")])
def test_an_error_inside_a_union_field_names_the_suite_field_not_pydantics_member_tag(tmp_path, block, field):
    p = write(tmp_path, f"name: t\nkind: probe\nmatrix:\n  x: [0.0]\n{block}\n")
    with pytest.raises(UserError) as e:
        load_suite(p)
    assert str(e.value).startswith(f"{p}:5: {field}: "), str(e.value)


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


# --- hostile and huge suites: each is refused in one line naming the file, before anything is built

PROBE = "name: t\nkind: probe\nmatrix:\n  tag: [a]\n"


@pytest.mark.parametrize("raw,pattern", [
    ("name: caf\xe9\nkind: probe\nmatrix:\n  tag: [a]\n".encode("latin-1"), r"s.yaml:1: not UTF-8 text \(byte 0xe9\)"),
    (PROBE.encode("utf-16"), r"s.yaml: not UTF-8 text \(it looks like UTF-16"),
    (PROBE.encode("utf-16-le"), r"s.yaml: not UTF-8 text"),
    (b"name: t\nkind: probe\ndescription: \xff\nmatrix:\n  tag: [a]\n", r"s.yaml:3: not UTF-8 text \(byte 0xff\)"),
], ids=["latin1", "utf16", "utf16-no-bom", "invalid-byte"])
def test_files_that_are_not_utf8(tmp_path, raw, pattern):
    p = tmp_path / "s.yaml"
    p.write_bytes(raw)
    with pytest.raises(UserError, match=pattern):
        load_suite(p)
    p.write_bytes(b"\xef\xbb\xbf" + PROBE.encode())  # a UTF-8 byte order mark is fine
    assert len(load_suite(p).trials) == 1


def billion_laughs(levels: int = 9) -> str:
    lines = ["name: t", "kind: probe", 'x0: &x0 ["lol"]']
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"matrix:\n  tag: *x{levels}\n"])


@pytest.mark.parametrize("text,pattern", [
    (billion_laughs(), r"s.yaml:4: alias \*x0 is not allowed"),
    ("name: t\nkind: probe\ndefaults: &x {self: *x}\nmatrix:\n  tag: [a]\n", r"s.yaml:3: alias \*x is not allowed"),
    ("name: t\nkind: probe\nmatrix:\n  tag: &t [a]\nzip:\n  sleep_s: *t\n", r"s.yaml:6: alias \*t"),
    ("name: t\nkind: probe\nmatrix:\n  tag: [" + "[" * 40 + "]" * 40 + "]\n", r"s.yaml:4: nested deeper than 32 levels"),
])
def test_aliases_and_deep_nesting_are_refused(tmp_path, text, pattern):
    with pytest.raises(UserError, match=pattern):
        load_suite(write(tmp_path, text))


def test_duplicate_keys_name_both_lines(tmp_path):
    with pytest.raises(UserError, match=r"s.yaml:5: invalid YAML: duplicate key 'name' \(lines 1 and 5\)"):
        load_suite(write(tmp_path, "name: t\nkind: probe\nmatrix:\n  tag: [a]\nname: u\n"))
    with pytest.raises(UserError, match=r"s.yaml:5: invalid YAML: duplicate key 'tag' \(lines 4 and 5\)"):
        load_suite(write(tmp_path, "name: t\nkind: probe\nmatrix:\n  tag: [a]\n  tag: [b]\n"))


@pytest.mark.parametrize("body,pattern", [
    ("matrix:\n  tag: [a]\nseeds: 100000000000\n", r"s.yaml:3: matrix: the suite expands to 100,000,000,000 trials \(tag 1 x seeds 100000000000\); the limit is 100,000"),
    ("matrix:\n  tag: [" + ", ".join(f"a{i}" for i in range(1000)) + "]\n  sleep_s: [" + ", ".join(str(i) for i in range(1000)) + "]\n",
     r"the suite expands to 1,000,000 trials \(tag 1000 x sleep_s 1000 x seeds 1\)"),
    ("zip:\n  tag: [" + ", ".join("a" for _ in range(100_001)) + "]\n", r"s.yaml:4: a list or mapping with more than 100,000 entries"),
])
def test_trials_are_counted_before_they_are_built(tmp_path, body, pattern):
    with pytest.raises(UserError, match=pattern):
        load_suite(write(tmp_path, "name: t\nkind: probe\n" + body))


def test_huge_files_and_the_trial_limit_flag(tmp_path):
    p = tmp_path / "s.yaml"
    with open(p, "w") as f:  # an 8M-item list
        f.write("name: t\nkind: probe\nseeds: [" + "1, " * 8_000_000 + "2]\nmatrix:\n  tag: [a]\n")
    with pytest.raises(UserError, match=r"s.yaml: too large for a suite \(more than 16,777,216 bytes\)"):
        load_suite(p)
    with pytest.raises(UserError, match=r"^/dev/zero: too large for a suite"):  # an endless file is read no further than the limit
        load_suite("/dev/zero")
    with pytest.raises(UserError, match=r": cannot read suite: Is a directory"):
        load_suite(tmp_path)
    body = "name: t\nkind: probe\nmatrix:\n  tag: [a, b, c]\nseeds: 4\n"
    with pytest.raises(UserError, match="expands to 12 trials .* the limit is 10 "):
        load_suite(write(tmp_path, body), max_trials=10)
    assert len(load_suite(write(tmp_path, body), max_trials=12).trials) == 12


KERNEL = "name: t\nkind: kernel\ndefaults:\n  width: 4\n  impls: [eager]\nmatrix:\n  activation: [relu2]\n"


@pytest.mark.parametrize("text,pattern", [
    (KERNEL + "  size: [1e24]\n", r"s.yaml:8: matrix.size: Input should be a valid integer, got 1e\+24"),
    (KERNEL + "  size: [18446744073709551616]\n", r"s.yaml:8: matrix.size: Input should be less than or equal to 17179869184"),
    (KERNEL + "  size: [true]\n", r"s.yaml:8: matrix.size: Input should be a valid integer, got True"),
    (KERNEL + "  size: ['8']\n", r"s.yaml:8: matrix.size: Input should be a valid integer, got '8'"),
    (KERNEL + "  size: [8]\n  rep_ms: [.inf]\n", r"s.yaml:9: matrix.rep_ms: Input should be a finite number"),
    (KERNEL + "  size: [8]\n  rep_ms: [1e9]\n", r"s.yaml:9: matrix.rep_ms: Input should be less than or equal to 60000"),
    (KERNEL + "  size: [8]\nresources:\n  timeout_s: .inf\n", r"s.yaml:10: resources.timeout_s: Input should be a finite number"),
    (KERNEL + "  size: [8]\nresources:\n  timeout_s: 1e400\n", r"s.yaml:10: resources.timeout_s: Input should be a finite number"),
    (KERNEL + "  size: [8]\nresources:\n  cpus: .nan\n", r"s.yaml:10: resources.cpus: Input should be a finite number"),
    (KERNEL + "  size: [8]\nresources:\n  retries: true\n", r"s.yaml:10: resources.retries: Input should be a valid integer"),
    (KERNEL + "  size: [8]\nresources:\n  cpus: 1e-9\n", r"s.yaml:10: resources.cpus: 1e-09 is not a multiple of 0.0001"),
    (KERNEL + "  size: [8]\nresources:\n  timeout_s: 1e-300\n", r"s.yaml:10: resources.timeout_s: Input should be greater than or equal to 0.1"),
    ("name: t\nkind: lm\ndefaults:\n  d_model: 1099511627776\nmatrix:\n  activation: [relu2]\n",
     r"s.yaml:4: defaults.d_model: Input should be less than or equal to 65536"),
    (KERNEL + "  size: [8]\nseeds: [true]\n", r"s.yaml:9: seeds: a seed is an integer from 0 to 4294967295, got True"),
    (KERNEL + "  size: [8]\nseeds: [1e24]\n", r"s.yaml:9: seeds: a seed is an integer"),
    (KERNEL + "  size: [8]\nseeds: 2.5\n", r"s.yaml:9: seeds: seeds must be a positive count or a list of seeds, got 2.5"),
    ("name: t\nkind: probe\nmatrix:\n  sleep_s: [1e300]\n", r"s.yaml:4: matrix.sleep_s: Input should be less than or equal to 86400"),
    ("name: t\nkind: probe\nmatrix:\n  tag: [a]\n  fail: [raise]\n  fail_marker: [/tmp/x]\n",
     r"s.yaml:6: matrix.fail_marker: '/tmp/x': a plain file name"),
    ("name: t\nkind: probe\nmatrix:\n  fail_marker: ['..']\n", r"matrix.fail_marker: '..': a plain file name"),
    ("name: t\nkind: lm\ndefaults:\n  data: {source: text, path: /nonexistent/corpus}\nmatrix:\n  activation: [relu2]\n",
     r"s.yaml:4: defaults.data.path: no file or folder matches '/nonexistent/corpus'"),
    ("name: t\nkind: lm\ndefaults:\n  data: {source: bin, vocab_size: true, path: /}\nmatrix:\n  activation: [relu2]\n",
     r"s.yaml:4: defaults.data.vocab_size: Input should be a valid integer"),
    ("name: t\nkind: lm\ndefaults:\n  lr: .inf\nmatrix:\n  activation: [relu2]\n", r"s.yaml:4: defaults.lr: Input should be a finite number"),
    ("name: t\nkind: lm\ndefaults:\n  tokens: 100000000000000000000\nmatrix:\n  activation: [relu2]\n",
     r"s.yaml:4: defaults.tokens: Input should be less than or equal to 1000000000000000, got 100000000000000000000"),
    ("name: t\nkind: lm\ndefaults:\n  tokens: 1" + "0" * 5000 + "\nmatrix:\n  activation: [relu2]\n", r"s.yaml: invalid value: Exceeds the limit"),
] + [(f"name: '{n}'\nkind: probe\nmatrix:\n  tag: [a]\n", r"s.yaml:1: name: .* is not a plain name") for n in ("..", ".", "a/b", "a.b", "", "/etc")],
    ids=lambda v: None)
def test_values_are_strict_finite_bounded_and_paths_exist(tmp_path, text, pattern):
    with pytest.raises(UserError) as e:
        load_suite(write(tmp_path, text))
    assert "\n" not in str(e.value)
    import re

    assert re.search(pattern, str(e.value)), str(e.value)


def test_yaml_12_floats_and_paths_checked_only_when_running(tmp_path):
    s = load_suite(write(tmp_path, "name: t\nkind: lm\ndefaults:\n  lr: 3e-3\n  tokens: 20480\nmatrix:\n  activation: [relu2]\n"))
    assert s.trials[0].config.lr == 0.003
    plan_only = "name: t\nkind: lm\ndefaults:\n  data: {source: text, path: /nonexistent/corpus}\nmatrix:\n  activation: [relu2]\n"
    assert load_suite(write(tmp_path, plan_only), check_paths=False).trials[0].config.data.path == "/nonexistent/corpus"
    corpus = tmp_path / "corpus"
    prepare_shards(lambda: ["to be or not to be " * 2000], corpus, "byte", "shard", shard_tokens=10_000, val_tokens=10_000)
    globbed = (f"name: t\nkind: lm\ndefaults:\n  tokens: 20480\n  eval_tokens: 4096\n  data: {{source: bin, vocab_size: 256, "
               f"path: '{corpus}/shard_train_*.bin', val_path: '{corpus}/shard_val_*.bin'}}\nmatrix:\n  activation: [relu2]\n")
    assert load_suite(write(tmp_path, globbed)).trials


# --- --set: a value replaces an axis, the seeds or a resource, or is refused; never ignored

SWEEP = """\
name: t
kind: probe
defaults:
  sleep_s: 0
matrix:
  tag: [a, b, c]
zip:
  fail: [none, raise]
  sleep_s: [0, 0.5]
seeds: 2
resources:
  cpus: 1
"""


def test_set_replaces_axes_seeds_and_resources(tmp_path):
    p = write(tmp_path, SWEEP.replace("defaults:\n  sleep_s: 0\n", ""))
    assert len(load_suite(p).trials) == 3 * 2 * 2
    s = load_suite(p, parse_overrides(["tag=z"]))
    assert {t.config.tag for t in s.trials} == {"z"} and len(s.trials) == 2 * 2
    s = load_suite(p, parse_overrides(["fail=none"]))
    assert {t.config.fail for t in s.trials} == {"none"} and {t.config.sleep_s for t in s.trials} == {0, 0.5}
    s = load_suite(p, parse_overrides(["seed=7", "resources.cpus=2", "resources.timeout_s=9"]))
    assert {t.config.seed for t in s.trials} == {7} and len(s.trials) == 3 * 2
    assert s.spec.resources.cpus == 2 and s.spec.resources.timeout_s == 9
    assert {t.config.seed for t in load_suite(p, parse_overrides(["seeds=[3, 4, 5]"])).trials} == {3, 4, 5}
    (tmp_path / "text.txt").write_text("to be or not to be " * 4000)
    s = load_suite(write(tmp_path, "name: t\nkind: lm\nmatrix:\n  activation: [relu2]\n", "lm.yaml"),
                   parse_overrides(["data.source=text", f"data.path={tmp_path}", "tokens=20480", "eval_tokens=1024"]))
    assert s.trials[0].config.data.path == str(tmp_path)


@pytest.mark.parametrize("item,pattern", [
    ("tag=[1, 2]", r"^--set tag: Input should be a valid string$"),
    ("sleep_s=abc", r"^--set sleep_s: Input should be a valid number, got 'abc'$"),
    ("sleep_s=true", r"^--set sleep_s: Input should be a valid number, got True$"),
    ("colour=red", r"^--set colour: unknown field for kind 'probe'"),
    ("seeds=0", r"^--set seeds: seeds must be a positive count"),
    ("seed=-1", r"^--set seed: a seed is an integer from 0"),
    ("resources.cpus=0", r"^--set resources.cpus: Input should be greater than 0"),
    ("resources.memory=3", r"^--set resources.memory: unknown field$"),
    ("resources=3", r"^--set resources: set one resource"),
    ("name=x", r"^--set name: the suite's name cannot be set .*--out"),
    ("matrix=x", r"^--set matrix: the suite's matrix cannot be set"),
    ("tag.x=1", r"^--set tag.x: tag is swept in matrix; set the whole value"),
    ("sleep_s.x=1", r"^--set sleep_s.x: sleep_s is swept in zip"),
    ("data.path=x", r"^--set data.path: unknown field for kind 'probe'"),
    ("tag=[unclosed", r"^--set tag: invalid YAML: did not find expected ',' or ']'$"),
    ("tag=*x", r"^--set tag: alias \*x is not allowed"),
    ("=3", r"^--set =3: expected KEY=VALUE"),
    ("../x=3", r"^--set ../x=3: expected KEY=VALUE"),
])
def test_set_errors_name_the_flag(tmp_path, item, pattern):
    p = write(tmp_path, SWEEP)
    with pytest.raises(UserError) as e:
        load_suite(p, parse_overrides([item]))
    import re

    assert re.search(pattern, str(e.value)) and "\n" not in str(e.value), str(e.value)


# --- what can be checked against the data is checked when the suite loads to run, not when each trial fails

LM = "name: t\nkind: lm\ndefaults:\n  d_model: 32\n  n_heads: 2\n  tokens: 20480\n{extra}matrix:\n  activation: [relu2, xielu]\n"


@pytest.mark.parametrize("extra,pattern", [
    ("  data: {vocab_size: 100}\n", r"t.yaml:7: defaults.data.vocab_size: 100 is not above the corpus's largest token id 125: set "
                                     r"data.vocab_size to at least 126"),
    ("  eval_tokens: 10000000\n", r"t.yaml:7: defaults.eval_tokens: 10,000,000 is more than the 233,738 targets of the test part"),
    ("  data: {val_tokens: 100000000}\n", r"t.yaml:7: defaults.data.val_tokens: 100,000,000 is more than the validation split's"),
])
def test_values_are_checked_against_the_data_when_the_suite_loads(tmp_path, extra, pattern):
    p = write(tmp_path, LM.format(extra=extra), "t.yaml")
    with pytest.raises(UserError, match=pattern):
        load_suite(p)
    assert load_suite(p, check_paths=False).trials  # lm plan reads no data


def test_a_window_longer_than_the_training_split_is_refused_at_load(tmp_path):
    (tmp_path / "small.txt").write_text("to be or not to be " * 1000)
    text = (f"name: t\nkind: lm\ndefaults:\n  seq_len: 32768\n  batch_size: 1\n  tokens: 1048576\n  eval_tokens: 512\n"
            f"  data: {{source: text, path: '{tmp_path / 'small.txt'}'}}\nmatrix:\n  activation: [relu2]\n")
    with pytest.raises(UserError, match=r"t.yaml:4: defaults.seq_len: 32768 leaves no training window: the training split has 17,100 "):
        load_suite(write(tmp_path, text, "t.yaml"))


def test_shards_without_a_token_byte_table_are_refused_at_load(tmp_path):
    corpus = tmp_path / "corpus"
    prepare_shards(lambda: ["to be or not to be " * 2000], corpus, "byte", "shard", shard_tokens=10_000, val_tokens=10_000)
    (corpus / "shard_token_bytes.npy").unlink()
    text = (f"name: t\nkind: lm\ndefaults:\n  tokens: 20480\n  eval_tokens: 1024\n  data: {{source: bin, vocab_size: 256, "
            f"path: '{corpus}/shard_train_*.bin', val_path: '{corpus}/shard_val_*.bin'}}\nmatrix:\n  activation: [relu2]\n")
    with pytest.raises(UserError, match=r"t.yaml:6: defaults.data.val_path: no token byte table .* set data.bytes_per_token"):
        load_suite(write(tmp_path, text, "t.yaml"))
    assert load_suite(write(tmp_path, text.replace("vocab_size: 256,", "vocab_size: 256, bytes_per_token: 1.0,"), "t.yaml")).trials


@pytest.mark.parametrize("name", ["llm_tiny", "ladder_tiny"])
def test_the_cpu_suites_draw_a_curve_at_a_small_cost(name):
    """At least 6 periodic evaluations per final trial (3 per tuning trial), costing at most a tenth of
    the trial's compute (an evaluated token costs about a third of a trained one)."""
    root = Path(__file__).resolve().parents[2]
    suite = load_suite(root / "suites" / f"{name}.yaml", check_paths=False)
    for t in suite.trials:
        cfg = t.config
        points = cfg.steps // cfg.eval_every
        assert points >= 6 if t.config.seed < TUNE_SEED_BASE or suite.spec.tune is None else points >= 3, (name, cfg.steps, cfg.eval_every)
        assert points * cfg.eval_tokens <= 0.3 * cfg.steps * cfg.tokens_per_step


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "suites").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_suite_loads_against_its_data(path, monkeypatch):
    """A fresh checkout's suites pass every check at load, their data's included; a suite on
    prepared shards (`actbench data prepare`) fails only for want of them."""
    monkeypatch.chdir(path.parents[1])
    if path.stem in {"ladder_gpu", "llm_fineweb", "llm_small_web", "paper_1b"}:
        with pytest.raises(UserError, match=r"defaults\.data\.path: no file or folder matches"):
            load_suite(path)
    else:
        assert load_suite(path).trials
