"""spent_lines validates each distinct lm config once: every other record of it (another seed)
gets exactly what validating it whole gives, a config that is not valid included; it reads a
record's numbers a column at a time, as it would one at a time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import ValidationError

from actbench.lm.config import LMConfig
from actbench.report.cost import _at_once, _Configs, _number, _numbers

from .synthetic import LM_CONFIG


def _whole(config):
    try:
        return LMConfig.model_validate(config)
    except (ValidationError, TypeError, ValueError):
        return None


def test_configs_told_apart_by_their_seed_only_validate_as_each_would_alone():
    base = {**LM_CONFIG, "activation": "relu2", "lr": 3e-3, "d_ff": 384}
    seeds = ["x", 1, True, 2**60, -3, 1.0, None, 7]
    configs = [{**base, "seed": s} for s in seeds] + [dict(base), {**base, "lr": math.nan, "seed": 1}, {**base, "lr": None, "seed": 2},
                                                      {**base, "lr": 1e-3, "seed": 2}, "not a config", None,
                                                      {**base, "d_ff": None, "seed": 3}, {**base, "d_ff": math.nan, "seed": 4}]
    seen = _Configs()
    found = [seen.of(c) for c in configs]
    want = [_whole(c) for c in configs]
    got = [None if f is None else f[1].model_copy(update={"seed": want[i].seed}) if want[i] is not None else f[1] for i, f in enumerate(found)]
    assert got == want
    assert [g is not None for g in got] == [False, True, False, False, True, False, False, True, True, False, False, True, False, False, True, False]
    assert got[1].seed == 1 and got[7].seed == 7 and got[8].seed == 0 and got[11].lr == 1e-3
    keys = [f[0] for f in found if f is not None]
    assert keys[0] == keys[1] == keys[2] != keys[3] and keys[4] != keys[0]  # seeds 1, -3 and 7 alike; no seed and lr=1e-3 apart


def test_a_columns_numbers_are_what_each_value_gives_alone_whatever_its_dtype():
    """`_numbers` (one array per column, no loop where the column is numeric) takes exactly the
    values `_number` takes one by one: finite numbers >= 0, never a bool, a string or a missing value."""
    frame = pd.DataFrame({"f": [1.5, -1.0, math.nan, math.inf, 0.0, -0.0, 2.0, 1e300], "i": [3, -2, 0, 2**53, 7, 1, 0, 5],
                          "b": [True, False] * 4, "o": [1, "2", None, True, -3.0, 4.5, math.nan, {}],
                          "n": pd.array([1, None, -4, 2, 3, None, 0, 9], dtype="Int64")})
    for column in [*frame, "absent"]:
        want = [_number(v) for v in frame[column].astype(object)] if column in frame else [None] * len(frame)
        got = _numbers(frame, column)
        assert [None if v != v else v for v in got.tolist()] == [None if w is None or w != w else w for w in want], column


def test_the_most_spans_open_at_once_is_what_counting_at_every_start_gives():
    """`_at_once` over random spans (ends at others' starts included: an end closes first) against a count at each start."""
    rng = np.random.default_rng(3)
    for _ in range(200):
        starts = rng.integers(0, 20, rng.integers(0, 12)).astype(float)
        ends = starts + rng.integers(0, 6, len(starts))
        most = max([sum(1 for s, e in zip(starts, ends) if s <= t < e) for t in starts], default=0)
        assert _at_once(starts, ends) == max(1, most)
