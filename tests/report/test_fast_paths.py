"""The report's fast paths give what the plain code they replace gives: series columns and argmax
predictions, listed or packed (report.series), JSON text of list cells in exports (report.html), seed curves (plots)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from actbench.report import html, plots, series
from actbench.results import pack_ints, unpack_ints

VALUES = [[1, 2, 255, 0], [True, 3], [256, 1], [-1, 4], [70000], [1.0, 2.5], [1, "x"], ["7"], [], [[1, 2]], 5, "abc", None,
          {"a": 1}, [None, 1.5], [2**70], [1, None]]


def _plain_argmax(values):
    try:
        a = np.asarray(values, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return None
    if a.ndim != 1 or not len(a):
        return None
    return a.astype(np.uint16) if a.min() >= 0 and a.max() < 2**16 else a


def _plain_floats(values):
    try:
        return np.asarray([np.nan if v is None else v for v in values], dtype=float)
    except (TypeError, ValueError):
        return None


@pytest.mark.parametrize("values", VALUES)
def test_argmax_and_float_columns_match_the_plain_conversion(values):
    got, want = series._argmax({"val_argmax": values}), _plain_argmax(values)
    assert (got is None) == (want is None)
    if want is not None:
        assert got.dtype == want.dtype and np.array_equal(got, want)
    try:
        got = series._floats(values)
    except (TypeError, ValueError):
        got = None
    want = _plain_floats(values)
    assert (got is None) == (want is None)
    if want is not None:
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def test_json_lists_match_a_plain_map():
    shared = ["eager", "triton"]
    columns = {"lists": [shared, shared, ["a"], np.nan, {"k": [1]}, shared],
               "mixed": [1, "a", [True, 1], 2**70, None, [1.0]],
               "ints": [1, 2, 3, True, [1], 2],
               "plain": ["a", "b", None, "c", "d", "e"]}
    df = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()}, index=[5, 3, 9, 1, 0, 2])
    got = html._json_lists(df)
    for c in df.columns:
        kind = pd.api.types.infer_dtype(df[c], skipna=True)
        want = df[c].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v) if kind in ("mixed", "mixed-integer") else df[c]
        pd.testing.assert_series_equal(got[c], want)


class _Axes:
    def plot(self, x, y, **kw):
        self.x, self.y = x, y
        return (self,)

    def fill_between(self, x, low, high, **kw):
        self.low, self.high = low, high

    def get_color(self):
        return "C0"


@pytest.mark.parametrize("steps", [[[0, 1, 2], [0, 1, 2]], [[0, 1, 2], [0, 2]], [[2, 1, 0], [0, 1, 2]], [[0, 0, 1], [0, 0, 1]], [[3], [3]]])
def test_band_of_aligned_curves_matches_the_lookup(steps, monkeypatch):
    rng = np.random.default_rng(0)
    curves = [np.column_stack([s, rng.random(len(s)), rng.random(len(s))]) for s in steps]
    fast = _Axes()
    plots._band(fast, curves, "x")
    slow, equal = _Axes(), np.array_equal
    monkeypatch.setattr(plots.np, "array_equal", lambda *a: False)  # every curve through the step lookup
    plots._band(slow, curves, "x")
    for attr in ("x", "y", "low", "high"):
        assert equal(getattr(fast, attr), getattr(slow, attr))


@pytest.mark.parametrize("values", [[1, 2, 255, 0], [256, 1], [70000, 3], [2**32 - 1], list(range(300))])
def test_packed_token_ids_read_as_the_list_of_them(values):
    packed = pack_ints(np.asarray(values))
    assert json.loads(json.dumps(packed)) == packed
    assert np.array_equal(unpack_ints(packed), values)
    got, want = series._argmax({"val_argmax": packed}), _plain_argmax(values)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("packed", [{"dtype": "<u2", "base64": "AAEC"}, {"dtype": "<i8", "base64": "AAAAAAAAAAA="}, {"dtype": "<u1", "base64": "**"},
                                    {"dtype": "<u1"}, {"dtype": "<u1", "base64": 5}, {"dtype": "<u1", "base64": ""}, {}])
def test_malformed_packed_ids_are_no_predictions(packed):
    """An odd byte count, a dtype outside the packed ones, bad base64, missing or empty data."""
    assert series._argmax({"val_argmax": packed}) is None


def test_pack_refuses_what_it_cannot_hold():
    for bad in ([-1, 2], [2**32], [1.7, 2.2], [float("nan")]):
        with pytest.raises(ValueError):
            pack_ints(np.asarray(bad))
