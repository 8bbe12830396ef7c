"""Numbers that match their words on compare's lm lines and tables: the alpha in a table's title
is the one its verdicts used, the "seeds would decide it" hint never names seeds already run, and
a skewed comparison says so beside its verdict."""

from __future__ import annotations

import re
from pathlib import Path

from rich.console import Console

from actbench.analysis import stats
from actbench.report.compare import compare_results
from actbench.report.present import compare_tables
from tests.report.synthetic import lm_record
from tests.report.test_replay import SEQUENTIAL, fake_sequential
from actbench.results.store import ResultStore


def _title(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return " ".join(console.export_text().split())


def test_a_designed_tables_title_and_rows_carry_the_suites_alpha_not_the_flag(tmp_path: Path):
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL.replace("decide: {alpha: 0.05, margin: 0.02}", "decide: {alpha: 0.1, margin: 0.02}"))
    fake_sequential(path, tmp_path / "out")
    c = compare_results(["relu2", "xielu", "swiglu", "gelu"], tmp_path / "out", alpha=0.05)
    lm = c.frames["lm"].set_index("activation")
    assert (lm.loc[["xielu", "swiglu", "gelu"], "alpha"] == 0.1).all()
    title = _title(compare_tables(c)[0])
    assert "family-wise alpha=0.1)" in title and "alpha=0.05" not in title


def test_the_hint_names_more_seeds_than_were_run(tmp_path: Path):
    """gelu is undecided at the last look of 9 (a difference inside the margin, too noisy): the
    hint is the design carried on, beyond 9 seeds."""
    path = tmp_path / "seq.yaml"
    path.write_text(SEQUENTIAL)
    fake_sequential(path, tmp_path / "out")
    c = compare_results(["relu2", "gelu"], tmp_path / "out")
    line = next(line for line in c.lines["lm"] if "gelu vs relu2" in line)
    needed = int(re.search(r"~(\d+) paired seeds would decide it with 80% probability", line).group(1))
    assert needed > 9 and f"the design's rounds carried on to {needed}" in line


def test_a_skewed_comparison_says_so_beside_its_verdict(tmp_path: Path):
    """One seed of eight far worse for the candidate, the others equal up to noise: the skewness of
    the paired differences is beyond the limit at 8 seeds, and the line says which claims it puts
    at risk; a comparison without the bad seed says nothing of skew."""
    store = ResultStore(tmp_path / "out")
    for s in range(8):
        noise = 0.001 * ((s * 7) % 5 - 2)
        store.append(lm_record("relu2", s, 2.0))
        store.append(lm_record("xielu", s, 2.0 + noise + (0.3 if s == 5 else 0.0)))
        store.append(lm_record("swiglu", s, 2.0 + noise))
    c = compare_results(["relu2", "xielu", "swiglu"], tmp_path / "out")
    lm = c.frames["lm"].set_index("activation")
    assert lm.loc["xielu", "skew"] > stats.skew_limit(8) == lm.loc["xielu", "skew_limit"]
    skewed = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    assert "paired Δ skewed (skewness +2.8" in skewed and "a few seeds far worse than the rest" in skewed
    assert "'better' and 'equivalent' can be wrong more often than alpha says" in skewed
    plain = next(line for line in c.lines["lm"] if "swiglu vs relu2" in line)
    assert "skewed" not in plain and "skewness" in plain
