"""User-facing errors and exit codes.

A layer raises an :class:`HlmError` where it sees the problem; ``cli/app.py:main`` catches it
once and turns it into two lines on stderr and an exit code. Nothing below ``cli/`` prints.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BAD_INPUT = 1  # data, formula, priors, config, non-empty --out
    USAGE = 2  # Typer/Click usage errors
    DIAGNOSTICS = 3  # diagnostics failed under --strict (results kept)
    BATCH_FAILURES = 4  # hlm batch: some inputs failed
    BUG = 70  # an unexpected exception: a bug in hlm
    INTERRUPTED = 130  # Ctrl-C


class HlmError(Exception):
    """A problem the user can fix: a one-line message, and a hint saying how."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line, always
        return " ".join(self.message.split("\n"))


class InputError(HlmError):
    """The data file: missing, unreadable, empty, wrong columns or values."""


class FormulaError(HlmError):
    """The formula: syntax, unknown names, refused constructs."""


class PriorError(HlmError):
    """A --prior specification."""


class ConfigError(HlmError):
    """A run config (TOML) or a combination of options."""


class UsageError(ConfigError):
    """A command-line option outside its range (``--draws 0``): a usage error, exit 2, like
    the ones Typer/Click report, but with a hint."""

    exit_code = ExitCode.USAGE


class OutputError(HlmError):
    """The output directory: exists and is not empty, or is not writable."""


class SamplingError(HlmError):
    """The sampler failed in a way the user can act on (e.g. bad initial values)."""


def closest_match(name: str, choices: Iterable[str], *, what: str = "columns") -> str:
    """A hint naming the closest choice (if any) and listing all of them."""
    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    listing = ", ".join(choices[:30]) + (" ..." if len(choices) > 30 else "")
    if close:
        return f"did you mean {close[0]!r}? {what}: {listing}"
    return f"{what}: {listing}"
