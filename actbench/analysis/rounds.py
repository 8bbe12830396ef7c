"""The looks of seeds in rounds, without numpy or scipy: suites compute them when they load."""

from __future__ import annotations


def looks_in_rounds(first: int, last: int, step: int) -> tuple[int, ...]:
    """first, first + step, ... below last, then last."""
    return (*range(first, last, step), last)
