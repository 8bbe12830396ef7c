"""Activation registry: `build`, `names`, `spec`, `register`, plugins (torch is imported lazily)."""

from actbench.activations.registry import (
    ActivationSpec,
    build,
    load_plugin,
    names,
    register,
    register_impl,
    resolve_impl,
    spec,
)

__all__ = ["ActivationSpec", "build", "load_plugin", "names", "register", "register_impl", "resolve_impl", "spec"]
