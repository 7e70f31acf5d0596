"""The error every layer raises for what a user can act on (defined at the bottom layer)."""


class KicError(Exception):
    """An error the user can act on: shown as one line, without a traceback."""
