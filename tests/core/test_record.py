"""The record: written as strict JSON (a non-finite number is null, never NaN), read back by its
one decoder, which says in this tool's words why a line is not a record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from actbench.core.record import NotARecord, Record, decode, encode


def test_strict_json_round_trip():
    r = Record(trial_id="a", status="ok", config={"lr": 3e-3, "data": {"source": "bin"}},
               metrics={"val_bpb": 1.25, "nan": math.nan, "inf": -math.inf, "np": np.float32(0.5), "n": np.int64(3)})
    raw = encode(r)
    loaded = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert loaded["metrics"] == {"val_bpb": 1.25, "nan": None, "inf": None, "np": 0.5, "n": 3}
    back = decode(raw)
    assert back.trial_id == "a" and back.config == r.config and back.metrics["nan"] is None
    assert back.metric("val_bpb") == 1.25 and back.metric("nan") is None and back.metric("missing") is None


@pytest.mark.parametrize("raw,why,torn", [
    (b'{"trial_id": "a", "status": "ok", "con', "not JSON (a torn record of an earlier crash?)", True),
    (b'{"trial_id": "a", "status": "ok", "metrics": {"x": NaN}}', "not JSON (a torn record of an earlier crash?)", True),
    (b'{"x": "\xff"}', "not UTF-8", False),
    (b"[1]", "a JSON list, not an object", False),
    (b'{"status": "ok"}', "no trial_id", False),
    (b'{"trial_id": "", "status": "ok"}', "no trial_id", False),
    (b'{"trial_id": 5, "status": "ok"}', "no trial_id", False),
    (b'{"trial_id": "a", "status": "ok", "config": "x"}', "config is a str, not an object", False),
    (b'{"trial_id": "a", "status": "ok", "error": [1]}', "error is a list, not an object", False),
    (b'{"trial_id": "a", "status": "ok", "rows": [1, 2]}', "rows holds something other than objects", False),
])
def test_lines_that_are_not_records_say_why(raw, why, torn):
    with pytest.raises(NotARecord) as e:
        decode(raw)
    assert str(e.value) == why and e.value.torn is torn


def test_unknown_fields_are_ignored_and_missing_ones_default():
    r = decode(b'{"trial_id": "a", "status": "failed", "future_field": [1, 2]}')
    assert (r.kind, r.config, r.metrics, r.rows, r.error, r.attempt, r.ok) == ("", {}, {}, [], None, 1, False)


def test_every_record_this_tool_writes_is_one_it_reads_back():
    """A diverged run's perplexity (exp(700) ~ 1e304) is beyond the reader's bound: written as
    null, not as a number that would set the record aside (and rerun the trial on every resume)."""
    r = Record(trial_id="a", status="ok", config={"lr": 3e-3, "big": 2**70},
               metrics={"val_ppl": math.exp(700.0), "val_bpb": 1.5}, rows=[{"x": -1e200, "ms": 0.5}])
    back = decode(encode(r))
    assert back.metrics == {"val_ppl": None, "val_bpb": 1.5}
    assert back.config == {"lr": 3e-3, "big": None} and back.rows == [{"x": None, "ms": 0.5}]
    assert encode({"series": [1.0, 1e300]}) == b'{"series":[1.0,null]}'
