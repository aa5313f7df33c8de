"""How `lvvx` reports a failure: one line ``error [REASON] message`` on stderr and exit 2,
whatever the failure and however narrow the terminal — the form `LvvError` renders in.

Our own errors carry their reason; the foreign ones a command can meet are given one here:
click's usage errors (USAGE), pydantic's validation errors (INVALID), files that cannot be
read or written (NO_FILE, NO_ACCESS, OS_ERROR). Anything else is a bug (INTERNAL);
``LVVX_DEBUG=1`` prints the traceback before the line.
"""

from __future__ import annotations

import os
import re
import traceback

import click
from pydantic import ValidationError

from broker.errors import LvvError, validation_summary

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
"""Ctrl-C: 128 + SIGINT, as a shell reports a process the signal ended."""

DEBUG_VARIABLE = "LVVX_DEBUG"


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr; the exit code."""
    if os.environ.get(DEBUG_VARIABLE, "") not in ("", "0"):
        traceback.print_exception(exc)
    reason, message = describe(exc)
    click.echo(f"{click.style('error', fg='red')} [{reason}] {_single_line(message)}", err=True)
    return EXIT_INTERRUPTED if isinstance(exc, click.Abort) else EXIT_ERROR


def describe(exc: BaseException) -> tuple[str, str]:
    """The reason code and the message of ``exc``."""
    if isinstance(exc, LvvError):
        return exc.reason, exc.message
    if isinstance(exc, click.UsageError):
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        return "USAGE", exc.format_message() + where
    if isinstance(exc, click.Abort):
        return "INTERRUPTED", "interrupted (Ctrl-C)"
    if isinstance(exc, click.ClickException):
        return "USAGE", exc.format_message()
    if isinstance(exc, ValidationError):
        return "INVALID", validation_summary(exc)
    if isinstance(exc, OSError):
        return _os_reason(exc), _os_message(exc)
    return (
        "INTERNAL",
        f"{type(exc).__name__}: {exc} (a bug in lvvx: {DEBUG_VARIABLE}=1 shows where)",
    )


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "NO_FILE"
    if isinstance(exc, PermissionError):
        return "NO_ACCESS"
    return "OS_ERROR"


def _os_message(exc: OSError) -> str:
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return f"{exc.strerror or exc}: {' -> '.join(names)}" if names else str(exc.strerror or exc)


def _single_line(text: str) -> str:
    """``text`` on one line: line breaks become spaces, other control characters ``?``."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", text.strip())
    return "".join(c if c.isprintable() else "?" for c in text)
