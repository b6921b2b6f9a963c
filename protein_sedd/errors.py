"""The one exception type for user mistakes.

Anything raised as `UserError` reaches the command line as a single line on stderr and exit code 2;
everything else is an internal error (exit code 1) and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix: bad input file, bad option, missing weights or data."""
