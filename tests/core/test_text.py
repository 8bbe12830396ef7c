"""Strings from files are shown, never obeyed: `actbench.core.text` on the terminal (markup,
control characters, bidi overrides, surrogates, length) and in figures (mathtext)."""

from __future__ import annotations

import io
import re
import warnings

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from actbench.core.text import MAX_CHARS, Terminal, label, markup, plain

HOSTILE = "[/x]\x1b]52;c;AAAA\x07 $\\frac{$"
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@pytest.mark.parametrize("raw, shown", [
    (HOSTILE, "[/x]\\x1b]52;c;AAAA\\x07 $\\frac{$"),
    ("a\nb\tc\rd\x00e\x7f\x85\x9b31m", "a\\nb\\tc\\rd\\x00e\\x7f\\x85\\x9b31m"),
    ("\u202egnp.exe \u2066x\u2069 \u2028", "\\u202egnp.exe \\u2066x\\u2069 \\u2028"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("ünïcödé 中文 ✓", "ünïcödé 中文 ✓"),
    (3.5, "3.5"),
])
def test_plain_shows_every_control_character_as_its_escape(raw, shown):
    assert plain(raw) == shown
    assert not UNSAFE.search(plain(raw))
    shown.encode("utf-8")  # nothing a terminal cannot encode


def test_plain_keeps_newlines_only_where_lines_are_meant_and_cuts_absurd_lengths():
    assert plain("one\ntwo\x1b[2J", multiline=True) == "one\ntwo\\x1b[2J"
    cut = plain("x" * (MAX_CHARS + 5000))
    assert cut == "x" * MAX_CHARS + "... (5000 more characters)"
    assert plain("y" * 50, limit=10) == "y" * 10 + "... (40 more characters)" and len(plain("z" * 10**6, limit=None)) == 10**6


def test_markup_prints_the_text_itself_on_any_rich_console():
    buf = io.StringIO()
    console = Console(file=buf, width=200)
    backslash = "ends in a backslash \\"
    console.print(f"[bold]tag:[/] {markup(HOSTILE)} {markup(backslash)}")
    table = Table()
    table.add_column(markup(HOSTILE))
    table.add_row(markup("[red]not red[/red]"))
    console.print(table)
    out = buf.getvalue()
    assert "tag: [/x]\\x1b]52;c;AAAA\\x07 $\\frac{$ ends in a backslash \\" in out
    assert "[red]not red[/red]" in out and not UNSAFE.search(out.replace("\n", ""))


def test_label_draws_mathtext_and_underscores_literally(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert label("$\\frac{$") == "\\$\\frac{\\$" and label("_hidden") == " _hidden" and label("a\nb", multiline=True) == "a\nb"
    assert len(label("w" * 10_000)) < 250
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label=label(HOSTILE))
    ax.set_title(label(HOSTILE))
    legend = ax.legend()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(tmp_path / "f.png")  # raw, `$\frac{$` is a mathtext error and ESC a missing glyph
    plt.close(fig)
    assert (tmp_path / "f.png").stat().st_size > 0
    assert not any(UNSAFE.search(str(w.message)) for w in caught), [str(w.message) for w in caught]
    assert legend.get_texts()[0].get_text() == label(HOSTILE)
    assert ax.title._preprocess_math(ax.title.get_text()) == ("[/x]\\x1b]52;c;AAAA\\x07 $\\frac{$", False)  # drawn as written


def test_terminal_is_the_net_under_strings_a_room_forgot_to_escape():
    """Unescaped markup prints as written instead of raising; raw escape sequences in any
    renderable are shown as escapes, while the console's own styling still reaches a terminal."""
    buf = io.StringIO()
    console = Terminal(file=buf, force_terminal=True, width=100)
    console.print(f"[bold]name[/] {HOSTILE} :smile:")
    console.print(Text("\x1b[2J\x1b]0;title\x07cleared?"))
    table = Table()
    table.add_column("a", min_width=20)  # the net escapes after layout: a wide column shows it all
    table.add_row(Text("\u202eevil\x9b"))
    console.print(table)
    out = buf.getvalue()
    assert "\x1b[1m" in out  # rich's own bold
    user = re.sub(r"\x1b\[[0-9;]*m", "", out)  # what is left once rich's SGR codes are removed
    assert not UNSAFE.search(user.replace("\n", "")), repr(user)
    assert "\\x1b[2J\\x1b]0;title" in user and "\\u202eevil\\x9b" in user and ":smile:" in user and "[/x]" in user
