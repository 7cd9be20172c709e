"""Errors that come from the user's input rather than from a bug."""


class UserError(Exception):
    """Bad arguments, paths or data. The CLI prints the message on one line and exits with status 2."""
