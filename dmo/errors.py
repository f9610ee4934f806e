"""Errors a user can act on, and the exit codes of the command line.

Every error that reaches the CLI because of bad input is a :class:`DmoError`:
it says what was wrong, where (file, line, field) and, when it helps, what is
allowed. The CLI prints it as one paragraph and exits with its code; anything
else is a bug and keeps its traceback (exit 1).

Exit codes (docs/reliability.md has the same table):

====  ==========================================================
0     done
1     a bug in dmo (a traceback; please report it)
2     usage, config or data error: fix the command or the input
3     the store is unreachable, locked or missing
4     the work ran and failed (every trial failed, a cluster job failed)
130   interrupted (Ctrl-C)
====  ==========================================================
"""

from __future__ import annotations


EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130


class DmoError(Exception):
    """Base class of user-facing errors."""

    exit_code = EXIT_USAGE

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

    exit_code = EXIT_STORE


class SearchError(DmoError):
    """A search cannot be created, resumed or found."""


class WorkFailed(DmoError):
    """The work ran and failed: a search whose trials all failed, a failed cluster job."""

    exit_code = EXIT_FAILED
