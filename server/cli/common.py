"""What every ``arena`` command shares: the one-line usage error and the argparse value types."""
from __future__ import annotations

import argparse

EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in what the user asked for: one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, never the whole usage block
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def int_at_least(low: int, what: str):
    """An argparse type: an integer >= ``low``, with a message naming ``what`` was expected."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive = int_at_least(1, "a positive integer")
seed = int_at_least(0, "a non-negative integer seed")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value
