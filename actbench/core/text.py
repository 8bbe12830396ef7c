"""Strings that came from files (names, tags, swept values, messages of failed trials) shown as
text, never obeyed: on the terminal (no rich markup, no control characters) and in figures (no
mathtext). Every room that prints or draws such a string passes it through here.

- `plain`: control characters (C0 but newline where lines are meant, DEL, C1, so ESC and every
  escape sequence), bidi overrides and isolates, line/paragraph separators and lone surrogates
  become visible escapes (`\\x1b`, `\\u202e`), and an absurdly long string is cut;
- `markup`: `plain`, then escaped for rich markup (for a string inside a markup f-string or a cell);
- `label`: `plain`, then escaped for matplotlib's mathtext (`$`), for labels, titles and legends;
- `md` / `md_code`: `plain`, then as markdown text (every ASCII punctuation backslash-escaped: no
  link, emphasis, code span, HTML or entity) or as one code span whose fence no backtick inside
  can close (what a reader copies from the rendered page is the string itself);
- `Terminal`: a rich Console whose every printed segment goes through `plain` and whose markup
  errors print the text as it is, so a string a room forgot to escape still cannot drive the
  terminal nor crash the command.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from rich.console import Console, ConsoleOptions, RenderableType
from rich.errors import MarkupError
from rich.markup import escape
from rich.segment import Segment
from rich.text import Text

MAX_CHARS = 1000
"""Characters of one value shown before it is cut (a name, a tag, a cell)."""
MAX_LINE_CHARS = 4000
"""Characters of one line made of such values (a verdict, an error or warning message)."""
MAX_LABEL_CHARS = 200
"""Characters of one figure label or title."""

_BIDI_AND_SEPARATORS = "\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_LINES = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
"""What a terminal would obey or cannot encode: every C0 control but newline, DEL, C1, bidi
overrides and isolates, line and paragraph separators, lone surrogates."""
_UNSAFE_ONE_LINE = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_MD_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
"""CommonMark's escapable characters: all of ASCII punctuation."""


def _visible(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def plain(value: Any, *, multiline: bool = False, limit: int | None = MAX_CHARS) -> str:
    """`value` as text a terminal shows and does not obey: every control character (newlines kept
    when `multiline`), bidi control, line separator and lone surrogate as its escape (`\\x1b`),
    and at most `limit` characters of it, the rest counted."""
    s = value if isinstance(value, str) else str(value)
    cut = ""
    if limit is not None and len(s) > limit:
        s, cut = s[:limit], f"... ({len(s) - limit} more characters)"
    return (_UNSAFE_LINES if multiline else _UNSAFE_ONE_LINE).sub(_visible, s) + cut


def markup(value: Any, *, multiline: bool = False, limit: int | None = MAX_CHARS) -> str:
    """`plain(value)` escaped for rich markup: to put inside a markup string or a table cell."""
    return escape(plain(value, multiline=multiline, limit=limit))


def label(value: Any, *, multiline: bool = False, limit: int | None = MAX_LABEL_CHARS) -> str:
    """`plain(value)` as a matplotlib label, title or legend entry drawn literally: every `$`
    escaped (so no mathtext is parsed; a backslash then draws as itself), and a leading
    underscore (which hides a legend entry) kept visible by a space before it. Apply it once,
    to the strings from files, before adding text of one's own (without `$`)."""
    s = plain(value, multiline=multiline, limit=limit).replace("$", r"\$")
    return " " + s if s.startswith("_") else s


class Terminal(Console):
    """A rich Console that shows strings and never obeys them: the net under the rooms' own
    escaping. Every text segment it prints goes through `plain` (newlines kept; rich's own
    cursor and style codes are not text and pass), and a string whose markup does not parse is
    printed as it is instead of raising. Emoji codes (`:smile:`) stay text."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("emoji", False)
        super().__init__(*args, **kwargs)

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or not _UNSAFE_LINES.search(segment.text):
                yield segment
            else:
                yield Segment(plain(segment.text, multiline=True, limit=None), segment.style)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            return super().render_str(text, **{**kwargs, "markup": False})


def md(value: Any, *, limit: int | None = MAX_CHARS) -> str:
    """`plain(value)` as markdown text shown literally: every ASCII punctuation backslash-escaped,
    so a string from a file makes no link, emphasis, code span, HTML or entity (and `|` stays in
    its table cell)."""
    return _MD_PUNCTUATION.sub(r"\\\1", plain(value, limit=limit))


def md_code(value: Any, *, limit: int | None = MAX_CHARS) -> str:
    """`plain(value)` as one markdown code span whose copied text is the string itself: fenced by
    one backtick more than its longest run of backticks, padded by a space (CommonMark strips one
    from each side), so nothing inside closes it; entities stay literal inside a code span."""
    s = plain(value, limit=limit)
    fence = "`" * (max((len(run) for run in re.findall("`+", s)), default=0) + 1)
    return f"{fence} {s} {fence}"
