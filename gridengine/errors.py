"""The small family of exceptions gridengine raises at its boundaries.

Every class also inherits the matching built-in (as h3-py does), so callers who
already catch ``ValueError`` or ``OSError`` keep working. Every exception carries
a message a planner can act on; input errors also carry ``path``, ``row`` and
``field`` so the CLI can print one line naming all three.

Bad *rows* are not exceptions: they become rows of the rejects table with a
reason. Exceptions are for problems that make the whole run meaningless
(a missing column, an unreadable file, an impossible capacity).
"""

from __future__ import annotations

__all__ = [
    "GridEngineError",
    "InputError",
    "ConfigError",
    "InfeasibleError",
    "CapacityShortfallError",
    "SolverError",
    "PlanWriteError",
    "GridEngineWarning",
]


class GridEngineError(Exception):
    """Base class of every error gridengine raises on purpose."""


class InputError(GridEngineError, ValueError):
    """An input file or table cannot be used as given.

    Parameters
    ----------
    message
        The full human-readable message.
    path
        The file the problem is in, if known.
    row
        The row of the problem, if it is one row: the 1-based data row (header excluded) of
        customers and specialists; the row as a spreadsheet shows it (header = row 1) of a locks file.
    field
        The column the problem is in, if it is one column.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.row = row
        self.field = field


class ConfigError(GridEngineError, ValueError):
    """A configuration value or file is invalid."""


class InfeasibleError(GridEngineError, ValueError):
    """The instance cannot be solved within its bounds (said in domain terms)."""


class CapacityShortfallError(InfeasibleError):
    """The roster cannot staff every grid and full staffing was required."""


class SolverError(GridEngineError, RuntimeError):
    """A solver failed in a way that is a bug or an environment problem, not a property of the data."""


class PlanWriteError(GridEngineError, OSError):
    """A plan folder cannot be written (not writable, or holds a plan and overwrite was not allowed)."""


class GridEngineWarning(UserWarning):
    """Warnings about a plan that is valid but deserves a planner's attention."""
