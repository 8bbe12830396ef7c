"""The trial kinds, one module each (`kernel`, `memory`, `lm`, `probe`, `impl`): a config model and
a run function registered with `actbench.core.kinds.register_kind`; `elementwise` and `device` are
what the kernel and memory kinds share."""
