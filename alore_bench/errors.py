"""User-facing errors: one line that says what is wrong and how to fix it."""

from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """A problem with the user's input or environment; the CLI prints it and exits with code 2."""

    exit_code = 2


def unknown_name_error(kind: str, name: str, known: Iterable[str], option: str) -> UserError:
    """An error for an unknown registry name that suggests the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known)}"
    return UserError(f"unknown {kind} {name!r} for {option}: {hint}")
