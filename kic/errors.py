class KicError(Exception):
    """An error the user can act on: shown as one line, without a traceback."""
