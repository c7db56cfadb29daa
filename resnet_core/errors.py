"""The one base of everything the library raises on bad input, so a page or a command catches one type.

Each subclass says what kind of input was wrong (a spec, a checkpoint, an image, a device request, ...)
and its message says what and where, in words a user can act on.
"""


class ExplorerError(ValueError):
    """Bad input, or a request this machine cannot serve: the message is for the user, never a traceback."""


class DataError(ExplorerError):
    """A data set that cannot be loaded: the message names the file or value and what is wrong."""
