"""Valid suites of every kind and block (matrix, zip, seeds in rounds, tune with halving, ladder
by rungs and by widths, decide) for the fuzzer to plant hostile values in, and the strategies of
hostile suites, `--set` values and `-k` expressions."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from .harness import IN
from .hostile import ATOMS, NAMES, YAML_SPELLINGS, hostile_key, hostile_text, hostile_yaml_value, mutated, to_yaml

RESOURCES = {"cpus": 1, "timeout_s": 10, "retries": 0}
ELEMENTWISE = {"impls": ["eager"], "width": 64, "dtype": "float32", "device": "cpu"}
LM = {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16, "batch_size": 4, "tokens": 640, "eval_every": 5, "eval_tokens": 256,
      "churn_tokens": 0, "reference": "relu2", "ff_multiple": 16, "impl": "eager", "device": "cpu", "data": {"val_tokens": 4096}}

BASES: dict[str, list[dict[str, Any]]] = {
    "probe": [
        {"name": "pz", "kind": "probe", "description": "plain", "defaults": {"tag": "t", "sleep_s": 0.0, "noise": 0.0},
         "matrix": {"x": [0.0, 1.0], "tag": ["a", "b"]}, "seeds": 2, "resources": RESOURCES},
        {"name": "pzip", "kind": "probe", "zip": {"x": [0.0, 1.0], "optimum": [0.5, 0.25]}, "seeds": [3, 7], "resources": RESOURCES},
        {"name": "ptune", "kind": "probe", "defaults": {"noise": 0.1}, "matrix": {"tag": ["a", "b"]},
         "tune": {"x": [-1.0, 0.0, 1.0], "seeds": 1, "budget": 0.5, "metric": "objective", "goal": "min", "halving": {"eta": 2, "rungs": 2}},
         "seeds": 2, "resources": RESOURCES},
        {"name": "pdecide", "kind": "probe", "matrix": {"tag": ["a", "b", "c"]}, "seeds": {"min": 2, "max": 4, "round": 1},
         "decide": {"field": "tag", "baseline": "a", "metric": "objective", "alpha": 0.05, "margin": 0.1, "spending": "pocock", "sd": 0.5},
         "resources": RESOURCES},
    ],
    "kernel": [
        {"name": "kz", "kind": "kernel", "defaults": {**ELEMENTWISE, "rep_ms": 1.0, "warmup_ms": 1.0, "modes": ["forward"]},
         "matrix": {"activation": ["relu2", "xielu"], "size": [256, 512]}, "resources": RESOURCES},
        {"name": "kzip", "kind": "kernel", "defaults": {**ELEMENTWISE, "rep_ms": 1.0, "warmup_ms": 1.0},
         "matrix": {"activation": ["swiglu"]}, "zip": {"size": [256, 512], "width": [64, 128]}, "resources": RESOURCES},
    ],
    "memory": [
        {"name": "mz", "kind": "memory", "defaults": ELEMENTWISE, "matrix": {"activation": ["relu2", "gelu"], "size": [256]},
         "resources": RESOURCES},
    ],
    "lm": [
        {"name": "lz", "kind": "lm", "defaults": LM, "matrix": {"activation": ["relu2", "xielu"]}, "seeds": 2, "resources": RESOURCES},
        {"name": "ltune", "kind": "lm", "defaults": {**LM, "impl": "auto"}, "matrix": {"activation": ["relu2", "xielu", "swiglu"]},
         "tune": {"lr": [1e-3, 4e-3], "seeds": 1, "budget": 0.5, "metric": "val_bpb"}, "seeds": {"min": 2, "max": 6, "round": 2},
         "decide": {"alpha": 0.05, "margin": 0.02, "relative": False, "sd": 0.025}, "resources": RESOURCES},
        {"name": "lladder", "kind": "lm", "defaults": {**LM, "tokens": 4096}, "matrix": {"activation": ["relu2", "xielu"]},
         "ladder": {"widths": [16, 24, 32, 40], "ff_ratio": 4, "tokens_per_param": 5,
                    "target": {"d_model": 64, "n_layers": 1, "tokens": 1.0e6, "label": "x"}, "max_extrapolation": 1000.0},
         "resources": RESOURCES},
        {"name": "lrungs", "kind": "lm", "defaults": {**LM, "tokens": 4096}, "matrix": {"activation": ["relu2", "swiglu"]},
         "ladder": {"rungs": [{"d_model": 16, "n_layers": 1, "n_heads": 2}, {"d_model": 32, "n_layers": 1, "n_heads": 4}],
                    "tokens": 2048}, "resources": RESOURCES},
        {"name": "ltext", "kind": "lm", "defaults": {**LM, "data": {"source": "text", "path": f"{IN}/corpus.txt", "val_fraction": 0.2}},
         "matrix": {"activation": ["relu2"]}, "resources": RESOURCES},
    ],
}
"""Valid suites (the tests check that each one loads) that reach every block of the schema."""
ALL_BASES = [b for bases in BASES.values() for b in bases]


def base_suites(kinds: tuple[str, ...] = tuple(BASES)) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from([b for k in kinds for b in BASES[k]])


@st.composite
def hostile_suite(draw: Any, kinds: tuple[str, ...] = tuple(BASES)) -> str:
    """YAML text of a valid suite with 1-3 hostile changes anywhere (now and then a broken document)."""
    doc = draw(mutated(draw(base_suites(kinds)), hostile_yaml_value()))
    text = to_yaml(doc)
    if draw(st.integers(0, 19)) == 0:  # the document itself broken: cut, doubled keys, tabs, a BOM, NULs
        cut = draw(st.sampled_from(["cut", "dup", "tab", "bom", "nul", "crlf", "latin1"]))
        text = {"cut": text[: len(text) // 2], "dup": text + text.splitlines()[0] + "\n", "tab": text.replace("  ", "\t"),
                "bom": "\ufeff" + text, "nul": text + "\x00", "crlf": text.replace("\n", "\r\n"), "latin1": text + "# \xe9\n"}[cut]
    return text


SET_KEYS = ["seed", "seeds", "name", "kind", "description", "defaults", "matrix", "zip", "tag", "x", "sleep_s", "fail", "activation",
            "size", "width", "impls", "d_model", "n_heads", "tokens", "lr", "data.path", "data.source", "data", "resources.cpus",
            "resources.timeout_s", "resources.workers", "resources", "resources.a.b", "tune.seeds", "ladder.widths", "a.b.c.d",
            "decide.margin", "_x", "x" * 300, "a." * 50 + "a"]


def set_values() -> st.SearchStrategy[list[str]]:
    """`--set` arguments: known and hostile keys, values of any YAML (spellings, escapes, huge)."""
    key = st.one_of(st.sampled_from(SET_KEYS), hostile_key())
    value = st.one_of(st.sampled_from(YAML_SPELLINGS), hostile_yaml_value().map(lambda v: to_yaml(v).removesuffix("\n...\n").strip()),
                      hostile_text())
    item = st.one_of(st.builds(lambda k, v: f"{k}={v}", key, value), hostile_text(), st.just("="), st.just("seed="))
    return st.lists(item, min_size=1, max_size=3)


K_WORDS = ["and", "or", "not", "(", ")", "=", "!=", "!", "activation", "tag", "x", "seed", "xielu", "relu2", "a", "0", "1.0", "nan",
           "inf", "1e400", "data.path", "config", "*", "'", '"']


def k_expressions() -> st.SearchStrategy[str]:
    """`-k` expressions: grammar words in any order, deep parentheses, hostile text."""
    return st.one_of(
        st.lists(st.sampled_from(K_WORDS + ATOMS[:20] + NAMES), min_size=1, max_size=8).map(" ".join),
        st.lists(st.sampled_from(K_WORDS), min_size=1, max_size=8).map("".join),
        st.sampled_from([5, 33, 1000, 100_000]).map(lambda n: "(" * n + "x" + ")" * n),
        st.sampled_from([5, 1000, 100_000]).map(lambda n: "not " * n + "x"),
        st.sampled_from([100, 10_000]).map(lambda n: " or ".join(["a"] * n)),
        hostile_text(),
    )


@st.composite
def runnable_probe_suite(draw: Any) -> str:
    """A probe suite whose hostile values sit where a real run prints and records them (names,
    tags, swept values, seeds, the objective's numbers), and which never hangs or exits by design."""
    tag = st.one_of(hostile_text(), st.sampled_from(["a", "b"]))
    number = st.one_of(st.sampled_from([0.0, -1e6, 1e6, 5e-324, 1e-300, -0.0, 123.456]), st.floats(-1e6, 1e6))
    tags = draw(st.lists(tag, min_size=1, max_size=3, unique_by=repr))
    doc: dict[str, Any] = {"name": draw(st.sampled_from(["p", "probe-1", "A_b"])), "kind": "probe",
                           "description": draw(hostile_text()), "matrix": {"tag": tags},
                           "defaults": {"x": draw(number), "optimum": draw(number), "noise": draw(st.sampled_from([0.0, 1.0, 1e6])),
                                        "budget": draw(st.sampled_from([1.0, 1e-300, 1e6])),
                                        "fail": draw(st.sampled_from(["none", "none", "raise", "nan", "oom"]))},
                           "seeds": draw(st.one_of(st.just(1), st.just([0, 2**32 - 1]), st.just([7]))), "resources": RESOURCES}
    if draw(st.booleans()):
        doc["tune"] = {"x": draw(st.lists(number, min_size=2, max_size=3, unique=True)), "seeds": [5], "metric": "objective"}
        doc["defaults"].pop("x")
    if draw(st.booleans()) and len(tags) >= 2:
        doc["decide"] = {"field": "tag", "baseline": tags[0], "metric": "objective", "margin": 0.5}
    return to_yaml(doc)
