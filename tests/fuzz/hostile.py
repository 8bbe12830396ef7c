"""Hostile values: what a stranger's file may hold in any field, as hypothesis strategies, and how
they are written into YAML and JSON text.

Numbers at and past every limit (0, negatives, 2**63, 10**400, 1e308, the smallest subnormal,
NaN and infinities spelled as YAML and JSON spell them), values of the wrong type, strings that
a terminal or a figure would obey (rich markup, ANSI and OSC escapes, C1 controls, bidi
overrides, lone surrogates, mathtext), paths that lead out (`..`, absolute paths to the
sandbox's `outside/`, /dev/zero, a FIFO), deep nesting and long lists. `Raw` holds text written
into the document as it is (a spelling no serializer would produce).
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml
from hypothesis import strategies as st

from .harness import IN, OUTSIDE


class Raw(str):
    """Text written into a YAML or JSON document verbatim (not serialized)."""


MARKUP = ["[/x]", "[/]", "[bold]", "[bold red]x[/bold red]", "[link=file:///etc/passwd]x[/link]", "[@click=app.quit]x[/]",
          "\\[x]", "[", "]", "[red]x", "[/bold]", ":smile:", "[x=1]", "[bold]]"]
ESCAPES = ["\x1b[31m", "\x1b[0m", "\x1b]52;c;c2VjcmV0\x07", "\x1b]8;;http://e.vil/\x1b\\x\x1b]8;;\x1b\\", "\x1b[2J\x1b[H", "\x1bc",
           "\x9b31m", "\x9d0;title\x9c", "\x07", "\x08", "\x00", "\r", "\r\n", "\x0b", "\x0c", "\x7f", "\x1b[6n", "\x85", "\t"]
UNICODE = ["\ud800", "\udfff", "\udcff", "\u202e", "\u202d", "\u2066", "\u2069", "\u2028", "\u2029", "\ufeff", "\u200b", "é", "Ω",
           "\U0001f600", "\U0010ffff", "\uffff", "\uff58\uff49\uff45\uff4c\uff55"]
MATHTEXT = ["$\\frac{$", "$x^{$", "$", "$$", "$\\$", "\\$", "$\\mathdefault{$", "_hidden", "$a_{b$", "\\", "{", "}", "$\\sqrt[$",
            "$\\undefinedcommand$", "^", "%"]
FORMATS = ["{0}", "{}", "%s", "%(x)s", "{__class__}", "{0.__class__}", "%n", "{x!r}"]
PATHS = ["..", "../..", "../../../../outside/secret", "../../../../../../outside/secret", "/dev/zero", "/dev/stdin", "/proc/self/environ",
         "/etc/passwd", "~", "~root/x", f"{OUTSIDE}/secret", f"{OUTSIDE}/secret.txt", f"{OUTSIDE}/secret.jsonl", OUTSIDE,
         f"{OUTSIDE}/results", f"{IN}/fifo", f"{IN}/empty", f"{IN}/dir", f"{IN}/../../outside/secret.txt", "a/b", "./x", "x/", "/", "",
         " ", "-k", "--help", "--out=x", "*", "**/*", "?", "[a-z]*", "s3://bucket/x", "file:///etc/passwd", "http://127.0.0.1:1/"]
NAMES = ["relu2", "xielu", "swiglu", "gelu", "RELU2", "relu2 ", "xielo", "auto", "none", "nan", "inf", "true", "null", "1", "0", "-1",
         "a", "b", "eager", "val_bpb", "objective", "activation"]
ATOMS = MARKUP + ESCAPES + UNICODE + MATHTEXT + FORMATS + PATHS

INTS = [0, -1, 1, 2, 3, -(2**63), 2**20, 2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, 2**63, 2**64, 10**18, 10**400, -(10**400)]
FLOATS = [0.0, -0.0, 1e-9, 5e-324, -5e-324, 2.2250738585072014e-308, 1e308, -1e308, 1.7976931348623157e308, 0.1, 0.5,
          0.9999999999999999, 1.0000000000000002, 3.0, 1e6, 1e15, float("nan"), float("inf"), float("-inf")]
YAML_SPELLINGS = [".nan", ".NaN", ".NAN", ".inf", "-.inf", "+.inf", ".Inf", "-.INF", "1.0e+400", "-1.0e+400", "1e400", "1e-400",
                  "0x7fffffffffffffffff", "0o17", "0b101", "1_000", "+12", "~", "null", "Null", "yes", "No", "on", "OFF", "y",
                  "'[/x]'", '"\\e[31m"', '"\\e]52;c;c2VjcmV0\\a"', '"\\ud800"', '"\\u202e"', '"\\x9b"', '"\\0"', '"\\N"', '"\\L"',
                  "!!binary aGVsbG8=", "!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!set {a: null}",
                  "!!timestamp 2001-12-14", "2001-12-14", "2001-12-14t21:59:43.10-05:00", "!!float 1", "!!int '1'", "!!str 1",
                  "&x 1", "*x", "[&a [1], *a]", "{[a, b]: 1}", "{<<: {a: 1}}", "!!omap [a: 1]", "!!pairs [a: 1]", "@x", "`x",
                  "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: [*b,*b,*b,*b,*b,*b,*b,*b,*b]}",
                  "1" + "0" * 5000, "-" + "9" * 5000, "1." + "0" * 5000 + "1"]
JSON_SPELLINGS = ["NaN", "Infinity", "-Infinity", "nan", "inf", "1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 400, "1e308",
                  "-1e308", "1.7976931348623157e308", "4.9e-324", "-0", "0e0", "1E+308", "1" + "0" * 5000, '"\\ud800"',
                  '"\\udfff x"', '"\\u001b[31m"', '"\\u009b31m"', '"\\u202e"', '"\\u0000"', '"[/x]"', '"$\\\\frac{$"', "true",
                  "false", "null", "[]", "{}", '"NaN"', '"Infinity"', '"1e400"', "[1e400]", '{"": 1e400}', '"' + "A" * 100_000 + '"',
                  "[" * 3000 + "]" * 3000, '{"a":' * 1000 + "1" + "}" * 1000, "[" + ",".join(["1e308"] * 10_000) + "]"]


def hostile_text() -> st.SearchStrategy[str]:
    """Strings a terminal, a figure or a file system would obey, and ordinary ones around them."""
    atoms = st.sampled_from(ATOMS)
    return st.one_of(
        atoms,
        st.lists(st.sampled_from(ATOMS + NAMES + ["a", " ", "/", "."]), min_size=2, max_size=6).map("".join),
        st.text(max_size=20),
        st.text(st.characters(categories=["Cc", "Cf", "Cs", "Zl", "Zp"]), min_size=1, max_size=5),
        st.sampled_from(NAMES),
        st.sampled_from([300, 1001, 10_000, 200_000]).map(lambda n: "A" * n),
        st.sampled_from([10, 1000]).map(lambda n: "\x1b[31m" * n),
    )


def hostile_number() -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS), st.integers(), st.floats(),
                     st.sampled_from(YAML_SPELLINGS[:16]).map(Raw))


def hostile_key() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ATOMS + NAMES), st.text(max_size=8))


def hostile_yaml_value() -> st.SearchStrategy[Any]:
    """Any value a YAML field may hold: hostile scalars, spellings, wrong types, nesting, long lists."""
    scalars = st.one_of(hostile_text(), hostile_number(), st.booleans(), st.none(), st.sampled_from(YAML_SPELLINGS).map(Raw))
    nested = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(hostile_key(), kids, max_size=3)),
                          max_leaves=8)
    return st.one_of(
        scalars, scalars, nested,
        st.sampled_from([33, 200, 3000]).map(lambda d: Raw("[" * d + "]" * d)),
        st.sampled_from([1000, 100_001, 1_000_001]).map(lambda n: Raw("[" + ",".join(["1"] * n) + "]")),
        st.sampled_from([{"a": 1}, {"min": 2, "max": 10**9}, [], {}, [[]], [None]]),
    )


def hostile_json_value() -> st.SearchStrategy[Any]:
    """Any value a JSON field of a record may hold (spellings strict JSON forbids included)."""
    scalars = st.one_of(hostile_text(), hostile_number().filter(lambda v: not isinstance(v, Raw)), st.booleans(), st.none(),
                        st.sampled_from(JSON_SPELLINGS).map(Raw))
    return st.one_of(scalars, scalars, st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                                                    st.dictionaries(hostile_key(), kids, max_size=3)),
                                                    max_leaves=6))


_PLACEHOLDER = "rawvalue{:06d}x"


def _swap_raw(value: Any, raws: list[str]) -> Any:
    """`value` with every Raw replaced by a placeholder (recorded in `raws`), keys included."""
    if isinstance(value, Raw):
        raws.append(str(value))
        return _PLACEHOLDER.format(len(raws) - 1)
    if isinstance(value, dict):
        return {_swap_raw(k, raws) if isinstance(k, Raw) else k: _swap_raw(v, raws) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_raw(v, raws) for v in value]
    return value


def _unswap(text: str, raws: list[str], quoted: bool) -> str:
    pattern = re.compile('"rawvalue(\\d{6})x"' if quoted else "rawvalue(\\d{6})x")
    return pattern.sub(lambda m: raws[int(m[1])], text)


def to_yaml(value: Any) -> str:
    """YAML text of `value` (Raw parts verbatim); strings that YAML cannot hold literally are escaped."""
    raws: list[str] = []
    text = yaml.safe_dump(_swap_raw(value, raws), default_flow_style=None, sort_keys=False, width=2**31 - 1, allow_unicode=False)
    return _unswap(text, raws, quoted=False)


def to_json(value: Any) -> str:
    """One line of JSON text of `value` (Raw parts verbatim, NaN and infinities as Python spells them)."""
    raws: list[str] = []
    text = json.dumps(_swap_raw(value, raws), ensure_ascii=True, allow_nan=True, default=str)
    return _unswap(text, raws, quoted=True)


def paths_in(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indices) to a value inside nested dicts and lists, containers included."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_in(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_in(v, (*prefix, i))
    return out


def put(value: Any, path: tuple, new: Any) -> None:
    """Set `value[path] = new` in place."""
    for p in path[:-1]:
        value = value[p]
    value[path[-1]] = new


def alike(old: Any) -> st.SearchStrategy[Any]:
    """A hostile value of the same type as `old` (a string for a string, a number for a number, a
    list of such for a list): what passes a type check and must still be bounded and escaped."""
    if isinstance(old, bool):
        return st.booleans()
    if isinstance(old, str):
        return hostile_text()
    if isinstance(old, (int, float)):
        return hostile_number()
    if isinstance(old, list):
        return st.lists(alike(old[0]) if old else hostile_text(), min_size=1, max_size=4)
    if isinstance(old, dict):
        return st.fixed_dictionaries({k: alike(v) for k, v in old.items()})
    return hostile_text()


@st.composite
def mutated(draw: Any, base: Any, values: st.SearchStrategy[Any], max_changes: int = 3) -> Any:
    """A copy of the nested `base` with 1..max_changes hostile changes: a value (or a whole block)
    replaced, a key added to a mapping, a key removed."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, max_changes))):
        paths = paths_in(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["replace", "replace", "alike", "alike", "alike", "add", "drop"]))
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        if how == "replace":
            put(doc, path, draw(values))
        elif how == "alike":
            put(doc, path, draw(alike(parent[path[-1]])))
        elif how == "add" and isinstance(parent, dict):
            parent[draw(hostile_key())] = draw(values)
        elif how == "drop" and isinstance(parent, dict):
            parent.pop(path[-1], None)
    return doc
