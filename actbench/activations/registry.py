"""The activation registry: every activation is registered once, with its metadata.

Built-in activations are declared in `actbench.activations.catalog` by import path, so listing
them, matching MLP widths or validating a suite never imports torch; a module is imported when
one of its activations is built or its formula is shown. Plugins register a class directly with
the `register` decorator. Implementations: `eager` (the module itself), `compile` (the module
under `torch.compile`), extra ones such as `triton` given by import path, and `auto` (see
`resolve_impl`). Third-party activations arrive through the entry-point group
`actbench.activations` or `load_plugin("some.module")`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from actbench.errors import UserError

if TYPE_CHECKING:
    from torch import nn

ENTRY_POINT_GROUP = "actbench.activations"


def import_target(target: str | Callable[..., Any]) -> Any:
    """The object named by `module:attribute` (or `target` itself when it is not a string)."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _compiled(cls: type) -> Callable[..., "nn.Module"]:
    def make(**kwargs: object) -> "nn.Module":
        import torch

        return torch.compile(cls(**kwargs))

    return make


@dataclass
class ActivationSpec:
    """Metadata of one registered activation. `target` is the module class or its import path;
    `impls` and `availability` map extra implementations to factories / checks (or their paths);
    `quick_availability`, checks that import nothing heavy, for listings (`actbench info`)."""

    name: str
    target: str | type
    family: str
    gated: bool
    params: tuple[str, ...]
    paper: str | None
    impls: dict[str, str | Callable[..., Any]] = field(default_factory=dict)
    availability: dict[str, str | Callable[[], str | None]] = field(default_factory=dict)
    quick_availability: dict[str, str | Callable[[], str | None]] = field(default_factory=dict)
    plugin: str | None = None

    @property
    def cls(self) -> type["nn.Module"]:
        return import_target(self.target)

    @property
    def impl_names(self) -> list[str]:
        return ["eager", "compile", *self.impls]

    def factory(self, impl: str) -> Callable[..., "nn.Module"]:
        if impl == "eager":
            return self.cls
        if impl == "compile":
            return _compiled(self.cls)
        return import_target(self.impls[impl])

    @property
    def formula(self) -> str:
        return inspect.cleandoc(self.cls.__doc__ or "")

    @property
    def defaults(self) -> dict[str, object]:
        sig = inspect.signature(self.cls.__init__)
        return {k: p.default for k, p in sig.parameters.items() if k != "self" and p.default is not inspect.Parameter.empty}

    def unavailable_reason(self, impl: str, quick: bool = False) -> str | None:
        """Why `impl` cannot run on this machine, or None when it can (`quick`: as far as a check
        that imports nothing heavy can tell, where the activation has one)."""
        check = (quick and self.quick_availability.get(impl)) or self.availability.get(impl)
        return import_target(check)() if check else None


_REGISTRY: dict[str, ActivationSpec] = {}
_loaded = False


def _add(spec: ActivationSpec) -> None:
    old = _REGISTRY.get(spec.name)
    if old is not None and old.target is not spec.target and old.target != spec.target:
        raise ValueError(f"activation {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec


def register(
    name: str,
    *,
    family: str,
    gated: bool = False,
    params: tuple[str, ...] = (),
    paper: str | None = None,
) -> Callable[[type["nn.Module"]], type["nn.Module"]]:
    """Class decorator: register an activation module under `name` (plugins use this).

    `gated` modules take width 2*d, split as [gate, value], and return width d.
    `params` names the trainable parameters; `paper` is an arXiv id or a citation.
    """

    def deco(cls: type["nn.Module"]) -> type["nn.Module"]:
        _add(ActivationSpec(name=name, target=cls, family=family, gated=gated, params=tuple(params), paper=paper,
                            plugin=cls.__module__))
        return cls

    return deco


def register_impl(name: str, impl: str, factory: str | Callable[..., Any],
                  unavailable_reason: str | Callable[[], str | None] | None = None) -> None:
    """Add an implementation (e.g. `triton`) to an already registered activation."""
    s = spec(name)
    s.impls[impl] = factory
    if unavailable_reason is not None:
        s.availability[impl] = unavailable_reason


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from importlib.metadata import entry_points

    from actbench.activations.catalog import BUILTINS

    for entry in BUILTINS:
        _add(ActivationSpec(**entry))
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plugin must not break the tool
            raise UserError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {e}") from e


def load_plugin(module: str) -> None:
    """Import a module whose import registers activations (CLI: --plugin). The current folder
    is importable, as for `python -m`, so a plugin file next to the user works."""
    _ensure_loaded()
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise UserError(f"--plugin {module}: cannot import: {e}") from e
    except Exception as e:  # noqa: BLE001 - the plugin's own code failed
        raise UserError(f"--plugin {module}: failed while importing: {type(e).__name__}: {e}") from e


def plugin_modules(names: Iterable[str] | None = None) -> list[str]:
    """Modules that registered activations through `register` (to import them where trials run):
    all of them, or those that registered any of `names` (other strings are ignored)."""
    _ensure_loaded()
    specs = _REGISTRY.values() if names is None else [_REGISTRY[n] for n in set(names) if n in _REGISTRY]
    return sorted({s.plugin for s in specs if s.plugin})


def facts(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What the rest of the tool needs to know of each registered name among `names` (other
    strings are ignored) without building it: family, gated, parameters, paper, plugin module.
    A run keeps them beside its results, so reading the results needs no plugin (`remember`)."""
    _ensure_loaded()
    return {n: {"family": s.family, "gated": s.gated, "params": list(s.params), "paper": s.paper, "plugin": s.plugin}
            for n in sorted(set(names)) if (s := _REGISTRY.get(n)) is not None}


def remember(known: dict[str, Any]) -> list[str]:
    """Register the names of `facts` output that are not registered here (a plugin's activations,
    read back from results without the plugin): their metadata, not their modules, which cannot be
    built. Returns the names added; entries of another shape are ignored."""
    _ensure_loaded()
    added = []
    for name, f in known.items():
        if name in _REGISTRY or not isinstance(f, dict) or not isinstance(f.get("gated"), bool):
            continue
        params = f.get("params") if isinstance(f.get("params"), list) else []
        _REGISTRY[name] = ActivationSpec(name=name, target=_not_loaded(name, f.get("plugin")), family=str(f.get("family", "plugin")),
                                         gated=f["gated"], params=tuple(map(str, params)), paper=f.get("paper"), plugin=f.get("plugin"))
        added.append(name)
    return added


def _not_loaded(name: str, plugin: Any) -> Callable[..., Any]:
    def refuse(**kwargs: object) -> "nn.Module":
        raise UserError(f"activation {name!r} comes from the plugin {plugin!r}, which is not loaded: --plugin {plugin}")

    return refuse


def names() -> list[str]:
    """All registered activation names, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def closest(name: str, candidates: list[str] | None = None, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, candidates if candidates is not None else names(), n=n, cutoff=0.5)


def unknown_message(name: str, candidates: list[str] | None = None) -> str:
    near = closest(name, candidates)
    hint = f" (did you mean {', '.join(repr(c) for c in near)}?)" if near else ""
    return f"unknown activation {name!r}{hint}"


def spec(name: str) -> ActivationSpec:
    """Metadata for `name`; a UserError naming the closest names when unknown."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(unknown_message(name))
    return _REGISTRY[name]


@cache
def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_impl(name: str, impl: str, device: str | None = None) -> str:
    """Map `auto` to the implementation to use on `device` (default: CUDA when visible): the
    fused kernel on a real GPU where one exists, eager otherwise. Validate the others."""
    s = spec(name)
    if impl == "auto":
        on_cuda = _cuda() if device is None else device == "cuda"
        if "triton" in s.impls and on_cuda and s.unavailable_reason("triton") is None:
            return "triton"
        return "eager"
    if impl not in s.impl_names:
        raise UserError(f"activation {name!r} has no implementation {impl!r} (it has: {', '.join(s.impl_names)})")
    return impl


def build(name: str, impl: str = "eager", **kwargs: object) -> "nn.Module":
    """Construct activation `name` with implementation `impl` (eager|compile|triton|auto)."""
    s = spec(name)
    impl = resolve_impl(name, impl)
    reason = s.unavailable_reason(impl)
    if reason is not None:
        raise UserError(f"activation {name!r} impl {impl!r} cannot run here: {reason}")
    try:
        return s.factory(impl)(**kwargs)
    except TypeError as e:
        raise UserError(f"activation {name!r}: bad arguments {kwargs}: {e}") from e
