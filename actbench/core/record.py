"""The trial record: one declared type, written as strict JSON (a non-finite number is written as
null) and read with one decoder, which checks every line's shape.

A record is one attempt of one trial: its id, suite, kind and resolved config, the status (`ok`,
`failed`, `oom`, `diverged`, `timeout`), metrics, long-format measurement rows, the error, times,
the attempt number, the run that wrote it, the executor and the environment fingerprint, and the
file of its per-step series. Lines of a results file that are not records (torn by a crash, not
JSON, not UTF-8, of another shape) are named by `why_not`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

OK = "ok"


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
    """Strict JSON of a record (or any plain value, such as a series file): NaN and infinities as null."""
    return _ENCODER.encode(value)


def decode_json(raw: bytes | str) -> Any:
    """Any JSON value (a series file); msgspec.DecodeError when it is not strict JSON."""
    return msgspec.json.decode(raw)


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
    for key in ("trial_id", "status"):
        if not getattr(record, key):
            raise NotARecord(f"no {key}")
    return record
