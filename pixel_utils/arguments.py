"""What the command-line tools share: argparse value types (a bad value is refused by
argparse, with a message naming the option, before any work starts), and warnings printed as
plain ``warning:`` lines."""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import warnings


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


def number_between(low: float, high: float):
    """A finite ``float`` from ``low`` to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {low:g} to {high:g}, got {text}")
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


@contextlib.contextmanager
def plain_warnings():
    """Within it, a Python warning prints as one ``warning: <message>`` on stderr (between
    progress bars), not in Python's default form, which adds the file, line and source line of
    the package code that raised it: noise to a user of a command-line tool."""
    from pixel_utils.progress import tqdm

    def show(message, category, filename, lineno, file=None, line=None):
        tqdm.write(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
