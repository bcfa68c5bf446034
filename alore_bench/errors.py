"""User-facing errors: one line that says what is wrong and how to fix it.

The core names the parameters a message is about as fields (`param("lr")`), never as command-line
flags: a Python caller reads `lr` (or `lr=-1.0`), the command line reads `--lr` (or `--lr -1.0`).
`UserError.render` turns the fields into whatever the caller's interface calls them."""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Iterable, Optional

_MARK, _SEP = "\x1f", "\x1e"
_FIELD = re.compile(f"{_MARK}([^{_SEP}{_MARK}]*){_SEP}([^{_MARK}]*){_MARK}")
_UNSET = object()

# (field name, encoded value or None) -> how it reads in a message
FieldStyle = Callable[[str, Optional[Any]], str]


def param(name: str, value: Any = _UNSET) -> str:
    """A parameter named inside a UserError message, optionally with the value it was given."""
    if value is _UNSET:
        payload = ""
    elif isinstance(value, bool):
        payload = "b" + ("1" if value else "0")
    elif isinstance(value, (int, float)):
        payload = "n" + repr(value)
    else:
        payload = "s" + str(value)
    return f"{_MARK}{name}{_SEP}{payload}{_MARK}"


def _decode(payload: str) -> Any:
    if not payload:
        return _UNSET
    kind, text = payload[0], payload[1:]
    if kind == "b":
        return text == "1"
    if kind == "n":
        return float(text) if any(c in text for c in ".eEn") else int(text)
    return text


def python_style(name: str, value: Any) -> str:
    """How the Python API names a field: `lr`, `lr=-1.0`, `force=True`, `weights='x.npz'`."""
    return name if value is _UNSET else f"{name}={value!r}"


def render_fields(template: str, style: Callable[[str, Any], str]) -> str:
    return _FIELD.sub(lambda m: style(m.group(1), _decode(m.group(2))), template)


def say_plain(line: str) -> None:
    """The Python API's default `say`: the line printed, its fields named as keywords."""
    print(render_fields(line, python_style))


def has_value(value: Any) -> bool:
    """Whether a decoded field came with a value (for styles other than python_style)."""
    return value is not _UNSET


class UserError(Exception):
    """A problem with the user's input or environment; the CLI prints it and exits with code 2."""

    exit_code = 2

    def __init__(self, message: str):
        self.template = message
        super().__init__(render_fields(message, python_style))

    def __reduce__(self):  # keeps the fields across processes (workers, Ray tasks)
        return (type(self), (self.template,))

    def render(self, style: Callable[[str, Any], str]) -> str:
        return render_fields(self.template, style)


class WorkLost(UserError):
    """Work stopped from outside the harness (a worker process killed, or out of memory): one
    line and exit code 1, as for a failed run; rerunning resumes."""

    exit_code = 1


def unknown_name_error(kind: str, name: str, known: Iterable[str], option: str) -> UserError:
    """An error for an unknown registry name that suggests the closest known names."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known)}"
    return UserError(f"unknown {kind} {name!r} for {option}: {hint}")
