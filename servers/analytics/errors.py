"""Errors of the analytics server, each a `ToolError` so its message reaches the caller.

AnalyticsError                 base; the MCP SDK returns its message as an isError result
├── AccessDeniedError          the caller may not use this dataset, source or tool
├── NotFoundError              no such dataset or source
├── InvalidNameError           a dataset, source or column name unsafe as an identifier
├── LoadError                  a file could not be loaded; nothing was changed
├── SourceError                an external source could not be registered or reached
├── QueryRefusedError          the SQL was refused before it ran (with the reason)
│   └── UnknownDatasetError    it names a dataset that is not there for the caller
└── QueryFailedError           the SQL ran and PostgreSQL refused or failed it
    └── QueryTimeoutError      the statement timeout cancelled it
"""

from __future__ import annotations

from mcp.server.mcpserver.exceptions import ToolError

__all__ = [
    "AccessDeniedError",
    "AnalyticsError",
    "InvalidNameError",
    "LoadError",
    "NotFoundError",
    "QueryFailedError",
    "QueryRefusedError",
    "QueryTimeoutError",
    "SourceError",
    "UnknownDatasetError",
    "unknown_dataset",
]


class AnalyticsError(ToolError):
    """Base of every error the analytics server raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AccessDeniedError(AnalyticsError):
    """The caller may not use this dataset, source or tool."""


class NotFoundError(AnalyticsError):
    """No dataset or source by that name (or none the caller may see)."""


class InvalidNameError(AnalyticsError):
    """A name that would be unsafe or ambiguous as a PostgreSQL identifier."""


class LoadError(AnalyticsError):
    """A file could not be loaded; the dataset is as it was before."""


class SourceError(AnalyticsError):
    """An external PostgreSQL source could not be registered or reached."""


class QueryRefusedError(AnalyticsError):
    """The SQL was refused by the parser checks; nothing ran."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"query refused: {reason}")
        self.reason = reason


class QueryFailedError(AnalyticsError):
    """PostgreSQL refused or failed the statement inside the sandbox."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class QueryTimeoutError(QueryFailedError):
    """The statement ran longer than the statement timeout and was cancelled."""


def unknown_dataset(name: str, nearest: str | None = None) -> str:
    """The one answer for a dataset that does not exist and one the caller may not read
    (so it never confirms that a dataset exists), with the nearest readable name if any."""
    hint = f"; did you mean {nearest!r}?" if nearest else ""
    return f"no dataset named {name!r} that you may read (see list_datasets){hint}"


class UnknownDatasetError(QueryRefusedError):
    """A query names a dataset that does not exist or that the caller may not read."""

    def __init__(self, name: str) -> None:
        super().__init__(unknown_dataset(name))
        self.name = name
