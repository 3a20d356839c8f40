"""The kit's user errors: one base class, so the CLI prints any of them as one line and exits with code 2.

A :class:`KitError` is a mistake the user can fix (an unknown name, a bad setting, unusable data on disk);
its message says what was wrong and what is valid. Bugs stay ordinary exceptions with tracebacks.
"""
from __future__ import annotations

__all__ = ["KitError", "UnknownNameError", "ConfigError", "DataError", "MissingDataError"]


class KitError(Exception):
    """Base of the errors a user can fix; the message is complete on its own."""


class UnknownNameError(KitError, KeyError):
    """A name (profile, model, task, field, data set) that does not exist; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(KitError, ValueError):
    """A setting with a value of the wrong type or outside its range; the message names the key."""


class DataError(KitError, ValueError):
    """Data on disk that cannot be used as it is; the message names the file and the fix."""


class MissingDataError(DataError, FileNotFoundError):
    """A file or folder a command needs is not there; the message names it and what makes it."""
