"""Command-line conventions shared by every ``python -m cfgrl_core.<tool>``: a user error (a bad argument, a missing
or foreign file, a configuration the tool refuses) prints one line naming the problem and exits with status 2, as
argparse does for its own errors; only bugs show a traceback (``CFGRL_DEBUG=1`` shows it for user errors too)."""
from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

#: What a tool raises for a user's mistake (DatasetError and CheckpointError are ValueErrors).
USER_ERRORS = (ValueError, FileNotFoundError)


@contextmanager
def user_errors(parser: argparse.ArgumentParser):
    """Run the body; turn a user error into ``<prog>: error: <message>`` on stderr and exit status 2."""
    try:
        yield
    except USER_ERRORS as e:
        if os.environ.get("CFGRL_DEBUG"):
            raise
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value
