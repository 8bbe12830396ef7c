"""The activation registry: every activation is registered once, with its metadata.

`register` decorates an `nn.Module` class; `build(name, impl)` makes a module. Implementations:
`eager` (the module itself), `compile` (the module under `torch.compile`), `triton` where a
fused kernel is registered with `register_impl`, and `auto` (triton on a CUDA device where a
kernel exists, otherwise eager). Third-party activations arrive through the entry-point group
`actbench.activations` or `load_plugin("some.module")`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Callable

import torch
from torch import nn

from actbench.errors import UserError

ENTRY_POINT_GROUP = "actbench.activations"
_BUILTIN_MODULES = ("xielu", "relu", "smooth", "glu")


@dataclass
class ActivationSpec:
    """Metadata of one registered activation."""

    name: str
    cls: type[nn.Module]
    family: str
    gated: bool
    params: tuple[str, ...]
    paper: str | None
    impls: dict[str, Callable[..., nn.Module]] = field(default_factory=dict)
    availability: dict[str, Callable[[], str | None]] = field(default_factory=dict)

    @property
    def formula(self) -> str:
        return inspect.cleandoc(self.cls.__doc__ or "")

    @property
    def defaults(self) -> dict[str, object]:
        sig = inspect.signature(self.cls.__init__)
        return {
            k: p.default
            for k, p in sig.parameters.items()
            if k != "self" and p.default is not inspect.Parameter.empty
        }

    def unavailable_reason(self, impl: str) -> str | None:
        """Why `impl` cannot run on this machine, or None when it can."""
        check = self.availability.get(impl)
        return check() if check else None


_REGISTRY: dict[str, ActivationSpec] = {}
_loaded = False


def register(
    name: str,
    *,
    family: str,
    gated: bool = False,
    params: tuple[str, ...] = (),
    paper: str | None = None,
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: register an activation module under `name`.

    `gated` modules take width 2*d, split as [gate, value], and return width d.
    `params` names the trainable parameters; `paper` is an arXiv id or a citation.
    """

    def deco(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name].cls is not cls:
            raise ValueError(f"activation {name!r} is already registered")
        _REGISTRY[name] = ActivationSpec(
            name=name,
            cls=cls,
            family=family,
            gated=gated,
            params=tuple(params),
            paper=paper,
            impls={"eager": cls, "compile": lambda **kw: torch.compile(cls(**kw))},
        )
        return cls

    return deco


def register_impl(
    name: str,
    impl: str,
    factory: Callable[..., nn.Module],
    unavailable_reason: Callable[[], str | None] | None = None,
) -> None:
    """Add an implementation (e.g. `triton`) to an already registered activation."""
    s = _REGISTRY[name]
    s.impls[impl] = factory
    if unavailable_reason is not None:
        s.availability[impl] = unavailable_reason


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        importlib.import_module(f"actbench.activations.{mod}")
    importlib.import_module("actbench.kernels.xielu")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not break the tool
            raise UserError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {e}") from e


def load_plugin(module: str) -> None:
    """Import a module whose import registers activations (CLI: --plugin)."""
    _ensure_loaded()
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"--plugin {module}: cannot import: {e}") from e


def names() -> list[str]:
    """All registered activation names, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def closest(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, names(), n=n, cutoff=0.5)


def unknown_message(name: str) -> str:
    near = closest(name)
    hint = f" (did you mean {', '.join(repr(c) for c in near)}?)" if near else ""
    return f"unknown activation {name!r}{hint}"


def spec(name: str) -> ActivationSpec:
    """Metadata for `name`; a KeyError-like UserError naming the closest names when unknown."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(unknown_message(name))
    return _REGISTRY[name]


def resolve_impl(name: str, impl: str) -> str:
    """Map `auto` to the best implementation that runs here; validate the others."""
    s = spec(name)
    if impl == "auto":  # the fused kernel on a real GPU; the interpreter is for tests only
        if "triton" in s.impls and torch.cuda.is_available() and s.unavailable_reason("triton") is None:
            return "triton"
        return "eager"
    if impl not in s.impls:
        raise UserError(
            f"activation {name!r} has no implementation {impl!r} (it has: {', '.join(s.impls)})"
        )
    return impl


def build(name: str, impl: str = "eager", **kwargs: object) -> nn.Module:
    """Construct activation `name` with implementation `impl` (eager|compile|triton|auto)."""
    s = spec(name)
    impl = resolve_impl(name, impl)
    reason = s.unavailable_reason(impl)
    if reason is not None:
        raise UserError(f"activation {name!r} impl {impl!r} cannot run here: {reason}")
    try:
        return s.impls[impl](**kwargs)
    except TypeError as e:
        raise UserError(f"activation {name!r}: bad arguments {kwargs}: {e}") from e
