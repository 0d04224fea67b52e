"""The one family of refusals: every error that a user's input causes, and that the command line prints
as one line (exit status 1), derives from `UserError`. Anything else is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(ValueError):
    """Input that cannot be used: the message names the problem and the fix, in one line.

    A ValueError, so that code written against the older classes (each a ValueError) still catches them."""
