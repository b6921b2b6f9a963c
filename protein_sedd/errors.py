"""The one exception type for user mistakes, in the caller's language.

Anything raised as `UserError` reaches the command line as a single line on stderr and exit code 2;
everything else is an internal error (exit code 1) and keeps its traceback.

Library code names what it checks by the Python parameter, never by a command-line flag:

    raise UserError("{batch_size} 0: must be in 1..4_096", field="batch_size")

`str(err)` reads "batch_size 0: ..." (what a Python caller passed); the CLI renders the same error with its
flags, "--batch-size 0: ..." (cli.py maps fields to flags in one place). `field` may be one name or a tuple
of names; each `{name}` of a field in the message is replaced, nothing else (other braces stay as they are).
"""

from __future__ import annotations

import re
from collections.abc import Callable


class UserError(Exception):
    """A mistake the user can fix: bad input file, bad option, missing weights or data."""

    def __init__(self, message: str, *, field: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.template = message
        self.fields: tuple[str, ...] = (field,) if isinstance(field, str) else tuple(field or ())

    @property
    def field(self) -> str | None:
        """The parameter the mistake is in (the first one named), or None when it is in no parameter."""
        return self.fields[0] if self.fields else None

    def message(self, name: Callable[[str], str] = str) -> str:
        """The message with every `{field}` written as `name(field)` (the parameter itself by default)."""
        if not self.fields:
            return self.template
        pattern = "|".join(re.escape(f) for f in self.fields)
        return re.sub(r"\{(" + pattern + r")\}", lambda m: name(m.group(1)), self.template)

    def __str__(self) -> str:
        return self.message()


def check_type(name: str, value, types, words: str) -> None:
    """Refuse parameter `name` of the wrong type (None passes: the caller checks what None means), as
    "{name}: expected {words}, got int"."""
    if value is not None and not isinstance(value, types):
        raise UserError(f"{{{name}}}: expected {words}, got {type(value).__name__}", field=name)
