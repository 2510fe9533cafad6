"""Errors raised by the Bastion kernel.

Every error carries a message that says what went wrong and what to do next.
"You configured us wrong" is kept apart from "the run failed":

    BastionError
    ├── ConfigError               bad settings, bad file, bad flag: fix the input (exit 2)
    │   └── HomeError             BASTION_HOME unusable (unwritable, under /root as root)
    └── RuntimeFailure            something failed while running (exit 1)
        ├── DatabaseError         the database cannot be reached or used
        │   ├── PgvectorMissingError   DATABASE_URL points at a server without pgvector
        │   └── EmbeddedPostgresError  the embedded server failed to init, start or stop
        ├── MigrationError        a migration failed; nothing after it was applied
        ├── BackupError           backup or restore failed or was refused
        ├── StoreError            the Redis or PostgreSQL store failed
        ├── PortInUseError        a listener could not bind
        └── CallerContextError    a caller context was missing, forged or expired (HTTP 401)
"""

from __future__ import annotations

__all__ = [
    "BackupError",
    "BastionError",
    "CallerContextError",
    "ConfigError",
    "DatabaseError",
    "EmbeddedPostgresError",
    "HomeError",
    "MigrationError",
    "PgvectorMissingError",
    "PortInUseError",
    "RuntimeFailure",
    "StoreError",
]


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    exit_code = 1
    status_code = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(BastionError):
    """The user's configuration or input is wrong; the message names it and the fix."""

    exit_code = 2
    status_code = 400


class HomeError(ConfigError):
    """BASTION_HOME cannot be used."""


class RuntimeFailure(BastionError):
    """Something failed while running, with a valid configuration."""


class DatabaseError(RuntimeFailure):
    """The database cannot be reached or used."""

    status_code = 503


class PgvectorMissingError(DatabaseError):
    """The configured PostgreSQL server has no pgvector extension."""


class EmbeddedPostgresError(DatabaseError):
    """The embedded PostgreSQL server failed to initialise, start or stop."""


class MigrationError(RuntimeFailure):
    """A migration failed; the ones after it were not applied."""


class BackupError(RuntimeFailure):
    """A backup or restore failed or was refused."""


class StoreError(RuntimeFailure):
    """The key-value, counter, pub/sub or queue store failed."""

    status_code = 503


class PortInUseError(RuntimeFailure):
    """A listener could not bind its address."""


class CallerContextError(RuntimeFailure):
    """A request's caller context was missing, forged or expired."""

    status_code = 401
