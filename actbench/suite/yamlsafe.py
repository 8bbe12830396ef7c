"""Reading a suite file safely and saying where it is wrong. A suite may come from anyone, so
reading it is bounded and strict: UTF-8 only, at most MAX_SUITE_BYTES; plain YAML data with no
aliases (`*name` is refused, which rules out alias bombs and recursive structures), no duplicate
keys, at most MAX_DEPTH levels of nesting and no list or mapping longer than the trial limit;
numbers follow YAML 1.2 (`1e-3` is a float, not a string). Errors name the file, the line where
YAML gives one, and the field (`Located`), or the `--set` flag a value came from."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from actbench.errors import UserError

MAX_SUITE_BYTES = 16 * 2**20
MAX_DEPTH = 32
_FLOAT_EXP = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
_YamlBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_YamlBase):  # type: ignore[misc,valid-type]
    """yaml's safe loader (libyaml when present) with YAML 1.2 exponent floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (lines {seen[key]} and {line})", key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_EXP, list("-+0123456789"))


def check_shape(text: str, where: str, limit: int, numbered: bool = True) -> None:
    """Stream the YAML events and refuse aliases, deep nesting and huge collections before
    anything is built, so a hostile file costs little time and memory."""
    stack: list[list[int]] = []  # [entries so far, entries allowed] per open collection
    values = 0
    for event in yaml.parse(text, Loader=_YamlBase):
        at = f"{where}:{event.start_mark.line + 1}" if numbered and event.start_mark else where
        if isinstance(event, yaml.AliasEvent):
            raise UserError(f"{at}: alias *{event.anchor} is not allowed in a suite (write the value out in full)")
        if isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            continue
        if not isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
            continue
        values += 1
        if values > 10 * limit:
            raise UserError(f"{at}: more than {10 * limit:,} values in one suite (the trial limit is {limit:,})")
        if stack:
            stack[-1][0] += 1
            if stack[-1][0] > stack[-1][1]:
                raise UserError(f"{at}: a list or mapping with more than {limit:,} entries exceeds the trial limit ({limit:,})")
        if isinstance(event, yaml.CollectionStartEvent):
            stack.append([0, 2 * limit if isinstance(event, yaml.MappingStartEvent) else limit])
            if len(stack) > MAX_DEPTH:
                raise UserError(f"{at}: nested deeper than {MAX_DEPTH} levels")


def yaml_error(where: str, e: yaml.YAMLError, numbered: bool) -> UserError:
    mark = getattr(e, "problem_mark", None)
    at = f"{where}:{mark.line + 1}" if mark and numbered else where
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return UserError(f"{at}: invalid YAML: {problem}")


def load_yaml(text: str, where: str, limit: int, numbered: bool = True) -> tuple[Any, yaml.Node | None]:
    """The data of one YAML document and its node tree (for line numbers); UserError otherwise.
    `where` starts each error; `numbered` adds the line (a file, not a --set value)."""
    try:
        check_shape(text, where, limit, numbered)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            return (loader.construct_document(root) if root is not None else None), root
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise yaml_error(where, e, numbered) from None
    except (ValueError, OverflowError) as e:  # a scalar yaml cannot convert, e.g. an integer of 5000 digits
        raise UserError(f"{where}: invalid value: {str(e).splitlines()[0]}") from None


def read_text(path: Path) -> str:
    """The suite file as text: UTF-8 (a UTF-8 byte order mark is allowed) and not too large."""
    try:
        with open(path, "rb") as f:  # never more than the limit, even from a device such as /dev/zero
            raw = f.read(MAX_SUITE_BYTES + 1)
    except OSError as e:
        raise UserError(f"{path}: cannot read suite: {e.strerror or e}") from e
    if len(raw) > MAX_SUITE_BYTES:
        raise UserError(f"{path}: too large for a suite (more than {MAX_SUITE_BYTES:,} bytes)")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise UserError(f"{path}: not UTF-8 text (it looks like UTF-16 or a binary file); save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None


def line_index(root: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """Map each mapping key path (and list item path) of the node tree to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                lines[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, str(i)))

    if root is not None:
        walk(root, ())
    return lines


class Located:
    """Formats errors as `file:line: field: message`, or `--set key: message` for a value that
    came from the command line (`flags` maps the location of each such value to its flag)."""

    def __init__(self, path: Path, lines: dict[tuple[str, ...], int], flags: dict[tuple[str, ...], str] | None = None):
        self.path, self.lines, self.flags = path, lines, flags or {}

    def error(self, loc: tuple[str | int, ...], msg: str) -> UserError:
        keys = tuple(str(p) for p in loc)
        for prefix, flag in self.flags.items():
            if keys[: len(prefix)] == prefix or (len(keys) >= 2 and prefix[: len(keys)] == keys):
                return UserError(f"{flag}: {msg}")
        line = None
        for n in range(len(keys), -1, -1):
            if keys[:n] in self.lines:
                line = self.lines[keys[:n]]
                break
        field = ".".join(k for k in keys if not k.isdigit()) or "(top level)"
        where = f"{self.path}:{line}" if line else str(self.path)
        return UserError(f"{where}: {field}: {msg}")


def data_loc(data: Any, err: dict[str, Any]) -> tuple[str | int, ...]:
    """The parts of a pydantic error's location that are keys or indexes in `data`: a union's member
    tags (`function-after[_ordered(), SeedRounds]`, `list[int]`) name no field of the suite; the
    key of a missing field (the last part) is kept."""
    loc, missing = tuple(err["loc"]), err["type"] == "missing"
    kept: list[str | int] = []
    for i, part in enumerate(loc):
        if isinstance(data, dict) and part in data or isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        elif not (missing and i == len(loc) - 1):
            continue
        kept.append(part)
    return tuple(kept)


def pydantic_msg(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif "input" in err and err["type"] not in ("missing", "value_error", "assertion_error") and not isinstance(err["input"], (dict, list)):
        msg = f"{msg}, got {err['input']!r}"[:300]
    return msg
