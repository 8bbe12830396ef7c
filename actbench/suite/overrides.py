"""`--set KEY=VALUE`: values parsed as YAML by the suite's rules and written into the raw suite
before it is validated, so that an error in one names its flag."""

from __future__ import annotations

import re
from typing import Any

from actbench.errors import UserError
from actbench.suite.yamlsafe import load_yaml

MAX_VALUES = 100_000
"""A `--set` value is bounded as a suite of this many trials would be."""
MAX_KEY = 200
"""The longest KEY of `--set KEY=VALUE` (dotted config fields)."""
_SET_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


_FIXED = {"name": "use --out to choose the results folder", "kind": "it picks the schema of the whole suite",
          "description": "edit the file", "defaults": "set one field, e.g. --set steps=20",
          "matrix": "set one field, e.g. --set activation=xielu", "zip": "set one field, e.g. --set size=4096"}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs into a dict; values are parsed as YAML (the suite's rules)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or len(key) > MAX_KEY or not _SET_KEY.fullmatch(key):
            shown = item if item.isprintable() and len(item) <= 80 else repr(item[:77] + ("..." if len(item) > 77 else ""))
            raise UserError(f"--set {shown}: expected KEY=VALUE, e.g. --set steps=20 or --set resources.cpus=2")
        out[key], _ = load_yaml(value, f"--set {key}", MAX_VALUES, numbered=False)
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """Write `--set` values into the raw suite: a field swept by matrix or zip becomes that one
    value (the axis is replaced), `seed` / `seeds` replace the seeds, `resources.X` one resource,
    any other key a default (dotted keys reach into nested configs: data.path). Returns where
    each value went, so that an error in it names its flag."""
    flags: dict[tuple[str, ...], str] = {}
    for key, value in overrides.items():
        parts = tuple(key.split("."))
        flag = f"--set {key}"
        if parts[0] in _FIXED:
            raise UserError(f"{flag}: the suite's {parts[0]} cannot be set from the command line ({_FIXED[parts[0]]})")
        if key in ("seed", "seeds"):
            data["seeds"] = [value] if key == "seed" else value
            flags[("seeds",)] = flag
            continue
        if parts[0] == "resources":
            if len(parts) != 2:
                raise UserError(f"{flag}: set one resource, e.g. --set resources.cpus=2")
            _container(data, ("resources",), flag)[parts[1]] = value
            flags[parts] = flag
            continue
        for block in ("matrix", "zip"):
            axes = data.get(block)
            if isinstance(axes, dict) and parts[0] in axes:
                if len(parts) > 1:
                    raise UserError(f"{flag}: {parts[0]} is swept in {block}; set the whole value, --set {parts[0]}=...")
                n = len(axes[parts[0]]) if block == "zip" and isinstance(axes[parts[0]], list) else 1
                axes[parts[0]] = [value] * n
                flags[(block, parts[0])] = flag
                break
        else:
            _container(data, ("defaults", *parts[:-1]), flag)[parts[-1]] = value
            flags[("defaults", *parts)] = flag
    return flags


def _container(data: dict[str, Any], path: tuple[str, ...], flag: str) -> dict[str, Any]:
    """The mapping at `path` inside the raw suite, created when absent."""
    node = data
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UserError(f"{flag}: {'.'.join(path)} is not a mapping in the suite")
    return node
