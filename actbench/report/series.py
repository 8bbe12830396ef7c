"""lm series files read once per comparison or report, kept compact.

A series file (`series/<trial id>.json`) holds per-step tables and the final evaluation's chunks
and argmax predictions; compare needs the chunks and predictions, the plots the curves. `Series`
parses each file once (the JSON parse is what costs) and keeps only float/integer arrays of what
they use, so a report over many lm trials reads each file once and holds little."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actbench.results import read_series, unpack_ints

CURVES = {"train": ("step", "loss", "tokens", "time_s"), "val": ("step", "tokens", "time_s", "loss", "bpb"),
          "alphas": ("step", "layer", "alpha_p", "alpha_n")}
_LEGACY = {"train": ("train_loss", ("step", "loss")), "val": ("val", ("step", "loss", "bpb")),
           "alphas": ("alphas", ("step", "layer", "alpha_p", "alpha_n"))}


def _floats(values: Any) -> np.ndarray:
    """A column as floats, None as NaN (numpy's own conversion of a list does both)."""
    return np.asarray(values if isinstance(values, list) else [np.nan if v is None else v for v in values], dtype=float)


def _table(series: dict[str, Any], name: str) -> dict[str, np.ndarray] | None:
    """One curve table as float columns: the column format {table: {column: [...]}} or the older
    list of unnamed rows; None where it is absent or has another shape."""
    data = series.get(name)
    legacy_key, legacy_names = _LEGACY[name]
    try:
        if isinstance(data, dict):
            cols = {c: _floats(data[c]) for c in CURVES[name] if c in data}
        else:
            rows = np.asarray([[np.nan if v is None else v for v in r] for r in series.get(legacy_key) or []], dtype=float)
            cols = {c: rows[:, i] for i, c in enumerate(legacy_names) if rows.ndim == 2 and i < rows.shape[1]}
    except (TypeError, ValueError, KeyError, IndexError):
        return None
    if "step" not in cols or len({len(v) for v in cols.values()}) != 1 or not len(cols["step"]):
        return None
    return cols


def _chunks(series: dict[str, Any]) -> dict[str, np.ndarray] | None:
    c = series.get("eval_chunks")
    if not isinstance(c, dict):
        return None
    out = {}
    for k in ("nats", "bytes", "tokens"):
        try:
            a = np.asarray(c.get(k), dtype=float)
        except (TypeError, ValueError):
            continue
        if a.ndim == 1:
            out[k] = a
    return out or None


def _argmax(series: dict[str, Any]) -> np.ndarray | None:
    values = series.get("val_argmax")
    if isinstance(values, dict):  # packed (pack_ints)
        a = unpack_ints(values)
    else:  # a list of numbers (earlier results)
        try:  # byte-level token ids (all in 0..255): bytes() converts them at C speed
            a = np.frombuffer(bytes(values), dtype=np.uint8) if isinstance(values, list) else None
        except (TypeError, ValueError):
            a = None
        if a is None:
            try:
                a = np.asarray(values, dtype=np.int64)
            except (TypeError, ValueError, OverflowError):
                return None
    if a is None or a.ndim != 1 or not len(a):
        return None
    return a.astype(np.uint16) if a.min() >= 0 and a.max() < 2**16 else a.astype(np.int64)  # token ids: 2 bytes each where they fit


@dataclass
class TrialSeries:
    """What compare and the plots use of one series file (None where absent or malformed)."""

    chunks: dict[str, np.ndarray] | None = None
    argmax: np.ndarray | None = None
    train: dict[str, np.ndarray] | None = None
    val: dict[str, np.ndarray] | None = None
    alphas: dict[str, np.ndarray] | None = None

    def chunk_arrays(self, weight: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(nats, bytes or tokens) per validation chunk, or None when absent or malformed."""
        if self.chunks is None or "nats" not in self.chunks or weight not in self.chunks:
            return None
        nats, w = self.chunks["nats"], self.chunks[weight]
        if not len(nats) or nats.shape != w.shape or not (np.isfinite(nats).all() and (w > 0).all()):
            return None
        return nats, w


def parse(series: dict[str, Any]) -> TrialSeries:
    return TrialSeries(chunks=_chunks(series), argmax=_argmax(series), **{name: _table(series, name) for name in CURVES})


class Series:
    """Series files by (results folder, series file), each read and parsed once."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], TrialSeries] = {}

    def get(self, results_dir: str | Path, series_file: Any) -> TrialSeries:
        if not isinstance(series_file, str) or not series_file:
            return TrialSeries()
        key = (str(results_dir), series_file)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = parse(read_series(results_dir, series_file))
        return found
