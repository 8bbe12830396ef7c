"""Suites: YAML files expanded into trials. `load_suite` reads and validates one (`load`), with
`--set` values (`overrides`), the schema in `schema` and safe reading in `yamlsafe`."""

from actbench.suite.load import MAX_TRIALS, Suite, load_suite
from actbench.suite.overrides import parse_overrides

__all__ = ["MAX_TRIALS", "Suite", "load_suite", "parse_overrides"]
