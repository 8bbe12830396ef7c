"""`-k EXPR` / `--filter EXPR`: select trials by their config, for run, --dry-run, compare and report.

    -k "activation=xielu and seed=0"      a field equals a value (dotted keys reach into nested
                                          configs: data.source=bin; numbers compare as numbers)
    -k "not activation=swiglu"            != also works: activation!=swiglu
    -k "xielu or (relu2 and seed=1)"      a bare word matches, case-insensitively, a substring of
                                          any value of the config, or the start of the trial id

Words combine with `and`, `or`, `not` and parentheses, as pytest's -k does (`not` binds tightest,
then `and`, then `or`). The expression is parsed here, by a small recursive-descent parser, never
evaluated as Python; it is at most MAX_CHARS characters and MAX_TERMS words, nested at most
MAX_NESTING levels, so that neither parsing nor matching it against every trial takes long. A
malformed expression, or a field that no trial has, is a one-line UserError naming -k.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from actbench.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

_TOKEN = re.compile(r"\s*(\(|\)|!=|=|[^\s()=!]+|!)")
_KEYWORDS = ("and", "or", "not")
MAX_NESTING = 32
MAX_CHARS, MAX_TERMS = 4096, 64


class _Row:
    """One trial as a -k expression sees it: its config, its id, and (made once, for any number
    of words) the lowered text of every value of its config."""

    def __init__(self, config: Mapping[str, Any], trial_id: str):
        self.config, self.trial_id = config, trial_id

    @cached_property
    def text(self) -> str:
        """Every value's text, lowered, one a line (a word holds no whitespace, so matches no two)."""
        return "\n".join(_text(v).lower() for _, v in _fields(self.config))


Predicate = Callable[[_Row], bool]


def _text(value: Any) -> str:
    """A config value as the text a user would write: 3 for 3.0, JSON for lists and dicts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _lookup(config: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    """(found, value) of a field, dotted keys reaching into nested mappings."""
    value: Any = config
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _equals(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted.lower() in ("none", "null", "-")
    if isinstance(value, bool):
        return wanted.lower() == _text(value)
    if isinstance(value, (int, float)):
        w = _number(wanted)
        return w is not None and math.isclose(float(value), w, rel_tol=1e-12, abs_tol=0.0)
    return _text(value) == wanted


def _fields(config: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in config.items():
        if isinstance(v, Mapping):
            yield from _fields(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


@dataclass(frozen=True)
class TrialFilter:
    """A parsed -k expression: `matches(config, trial_id)`; `keys` are the fields it names."""

    expr: str
    predicate: Predicate
    keys: frozenset[str]

    def matches(self, config: Mapping[str, Any], trial_id: str = "") -> bool:
        return self.predicate(_Row(config, trial_id))

    def check_keys(self, configs: Iterable[Mapping[str, Any]]) -> None:
        """UserError when the expression names a field that none of `configs` has (a typo)."""
        configs = list(configs)
        for key in sorted(self.keys):
            if configs and not any(_lookup(c, key)[0] for c in configs):
                from actbench.activations.registry import closest

                known = sorted({k for c in configs for k, _ in _fields(c)})
                near = closest(key, known)
                hint = f" (did you mean {', '.join(repr(n) for n in near)}?)" if near else f" (fields: {', '.join(known)})"
                raise UserError(f"-k {_shown(self.expr)}: no trial has a field {key!r}{hint}")

    def apply(self, items: Iterable[Any], config: Callable[[Any], Mapping[str, Any]], trial_id: Callable[[Any], str]) -> list[Any]:
        """The items whose config matches, after checking the named fields against all of them."""
        items = list(items)
        self.check_keys(config(i) for i in items)
        return [i for i in items if self.matches(config(i), trial_id(i))]


def _shown(expr: str) -> str:
    """The expression as an error quotes it: on one line, however long."""
    return repr(expr if len(expr) <= 80 else expr[:77] + "...")


class _Parser:
    def __init__(self, expr: str):
        self.expr = expr
        self.tokens: list[str] = []
        if len(expr) > MAX_CHARS:
            raise self.error(f"longer than {MAX_CHARS:,} characters")
        end = len(expr.rstrip())
        pos = 0
        while pos < end:
            m = _TOKEN.match(expr, pos)
            if m is None or m.group(1) == "!":
                at = len(expr) - len(expr[pos:].lstrip())
                raise self.error(f"unexpected {expr[at]!r} at character {at + 1}")
            self.tokens.append(m.group(1))
            pos = m.end()
        words = sum(t not in ("(", ")", "=", "!=") and t not in _KEYWORDS for t in self.tokens)
        if words > MAX_TERMS:
            raise self.error(f"more than {MAX_TERMS} words")
        self.i = 0
        self.depth = 0
        self.keys: set[str] = set()

    def error(self, why: str) -> UserError:
        return UserError(f"-k {_shown(self.expr)}: {why} (use field=value, words, and, or, not, parentheses)")

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise self.error("unexpected end of the expression" + (f" after {self.tokens[-1]!r}" if self.tokens else ""))
        self.i += 1
        return tok

    def parse(self) -> Predicate:
        if not self.tokens:
            raise self.error("empty expression")
        pred = self.or_expr()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r}")
        return pred

    def _joined(self, word: str, operand: Callable[[], Predicate], combine: Callable[[Iterable[bool]], bool]) -> Predicate:
        """operand (word operand)*, its predicates combined by `combine` (any for or, all for and)."""
        parts = [operand()]
        while self.peek() == word:
            self.take()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (lambda row: combine(p(row) for p in parts))

    def or_expr(self) -> Predicate:
        return self._joined("or", self.and_expr, any)

    def and_expr(self) -> Predicate:
        return self._joined("and", self.not_expr, all)

    def _deeper(self) -> None:
        """One more level of `not` or parentheses, up to MAX_NESTING (the parser recurses per level)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(f"nested more than {MAX_NESTING} levels deep (not, parentheses)")

    def not_expr(self) -> Predicate:
        if self.peek() == "not":
            self.take()
            self._deeper()
            inner = self.not_expr()
            self.depth -= 1
            return lambda row: not inner(row)
        return self.atom()

    def atom(self) -> Predicate:
        tok = self.take()
        if tok == "(":
            self._deeper()
            inner = self.or_expr()
            if self.take() != ")":
                raise self.error("missing ')'")
            self.depth -= 1
            return inner
        if tok in (")", "=", "!=") or tok in _KEYWORDS:
            raise self.error(f"unexpected {tok!r}")
        if self.peek() in ("=", "!="):
            op = self.take()
            value = self.take()
            if value in ("(", ")", "=", "!=") or value in _KEYWORDS:
                raise self.error(f"expected a value after {tok}{op}, got {value!r}")
            self.keys.add(tok)
            negate = op == "!="

            def compare(row: _Row, key: str = tok, wanted: str = value) -> bool:
                found, v = _lookup(row.config, key)
                return (found and _equals(v, wanted)) != negate

            return compare
        word = tok.lower()
        return lambda row: row.trial_id.lower().startswith(word) or word in row.text


def parse_filter(expr: str | None) -> TrialFilter | None:
    """The filter of a -k expression; None for no expression."""
    if expr is None:
        return None
    parser = _Parser(expr)
    predicate = parser.parse()
    return TrialFilter(expr=expr, predicate=predicate, keys=frozenset(parser.keys))


def select_frames(select: TrialFilter | None, trials: "pd.DataFrame", rows: "pd.DataFrame",
                  empty_ok: bool = False) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Loaded trials and rows (`results.load_tables`) of the trials whose config `select` matches
    (all with no filter); a UserError naming -k when none matches, unless `empty_ok`."""
    if select is None or trials.empty:
        return trials, rows
    configs = [c if isinstance(c, Mapping) else {} for c in trials["config"]]
    select.check_keys(configs)
    keep = [select.matches(c, str(t)) for c, t in zip(configs, trials["trial_id"])]
    trials = trials[keep].reset_index(drop=True)
    if trials.empty and not empty_ok:
        raise UserError(f"-k {select.expr!r}: no recorded trial matches")
    if not rows.empty:
        kept = set(zip(trials["results_dir"].astype(str), trials["trial_id"]))
        rows = rows[[k in kept for k in zip(rows["results_dir"].astype(str), rows["trial_id"])]].reset_index(drop=True)
    return trials, rows
