"""Exceptions that name what went wrong (table, field, row) so a user can act on them."""

from __future__ import annotations


class Taosr1Error(Exception):
    """Base class of the project's own errors."""


class SchemaViolation(Taosr1Error):
    """Data does not match a table contract; the message names the table and the field."""

    def __init__(self, table: str, field: str, problem: str) -> None:
        self.table, self.field, self.problem = table, field, problem
        super().__init__(f"table '{table}', field '{field}': {problem}")


class CountMismatch(Taosr1Error):
    """Row counts of a job do not add up, so some rows would be lost."""


class InputError(Taosr1Error, ValueError):
    """User input (a file, a flag, a row) is unusable; the message names it (a ValueError, so params models
    report it as a validation error of the field)."""


class ModelIdentityError(Taosr1Error, ValueError):
    """A model folder's files no longer match the identity recorded when it was saved (corrupted or changed)."""


class EngineUnavailable(Taosr1Error):
    """The engine cannot serve at all (model load failed, server unreachable, out of memory): fatal at once,
    never bisected into row errors."""


class ErrorBudgetExceeded(Taosr1Error):
    """More rows failed in the engine than the run's error budget allows; nothing was published."""


class StaleRun(Taosr1Error):
    """A newer run of the same stage and key committed first (its app transaction is newer): this run stops
    without publishing, so an old retry can never overwrite a newer result."""
