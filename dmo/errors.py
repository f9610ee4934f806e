"""Errors a user can act on.

Every error that reaches the CLI because of bad input is a :class:`DmoError`:
it says what was wrong, where (file, line, field) and, when it helps, what is
allowed. The CLI prints it as one paragraph and exits non-zero; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class DmoError(Exception):
    """Base class of user-facing errors."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text = f"{text} ({self.hint})"
        return text


class ConfigError(DmoError):
    """A configuration file or value is invalid."""


class DataError(DmoError):
    """A data file (JSONL, image) is missing or malformed."""


class CheckpointError(DmoError):
    """A checkpoint is missing, corrupt, unsafe or incompatible."""


class MergeError(DmoError):
    """Experts cannot be merged (mismatch, bad weights, unknown method)."""


class StoreError(DmoError):
    """The SQL store is unreachable or refused an operation."""

    exit_code = 3


class SearchError(DmoError):
    """A search cannot be created, resumed or found."""
