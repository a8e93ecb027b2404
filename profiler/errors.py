"""Errors meant for people, not tracebacks.

A `UserError` is bad input the user can fix (a suite file, a flag, a path). The CLI prints its
message as one line and exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

EXIT_USAGE = 2


class UserError(Exception):
    """One-line, actionable error: what was wrong, where, and what to do."""


def suggest(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]+@")
"""A URL's user-info part (user:password@ before the host): never printed."""


def one_line(text: str) -> str:
    """Control characters from user input (a key named "a\rb") are shown escaped, so an error
    message is always exactly one line; a URL's credentials (scheme://user:secret@host) are shown as ***."""
    text = URL_CREDENTIALS.sub(r"\1***@", str(text))
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown(text: object, limit: int = 80) -> str:
    """User text quoted inside a message: on one line (one_line), cut to `limit` characters."""
    out = one_line(str(text))
    return out if len(out) <= limit else out[:limit] + "..."
