"""spent_lines validates each distinct lm config once: every other record of it (another seed)
gets exactly what validating it whole gives, a config that is not valid included."""

from __future__ import annotations

import math

from pydantic import ValidationError

from actbench.lm.config import LMConfig
from actbench.report.cost import _Configs

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
    got = [seen.get(c) for c in configs]
    want = [_whole(c) for c in configs]
    assert got == want
    assert [g is not None for g in got] == [False, True, False, False, True, False, False, True, True, False, False, True, False, False, True, False]
    assert got[1].seed == 1 and got[7].seed == 7 and got[8].seed == 0 and got[11].lr == 1e-3
