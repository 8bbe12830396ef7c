"""The trial record: one declared type, written as strict JSON (a non-finite number is written as
null) and read with one decoder, which checks every line's shape.

A record is one attempt of one trial: its id, suite, kind and resolved config, the status (`ok`,
`failed`, `oom`, `diverged`, `timeout`), metrics, long-format measurement rows, the error, times,
the attempt number, the run that wrote it, the executor and the environment fingerprint, and the
file of its per-step series. Lines of a results file that are not records (torn by a crash, not
JSON, not UTF-8, of another shape, holding a number beyond `LIMIT` or an integer beyond 64 bits,
nested deeper than `MAX_DEPTH`, a field of `FIELDS` of another type) raise `NotARecord`, which
says why."""

from __future__ import annotations

import re
from itertools import chain
from pathlib import Path
from typing import Any

import msgspec

OK = "ok"
LIMIT = 1e150
"""The largest magnitude of any number a record holds (config, metrics, rows, env, error, times):
the square of the difference of two such numbers is still a finite float (the statistics square
differences), and no quantity this tool measures comes near it (FLOPs of a large training run:
1e25). A record holding a larger number (up to 1e308; or an integer beyond `INT_LIMIT`) is not
read: compare, report and regress go on with the others, with one warning for the file."""
INT_LIMIT = 2**63
"""Integers in a record fit in 64 bits (a table column of larger ones is not numeric)."""
MAX_DEPTH = 32
"""The deepest nesting of lists and objects within a record's fields (a ladder rung: 3)."""

TEXT, TEXT_OR_NULL, INTEGER, NUMBER = "text", "text or null", "an integer", "a number"
"""What a reader takes a field to be (NUMBER: also null, which is how a non-finite number is written)."""
FIELDS: dict[str, dict[str, str]] = {
    "config": {**dict.fromkeys(("activation", "dtype", "impl", "reference", "device", "schedule"), TEXT),
               **dict.fromkeys(("seed", "size", "width", "d_model", "n_layers", "d_ff", "tokens"), INTEGER),
               **dict.fromkeys(("lr", "warmup_frac", "decay_frac"), NUMBER)},
    "metrics": {**dict.fromkeys(("val_bpb", "val_loss", "val_ppl", "tune_val_bpb", "tune_val_loss", "tokens_per_s", "params", "mlp_params",
                                 "flops_per_token", "tokens", "steps", "d_ff", "mfu", "objective", "value", "alpha_p_mean", "alpha_n_mean"),
                                NUMBER),
                **dict.fromkeys(("device", "impl_used", "impl"), TEXT)},
    "rows": {**dict.fromkeys(("impl", "mode"), TEXT),
             **dict.fromkeys(("ms_p20", "ms_p50", "ms_p80", "gbps", "pct_copy", "saved_bytes_per_elem", "peak_fwd_mb", "peak_fwd_bwd_mb"), NUMBER)},
    "env": dict.fromkeys(("gpu_name", "git_commit", "hostname"), TEXT_OR_NULL),
}
"""The fields compare, report, regress and the planner read by name, and what each must be when a
record has it: a record whose field is of another type is not read. Every value of `metrics` and
of a row is also a single value (a number, text, true/false or null), never a list or an object."""


class Record(msgspec.Struct, kw_only=True):
    trial_id: str
    status: str
    suite: str = ""
    kind: str = ""
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    error: dict[str, Any] | None = None
    note: str = ""
    started_at: float | None = None
    ended_at: float | None = None
    duration_s: float | None = None
    attempt: int = 1
    run_id: str = ""
    executor: str = ""
    env: dict[str, Any] = {}
    series_file: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    def metric(self, name: str) -> float | None:
        """A finite numeric metric of a successful record, else None."""
        value = self.metrics.get(name) if self.ok else None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if value == value and abs(value) != float("inf") else None


def _plain(o: Any) -> Any:
    """numpy scalars as Python numbers, paths as text; anything else cannot be written."""
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_ENCODER = msgspec.json.Encoder(enc_hook=_plain)
_DECODER = msgspec.json.Decoder(Record)


def encode(value: Any) -> bytes:
    """Strict JSON of a record (or any plain value, such as a series file): NaN, infinities and
    numbers beyond LIMIT (INT_LIMIT for integers) as null, so that every record this tool writes
    is one it reads back (a diverged run's perplexity, exp(700), is not set aside on resume)."""
    if isinstance(value, Record):
        if not all(_sane(getattr(value, name)) for name in _PARTS):
            value = msgspec.structs.replace(value, **{name: _bounded(getattr(value, name)) for name in _PARTS})
    elif not _sane(value):
        value = _bounded(value)
    return _ENCODER.encode(value)


def _bounded(value: Any) -> Any:
    """`value` with every number beyond LIMIT (an integer beyond INT_LIMIT) replaced by None."""
    kind = type(value)
    if kind is float:
        return value if -LIMIT <= value <= LIMIT else None
    if kind is int:
        return value if -INT_LIMIT <= value < INT_LIMIT else None
    if kind is dict:
        return {k: _bounded(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_bounded(v) for v in value]
    return value


def decode_json(raw: bytes | str) -> Any:
    """Any JSON value (a series file); msgspec.DecodeError (a ValueError) when it is not strict
    JSON, or nested too deeply to decode."""
    try:
        return msgspec.json.decode(raw)
    except RecursionError:
        raise msgspec.DecodeError("JSON nested too deeply") from None


class NotARecord(ValueError):
    """A line that is not a trial record; `torn` when it is not JSON at all (perhaps cut by a crash)."""

    def __init__(self, why: str, torn: bool = False):
        super().__init__(why)
        self.torn = torn


_GOT = re.compile(r"Expected `([^`]+)`, got `(\w+)`(?: - at `\$(.*)`)?")
_TYPES = {"array": "list", "object": "dict", "null": "NoneType"}


def _why(e: msgspec.ValidationError) -> str:
    """msgspec's complaint about a line's shape, in this tool's words."""
    text = str(e)
    if text.startswith(("Number out of range", "Integer value out of range")):
        field = re.sub(r"\[.*", "", text.partition("`$")[2].rstrip("`").lstrip("."))
        return f"{field or 'a field'} holds a number beyond the range of a float"
    if text.startswith("Object missing required field"):
        return f"no {text.split('`')[1]}"
    m = _GOT.match(text)
    if m is None:
        return text
    want, got, where = m[1], _TYPES.get(m[2], m[2]), (m[3] or "").lstrip(".")
    if not where:
        return f"a JSON {got}, not an object"
    if where in ("trial_id", "status"):
        return f"no {where}"
    field = re.sub(r"\[.*", "", where)
    if "[" in where:
        return f"{field} holds something other than objects"
    return f"{field} is a {got}, not {'an object' if 'object' in want else 'an array' if 'array' in want else 'a ' + want}"


def _shown(value: Any) -> str:
    """What a JSON value is, in words."""
    if isinstance(value, bool):
        return "true/false"
    return {str: "text", int: "an integer", float: "a number", list: "a list", dict: "an object"}.get(type(value), "null")


_PARTS = ("config", "metrics", "rows", "env", "error", "started_at", "ended_at", "duration_s", "attempt")
_CONTAINERS = frozenset((dict, list))
_ALLOWED = {TEXT: frozenset((str,)), TEXT_OR_NULL: frozenset((str, type(None))), INTEGER: frozenset((int,)),
          NUMBER: frozenset((int, float, type(None)))}
_CHECKS = {place: [(frozenset(k for k, w in fields.items() if w == want), _ALLOWED[want]) for want in sorted(set(fields.values()))]
           for place, fields in FIELDS.items()}
"""Per place of FIELDS: (its fields of one type, the Python types allowed), checked at C speed."""


def _sane(value: Any, depth: int = 0) -> bool:
    """Whether every number in `value` is within LIMIT (an integer within INT_LIMIT) and it nests
    at most MAX_DEPTH deep."""
    kind = type(value)
    if kind is float:
        return -LIMIT <= value <= LIMIT
    if kind is int:
        return -INT_LIMIT <= value < INT_LIMIT
    if kind is dict or kind is list:
        if depth >= MAX_DEPTH:
            return False
        for item in value.values() if kind is dict else value:
            if not _sane(item, depth + 1):
                return False
    return True


_ROW_ALLOWED = {key: _ALLOWED[want] for key, want in FIELDS["rows"].items()}


def _typed(record: Record) -> bool:
    """Whether every field of `FIELDS` the record has is of its type and every metric and row value
    is a single value: checked column by column, at C speed (a kernel record of 13 rows: microseconds)."""
    for place in ("config", "metrics", "env"):
        values = getattr(record, place)
        for keys, allowed in _CHECKS[place]:
            present = keys & values.keys()
            if present and not allowed.issuperset(map(type, map(values.__getitem__, present))):
                return False
    rows = record.rows  # the distinct (field, type) pairs of all rows, gathered at C speed
    pairs = set(zip(chain.from_iterable(map(dict.keys, rows)), map(type, chain.from_iterable(map(dict.values, rows)))))
    return _CONTAINERS.isdisjoint(map(type, record.metrics.values())) and \
        all(kind not in _CONTAINERS and kind in _ROW_ALLOWED.get(key, (kind,)) for key, kind in pairs)


def _mistyped(record: Record) -> str | None:
    """The first field of `FIELDS` of another type, or a metric or row value that is a list or an object."""
    if _typed(record):
        return None
    for place, checks in _CHECKS.items():
        for i, values in enumerate(record.rows if place == "rows" else [getattr(record, place)]):
            for keys, allowed in checks:
                present = keys & values.keys()
                if present and not allowed.issuperset(map(type, map(values.__getitem__, present))):
                    key = next(k for k in sorted(present) if type(values[k]) not in allowed)
                    return f"{f'rows[{i}]' if place == 'rows' else place}.{key} is {_shown(values[key])}, not {FIELDS[place][key]}"
            if place in ("metrics", "rows") and not _CONTAINERS.isdisjoint(map(type, values.values())):
                key = next(k for k, v in values.items() if type(v) in _CONTAINERS)
                return f"{f'rows[{i}]' if place == 'rows' else place}.{str(key)[:40]} is {_shown(values[key])}, not a single value"
    return None


def sane(value: Any) -> bool:
    """Whether every number in a JSON value (a series file) is within LIMIT (an integer within
    INT_LIMIT) and it nests at most MAX_DEPTH deep: the bound a record's own numbers keep."""
    return _sane(value)


def _absurd(record: Record) -> str | None:
    """Why a decoded record cannot be read as data (its first number beyond LIMIT or INT_LIMIT,
    nesting deeper than MAX_DEPTH, or a field of `FIELDS` of another type), or None."""
    if not all(_sane(getattr(record, name)) for name in _PARTS):
        return _where_absurd(record)
    return _mistyped(record)


def _where_absurd(record: Record) -> str:
    """Where `_sane` failed, in words (the first place, in the order of the record)."""
    stack: list[tuple[str, Any, int]] = [(name, getattr(record, name), 0) for name in reversed(_PARTS)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth >= MAX_DEPTH:
                return f"{where[:60]}... is nested deeper than {MAX_DEPTH} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((f"{where}.{str(k)[:40]}" if isinstance(value, dict) else f"{where}[{k}]", v, depth + 1)
                         for k, v in reversed(list(items)))
        elif type(value) is float and not abs(value) <= LIMIT:
            return f"{where} is {value:.3g}, beyond the {LIMIT:g} a number in a record may reach"
        elif type(value) is int and not -INT_LIMIT <= value < INT_LIMIT:
            return f"{where} is an integer of {len(str(abs(value)))} digits, beyond the 64 bits an integer in a record may take"
    return "not readable"


def decode(raw: bytes) -> Record:
    """The record on one line; NotARecord saying why the line is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotARecord("not UTF-8") from None
    try:
        record = _DECODER.decode(text)
    except msgspec.ValidationError as e:
        raise NotARecord(_why(e)) from None
    except msgspec.DecodeError:
        raise NotARecord("not JSON (a torn record of an earlier crash?)", torn=True) from None
    except RecursionError:
        raise NotARecord(f"nested deeper than {MAX_DEPTH} levels") from None
    for key in ("trial_id", "status"):
        if not getattr(record, key):
            raise NotARecord(f"no {key}")
    absurd = _absurd(record)
    if absurd:
        raise NotARecord(absurd)
    return record
