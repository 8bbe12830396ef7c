"""-k expressions: what they select, and one-line errors naming -k."""

from __future__ import annotations

import time

import pytest

from actbench.errors import UserError
from actbench.select import parse_filter

CONFIGS = [
    {"activation": a, "seed": s, "lr": lr, "data": {"source": "shakespeare"}, "compile": False}
    for a in ("xielu", "relu2", "swiglu") for s in (0, 1) for lr in (0.003, 0.001)
]


def chosen(expr: str) -> list[tuple[str, int, float]]:
    f = parse_filter(expr)
    return [(c["activation"], c["seed"], c["lr"]) for c in f.apply(CONFIGS, lambda c: c, lambda c: "")]


def test_fields_words_and_or_not_parentheses():
    assert chosen("activation=xielu and seed=0") == [("xielu", 0, 0.003), ("xielu", 0, 0.001)]
    assert chosen("activation = xielu and seed = 0 and lr=3e-3") == [("xielu", 0, 0.003)]  # numbers compare as numbers
    assert len(chosen("not activation=swiglu")) == 8 == len(chosen("activation!=swiglu"))
    assert {a for a, _, _ in chosen("XIELU or relu")} == {"xielu", "relu2"}  # words: case-insensitive substrings
    assert chosen("swiglu and (seed=1 or lr=0.003) and not (seed=1 and lr=0.003)") == [("swiglu", 0, 0.003), ("swiglu", 1, 0.001)]
    assert chosen("not not seed=1 and lr=0.001") == [("xielu", 1, 0.001), ("relu2", 1, 0.001), ("swiglu", 1, 0.001)]
    assert len(chosen("data.source=shakespeare and compile=false")) == 12  # dotted keys, booleans
    assert chosen("seed=0 or seed=1 and activation=relu2") == chosen("seed=0 or (seed=1 and activation=relu2)")  # and binds tighter
    assert parse_filter("5f80").matches({}, "5f805aab8d90") and not parse_filter("aab").matches({}, "5f805aab8d90")  # id prefixes
    assert chosen("seed") == [] and not parse_filter("seed=0").matches({}, "x")  # words match values, not field names


@pytest.mark.parametrize("expr, why", [
    ("", "empty expression"),
    ("xielu and", "unexpected end of the expression after 'and'"),
    ("(xielu or relu2", "unexpected end of the expression"),
    ("xielu)", "unexpected ')'"),
    ("activation=", "unexpected end of the expression after '='"),
    ("activation=and", "expected a value after activation=, got 'and'"),
    ("seed=0 seed=1", "unexpected 'seed'"),
    ("__import__('os')", "unexpected"),
    ("a ! b", "unexpected '!' at character 3"),
])
def test_malformed_expressions_are_one_line_errors_naming_k(expr, why):
    with pytest.raises(UserError) as e:
        parse_filter(expr).check_keys(CONFIGS)
    msg = str(e.value)
    assert msg.startswith(f"-k {expr!r}: ") and why in msg and "\n" not in msg


@pytest.mark.parametrize("expr", ["not " * 1000 + "xielu", "(" * 2000 + "xielu" + ")" * 2000, "not (" * 20 + "xielu" + ")" * 20])
def test_deep_nesting_is_a_short_one_line_error_not_a_recursion_error(expr):
    with pytest.raises(UserError) as e:
        parse_filter(expr)
    msg = str(e.value)
    assert "nested more than 32 levels deep" in msg and "\n" not in msg and len(msg) < 250


def test_nesting_up_to_the_bound_works():
    assert parse_filter("not " * 32 + "xielu").matches({"activation": "xielu"}, "x")  # an even number of nots
    assert parse_filter("(" * 32 + "xielu" + ")" * 32).matches({"activation": "xielu"}, "x")


def test_a_field_no_trial_has_is_an_error_with_the_near_names():
    with pytest.raises(UserError, match=r"^-k 'activaton=xielu': no trial has a field 'activaton' \(did you mean 'activation'"):
        chosen("activaton=xielu")
    assert chosen("activation=xielo") == []  # a value nobody has is a valid (empty) selection


@pytest.mark.parametrize("expr, why", [
    ("xielu " * 30_000, "longer than 4,096 characters"),
    (" or ".join(["xielu"] * 65), "more than 64 words"),
])
def test_huge_expressions_are_refused_at_once_in_one_short_line(expr, why):
    """Matching costs words x trials: an expression of thousands of words over a large suite ran for minutes."""
    started = time.perf_counter()
    with pytest.raises(UserError) as e:
        parse_filter(expr)
    msg = str(e.value)
    assert why in msg and "\n" not in msg and len(msg) < 250 and time.perf_counter() - started < 1


def test_many_words_match_many_trials_quickly():
    configs = [{"activation": f"act{i}", "seed": i, "lr": 0.001, "data": {"source": "shakespeare"}} for i in range(20_000)]
    f = parse_filter(" or ".join(f"zz{i}" for i in range(63)) + " or act19999")
    started = time.perf_counter()
    assert [c["seed"] for c in f.apply(configs, lambda c: c, lambda c: "")] == [19999]
    assert time.perf_counter() - started < 4
