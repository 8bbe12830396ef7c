"""report.html for people: numbers rounded to their intervals with units, the findings before any
table, the kernel table grouped by (dtype, mode), folded past a screenful and capped with a note,
and no absolute path of this machine on the page."""

from __future__ import annotations

import re

import pandas as pd

from actbench.report.cells import count, duration_ms, plus_minus, si, with_interval
from actbench.report.compare import compare_results
from actbench.report.html import build_report
from actbench.report.htmltables import GROUP_ROWS, kernel_tables
from actbench.results.store import ResultStore

from .synthetic import kernel_record, write_lm


def test_numbers_are_rounded_to_what_their_intervals_support_with_units():
    assert with_interval(0.06804, -0.14672, 0.28271) == "+0.07 [-0.15, +0.28]"  # half-width 0.21: two digits of it
    assert with_interval(0.01390, -0.03270, 0.06050) == "+0.014 [-0.033, +0.060]"
    assert plus_minus(4.922133, 0.009213) == "4.9221 ± 0.0092" and plus_minus(1234.5, 150.0) == "1234 ± 150"
    assert (si(820_000), si(1_840_000), si(35_200), si(2.5e9)) == ("0.82M", "1.84M", "35.2k", "2.5G")
    assert (duration_ms(0.0352), duration_ms(1.74), duration_ms(2100.0)) == ("35.2 µs", "1.74 ms", "2.1 s")
    assert count(7710.4) == "7,710" and with_interval(float("nan"), 0, 1) == "-"


def _kernels(root, sizes: int) -> None:
    store = ResultStore(root)
    for i, act in enumerate(("relu2", "xielu")):
        for s in range(sizes):
            store.append(kernel_record(f"k{i}-{s}", act, [("eager", "forward", 0.1 + i / 50, 0.05), ("eager", "backward", 0.2, 0.05)],
                                       size=1 << (10 + s)))


def test_findings_come_first_and_the_page_shows_no_path_of_this_machine(tmp_path):
    write_lm(tmp_path / "results" / "lm", {"relu2": 0.0, "xielu": -0.05, "swiglu": 0.0}, seeds=4)
    _kernels(tmp_path / "results" / "k", 3)
    page = build_report(tmp_path / "results", tmp_path / "report")["html"].read_text()
    assert page.index("id='findings'") < page.index("<table")
    findings = page[page.index("id='findings'"):page.index("</section>")]
    assert findings.count("<li class='finding") == 3  # xielu and swiglu (lm), xielu (kernels)
    assert re.search(r"finding v-better'><span class='verdict v-better'>better</span> <b>xielu</b> vs relu2 on s", findings)
    assert str(tmp_path) not in page and "../results" in page  # paths relative to the report
    assert ">True<" not in page and ">False<" not in page and not re.search(r"\d\.\d+e[+-]\d", page)


def test_the_kernel_table_is_grouped_folded_past_a_screenful_and_capped(tmp_path):
    _kernels(tmp_path, 2)
    k = compare_results(["relu2", "xielu"], tmp_path).frames["kernel"]
    small = kernel_tables(k, "relu2")
    assert small.count("<details open>") == 2 and "folded" not in small  # forward and backward, 4 rows each
    big = pd.concat([k] * (GROUP_ROWS // 2 + 10), ignore_index=True)
    html = kernel_tables(big, "relu2")
    assert html.count("<details>") == 2 and "<details open>" not in html and "folded: open a group" in html
    assert html.count("<tr>") == 2 * (GROUP_ROWS + 1) and f"the first {GROUP_ROWS} of {len(big) // 2:,} rows" in html
