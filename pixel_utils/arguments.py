"""argparse value types shared by the command-line tools: a bad value is refused by argparse,
with a message naming the option, before any work starts."""

from __future__ import annotations

import argparse
import math


def whole_number(low: int, high: int | None = None):
    """An ``int`` from ``low`` (to ``high``, if given)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low or (high is not None and value > high):
            bounds = f"{low} or more" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {value}")
        return value

    return parse


def positive_number(text: str) -> float:
    """A finite ``float`` above 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value
