"""lm series files read once per comparison or report, kept compact.

A series file (`series/<trial id>.json`) holds per-step tables and the final evaluation's chunks
and argmax predictions; compare needs the chunks, predictions and the slope of the validation
curve, the plots the curves. `Series` parses each file once and keeps only float/integer arrays of
what they use, so a report over many lm trials reads each file once and holds little. What a file
parses to is kept in the series cache (`actbench.results.seriescache`) for exactly its bytes: a
later call opens the file through the gate, as a parse would, and takes its arrays from there
instead of parsing its JSON again: without reading it when the file's settled identity is the one
recorded when its bytes were last hashed, else after reading and hashing it."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from actbench.core import record
from actbench.results import gate, read
from actbench.results.seriescache import ArrayCache

CURVES = {"train": ("step", "loss", "tokens", "time_s"), "val": ("step", "tokens", "time_s", "loss", "bpb"),
          "alphas": ("step", "layer", "alpha_p", "alpha_n")}
MIN_SLOPE_POINTS = 2
"""Validation points before the LR decay that a slope against log tokens needs."""


def _floats(values: Any) -> np.ndarray:
    """A column as floats, None as NaN (numpy's conversion to float makes None NaN)."""
    return np.asarray(values, dtype=float)


def _table(series: dict[str, Any], name: str) -> dict[str, np.ndarray] | None:
    """One curve table {column: [...]} as float columns; None where it is absent or has another shape."""
    data = series.get(name)
    if not isinstance(data, dict):
        return None
    try:
        cols = {c: _floats(data[c]) for c in CURVES[name] if isinstance(data.get(c), list)}
    except (TypeError, ValueError):
        return None
    if "step" not in cols or {v.ndim for v in cols.values()} != {1} or len({len(v) for v in cols.values()}) != 1 or not len(cols["step"]):
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
    try:
        a = np.asarray(values, dtype=np.int64) if isinstance(values, list) else None
    except (TypeError, ValueError, OverflowError):
        return None
    if a is None or a.ndim != 1 or not len(a):
        return None
    return a.astype(np.uint16) if a.min() >= 0 and a.max() < 2**16 else a  # token ids: 2 bytes each where they fit


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

    def stable_slope(self, metric: str, config: dict[str, Any]) -> float | None:
        """d metric / d ln(tokens) of the validation curve over the second half of the stable
        phase of a warmup-stable-decay run (after warmup, before the decay): the rate at which more
        tokens lower the loss there. A run of fewer tokens ends near a curve parallel to the stable
        one, so this also says what a shorter run of the same schedule would lose. None for another
        schedule or fewer than MIN_SLOPE_POINTS points."""
        v = self.val
        if v is None or metric not in v or "tokens" not in v or config.get("schedule", "wsd") != "wsd":
            return None
        steps = v["step"].max()
        decay_start = steps * (1 - float(config.get("decay_frac", 0.2)))
        start = max(steps * float(config.get("warmup_frac", 0.05)), decay_start / 2)
        keep = (v["step"] >= start) & (v["step"] <= decay_start) & np.isfinite(v[metric]) & (v["tokens"] > 0)
        if keep.sum() < MIN_SLOPE_POINTS:
            return None
        return float(np.polyfit(np.log(v["tokens"][keep]), v[metric][keep], 1)[0])


def parse(series: dict[str, Any]) -> TrialSeries:
    return TrialSeries(chunks=_chunks(series), argmax=_argmax(series), **{name: _table(series, name) for name in CURVES})


def _flat(trial: TrialSeries) -> dict[str, np.ndarray]:
    """A parse as named arrays (`argmax`, `<table>.<column>`) for the cache; `_unflat` undoes it."""
    out = {} if trial.argmax is None else {"argmax": trial.argmax}
    for f in fields(TrialSeries):
        table = getattr(trial, f.name)
        if isinstance(table, dict):
            out.update({f"{f.name}.{c}": a for c, a in table.items()})
    return out


def _unflat(arrays: dict[str, np.ndarray]) -> TrialSeries:
    tables: dict[str, dict[str, np.ndarray]] = {}
    for name, a in arrays.items():
        if "." in name:
            table, column = name.split(".", 1)
            tables.setdefault(table, {})[column] = a
    return TrialSeries(argmax=arrays.get("argmax"), **tables)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A digest of the code that turns a series file's bytes into a `TrialSeries` (this module,
    the reader's checks and the record module's decoding and bounds they use, the cache's format):
    entries written by other code are never served."""
    from actbench.results import seriescache

    digest = hashlib.sha256()
    for module in (sys.modules[__name__], read, record, seriescache):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


FIRST = ("chunks", "val")
"""What compare reads of every trial (`Series.get`'s parts): the cache keeps it apart from the rest
(argmax predictions, training curves, alphas), which is read only when asked for."""
PARTS = ("chunks", "argmax", "train", "val", "alphas")


class Series:
    """Series files by (results folder, series file), each read once and parsed once, or taken
    from the series cache where it holds the parse of exactly the bytes read."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], TrialSeries] = {}
        self._caches: dict[str, ArrayCache | None] = {}
        self._rest: dict[tuple[str, str], tuple[ArrayCache, str, bytes]] = {}  # served from the cache but for the parts not in FIRST

    def get(self, results_dir: str | Path, series_file: Any, parts: tuple[str, ...] = PARTS) -> TrialSeries:
        """The parse of a series file, with at least `parts` of it (a part not asked for may be None
        though the file has it: ask for every part read)."""
        if not isinstance(series_file, str) or not series_file:
            return TrialSeries()
        key = (str(results_dir), series_file)
        found = self._parsed.get(key)
        if found is None:
            found = self._parsed[key] = self._read(results_dir, series_file)
        if key in self._rest and not set(parts) <= set(FIRST):
            self._fill(key, found)
        return found

    def _read(self, results_dir: str | Path, series_file: str) -> TrialSeries:
        """What `read.read_series` and `parse` give, through the cache (only its FIRST parts when it
        comes from there: `_fill` adds the others). A file whose settled identity (`gate.settled`)
        is the one its entry was stored with is not read again; any other is read and hashed."""
        f = gate.open_file(results_dir, series_file)
        if f is None:
            return TrialSeries()
        folder, path = str(results_dir), Path(results_dir) / series_file
        if folder not in self._caches:
            self._caches[folder] = ArrayCache.series(results_dir, code_version())
        cache, rel = self._caches[folder], os.path.normpath(series_file)  # as the gate read it
        with f:
            identity = gate.settled(f.fileno())
            found = cache.load_settled(f"{rel}\x00first", identity) if cache is not None and identity else None
            if found is not None:
                self._rest[(folder, series_file)] = (cache, rel, found[1])
                return _unflat(found[0])
            try:
                raw = gate.read_open(f, path, gate.MAX_SERIES)
            except gate.Refused as e:
                gate.warn(e)
                return TrialSeries()
            if identity != gate.settled(f.fileno()):  # it changed while read: its identity vouches for nothing
                identity = None
        source = hashlib.sha256(raw).digest()
        first = cache.load(f"{rel}\x00first", source) if cache is not None else None
        if first is not None:
            self._rest[(folder, series_file)] = (cache, rel, source)
            if identity:  # vouched for by its bytes, and settled since: later reads need not read it
                cache.store(f"{rel}\x00first", source, first, identity)
            return _unflat(first)
        trial = _parsed(raw, path)
        if cache is not None and trial is not None:
            flat = _flat(trial)
            if cache.store(f"{rel}\x00rest", source, {k: a for k, a in flat.items() if k.split(".")[0] not in FIRST}) and \
                    cache.store(f"{rel}\x00first", source, {k: a for k, a in flat.items() if k.split(".")[0] in FIRST}, identity):
                # held as one served from the cache: its FIRST parts, the rest from its entry when asked for (compare reads
                # the FIRST parts of every trial; the argmax predictions alone of 6,500 trials take ~100 MB)
                self._rest[(folder, series_file)] = (cache, rel, source)
                return TrialSeries(**{part: getattr(trial, part) for part in FIRST})
        return trial or TrialSeries()

    def _fill(self, key: tuple[str, str], trial: TrialSeries) -> None:
        """The parts of a trial served from the cache that are not FIRST, from its entry for the
        same bytes; where that is gone, from the file read again if it still holds those bytes. A
        trial's parts all come from one version of its file: one changed meanwhile gives no more
        parts (absent, as in a file without them), with a warning."""
        cache, rel, source = self._rest.pop(key)
        rest = cache.load(f"{rel}\x00rest", source)
        if rest is not None:
            more = _unflat(rest)
        else:
            raw = gate.read_bytes(key[0], key[1], gate.MAX_SERIES)
            if raw is not None and hashlib.sha256(raw).digest() != source:
                gate.warn(gate.Refused(Path(key[0]) / key[1], "it changed while these results were read: its curves are left out"))
                raw = None
            more = (_parsed(raw, Path(key[0]) / key[1]) if raw is not None else None) or TrialSeries()
        for part in PARTS:
            if part not in FIRST:
                setattr(trial, part, getattr(more, part))


def _parsed(raw: bytes, path: Path) -> TrialSeries | None:
    """`parse` of a series file's bytes; None when they hold nothing to parse (not JSON, not an
    object, or refused with a warning: such a file is never cached, so its warning comes again)."""
    try:
        data = read.series_data(raw, path)
    except ValueError:  # not JSON (msgspec.DecodeError is a ValueError)
        return None
    return parse(data) if data else None
